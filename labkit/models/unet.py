"""U-Net builders with the course's exact layer graph (Lab 4 Task 4 ``Models.py``).

The 2D and 3D networks share one block function, `conv_block_nd`; `conv_block` is its 2D course-named face.
"""

import keras
from keras import layers

from labkit.errors import require

_CONV = {2: layers.Conv2D, 3: layers.Conv3D}
_POOL = {2: layers.MaxPooling2D, 3: layers.MaxPooling3D}
_UP = {2: layers.Conv2DTranspose, 3: layers.Conv3DTranspose}


#: Initial weights of every hidden convolution. He et al. (2015) scale them for ReLU, which zeroes half of each
#: layer's input: the signal keeps its size through the U-Net's 18 convolutions on the way to the output. With Keras's
#: default Glorot initialisation (the course's) it halves in variance at every ReLU, so at the start the output
#: hardly depends on the image; without batch norm, training then crawls and, at higher learning rates, often
#: saturates the sigmoid for good (a dead network). The layer graph and the parameter count are the course's.
HIDDEN_INITIALIZER = "he_normal"


def conv_block_nd(x, base, kernel_size, activation="relu", batchnorm=False, name=None,
                  kernel_initializer=HIDDEN_INITIALIZER):
    """Two same-padded convolutions (2D or 3D, from the kernel's rank), each optionally batch-normalised.

    Args:
        x: input tensor, channels last.
        base: number of filters of both convolutions.
        kernel_size: a tuple whose length (2 or 3) picks Conv2D or Conv3D.
        activation: activation after each convolution (after batch norm when `batchnorm`).
        batchnorm: insert `BatchNormalization` between each convolution and its activation.
        name: prefix for the layer names, e.g. ``"enc1"`` gives ``enc1_conv1`` … ``enc1_act2``.
        kernel_initializer: initial weights of both convolutions (see `HIDDEN_INITIALIZER`).

    Returns:
        The output tensor, with `base` channels and the input's spatial size.
    """
    conv = _CONV[len(kernel_size)]
    for i in (1, 2):
        label = (lambda part: f"{name}_{part}{i}") if name else (lambda part: None)
        x = conv(base, kernel_size, padding="same", kernel_initializer=kernel_initializer, name=label("conv"))(x)
        if batchnorm:
            x = layers.BatchNormalization(name=label("bn"))(x)
        x = layers.Activation(activation, name=label("act"))(x)
    return x


def conv_block(x, base=8, kernel_size=(3, 3), activation="relu", batchnorm=False, name=None,
               kernel_initializer=HIDDEN_INITIALIZER):
    """Two same-padded 2D convolutions, each optionally batch-normalised, then `activation` (course ``conv_block``).

    The convolutions start from He-normal weights (`HIDDEN_INITIALIZER`); pass ``kernel_initializer=
    "glorot_uniform"`` for the course's Keras default.

    Example:
        >>> inputs = keras.Input((64, 64, 1))
        >>> conv_block(inputs, base=8).shape
        (None, 64, 64, 8)
    """
    return conv_block_nd(x, base, tuple(kernel_size), activation, batchnorm, name, kernel_initializer)


def check_divisible(spatial_shape, depth, what="image size"):
    """Raise `LabkitInputError` unless every spatial size is divisible by ``2**depth`` (one halving per level)."""
    factor = 2**depth
    bad = [int(s) for s in spatial_shape if s is not None and int(s) % factor]
    require(
        not bad,
        f"{what} {tuple(spatial_shape)} is not divisible by {factor}: a U-Net with {depth} pooling levels "
        f"needs each side to be a multiple of {factor} (e.g. --img-size {max(factor, 16 * (int(spatial_shape[0]) // 16))})",
    )


