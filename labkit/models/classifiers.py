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


def resnet50_classifier(input_shape=(224, 224, 3), n_class=7, weights="imagenet", dropout=0.5, pooling="avg",
                        freeze_backbone=False, name="resnet50_classifier"):
    """ResNet50 (without its top) → global pooling → dropout → dense softmax over `n_class` classes.

    Args:
        input_shape: ``(height, width, 3)`` (or 1 channel, repeated to RGB), at least 32×32; images in [0, 1].
        n_class: number of classes (7 for ISIC 2018 Task 3).
        weights: ``"imagenet"``, None/``"none"`` (random initialisation) or a path to a local weights file.
        dropout: dropout rate before the dense layer.
        pooling: ``avg`` or ``max`` global pooling.
        freeze_backbone: train the head only; the frozen backbone also keeps its BatchNorm statistics (Keras runs
            non-trainable BatchNorm layers in inference mode).
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
    outputs = classification_head(backbone.output, n_class, dropout, pooling)
    return keras.Model(backbone.input, outputs, name=name)
