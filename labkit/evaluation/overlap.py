"""Overlap metrics (Dice, Jaccard) on whole binarised masks of any dimension, and per-image tables.

Masks are binarised before any metric: boolean masks as they are, others where the value is > 0.5.
Empty masks never raise: both empty → Dice/Jaccard 1.0; exactly one empty → 0.0.
"""

import numpy as np

from labkit.errors import require


def binarise(mask, threshold=0.5):
    """A boolean copy of `mask`: as is for booleans, ``mask > threshold`` otherwise."""
    mask = np.asarray(mask)
    return mask if mask.dtype == bool else mask > threshold


def _pair(pred, ref):
    pred, ref = binarise(pred), binarise(ref)
    require(pred.shape == ref.shape, f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    return pred, ref


def dice(pred, ref):
    """Dice ``2|P∩R| / (|P| + |R|)`` of two binarised masks; 1.0 when both are empty.

    Example:
        >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
        0.6666666666666666
    """
    pred, ref = _pair(pred, ref)
    total = pred.sum() + ref.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, ref).sum() / total)


def jaccard(pred, ref):
    """Jaccard index (IoU) ``|P∩R| / |P∪R|`` of two binarised masks; 1.0 when both are empty."""
    pred, ref = _pair(pred, ref)
    union = np.logical_or(pred, ref).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, ref).sum() / union)


def per_image_scores(preds, refs, names=None):
    """Dice and Jaccard of each image of a batch: a list of dicts ``{name, dice, jaccard}``."""
    require(len(preds) == len(refs), f"{len(preds)} predictions but {len(refs)} references")
    names = names if names is not None else [str(i) for i in range(len(preds))]
    return [{"name": str(n), "dice": dice(p, r), "jaccard": jaccard(p, r)} for n, p, r in zip(names, preds, refs)]


def mean_std(rows, keys):
    """``{key: {"mean": …, "std": …}}`` over the rows (finite values only) for each key."""
    summary = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=float)
        values = values[np.isfinite(values)]
        summary[key] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std()) if values.size else float("nan"),
        }
    return summary


def per_image_class_scores(preds, refs, class_names, names=None):
    """Dice of each class of each image: a list of dicts ``{name, dice_<class>…, dice_mean}``.

    Args:
        preds, refs: ``(n, …, len(class_names))`` masks, one channel per class (binarised as `dice` does; e.g.
            the one-hot argmax of a softmax without its background channel).
        class_names: one name per channel.
        names: one name per image (default: their indices).

    A class empty in both the prediction and the reference scores 1.0 (see `dice`); ``dice_mean`` is the mean over
    the classes.
    """
    require(len(preds) == len(refs), f"{len(preds)} predictions but {len(refs)} references")
    names = names if names is not None else [str(i) for i in range(len(preds))]
    rows = []
    for name, pred, ref in zip(names, preds, refs):
        scores = {f"dice_{c}": dice(pred[..., i], ref[..., i]) for i, c in enumerate(class_names)}
        rows.append({"name": str(name), **scores, "dice_mean": float(np.mean(list(scores.values())))})
    return rows


def class_channels(outputs, softmax=True, threshold=0.5):
    """Class index maps and one binary channel per class from a multi-class network's outputs (or true masks).

    Args:
        outputs: ``(…, channels)`` probabilities or one-hot masks.
        softmax: the channels are a softmax with background first (each pixel gets its most likely class), else
            independent sigmoid heads without background (each channel at `threshold`; a pixel above it in several
            channels is shown as the first of them in the index map).

    Returns:
        ``(classes, binary)``: int maps ``(…)`` with 0 background and ``i`` the i-th structure, and boolean
        ``(…, structures)`` masks, one per structure.

    Example:
        >>> classes, binary = class_channels(np.eye(3)[[[0, 2]]])
        >>> classes.tolist(), binary.shape
        ([[0, 2]], (1, 2, 2))
    """
    outputs = np.asarray(outputs)
    if softmax:
        classes = outputs.argmax(axis=-1)
        return classes, np.stack([classes == c for c in range(1, outputs.shape[-1])], axis=-1)
    binary = outputs > threshold
    return np.where(binary.any(axis=-1), binary.argmax(axis=-1) + 1, 0), binary
