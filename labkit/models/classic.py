"""The course's classic classifiers (Lab 1–4): a VGG16-style CNN, a small MLP head and the Lab 1 MLP.

Both keep the course's exact layer graph (a `keras.Sequential` with separate ``Activation`` layers), so the same
arguments give the same layers and parameter count as the course code; the layers are named after where they sit.
"""

import keras
from keras import layers

from labkit.errors import require

#: VGG16's five blocks: (convolutions, filters as a multiple of ``n_base``).
VGG16_BLOCKS = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))


def dropout_rate(value, name="dropout"):
    """A dropout rate as a float in (0, 1), or None for none (None, False and 0 all mean none).

    Raises:
        LabkitInputError: for a rate outside [0, 1) or not a number, naming `name`.
    """
    if value is None or value is False:
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    require(0.0 <= rate < 1.0, f"{name} must be a rate in [0, 1) or None, got {value!r}")
    return rate or None


def _classifier_top(model, n_class, hinge=False):
    """The Lab 4 output: ``Dense(n_class)`` then softmax (sigmoid for a single unit); with `hinge`, one linear
    score unit (see `binary_or_softmax_top`)."""
    if hinge:
        require(int(n_class) <= 2, f"hinge=True needs two classes (labels -1 and 1), got n_class={n_class}")
        n_class = 1
    model.add(layers.Dense(n_class, name="classifier"))
    activation = "linear" if hinge else "softmax" if n_class > 1 else "sigmoid"
    model.add(layers.Activation(activation, name="predictions"))


def binary_or_softmax_top(model, n_class, hinge=False):
    """The Lab 2–3 output (``lenet_model``, ``alexnet_model``, ``vgg16_model`` with ``first2_dense``): one sigmoid
    unit for two classes (or one), ``Dense(n_class)`` + softmax for more.

    With `hinge` (the course's hinge-loss task, labels {−1, 1}): one *linear* unit, the SVM score ``s``; the
    hinge loss ``max(0, 1 − y·s)`` pushes it beyond ±1 and the predicted class is the sign of ``s``. A sigmoid
    there would squash ``s`` into (0, 1) so ``y·s`` could never reach the margin for ``y = −1``."""
    _classifier_top(model, 1 if int(n_class) <= 2 else int(n_class), hinge)


def add_hidden_dense(model, widths, dropout, prefix="dense"):
    """``Dense(width) → [Dropout] → ReLU`` for each width (the course's order: dropout before the activation)."""
    rate = dropout_rate(dropout)
    for i, width in enumerate(widths, start=1):
        model.add(layers.Dense(int(width), name=f"{prefix}{i}"))
        if rate:
            model.add(layers.Dropout(rate, name=f"dropout{i}"))
        model.add(layers.Activation("relu", name=f"{prefix}{i}_relu"))


