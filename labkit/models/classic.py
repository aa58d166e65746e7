"""The course's classic classifiers (Lab 2 / Lab 4 Tasks 1–3): a VGG16-style CNN and a small MLP head.

Both keep the course's exact layer graph (a `keras.Sequential` with separate ``Activation`` layers), so the same
arguments give the same layers and parameter count as the course code; the layers are named after where they sit.
"""

import keras
from keras import layers

from labkit.errors import require

#: VGG16's five blocks: (convolutions, filters as a multiple of ``n_base``).
VGG16_BLOCKS = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))


def _classifier_top(model, n_class):
    """The course's output: ``Dense(n_class)`` then softmax (sigmoid for a single unit)."""
    model.add(layers.Dense(n_class, name="classifier"))
    model.add(layers.Activation("softmax" if n_class > 1 else "sigmoid", name="predictions"))


def vgg16_model(img_width, img_height, img_ch, n_base=64, dropout=None, n_class=2, dense_layers=(64,),
                batchnorm=False):
    """The course's VGG16-style classifier, trained from scratch.

    Five blocks of 3×3 same-padded convolutions, each followed by ReLU, with 2, 2, 3, 3, 3 convolutions of
    ``n_base × (1, 2, 4, 8, 8)`` filters and a 2×2 max-pooling after each block; the last convolution is named
    ``Last_ConvLayer`` (the layer the class activation map explains). Then Flatten, for each width in
    `dense_layers` a ``Dense → [Dropout] → ReLU``, and ``Dense(n_class) → softmax``.

    Args:
        img_width, img_height, img_ch: input size and channels (the input is ``(img_height, img_width, img_ch)``).
        n_base: filters of the first block (64 in VGG16 itself; the course's Task 3 uses 8).
        dropout: dropout rate after each hidden dense layer, or None for none.
        n_class: output classes (softmax; 1 gives a single sigmoid unit).
        dense_layers: widths of the hidden dense layers (course Task 3: ``(64, 64, 64)``).
        batchnorm: insert `BatchNormalization` between each convolution and its ReLU (the course's Lab 2
            batch-norm variant; off in Lab 4). A plain VGG trained from scratch on a few hundred images can sit on
            the chance-level plateau for many epochs; batch normalisation gets it moving within a few.

    Returns:
        An uncompiled `keras.Sequential` named ``vgg16_model``.

    Example:
        >>> model = vgg16_model(128, 128, 1, n_base=8, dropout=0.4, dense_layers=(64, 64, 64))
        >>> model.get_layer("Last_ConvLayer").output.shape
        (None, 8, 8, 64)
    """
    require(min(img_width, img_height) >= 32, f"vgg16_model needs images of at least 32×32 (5 poolings), got "
            f"{img_width}×{img_height}")
    require(int(n_base) >= 1 and int(n_class) >= 1, f"n_base and n_class must be >= 1, got {n_base}, {n_class}")
    model = keras.Sequential(name="vgg16_model")
    model.add(keras.Input(shape=(int(img_height), int(img_width), int(img_ch)), name="image"))
    last_block = len(VGG16_BLOCKS)
    for block, (n_conv, multiple) in enumerate(VGG16_BLOCKS, start=1):
        for conv in range(1, n_conv + 1):
            last = block == last_block and conv == n_conv
            name = "Last_ConvLayer" if last else f"block{block}_conv{conv}"
            model.add(layers.Conv2D(n_base * multiple, (3, 3), padding="same", name=name))
            if batchnorm:
                model.add(layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{conv}"))
            model.add(layers.Activation("relu", name=f"block{block}_relu{conv}"))
        model.add(layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool"))
    model.add(layers.Flatten(name="flatten"))
    for i, width in enumerate(dense_layers, start=1):
        model.add(layers.Dense(int(width), name=f"dense{i}"))
        if isinstance(dropout, float) and dropout > 0:
            model.add(layers.Dropout(dropout, name=f"dropout{i}"))
        model.add(layers.Activation("relu", name=f"dense{i}_relu"))
    _classifier_top(model, int(n_class))
    return model


def MLP_model(base=128, dropout=None, n_class=2, input_shape=None):  # noqa: N802 - the course's name
    """The course's MLP head for bottleneck features: ``Flatten → Dense(base) → [Dropout] → ReLU → Dense(n_class)
    → softmax``.

    Args:
        base: width of the hidden layer.
        dropout: dropout rate after the hidden layer, or None (course Task 1: 0.5).
        n_class: output classes (softmax; 1 gives a single sigmoid unit).
        input_shape: shape of one feature map, e.g. ``(7, 7, 512)`` for VGG16 at 224×224. None (the course's way)
            leaves the model unbuilt until it first sees data.

    Returns:
        An uncompiled `keras.Sequential` named ``mlp_model``.

    Example:
        >>> MLP_model(128, 0.5, input_shape=(7, 7, 512)).count_params()   # 7·7·512·128 + 128 + 128·2 + 2
        3211650
    """
    require(int(base) >= 1, f"MLP base must be >= 1, got {base}")
    model = keras.Sequential(name="mlp_model")
    if input_shape is not None:
        model.add(keras.Input(shape=tuple(int(d) for d in input_shape), name="features"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(int(base), name="dense1"))
    if isinstance(dropout, float) and dropout > 0:
        model.add(layers.Dropout(dropout, name="dropout1"))
    model.add(layers.Activation("relu", name="dense1_relu"))
    _classifier_top(model, int(n_class))
    return model
