"""What every figure family shares: `finish` (title, optional PNG, inline display), the image and outline
helpers, and reading a history from a Keras `History`, a dict or a ``history.csv``."""

import csv
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D

from labkit.plots.notebook import show_figures_inline


def history_dict(history):
    """A dict of lists from a Keras `History`, a dict, or a ``history.csv`` path."""
    if hasattr(history, "history"):
        history = history.history
    if isinstance(history, (str, Path)):
        with open(history, newline="") as handle:
            rows = list(csv.DictReader(handle))
        history = {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}
    return dict(history)


def finish(figure, save_to=None, title=None):
    """The one end of every labkit figure: give it its title (if any), save it as PNG when `save_to` is a path, and
    return it. In a Jupyter kernel it also lets the returned figure draw inline (`show_figures_inline`)."""
    if title:
        figure.suptitle(title)
    if save_to is not None:
        figure.savefig(save_to, dpi=110, bbox_inches="tight")
    show_figures_inline()
    return figure


def show_image(axis, image, title, cmap="gray"):
    """Draw an image in [0, 1] on `axis` (grey by default) with a small title and no axes."""
    image = np.asarray(image)
    axis.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image, cmap=cmap, vmin=0, vmax=1)
    axis.set_title(title, fontsize="small")
    axis.axis("off")


def outline(axis, mask, color):
    """Draw the 0.5 contour of `mask` on `axis` in `color` (nothing for a mask without an edge)."""
    mask = np.squeeze(np.asarray(mask, dtype=float))
    if mask.min() < 0.5 < mask.max():  # contour() warns on a mask without an edge
        axis.contour(mask, levels=[0.5], colors=color, linewidths=1)


def legend_line(color, label):
    """A legend entry: a line of `color` named `label`."""
    return Line2D([], [], color=color, label=label)
