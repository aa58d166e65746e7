"""Summaries of a training history: which epoch is best by a monitored metric, and the ``metrics.json`` core.

A history is a dict of per-epoch lists (what `labkit.training.fit` returns, or a ``history.csv`` read back).
"""

import numpy as np


def improved(value, best, mode):
    """Whether `value` beats `best` (None: nothing yet) in `mode` (``max`` or ``min``)."""
    return best is None or (value > best if mode == "max" else value < best)


def monitor_mode(monitor):
    """``max`` for accuracy/Dice/IoU/AUC/precision/recall-like metrics, ``min`` for losses and distances."""
    if "loss" in monitor:
        return "min"
    higher_is_better = ("acc", "dice", "iou", "auc", "jaccard", "f1", "precision", "recall")
    return "max" if any(k in monitor for k in higher_is_better) else "min"


def best_epoch(history, monitor, mode=None):
    """Index (0-based) of the best epoch in a history dict by `monitor`."""
    values = np.asarray(history[monitor], dtype=float)
    return int(np.nanargmax(values) if (mode or monitor_mode(monitor)) == "max" else np.nanargmin(values))


def summarize(history, monitor, mode=None):
    """The ``metrics.json`` core: ``best`` (epoch and every value there), ``final`` (last row), ``epochs_run`` and
    ``train_seconds``."""
    index = best_epoch(history, monitor, mode)
    row = lambda i: {k: v[i] for k, v in history.items() if k != "seconds"}  # noqa: E731
    return {
        "monitor": monitor,
        "best": row(index),
        "final": row(len(history[monitor]) - 1),
        "epochs_run": len(history[monitor]),
        "train_seconds": round(float(sum(history.get("seconds", []))), 2),
    }
