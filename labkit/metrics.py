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


@keras.saving.register_keras_serializable(package="labkit")
def sign_accuracy(y_true, y_pred):
    """Accuracy of a classifier trained with the hinge loss on labels {−1, 1}: the fraction of items whose output
    has the label's sign (output > 0 means class 1; labels > 0 are class 1, so {0, 1} labels work too).

    Keras's ``BinaryAccuracy`` compares ``y_pred > threshold`` (0 or 1) with the label and so counts every −1 as
    wrong; this one does not.

    Example:
        >>> float(sign_accuracy(np.array([[1.0], [-1.0], [1.0]]), np.array([[0.3], [-0.2], [-0.9]])))
        0.6666667
    """
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    return ops.mean(ops.cast(ops.equal(y_true > 0, y_pred > 0), "float32"))


@keras.saving.register_keras_serializable(package="labkit")
def class_dice(y_true, y_pred, channel=1, smooth=1e-7):
    """Soft Dice (`dice_coef`) of one channel of a multi-channel mask, over the whole batch.

    Args:
        y_true: one-hot (softmax) or per-structure (sigmoid heads) masks ``(…, channels)`` in {0, 1}.
        y_pred: probabilities of the same shape.
        channel: the channel scored, e.g. 1 for the left lung of a ``(background, left, right)`` softmax.

    Returns:
        A float32 scalar tensor in [0, 1]; 1 when the channel is empty in both.
    """
    return dice_coef(y_true[..., channel], y_pred[..., channel], smooth=smooth)


@keras.saving.register_keras_serializable(package="labkit")
def multiclass_dice(y_true, y_pred, smooth=1e-7, channels=None):
    """Mean over channels of each channel's soft Dice over the batch (`class_dice`), every channel weighted equally.

    Args:
        channels: the channels averaged (default: all; with a softmax's one-hot targets the background then counts
            as one class among the others).

    Example:
        >>> y = np.eye(3)[[[0, 1], [2, 2]]]  # one 2×2 mask: background, class 1, class 2, class 2
        >>> float(multiclass_dice(y[None], y[None]))
        1.0
    """
    channels = range(y_true.shape[-1]) if channels is None else channels
    return ops.mean(ops.stack([class_dice(y_true, y_pred, c, smooth) for c in channels]))


def class_dice_metrics(class_names, first_channel=1):
    """Keras metrics of the Dice of each class: `class_dice` named ``dice_<class>`` (``val_dice_<class>`` on
    validation data), and ``dice_mean``, their mean (`multiclass_dice` over those channels, background left out).

    Args:
        class_names: names of the scored classes, e.g. ``["left", "right"]``.
        first_channel: channel of the first name (1 for a softmax with background first, 0 for sigmoid heads).

    Example:
        >>> model.compile(optimizer="adam", loss="categorical_crossentropy",
        ...               metrics=class_dice_metrics(["left", "right"]))
    """
    channels = [first_channel + i for i in range(len(class_names))]
    return [*(keras.metrics.MeanMetricWrapper(class_dice, name=f"dice_{name}", channel=c)
              for name, c in zip(class_names, channels)),
            keras.metrics.MeanMetricWrapper(multiclass_dice, name="dice_mean", channels=channels)]
