"""Figures for runs and notebooks. Each function returns a `matplotlib.figure.Figure`.

No function calls ``plt.show()`` or touches pyplot's global state, so figures display inline in Jupyter (as the
cell's value) and stay silent in scripts and tests; pass ``save_to=`` to also write a PNG.
"""

import csv
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from labkit.training import best_epoch


def _history_dict(history):
    """A dict of lists from a Keras `History`, a dict, or a ``history.csv`` path."""
    if hasattr(history, "history"):
        history = history.history
    if isinstance(history, (str, Path)):
        with open(history, newline="") as handle:
            rows = list(csv.DictReader(handle))
        history = {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}
    return dict(history)


def _finish(figure, save_to):
    if save_to is not None:
        figure.savefig(save_to, dpi=110, bbox_inches="tight")
    return figure


def plot_history(history, metrics=("loss",), title=None, monitor=None, save_to=None):
    """Train and validation curves of each metric, one panel each, with the best epoch marked.

    Args:
        history: a Keras `History`, a dict of per-epoch lists, or a ``history.csv`` path.
        metrics: history keys to draw (their ``val_`` twins are drawn alongside when present).
        title: figure title.
        monitor: the key that defines the best epoch (default: ``val_<last metric>`` when present).
        save_to: optional PNG path.

    Returns:
        A `Figure` with one axis per metric.
    """
    history = _history_dict(history)
    metrics = [m for m in metrics if m in history]
    figure = Figure(figsize=(5 * max(1, len(metrics)), 3.8), layout="constrained")
    axes = figure.subplots(1, max(1, len(metrics)), squeeze=False)[0]
    monitor = monitor or next((f"val_{m}" for m in reversed(metrics) if f"val_{m}" in history), None)
    best = best_epoch(history, monitor) if monitor else None
    for axis, metric in zip(axes, metrics):
        epochs = np.arange(1, len(history[metric]) + 1)
        axis.plot(epochs, history[metric], label="train", color="tab:blue")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], label="validation", color="tab:orange")
        if best is not None:
            value = history.get(f"val_{metric}", history[metric])[best]
            axis.axvline(best + 1, color="grey", linestyle=":", linewidth=1)
            axis.plot(best + 1, value, "o", color="tab:red", label=f"best epoch {best + 1} ({monitor})")
        axis.set(xlabel="epoch", ylabel=metric, title=metric.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _finish(figure, save_to)


def loss_dice_plot(history, title, save_to=None):
    """The course's ``loss_dice_plot``: loss and Dice curves, train and validation, best epoch marked."""
    return plot_history(history, ("loss", "dice_coef"), title, save_to=save_to)


def loss_accuracy_plot(history, title, accuracy="binary_accuracy", save_to=None):
    """The course's ``loss_accuracy_plot``: loss and `accuracy` curves, train and validation, best epoch marked."""
    return plot_history(history, ("loss", accuracy), title, save_to=save_to)


def _show(axis, image, title, cmap="gray"):
    image = np.asarray(image)
    axis.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image, cmap=cmap, vmin=0, vmax=1)
    axis.set_title(title, fontsize="small")
    axis.axis("off")


def _outline(axis, mask, color):
    mask = np.squeeze(np.asarray(mask, dtype=float))
    if mask.min() < 0.5 < mask.max():  # contour() warns on a mask without an edge
        axis.contour(mask, levels=[0.5], colors=color, linewidths=1)


def segmentation_samples(images, masks, predictions, scores=None, title=None, save_to=None):
    """A grid with one row per image: the image, its true mask, the predicted probability and an overlay.

    The overlay draws the true mask's outline in green and the prediction (at 0.5) in red over the image.

    Args:
        images: ``(n, h, w, c)`` in [0, 1].
        masks: ``(n, h, w, 1)`` true masks.
        predictions: ``(n, h, w, 1)`` predicted probabilities.
        scores: optional per-image Dice values shown in the overlay's title.
    """
    n = len(images)
    figure = Figure(figsize=(10, 2.6 * n), layout="constrained")
    axes = figure.subplots(n, 4, squeeze=False)
    for i in range(n):
        _show(axes[i, 0], images[i], "image")
        _show(axes[i, 1], masks[i], "true mask")
        _show(axes[i, 2], predictions[i], "predicted probability", cmap="magma")
        _show(axes[i, 3], images[i], "overlay" + (f" (Dice {scores[i]:.3f})" if scores is not None else ""))
        _outline(axes[i, 3], masks[i], "lime")
        _outline(axes[i, 3], predictions[i], "red")
    if title:
        figure.suptitle(title)
    return _finish(figure, save_to)
