"""In-graph Keras metrics used while training (soft Dice, thresholded Dice / IoU).

All reductions run in float32, so a mixed-precision model cannot overflow a Dice sum.
Every object is registered under the ``labkit`` package, so a saved ``model.keras`` reloads with plain
`keras.saving.load_model`.
"""

import keras
from keras import ops


def _flat_float32(y_true, y_pred):
    return ops.reshape(ops.cast(y_true, "float32"), (-1,)), ops.reshape(ops.cast(y_pred, "float32"), (-1,))


def _binarised(y_true, y_pred, threshold):
    y_true, y_pred = _flat_float32(y_true, y_pred)
    return ops.cast(y_true > 0.5, "float32"), ops.cast(y_pred > threshold, "float32")


@keras.saving.register_keras_serializable(package="labkit")
def dice_coef(y_true, y_pred, smooth=1e-7):
    """Soft Dice over the whole batch: ``(2·Σ y·p + s) / (Σ y + Σ p + s)``.

    Args:
        y_true: ground-truth masks in {0, 1}, any shape.
        y_pred: predicted probabilities in [0, 1], same shape.
        smooth: `s`, added to numerator and denominator; with two empty masks the value is 1.

    Returns:
        A float32 scalar tensor in [0, 1]. Probabilities are not thresholded (see `thresholded_dice`).

    Example:
        >>> float(dice_coef(np.ones((1, 4, 4, 1)), np.ones((1, 4, 4, 1))))
        1.0
    """
    y_true, y_pred = _flat_float32(y_true, y_pred)
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


@keras.saving.register_keras_serializable(package="labkit")
def thresholded_dice(y_true, y_pred, threshold=0.5, smooth=1e-7):
    """Dice of the batch after binarising `y_pred` at `threshold` (and `y_true` at 0.5)."""
    return dice_coef(*_binarised(y_true, y_pred, threshold), smooth=smooth)


@keras.saving.register_keras_serializable(package="labkit")
def iou_coef(y_true, y_pred, threshold=0.5, smooth=1e-7):
    """Jaccard index (IoU) of the batch after binarising `y_pred` at `threshold`: ``(|A∩B| + s) / (|A∪B| + s)``."""
    y_true, y_pred = _binarised(y_true, y_pred, threshold)
    intersection = ops.sum(y_true * y_pred)
    union = ops.sum(y_true) + ops.sum(y_pred) - intersection
    return (intersection + smooth) / (union + smooth)


@keras.saving.register_keras_serializable(package="labkit")
def dice_from_logits(y_true, logits):
    """`thresholded_dice` for a model that outputs logits: foreground where ``sigmoid(logit) > 0.5``, i.e. logit > 0.

    Batch-level Dice ``(2·|T∩P| + s) / (|T| + |P| + s)`` with s = 1e-7 (two empty masks give 1); Keras averages
    it over the batches of an epoch.
    """
    return thresholded_dice(y_true, logits, threshold=0.0)


@keras.saving.register_keras_serializable(package="labkit")
def iou_from_logits(y_true, logits):
    """`iou_coef` for a model that outputs logits: foreground where logit > 0 (probability > 0.5)."""
    return iou_coef(y_true, logits, threshold=0.0)


def logit_segmentation_metrics():
    """Per-epoch metrics of a binary segmenter that outputs logits, all at probability 0.5.

    Returns:
        ``[accuracy, iou, dice]``: pixel accuracy (`keras.metrics.BinaryAccuracy` at logit 0), and the batch IoU
        and Dice of `iou_from_logits` / `dice_from_logits`; their history keys are ``accuracy``, ``iou`` and
        ``dice`` (``val_…`` on validation data).

    Example:
        >>> model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True),
        ...               metrics=logit_segmentation_metrics())
    """
    return [
        keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
        keras.metrics.MeanMetricWrapper(iou_from_logits, name="iou"),
        keras.metrics.MeanMetricWrapper(dice_from_logits, name="dice"),
    ]
