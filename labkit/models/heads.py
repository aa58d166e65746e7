"""Output heads on an existing segmentation network."""

import keras

from labkit.errors import require


def with_sigmoid_heads(model, n_heads, layer="mask"):
    """`model` with its output layer replaced by `n_heads` independent sigmoid channels (a 1×1 convolution).

    The multi-label alternative to a softmax: each head says "this structure or not" on its own (e.g. left lung,
    right lung), so heads may overlap and no background channel is needed.

    Args:
        model: a functional segmentation model whose output layer is named `layer` (e.g. `labkit.get_unet`).
        n_heads: number of sigmoid channels.

    Returns:
        A new `keras.Model` sharing every other layer (and its weights) with `model`.

    Example:
        >>> model = with_sigmoid_heads(get_unet((256, 256, 1), n_class=3), 2)  # left and right lung
    """
    require(int(n_heads) >= 1, f"n_heads must be at least 1, got {n_heads}")
    head = model.get_layer(layer)
    features = head.input
    rank = len(features.shape) - 2
    convolution = {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[rank]
    outputs = convolution(int(n_heads), 1, activation="sigmoid", dtype="float32", name=layer)(features)
    return keras.Model(model.inputs, outputs, name=model.name)
