"""How many parameters a model or layer has, as ``model.summary()`` counts them."""

import math


def parameter_counts(layer):
    """Trainable, non-trainable and total parameter counts of a model or layer (as ``model.summary()`` counts them).

    Returns:
        ``{"trainable": int, "non_trainable": int, "total": int}``; BatchNorm moving statistics and the weights of
        frozen layers are non-trainable.

    Example:
        >>> parameter_counts(keras.layers.Dense(2, input_shape=(3,)))   # once built
        {'trainable': 8, 'non_trainable': 0, 'total': 8}
    """
    size = lambda weights: sum(math.prod(w.shape) for w in weights)  # noqa: E731
    trainable, total = size(layer.trainable_weights), size(layer.weights)
    return {"trainable": int(trainable), "non_trainable": int(total - trainable), "total": int(total)}
