"""Image classifiers on ImageNet backbones: a backbone, global pooling, dropout and a dense softmax head.

The seven-class skin lesion lab (HAM10000 / ISIC 2018 Task 3) uses `resnet50_classifier`. Inputs are RGB images in
[0, 1]; the backbone's own ImageNet preprocessing is part of the model (see `labkit.models.transfer`).
"""

import keras
from keras import layers

from labkit.errors import require
from labkit.models.transfer import imagenet_backbone

#: The last convolutional block of ResNet50, the usual Grad-CAM layer.
RESNET50_LAST_CONV = "conv5_block3_out"
#: The output of each ResNet50 stage, deepest first, with its stride (input side / feature-map side).
RESNET50_STAGES = (("conv5_block3_out", 32), ("conv4_block6_out", 16), ("conv3_block4_out", 8),
                   ("conv2_block3_out", 4))


def resnet50_gradcam_layer(img_size, min_side=7):
    """The deepest ResNet50 stage whose feature map is at least `min_side` pixels across at input size `img_size`.

    At 224×224 that is the usual `RESNET50_LAST_CONV` (7×7); at small demo sizes the last block's map is only
    2×2 or 1×1, too coarse for a heatmap to show where the network looks, so an earlier stage is used.

    Example:
        >>> resnet50_gradcam_layer(224), resnet50_gradcam_layer(64)
        ('conv5_block3_out', 'conv3_block4_out')
    """
    for name, stride in RESNET50_STAGES:
        if img_size // stride >= min_side:
            return name
    return RESNET50_STAGES[-1][0]


def classification_head(features, n_class, dropout=0.5, pooling="avg"):
    """Global pooling, dropout and a dense softmax layer over a feature map.

    Args:
        features: a 4D feature-map tensor ``(b, h, w, c)``.
        n_class: number of classes.
        dropout: dropout rate before the dense layer (0 or None: no dropout layer).
        pooling: ``avg`` (global average pooling) or ``max``.

    Returns:
        The ``(b, n_class)`` softmax output tensor, in float32 even under a mixed-precision policy.
    """
    require(pooling in ("avg", "max"), f"unknown pooling {pooling!r}: choose avg or max")
    pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D
    x = pool(name=f"{pooling}_pool")(features)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(n_class, activation="softmax", dtype="float32", name="predictions")(x)


def set_batchnorm_momentum(model, momentum):
    """Set the moving-average momentum of every BatchNormalization layer in `model` (nested models included).

    Keras's default 0.99 averages over the last ~100 steps. A randomly initialised network changes its activation
    statistics fast during its first few hundred steps, so after a short run the moving averages still lag far
    behind and inference-mode predictions collapse (typically to one class) while training accuracy looks fine;
    0.9 (~10 steps) follows them. Returns the number of layers changed.
    """
    def walk(parent):
        for layer in parent.layers:
            yield layer
            if hasattr(layer, "layers"):
                yield from walk(layer)

    batchnorms = [layer for layer in walk(model) if isinstance(layer, layers.BatchNormalization)]
    for layer in batchnorms:
        layer.momentum = float(momentum)
    return len(batchnorms)


def resnet50_classifier(input_shape=(224, 224, 3), n_class=7, weights="imagenet", dropout=0.5, pooling="avg",
                        freeze_backbone=False, bn_momentum=None, name="resnet50_classifier"):
    """ResNet50 (without its top) → global pooling → dropout → dense softmax over `n_class` classes.

    Args:
        input_shape: ``(height, width, 3)`` (or 1 channel, repeated to RGB), at least 32×32; images in [0, 1].
        n_class: number of classes (7 for ISIC 2018 Task 3).
        weights: ``"imagenet"``, None/``"none"`` (random initialisation) or a path to a local weights file.
        dropout: dropout rate before the dense layer.
        pooling: ``avg`` or ``max`` global pooling.
        freeze_backbone: train the head only; the frozen backbone also keeps its BatchNorm statistics (Keras runs
            non-trainable BatchNorm layers in inference mode).
        bn_momentum: momentum of the backbone's BatchNorm moving averages (None keeps Keras's 0.99; 0.9 suits
            short runs from random initialisation, see `set_batchnorm_momentum`).
        name: model name.

    Returns:
        A `keras.Model` with ``2048·n_class + n_class`` parameters on top of ResNet50's 23,587,712. Its layers are
        the backbone's (``imagenet_preprocess``, the nested ``resnet50`` whose last block is
        `RESNET50_LAST_CONV`), ``avg_pool``, ``head_dropout`` and ``predictions``.

    Raises:
        WeightsUnavailableError: ImageNet weights could not be fetched (see `imagenet_backbone`).

    Example:
        >>> model = resnet50_classifier((224, 224, 3), n_class=7, weights=None)
        >>> model.output_shape
        (None, 7)
    """
    backbone = imagenet_backbone("resnet50", input_shape, weights=weights, trainable=not freeze_backbone)
    if bn_momentum is not None:
        set_batchnorm_momentum(backbone, bn_momentum)
    outputs = classification_head(backbone.output, n_class, dropout, pooling)
    return keras.Model(backbone.input, outputs, name=name)
