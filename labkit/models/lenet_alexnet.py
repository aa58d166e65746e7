"""The course's Lab 2–3 CNNs: LeNet and AlexNet-style classifiers (the handout's ``lenet_model`` and
``alexnet_model``).

Both keep the handout's layer graph as a `keras.Sequential` (so the same arguments give the same layers and parameter
count) with layers named after where they sit. The output follows the handout: one sigmoid unit for two classes,
``Dense(n_class)`` + softmax for more. One fix: the handout had no output at all for ``n_class=1`` (its
``if n_class == 2 … elif n_class > 2`` left the model headless); labkit gives one sigmoid unit, as for two.
"""

import keras
from keras import layers

from labkit.errors import require
from labkit.models.classic import add_hidden_dense, binary_or_softmax_top

#: AlexNet's five convolutions as multiples of ``n_base``, and whether a 2×2 max-pooling follows each.
ALEXNET_CONVS = ((1, True), (2, True), (4, False), (4, False), (2, True))


def _input(model, img_width, img_height, img_ch, poolings, name):
    require(min(int(img_width), int(img_height)) >= 2**poolings,
            f"{name} needs images of at least {2**poolings}×{2**poolings} ({poolings} poolings), got "
            f"{img_width}×{img_height}")
    model.add(keras.Input(shape=(int(img_height), int(img_width), int(img_ch)), name="image"))


def lenet_model(img_width, img_height, img_ch, base, n_class=2):
    """The course's LeNet (Lab 2): two [3×3 same-padded conv + ReLU → 2×2 max-pool] blocks with ``base`` and
    ``2·base`` filters, Flatten, ``Dense(2·base)`` + ReLU, and the output.

    Args:
        img_width, img_height, img_ch: input size and channels (the input is ``(img_height, img_width, img_ch)``).
        base: filters of the first convolution.
        n_class: classes: one sigmoid unit for 1 or 2, ``Dense(n_class)`` + softmax for more.

    Returns:
        An uncompiled `keras.Sequential` named ``lenet_model``.

    Example:
        >>> lenet_model(128, 128, 1, 8).count_params()   # 80 + 1168 + 32·32·16·16+16 + 17
        263425
    """
    require(int(base) >= 1, f"base must be >= 1, got {base}")
    model = keras.Sequential(name="lenet_model")
    _input(model, img_width, img_height, img_ch, 2, "lenet_model")
    for block, filters in enumerate((int(base), 2 * int(base)), start=1):
        model.add(layers.Conv2D(filters, (3, 3), padding="same", activation="relu", name=f"block{block}_conv"))
        model.add(layers.MaxPooling2D((2, 2), name=f"block{block}_pool"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(2 * int(base), activation="relu", name="dense1"))
    binary_or_softmax_top(model, n_class)
    return model


def alexnet_model(img_width, img_height, img_ch, n_base, dropout=None, n_class=2, first2_dense=(64, 64),
                  batch_norm=False, s_dropout=None):
    """The course's AlexNet-style classifier (Lab 2–3).

    Five 3×3 same-padded convolutions with ``n_base × (1, 2, 4, 4, 2)`` filters, each followed by
    ``[BatchNormalization] → ReLU → [SpatialDropout2D]``, a 2×2 max-pooling after the 1st, 2nd and 5th; Flatten;
    two ``Dense(width) → [Dropout] → ReLU`` layers of widths `first2_dense`; the output.

    Args:
        img_width, img_height, img_ch: input size and channels.
        n_base: filters of the first convolution.
        dropout: dropout rate after each hidden dense layer (a float; None for none).
        n_class: classes: one sigmoid unit for 1 or 2, ``Dense(n_class)`` + softmax for more.
        first2_dense: widths of the two hidden dense layers.
        batch_norm: batch normalisation between each convolution and its ReLU.
        s_dropout: spatial dropout rate after each convolution's ReLU (a float; None for none).

    Returns:
        An uncompiled `keras.Sequential` named ``alexnet_model``.

    Example:
        >>> model = alexnet_model(128, 128, 1, 8, dropout=0.4, batch_norm=True, s_dropout=0.1)
    """
    require(int(n_base) >= 1, f"n_base must be >= 1, got {n_base}")
    require(len(first2_dense) == 2, f"first2_dense takes two widths, got {list(first2_dense)}")
    model = keras.Sequential(name="alexnet_model")
    _input(model, img_width, img_height, img_ch, 3, "alexnet_model")
    for index, (multiple, pool) in enumerate(ALEXNET_CONVS, start=1):
        model.add(layers.Conv2D(int(n_base) * multiple, (3, 3), padding="same", name=f"conv{index}"))
        if batch_norm:
            model.add(layers.BatchNormalization(name=f"conv{index}_bn"))
        model.add(layers.Activation("relu", name=f"conv{index}_relu"))
        if isinstance(s_dropout, float) and s_dropout > 0:
            model.add(layers.SpatialDropout2D(s_dropout, name=f"conv{index}_spatial_dropout"))
        if pool:
            model.add(layers.MaxPooling2D((2, 2), name=f"conv{index}_pool"))
    model.add(layers.Flatten(name="flatten"))
    add_hidden_dense(model, first2_dense, dropout)
    binary_or_softmax_top(model, n_class)
    return model


__all__ = ["alexnet_model", "lenet_model"]
