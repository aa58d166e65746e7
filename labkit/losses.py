"""Segmentation losses as pure functions plus registered `keras.losses.Loss` classes.

Reductions run in float32 (see `labkit.metrics`). Saved models that use them reload with plain
`keras.saving.load_model`.
"""

import keras
from keras import ops

from labkit.errors import require
from labkit.metrics import dice_coef, multiclass_dice


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


@keras.saving.register_keras_serializable(package="labkit")
class MultiClassDiceLoss(keras.losses.Loss):
    """``1 − multiclass_dice``: one minus the mean over channels of each channel's soft Dice over the batch.

    For softmax outputs with one-hot targets (background included as a class) or several sigmoid heads.

    Example:
        >>> model.compile(optimizer="adam", loss=MultiClassDiceLoss())
    """

    def __init__(self, smooth=1e-7, name="multiclass_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth

    def call(self, y_true, y_pred):
        return 1.0 - multiclass_dice(y_true, ops.cast(y_pred, "float32"), smooth=self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


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


@keras.saving.register_keras_serializable(package="labkit")
class CEFocalLoss(keras.losses.Loss):
    """Categorical cross-entropy plus Keras's categorical focal cross-entropy (Lin et al., 2017).

    ``ce_weight·CE + focal_weight·FL`` per sample, where FL is `keras.losses.categorical_focal_crossentropy`
    ``−Σ alpha·(1 − p)^gamma·y·log p`` (Keras's own, not a copy). The focal term weights hard, misclassified
    examples up; the cross-entropy term keeps a full-strength gradient on easy ones. Computed in float32.

    Args:
        gamma: focusing parameter (0 turns FL into ``alpha``·CE).
        alpha: weight of FL, a scalar or one float per class (e.g. inverse class frequencies).
        ce_weight, focal_weight: weights of the two terms.
        from_logits: `y_pred` holds logits instead of softmax probabilities.

    Example:
        >>> model.compile(optimizer="adam", loss=CEFocalLoss(gamma=2.0, alpha=0.25))
    """

    def __init__(self, gamma=2.0, alpha=0.25, ce_weight=1.0, focal_weight=1.0, from_logits=False,
                 name="ce_focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)
        self.alpha = [float(a) for a in alpha] if isinstance(alpha, (list, tuple)) else float(alpha)
        self.ce_weight = float(ce_weight)
        self.focal_weight = float(focal_weight)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        ce = keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)
        focal = keras.losses.categorical_focal_crossentropy(y_true, y_pred, alpha=self.alpha, gamma=self.gamma,
                                                            from_logits=self.from_logits)
        return self.ce_weight * ce + self.focal_weight * focal

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha, "ce_weight": self.ce_weight,
                "focal_weight": self.focal_weight, "from_logits": self.from_logits}


CLASSIFICATION_LOSSES = ("ce", "focal", "ce+focal", "hinge")


def classification_loss(name, gamma=2.0, alpha=0.25, from_logits=False):
    """The loss object for a classification lab's ``--loss`` name, on one-hot targets.

    Args:
        name: ``ce`` (`keras.losses.CategoricalCrossentropy`), ``focal`` (`keras.losses.CategoricalFocalCrossentropy`),
            ``ce+focal`` (`CEFocalLoss`, the sum of both), or ``hinge`` (`keras.losses.Hinge`: one score per image,
            labels in {−1, 1}; Lab 2 Task 6).
        gamma, alpha: the focal term's focusing parameter and weight (Keras's defaults 2.0 and 0.25).
        from_logits: the model outputs logits instead of probabilities.

    Example:
        >>> loss = classification_loss("ce+focal", gamma=2.0, alpha=0.25)
    """
    require(name in CLASSIFICATION_LOSSES, f"unknown loss {name!r}: choose one of {', '.join(CLASSIFICATION_LOSSES)}")
    if name == "ce":
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    if name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(alpha=alpha, gamma=gamma, from_logits=from_logits)
    if name == "hinge":
        return keras.losses.Hinge()
    return CEFocalLoss(gamma=gamma, alpha=alpha, from_logits=from_logits)


#: Every ``--loss`` name a lab offers; `get_loss` is the one place they become Keras losses.
LOSSES = SEGMENTATION_LOSSES + CLASSIFICATION_LOSSES


def get_loss(name, from_logits=False, gamma=2.0, alpha=0.25, channels=1, pixel_weights=False):
    """The Keras loss for a lab's ``--loss`` name: labs pass the user's name through unchanged, and only this
    function maps it.

    Args:
        name: ``bce``, ``dice``, ``bce+dice`` (segmentation: `keras.losses.BinaryCrossentropy`, `DiceLoss`,
            `BCEDiceLoss`), ``ce``, ``focal``, ``ce+focal``, ``hinge`` (classification: see `classification_loss`), or
            the course's spellings ``binary_crossentropy``, ``categorical_crossentropy`` and ``dice_coef_loss``
            (the course's function itself).
        from_logits: the model outputs logits instead of probabilities.
        gamma, alpha: the focal term's focusing parameter and weight.
        channels: output channels of the model; with more than one, ``dice`` is `MultiClassDiceLoss` (the mean of
            the channels' Dice) instead of one Dice over every channel's pixels together.
        pixel_weights: the batches carry a weight map (``(image, mask, weight)``, e.g. ``--weight-maps``): a
            segmentation loss (or ``ce``) weighted per pixel, `PixelWeightedLoss` (`pixel_weighted_loss`).

    Raises:
        LabkitInputError: an unknown name (the message lists the known ones).

    Example:
        >>> model.compile(optimizer="adam", loss=get_loss("bce+dice", from_logits=True))
    """
    if pixel_weights:
        return pixel_weighted_loss(name, from_logits=from_logits, channels=channels)
    if name == "dice_coef_loss":
        return dice_coef_loss
    key = {"binary_crossentropy": "bce", "categorical_crossentropy": "ce"}.get(name, name)
    require(key in LOSSES, f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    if key == "dice" and int(channels) > 1:
        require(not from_logits, "the multi-class Dice loss takes probabilities, not logits")
        return MultiClassDiceLoss()
    if key in SEGMENTATION_LOSSES:
        return segmentation_loss(key, from_logits=from_logits)
    return classification_loss(key, gamma=gamma, alpha=alpha, from_logits=from_logits)


def weighted_dice_coef(y_true, y_pred, weights, smooth=1e-7, per_class=False):
    """Soft Dice with a weight per pixel: ``(2·Σ w·y·p + s) / (Σ w·y + Σ w·p + s)`` over the whole batch.

    Args:
        y_true, y_pred: ``(b, h, w, c)`` masks in {0, 1} and probabilities.
        weights: ``(b, h, w, 1)`` (broadcast over the channels) or the shape of `y_true`; all ones give `dice_coef`
            (or, with `per_class`, `labkit.metrics.multiclass_dice`).
        smooth: `s`; two empty masks give 1.
        per_class: the mean over channels of each channel's weighted Dice, instead of one Dice over every channel.
    """
    y_true, y_pred, weights = (ops.cast(t, "float32") for t in (y_true, y_pred, weights))
    axes = tuple(range(len(y_true.shape) - 1)) if per_class else None
    intersection = ops.sum(weights * y_true * y_pred, axis=axes)
    dice = (2.0 * intersection + smooth) / (ops.sum(weights * y_true, axis=axes) + ops.sum(weights * y_pred, axis=axes)
                                            + smooth)
    return ops.mean(dice)


@keras.saving.register_keras_serializable(package="labkit")
class PixelWeightedLoss(keras.losses.Loss):
    """A segmentation loss weighted per pixel by the ``sample_weight`` Keras passes it (e.g. a boundary weight map:
    batches of ``(image, mask, weight)``, `labkit.data.weight_maps.with_weight_maps`).

    Keras's own reduction already weights a cross-entropy per pixel (the mean over pixels of ``w · CE``), but a
    Dice loss is one number per batch, which a per-pixel ``sample_weight`` could only scale by the batch's mean
    weight (measured: Keras 3.15 returns ``mean(w) · (1 − Dice)``). Here the weights enter the Dice sums instead
    (`weighted_dice_coef`), and the cross-entropy terms are ``mean(w · CE)`` as Keras computes them. Without
    weights the values equal the unweighted losses of `get_loss`.

    Args:
        kind: ``bce``, ``dice``, ``bce+dice`` (binary, sigmoid outputs) or ``ce`` (one-hot, softmax outputs).
        from_logits: the model outputs logits (sigmoid applied before the Dice term).
        per_class: the Dice term is the mean of the channels' Dice (`MultiClassDiceLoss` weighted), not one Dice
            over every channel's pixels.

    Example:
        >>> model.compile(optimizer="adam", loss=PixelWeightedLoss("dice"))
        >>> model.fit(with_weight_maps(train), ...)
    """

    KINDS = ("bce", "dice", "bce+dice", "ce")

    def __init__(self, kind="dice", from_logits=False, per_class=False, smooth=1e-7, name=None, **kwargs):
        require(kind in self.KINDS, f"no pixel-weighted form of loss {kind!r}: choose one of {', '.join(self.KINDS)}")
        super().__init__(name=name or f"pixel_weighted_{kind.replace('+', '_')}", **kwargs)
        self.kind, self.from_logits, self.per_class, self.smooth = kind, from_logits, bool(per_class), smooth

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras's Loss.__call__ would reduce one Dice value with the weights; the weights belong inside the sums.
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        weights = ops.ones_like(y_true[..., :1]) if sample_weight is None else ops.cast(sample_weight, "float32")
        if len(weights.shape) == len(y_true.shape) - 1:
            weights = ops.expand_dims(weights, -1)
        return self.weighted(y_true, y_pred, weights)

    def weighted(self, y_true, y_pred, weights):
        """The loss with `weights` ``(b, h, w, 1)``."""
        total = 0.0
        if self.kind in ("bce", "bce+dice"):
            bce = keras.losses.binary_crossentropy(y_true, y_pred, from_logits=self.from_logits)
            total += ops.mean(weights[..., 0] * bce)
        if self.kind == "ce":
            ce = keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits)
            total += ops.mean(weights[..., 0] * ce)
        if self.kind in ("dice", "bce+dice"):
            probs = ops.sigmoid(y_pred) if self.from_logits else y_pred
            total += 1.0 - weighted_dice_coef(y_true, probs, weights, self.smooth, per_class=self.per_class)
        return total

    def call(self, y_true, y_pred):
        return self.weighted(y_true, y_pred, ops.ones_like(y_true[..., :1]))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "from_logits": self.from_logits,
                "per_class": self.per_class, "smooth": self.smooth}


def pixel_weighted_loss(name, from_logits=False, channels=1):
    """The `PixelWeightedLoss` for a lab's ``--loss`` name (``bce``, ``dice``, ``bce+dice``, ``ce``, or the course's
    ``binary_crossentropy``, ``dice_coef_loss``, ``categorical_crossentropy``), for ``--weight-maps``; with more
    than one output channel, ``dice`` is the mean of the channels' Dice (as `get_loss` gives it)."""
    key = {"binary_crossentropy": "bce", "dice_coef_loss": "dice", "categorical_crossentropy": "ce"}.get(name, name)
    return PixelWeightedLoss(key, from_logits=from_logits, per_class=key == "dice" and int(channels) > 1)
