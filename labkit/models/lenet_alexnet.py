"""The course's Lab 2–3 CNNs: LeNet and AlexNet-style classifiers (the handout's ``lenet_model`` and
``alexnet_model``).

Both keep the handout's layer graph as a `keras.Sequential` (so the same arguments give the same layers and parameter
count) with layers named after where they sit. The output follows the handout: one sigmoid unit for two classes,
``Dense(n_class)`` + softmax for more. One fix: the handout had no output at all for ``n_class=1`` (its
``if n_class == 2 … elif n_class > 2`` left the model headless); labkit gives one sigmoid unit, as for two.

The Lab 3 regularisation options are the same keywords on both (and on `vgg16_model`): ``batchnorm`` (batch
normalisation between each convolution and its ReLU), ``spatial_dropout`` (`SpatialDropout2D` after each
convolution block's ReLU), ``dropout`` (in the dense head), and ``hinge`` (one linear score unit for hinge loss with
labels {−1, 1}).
"""

import keras
from keras import layers

from labkit.errors import require
from labkit.models.classic import add_hidden_dense, binary_or_softmax_top, dropout_rate

#: AlexNet's five convolutions as multiples of ``n_base``, and whether a 2×2 max-pooling follows each.
ALEXNET_CONVS = ((1, True), (2, True), (4, False), (4, False), (2, True))


def _input(model, img_width, img_height, img_ch, poolings, name):
    require(min(int(img_width), int(img_height)) >= 2**poolings,
            f"{name} needs images of at least {2**poolings}×{2**poolings} ({poolings} poolings), got "
            f"{img_width}×{img_height}")
    model.add(keras.Input(shape=(int(img_height), int(img_width), int(img_ch)), name="image"))


def _conv_relu(model, filters, name, batchnorm, spatial_rate, fused_relu=False):
    """``Conv 3×3 → [BatchNormalization] → ReLU → [SpatialDropout2D]``, the layers named ``name``,
    ``name_bn``, ``name_relu``, ``name_spatial_dropout``.

    With `fused_relu` (the handout's LeNet graph) and no batch normalisation, the ReLU is the convolution's own
    activation; otherwise a separate layer, after the normalisation (the course's "batch norm before ReLU")."""
    fused = fused_relu and not batchnorm
    model.add(layers.Conv2D(filters, (3, 3), padding="same", activation="relu" if fused else None, name=name))
    if batchnorm:
        model.add(layers.BatchNormalization(name=f"{name}_bn"))
    if not fused:
        model.add(layers.Activation("relu", name=f"{name}_relu"))
    if spatial_rate:
        model.add(layers.SpatialDropout2D(spatial_rate, name=f"{name}_spatial_dropout"))


