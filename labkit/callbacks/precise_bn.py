"""`PreciseBatchNorm`: before each validation, BatchNorm statistics from the current weights (`labkit.batchnorm`)."""

import keras

from labkit.batchnorm import estimate_batchnorm_statistics

#: Training batches `PreciseBatchNorm` averages over before each validation (fewer when an epoch has fewer).
PRECISE_BN_BATCHES = 16


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before each validation in `Model.fit`, set the BatchNorm statistics from the current weights
    (`estimate_batchnorm_statistics` over the first `batches` batches of the training data), so the epoch's
    validation score, and the model saved with it, use statistics that match its weights.

    Args:
        data: the training dataset (a `tf.data.Dataset` of ``(inputs, targets)``; repeated ones are fine), or a
            function of the epoch (0-based) giving that epoch's batches (`labkit.data.pipeline.EpochStream.epoch`:
            then a resumed run estimates from the batches an uninterrupted one would use).
        batches: how many of its batches to average over.
    """

    def __init__(self, data, batches=PRECISE_BN_BATCHES):
        super().__init__()
        self.data, self.batches, self.epoch = data, batches, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_test_begin(self, logs=None):
        data = self.data(self.epoch) if callable(self.data) else self.data
        estimate_batchnorm_statistics(self.model, data.take(self.batches))
