"""Segmentation losses as pure functions plus registered `keras.losses.Loss` classes.

Reductions run in float32 (see `labkit.metrics`). Saved models that use them reload with plain
`keras.saving.load_model`.
"""

import keras
from keras import ops

from labkit.errors import require
from labkit.metrics import dice_coef


@keras.saving.register_keras_serializable(package="labkit")
def dice_coef_loss(y_true, y_pred):
    """``1 − dice_coef(y_true, y_pred)``: 0 for a perfect prediction, 1 for disjoint masks.

    The course returned ``−dice_coef``; the constant offset changes no gradient.
    """
    return 1.0 - dice_coef(y_true, y_pred)


@keras.saving.register_keras_serializable(package="labkit")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss over the whole batch, ``1 − dice_coef``; `from_logits` applies a sigmoid first.

    Example:
        >>> model.compile(optimizer="adam", loss=DiceLoss())
    """

    def __init__(self, smooth=1e-7, from_logits=False, name="dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        return 1.0 - dice_coef(y_true, y_pred, smooth=self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="labkit")
class BCEDiceLoss(keras.losses.Loss):
    """Binary cross-entropy plus soft Dice loss, ``bce_weight·BCE + dice_weight·(1 − Dice)``."""

    def __init__(self, bce_weight=1.0, dice_weight=1.0, from_logits=False, name="bce_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred, from_logits=self.from_logits))
        probs = ops.sigmoid(y_pred) if self.from_logits else y_pred
        return self.bce_weight * bce + self.dice_weight * (1.0 - dice_coef(y_true, probs))

    def get_config(self):
        return {
            **super().get_config(),
            "bce_weight": self.bce_weight,
            "dice_weight": self.dice_weight,
            "from_logits": self.from_logits,
        }


SEGMENTATION_LOSSES = ("bce", "dice", "bce+dice")


def segmentation_loss(name, from_logits=False):
    """The loss object for a lab's ``--loss`` name: ``bce``, ``dice`` or ``bce+dice``.

    Also accepts the course's spellings ``binary_crossentropy`` and ``dice_coef_loss``.
    """
    key = {"binary_crossentropy": "bce", "dice_coef_loss": "dice"}.get(name, name)
    require(key in SEGMENTATION_LOSSES, f"unknown loss {name!r}: choose one of {', '.join(SEGMENTATION_LOSSES)}")
    if key == "bce":
        return keras.losses.BinaryCrossentropy(from_logits=from_logits)
    if key == "dice":
        return DiceLoss(from_logits=from_logits)
    return BCEDiceLoss(from_logits=from_logits)
