"""2D segmentation figures: images with true and predicted masks, class maps, several models side by side, and
the boundary weight maps."""

import itertools

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from labkit.plots.common import finish, outline, show_image


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
        show_image(axes[i, 0], images[i], "image")
        show_image(axes[i, 1], masks[i], "true mask")
        show_image(axes[i, 2], predictions[i], "predicted probability", cmap="magma")
        show_image(axes[i, 3], images[i], "overlay" + (f" (Dice {scores[i]:.3f})" if scores is not None else ""))
        outline(axes[i, 3], masks[i], "lime")
        outline(axes[i, 3], predictions[i], "red")
    return finish(figure, save_to, title)


#: Colours of classes 1, 2, … in `class_samples` (background stays transparent).
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def _class_overlay(axis, image, classes, title, n_class):
    show_image(axis, image, title)
    shown = np.ma.masked_equal(np.asarray(classes), 0)
    axis.imshow(shown, cmap=ListedColormap(CLASS_COLOURS[: n_class]), vmin=1, vmax=max(n_class, 1) + 1e-9,
                alpha=0.55, interpolation="nearest")


def class_samples(images, true_classes, pred_classes, class_names, scores=None, title=None, save_to=None):
    """One row per image: the image, the true classes and the predicted classes, each class in its own colour.

    Args:
        images: ``(n, h, w, c)`` in [0, 1].
        true_classes, pred_classes: ``(n, h, w)`` class index maps, 0 = background, ``i`` = ``class_names[i - 1]``.
        class_names: names of classes 1, 2, … (the legend).
        scores: optional per-image text (e.g. per-class Dice) shown over the prediction.
    """
    n = len(images)
    figure = Figure(figsize=(7.5, 2.6 * n + 0.4), layout="constrained")
    axes = figure.subplots(n, 3, squeeze=False)
    for i in range(n):
        show_image(axes[i, 0], images[i], "image")
        _class_overlay(axes[i, 1], images[i], true_classes[i], "true classes", len(class_names))
        _class_overlay(axes[i, 2], images[i], pred_classes[i], "predicted" + (f" ({scores[i]})" if scores else ""),
                       len(class_names))
    figure.legend(handles=[Patch(color=CLASS_COLOURS[i], label=name) for i, name in enumerate(class_names)],
                  loc="outside lower center", ncols=len(class_names), fontsize="small")
    return finish(figure, save_to, title)


def comparison_samples(images, masks, probabilities, names=None, scores=None, threshold=0.5, title=None,
                       save_to=None):
    """One row per image: the image, its true mask, then each model's probability map and its mask at `threshold`.

    Args:
        images: ``(n, h, w, c)`` in [0, 1].
        masks: ``(n, h, w, 1)`` true masks.
        probabilities: ``{model name: (n, h, w, 1) probabilities}`` (two models give six columns).
        names: optional image names for the row titles.
        scores: optional ``{model name: per-image Dice}`` shown over each model's mask.
        threshold: probability above which a pixel is foreground.

    Returns:
        A `Figure` with ``2 + 2·len(probabilities)`` columns.

    Example:
        >>> comparison_samples(images[:4], masks[:4], {"frozen": p1[:4], "finetune": p2[:4]})
    """
    n, columns = len(images), 2 + 2 * len(probabilities)
    figure = Figure(figsize=(2.1 * columns, 2.3 * n), layout="constrained")
    axes = figure.subplots(n, columns, squeeze=False)
    for i in range(n):
        show_image(axes[i, 0], images[i], "image" if names is None else str(names[i]))
        show_image(axes[i, 1], masks[i], "true mask")
        for j, (model, probs) in enumerate(probabilities.items()):
            score = f"\nDice {scores[model][i]:.3f}" if scores is not None else ""
            show_image(axes[i, 2 + 2 * j], probs[i], f"{model} probability", cmap="magma")
            show_image(axes[i, 3 + 2 * j], np.asarray(probs[i]) > threshold, f"{model} mask{score}")
    return finish(figure, save_to, title)


def weight_map_figure(images, masks, weights, title=None, save_to=None):
    """One row per image: the image, its mask and its boundary weight map (`labkit.data.weight_maps.weight_map`).

    Args:
        images: ``(n, h, w, c)`` in [0, 1] (the first channel is shown).
        masks: ``(n, h, w, k)`` binary, one-hot or one channel per head (several channels: channel c shown at
            grey level ``(c + 1) / k``).
        weights: ``(n, h, w, 1)`` weights (1 off the boundary, ``1 + strength`` on it), drawn with a colour bar.
    """
    n = len(images)
    figure = Figure(figsize=(8.5, 2.7 * n), layout="constrained")
    axes = figure.subplots(n, 3, squeeze=False)
    weights = np.asarray(weights)
    top = max(float(weights.max()), 1.0 + 1e-6)
    for i in range(n):
        show_image(axes[i, 0], np.asarray(images[i])[..., :1], "image")
        mask = np.asarray(masks[i])
        show_image(axes[i, 1], (mask * np.arange(1, mask.shape[-1] + 1)).max(-1) / mask.shape[-1], "mask")
        shown = axes[i, 2].imshow(weights[i, ..., 0], cmap="viridis", vmin=1.0, vmax=top)
        axes[i, 2].set_title("weight map", fontsize="small")
        axes[i, 2].axis("off")
        figure.colorbar(shown, ax=axes[i, 2], fraction=0.046)
    return finish(figure, save_to, title)


def prediction_overlays(images, masks, names=None, title=None, save_to=None):
    """Images with the outline of their predicted masks (``labkit predict``'s ``overlay.png``).

    Args:
        images: images at their own sizes, float in [0, 1], (h, w) or (h, w, 3).
        masks: one mask per image at the image's size (nonzero = foreground; several values = several structures,
            each outlined in its own colour).
        names: a title per image (e.g. the file names).
    """
    figure = Figure(figsize=(3 * len(images), 3.2), layout="constrained")
    axes = figure.subplots(1, len(images), squeeze=False)
    colours = ("tab:red", "tab:cyan", "tab:orange", "tab:green")
    for index, (axis, image, mask) in enumerate(zip(axes[0], images, masks)):
        show_image(axis, image, names[index] if names is not None else "")
        for colour, value in zip(itertools.cycle(colours), [v for v in np.unique(mask) if v]):
            outline(axis, mask == value, colour)
    return finish(figure, save_to, title)