def lenet_model(img_width, img_height, img_ch, base, n_class=2, *, batchnorm=False, spatial_dropout=None,
                dropout=None, hinge=False):
    """The course's LeNet (Lab 2): two [3×3 same-padded conv + ReLU → 2×2 max-pool] blocks with ``base`` and
    ``2·base`` filters, Flatten, ``Dense(2·base)`` + ReLU, and the output.

    Args:
        img_width, img_height, img_ch: input size and channels (the input is ``(img_height, img_width, img_ch)``).
        base: filters of the first convolution.
        n_class: classes: one sigmoid unit for 1 or 2, ``Dense(n_class)`` + softmax for more.
        batchnorm: `BatchNormalization` between each convolution and its ReLU.
        spatial_dropout: `SpatialDropout2D` rate after each convolution's ReLU (before its pooling), or None.
        dropout: `Dropout` rate after the hidden dense layer's ReLU (the same as before it: ReLU commutes with the
            dropout mask), or None.
        hinge: one linear score unit for hinge loss with labels {−1, 1}; needs ``n_class`` ≤ 2.

    Returns:
        An uncompiled `keras.Sequential` named ``lenet_model``.

    Example:
        >>> lenet_model(128, 128, 1, 8).count_params()   # 80 + 1168 + 32·32·16·16+16 + 17
        263425
    """
    require(int(base) >= 1, f"base must be >= 1, got {base}")
    spatial_rate, dense_rate = dropout_rate(spatial_dropout, "spatial_dropout"), dropout_rate(dropout)
    model = keras.Sequential(name="lenet_model")
    _input(model, img_width, img_height, img_ch, 2, "lenet_model")
    for block, filters in enumerate((int(base), 2 * int(base)), start=1):
        _conv_relu(model, filters, f"block{block}_conv", batchnorm, spatial_rate, fused_relu=True)
        model.add(layers.MaxPooling2D((2, 2), name=f"block{block}_pool"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(2 * int(base), activation="relu", name="dense1"))
    if dense_rate:
        model.add(layers.Dropout(dense_rate, name="dropout1"))
    binary_or_softmax_top(model, n_class, hinge)
    return model


def alexnet_model(img_width, img_height, img_ch, n_base, dropout=None, n_class=2, first2_dense=(64, 64),
                  batch_norm=False, s_dropout=None, *, batchnorm=False, spatial_dropout=None, hinge=False):
    """The course's AlexNet-style classifier (Lab 2–3).

    Five 3×3 same-padded convolutions with ``n_base × (1, 2, 4, 4, 2)`` filters, each followed by
    ``[BatchNormalization] → ReLU → [SpatialDropout2D]``, a 2×2 max-pooling after the 1st, 2nd and 5th; Flatten;
    two ``Dense(width) → [Dropout] → ReLU`` layers of widths `first2_dense`; the output.

    Args:
        img_width, img_height, img_ch: input size and channels.
        n_base: filters of the first convolution.
        dropout: dropout rate after each hidden dense layer (a float; None for none; course: 0.4).
        n_class: classes: one sigmoid unit for 1 or 2, ``Dense(n_class)`` + softmax for more.
        first2_dense: widths of the two hidden dense layers.
        batch_norm, s_dropout: the handout's names for `batchnorm` and `spatial_dropout` (either name works).
        batchnorm: batch normalisation between each convolution and its ReLU.
        spatial_dropout: spatial dropout rate after each convolution's ReLU (None for none; course: 0.1).
        hinge: one linear score unit for hinge loss with labels {−1, 1}; needs ``n_class`` ≤ 2.

    Returns:
        An uncompiled `keras.Sequential` named ``alexnet_model``.

    Example:
        >>> model = alexnet_model(128, 128, 1, 8, dropout=0.4, batchnorm=True, spatial_dropout=0.1)
    """
    require(int(n_base) >= 1, f"n_base must be >= 1, got {n_base}")
    require(len(first2_dense) == 2, f"first2_dense takes two widths, got {list(first2_dense)}")
    course_rate, spatial_rate = dropout_rate(s_dropout, "s_dropout"), dropout_rate(spatial_dropout, "spatial_dropout")
    require(None in (course_rate, spatial_rate) or course_rate == spatial_rate,
            f"s_dropout={s_dropout} and spatial_dropout={spatial_dropout} disagree: give one of them")
    spatial_rate = spatial_rate or course_rate
    batchnorm = bool(batchnorm or batch_norm)
    model = keras.Sequential(name="alexnet_model")
    _input(model, img_width, img_height, img_ch, 3, "alexnet_model")
    for index, (multiple, pool) in enumerate(ALEXNET_CONVS, start=1):
        _conv_relu(model, int(n_base) * multiple, f"conv{index}", batchnorm, spatial_rate)
        if pool:
            model.add(layers.MaxPooling2D((2, 2), name=f"conv{index}_pool"))
    model.add(layers.Flatten(name="flatten"))
    add_hidden_dense(model, first2_dense, dropout)
    binary_or_softmax_top(model, n_class, hinge)
    return model


__all__ = ["alexnet_model", "lenet_model"]
