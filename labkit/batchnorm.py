"""BatchNorm statistics that match the weights being validated ("precise BN", Wu & Johnson 2021).

A `keras.layers.BatchNormalization` layer normalises with its moving mean and variance at inference: an exponential
average over past training batches (momentum 0.99 in Keras, 0.9 in PyTorch). On the short, small-batch runs of the
course that average lags the weights it is used with: at momentum 0.99 it spans about a hundred steps, several
epochs of a demo, so the validation score of an epoch measures the network with statistics of older weights and
jumps from epoch to epoch. Dropout before a BatchNorm layer adds a second gap: the statistics are gathered with
units dropped, and used without.

`labkit.callbacks.PreciseBatchNorm` (``labkit.training.fit(precise_batchnorm=True)``, a lab's
``--precise-bn``; off by default as in
Keras, on in the demos measured to need it) replaces the moving statistics before each validation with the plain
mean of the batch statistics over a few training batches, computed with the current weights and dropout off. Frozen
BatchNorm layers (``trainable=False``, e.g. a frozen ImageNet encoder) keep theirs.
"""

import contextlib

import keras


def nested_layers(layer, kind):
    """Every layer of class `kind` inside `layer` (itself included), nested models included, in order."""
    if isinstance(layer, kind):
        return [layer]
    return [found for child in getattr(layer, "layers", []) for found in nested_layers(child, kind)]


def batchnorm_layers(layer):
    """Every `BatchNormalization` layer inside `layer`, nested models included."""
    return nested_layers(layer, keras.layers.BatchNormalization)


@contextlib.contextmanager
def dropout_off(layer):
    """Within the block, every `Dropout` layer inside `layer` (SpatialDropout included) passes its input through,
    also in training mode; the rates are restored after."""
    dropouts = nested_layers(layer, keras.layers.Dropout)
    rates = [dropout.rate for dropout in dropouts]
    try:
        for dropout in dropouts:
            dropout.rate = 0.0
        yield
    finally:
        for dropout, rate in zip(dropouts, rates):
            dropout.rate = rate


def estimate_batchnorm_statistics(layer, batches):
    """Set the moving mean and variance of every trainable BatchNorm layer in `layer` to the mean of its batch
    statistics over `batches`.

    Forward passes in training mode with dropout off, each BatchNorm layer with momentum ``i / (i + 1)`` at batch
    ``i`` (a running plain mean) and on the output of the layers before it. No weight is trained; the momenta are
    restored. A layer that is not trainable runs in inference mode and keeps its statistics.

    Args:
        layer: a model or layer.
        batches: an iterable of inputs (or of ``(inputs, targets, ...)`` tuples, whose first item is used).

    Returns:
        The number of batches averaged (0 leaves the statistics as they were).

    Example:
        >>> estimate_batchnorm_statistics(model, train_dataset.take(16))
        16
    """
    norms = [norm for norm in batchnorm_layers(layer) if norm.trainable]
    momenta = [norm.momentum for norm in norms]
    count = 0
    try:
        with dropout_off(layer):
            for count, batch in enumerate(batches, start=1):
                for norm in norms:
                    norm.momentum = (count - 1) / count
                layer(batch[0] if isinstance(batch, (tuple, list)) else batch, training=True)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    return count


def calibrate_batchnorm(layer, images):
    """Set the moving mean and variance of every BatchNorm layer in `layer` to the statistics of `images`.

    One forward pass in training mode: each BatchNorm layer keeps the statistics of the batch it sees (layer by
    layer, each on the output of the normalised layers before it). No weight is trained; `layer`'s trainable state
    and momenta are restored. Use it for a randomly initialised encoder, whose moving statistics (0 and 1) make a
    deep network's inference output collapse; pretrained statistics should be kept.

    Args:
        layer: a model or layer, e.g. ``model.get_layer("encoder")``.
        images: a batch of inputs, e.g. 64 training images.

    Returns:
        The number of BatchNorm layers calibrated.

    Example:
        >>> calibrate_batchnorm(model.get_layer("encoder"), train_images[:64])
        52
    """
    trainable = layer.trainable
    layer.trainable = True  # a frozen BatchNorm ignores training=True
    try:
        estimate_batchnorm_statistics(layer, [images])
    finally:
        layer.trainable = trainable
    return len(batchnorm_layers(layer))