def _unet(input_shape, base, kernel_size, activation, batchnorm, dropout, n_class, depth, name,
          kernel_initializer=HIDDEN_INITIALIZER):
    """Encoder–decoder with skip connections; shared by `get_unet` (2D) and `get_unet3d` (3D)."""
    rank = len(kernel_size)
    require(len(input_shape) == rank + 1, f"input_shape {tuple(input_shape)} must be {rank} spatial sizes + channels")
    check_divisible(input_shape[:-1], depth)
    require(dropout is None or 0.0 <= float(dropout) < 1.0, f"dropout must be in [0, 1), got {dropout}")
    require(int(n_class) >= 1, f"n_class must be at least 1, got {n_class}")
    use_dropout = dropout is not None and float(dropout) > 0.0
    pool, up = _POOL[rank], _UP[rank]
    ones = (1,) * rank

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block_nd(x, base * 2**level, kernel_size, activation, batchnorm, f"enc{level + 1}", kernel_initializer)
        skips.append(x)
        x = pool(pool_size=(2,) * rank, name=f"enc{level + 1}_pool")(x)
        if use_dropout:
            x = layers.Dropout(dropout, name=f"enc{level + 1}_dropout")(x)

    x = conv_block_nd(x, base * 2**depth, kernel_size, activation, batchnorm, "bottleneck", kernel_initializer)

    for level in reversed(range(depth)):
        filters = base * 2**level
        x = up(filters, (2,) * rank, strides=(2,) * rank, padding="same", kernel_initializer=kernel_initializer,
               name=f"dec{level + 1}_up")(x)
        x = layers.Concatenate(name=f"dec{level + 1}_concat")([x, skips[level]])
        if use_dropout:
            x = layers.Dropout(dropout, name=f"dec{level + 1}_dropout")(x)
        x = conv_block_nd(x, filters, kernel_size, activation, batchnorm, f"dec{level + 1}", kernel_initializer)

    head = "sigmoid" if n_class == 1 else "softmax"
    # float32 output: under a mixed-precision policy the probabilities (and the losses on them) stay float32.
    outputs = _CONV[rank](n_class, ones, activation=head, dtype="float32", name="mask")(x)
    return keras.Model(inputs, outputs, name=name)


def get_unet(
    input_shape=(256, 256, 1),
    base=8,
    kernel_size=(3, 3),
    activation="relu",
    batchnorm=False,
    dropout=None,
    n_class=1,
    kernel_initializer=HIDDEN_INITIALIZER,
):
    """The course's 2D U-Net (Lab 4 Task 4).

    Four levels of `conv_block` + 2×2 max-pooling (Dropout after each pool when `dropout` is a float), a
    `conv_block(base * 16)` bottleneck, four × [Conv2DTranspose(2×2, stride 2) → concatenate with the skip →
    Dropout → `conv_block`], and a 1×1 convolution: one sigmoid channel for ``n_class`` 1 or 2 (foreground vs
    background, as the course's ``Models.py``, whose default was ``n_class=2``), ``n_class`` softmax channels for
    more. Same arguments give the same parameter count as the course's ``Models.py``.

    Args:
        input_shape: ``(height, width, channels)``; height and width must be multiples of 16.
        base: filters of the first level; level k has ``base * 2**k``.
        kernel_size: convolution kernel size.
        activation: activation inside the conv blocks.
        batchnorm: batch normalisation after every convolution.
        dropout: dropout rate after each pooling and each concatenation, or None for none.
        n_class: classes; 1 or 2 give one sigmoid channel (the probability of foreground), 3 or more a softmax over
            ``n_class`` channels.
        kernel_initializer: initial weights of the hidden convolutions: He normal (`HIDDEN_INITIALIZER`, right for
            ReLU), or ``"glorot_uniform"`` for the course's Keras default, which trains far less reliably without
            batch norm.

    Returns:
        An uncompiled `keras.Model` mapping images to per-pixel probabilities of shape ``(h, w, 1)`` (``n_class`` ≤ 2)
        or ``(h, w, n_class)``.

    Example:
        >>> model = get_unet((64, 64, 1), base=8)
        >>> model.output_shape
        (None, 64, 64, 1)
    """
    require(int(n_class) >= 1, f"n_class must be at least 1, got {n_class}")
    channels = 1 if int(n_class) <= 2 else int(n_class)  # the handout: two classes are one sigmoid channel
    return _unet(tuple(input_shape), base, tuple(kernel_size), activation, batchnorm, dropout, channels, 4, "unet",
                 kernel_initializer)


def get_unet3d(input_shape=(112, 112, 80, 1), base=16, depth=4, batchnorm=True, dropout=None, n_class=1,
               kernel_initializer=HIDDEN_INITIALIZER):
    """3D U-Net: the same graph as `get_unet` with Conv3D, MaxPooling3D and Conv3DTranspose, `depth` levels.

    Args:
        input_shape: ``(x, y, z, channels)``; every spatial size must be a multiple of ``2**depth``.
        base: filters of the first level.
        depth: number of pooling levels.
        batchnorm: batch normalisation after every convolution.
        dropout: dropout rate, or None.
        n_class: output channels (sigmoid for 1, softmax otherwise).
        kernel_initializer: initial weights of the hidden convolutions (He normal, as `get_unet`).

    Returns:
        An uncompiled `keras.Model` of shape ``(x, y, z, n_class)`` probabilities.

    Example:
        >>> get_unet3d((32, 32, 16, 1), base=4, depth=2).output_shape
        (None, 32, 32, 16, 1)
    """
    return _unet(tuple(input_shape), base, (3, 3, 3), "relu", batchnorm, dropout, n_class, int(depth), "unet3d",
                 kernel_initializer)