def vgg16_model(img_width, img_height, img_ch, n_base=64, dropout=None, n_class=2, dense_layers=(64,),
                batchnorm=False, first2_dense=None, spatial_dropout=None, hinge=False):
    """The course's VGG16-style classifier, trained from scratch (Lab 3 and Lab 4 signatures both).

    Five blocks of 3×3 same-padded convolutions, each followed by ReLU, with 2, 2, 3, 3, 3 convolutions of
    ``n_base × (1, 2, 4, 8, 8)`` filters and a 2×2 max-pooling after each block; the last convolution is named
    ``Last_ConvLayer`` (the layer the class activation map explains). Each convolution is followed by
    ``[BatchNormalization] → ReLU``, each block's last ReLU by ``[SpatialDropout2D]``. Then Flatten, for each width
    in `dense_layers` a ``Dense → [Dropout] → ReLU``, and ``Dense(n_class) → softmax``.

    Args:
        img_width, img_height, img_ch: input size and channels (the input is ``(img_height, img_width, img_ch)``).
        n_base: filters of the first block (64 in VGG16 itself; the course's Task 3 uses 8).
        dropout: dropout rate after each hidden dense layer, or None for none.
        n_class: output classes (softmax; 1 gives a single sigmoid unit).
        dense_layers: widths of the hidden dense layers (course Task 3: ``(64, 64, 64)``).
        batchnorm: insert `BatchNormalization` between each convolution and its ReLU (the course's Lab 2
            batch-norm variant; off in Lab 4). A plain VGG trained from scratch on a few hundred images can sit on
            the chance-level plateau for many epochs; batch normalisation gets it moving within a few.
        first2_dense: the Lab 3 handout's keyword, ``[64, 64]`` there: the hidden dense widths, with the Lab 3 head
            (one sigmoid unit for ``n_class`` ≤ 2, softmax for more). Lab 3's positional order
            ``(…, n_base, dropout, first2_dense, n_class)`` is recognised too (a list in `n_class`'s place).
        spatial_dropout: `SpatialDropout2D` rate after each block's last ReLU, before its pooling (course Lab 3
            Task 6: 0.1), or None for none.
        hinge: one linear score unit for hinge loss with labels {−1, 1} (see `binary_or_softmax_top`).

    Returns:
        An uncompiled `keras.Sequential` named ``vgg16_model``.

    Example:
        >>> model = vgg16_model(128, 128, 1, n_base=8, dropout=0.4, dense_layers=(64, 64, 64))
        >>> model.get_layer("Last_ConvLayer").output.shape
        (None, 8, 8, 64)
    """
    if isinstance(n_class, (list, tuple)):  # Lab 3 positional call: (…, dropout, first2_dense, n_class)
        first2_dense, n_class = n_class, (dense_layers if isinstance(dense_layers, int) else 2)
    lab3_head = first2_dense is not None
    if lab3_head:
        dense_layers = first2_dense
    require(min(img_width, img_height) >= 32, f"vgg16_model needs images of at least 32×32 (5 poolings), got "
            f"{img_width}×{img_height}")
    require(int(n_base) >= 1 and int(n_class) >= 1, f"n_base and n_class must be >= 1, got {n_base}, {n_class}")
    spatial_rate = dropout_rate(spatial_dropout, "spatial_dropout")
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
        if spatial_rate:
            model.add(layers.SpatialDropout2D(spatial_rate, name=f"block{block}_spatial_dropout"))
        model.add(layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool"))
    model.add(layers.Flatten(name="flatten"))
    add_hidden_dense(model, dense_layers, dropout)
    (binary_or_softmax_top if lab3_head else _classifier_top)(model, int(n_class), hinge)
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
    add_hidden_dense(model, (base,), dropout)
    _classifier_top(model, int(n_class))
    return model


def lab1_mlp_model(img_width, img_height, img_ch, base_dense, n_class=2):
    """The Lab 1 multi-layer perceptron (the handout's ``model``): Flatten → three ReLU dense layers of
    ``base_dense``, ``base_dense // 2`` and ``base_dense // 4`` units (Lab 1 Task 4: base, base/2, base/4) → one
    sigmoid unit (``n_class`` ≤ 2) or ``Dense(n_class)`` + softmax. The last layer is named ``out``, as the handout
    asked.

    The handout left the body as an exercise and students wrote the widths as ``base_dense/2``, a float, which
    Keras 3's ``Dense`` refuses; they are integers here.

    Args:
        img_width, img_height, img_ch: input size and channels (the input is ``(img_height, img_width, img_ch)``).
        base_dense: units of the first hidden layer.
        n_class: classes (2: one sigmoid unit, as the handout).

    Returns:
        An uncompiled functional `keras.Model` named ``lab1_mlp``.

    Example:
        >>> lab1_mlp_model(128, 128, 1, 64).count_params()   # 16384·64+64 + 64·32+32 + 32·16+16 + 16+1
        1051265
    """
    require(int(base_dense) >= 4, f"base_dense must be >= 4 (the third layer has base_dense // 4 units), got {base_dense}")
    inputs = keras.Input(shape=(int(img_height), int(img_width), int(img_ch)), name="input_layer")
    x = layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate((int(base_dense), int(base_dense) // 2, int(base_dense) // 4), start=1):
        x = layers.Dense(width, activation="relu", name=f"dense{i}")(x)
    units = 1 if int(n_class) <= 2 else int(n_class)
    out = layers.Dense(units, activation="sigmoid" if units == 1 else "softmax", name="out")(x)
    return keras.Model(inputs, out, name="lab1_mlp")


def model(img_width, img_height, img_ch, base_dense, n_class=2):
    """The Lab 1 handout's name for `lab1_mlp_model` (same arguments, same network)."""
    return lab1_mlp_model(img_width, img_height, img_ch, base_dense, n_class)
