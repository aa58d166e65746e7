"""Figures for runs and notebooks. Each function returns a `matplotlib.figure.Figure`.

No function calls ``plt.show()`` or touches pyplot's global state, so figures display inline in Jupyter (as the
cell's value) and stay silent in scripts and tests; pass ``save_to=`` to also write a PNG.
"""

import csv
import itertools
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from labkit.errors import require
from labkit.history import best_epoch


def _history_dict(history):
    """A dict of lists from a Keras `History`, a dict, or a ``history.csv`` path."""
    if hasattr(history, "history"):
        history = history.history
    if isinstance(history, (str, Path)):
        with open(history, newline="") as handle:
            rows = list(csv.DictReader(handle))
        history = {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}
    return dict(history)


def _finish(figure, save_to, title=None):
    """Give `figure` its title (if any), save it as PNG when `save_to` is a path, and return it."""
    if title:
        figure.suptitle(title)
    if save_to is not None:
        figure.savefig(save_to, dpi=110, bbox_inches="tight")
    return figure


def _epoch_numbers(history):
    """The x values of a history's rows: its own ``epoch`` column when it has one (Lab 1 records update counts
    there), else 1, 2, …"""
    if "epoch" in history:
        return np.asarray(history["epoch"], dtype=float)
    return np.arange(1, len(next(iter(history.values()), [])) + 1)


def _plot_epochs(axis, history, key, *style, **options):
    """``history[key]`` against the history's epochs; a one-epoch history gets a marker (a line needs two points)."""
    values = list(history[key])
    axis.plot(_epoch_numbers(history)[:len(values)], values, *style, marker="o" if len(values) == 1 else None,
              **options)


def _label_epoch_axis(axis, metric):
    axis.set(xlabel="epoch", ylabel=metric, title=metric.replace("_", " "))
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")


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
    epochs = _epoch_numbers(history)
    for axis, metric in zip(axes, metrics):
        _plot_epochs(axis, history, metric, label="train", color="tab:blue")
        if f"val_{metric}" in history:
            _plot_epochs(axis, history, f"val_{metric}", label="validation", color="tab:orange")
        if best is not None:
            value = history.get(f"val_{metric}", history[metric])[best]
            axis.axvline(epochs[best], color="grey", linestyle=":", linewidth=1)
            axis.plot(epochs[best], value, "o", color="tab:red", label=f"best epoch {epochs[best]:g} ({monitor})")
        _label_epoch_axis(axis, metric)
    return _finish(figure, save_to, title)


#: Accuracy keys a history may carry, in the order `loss_accuracy_plot` falls back on them.
ACCURACY_KEYS = ("binary_accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "accuracy", "acc")


def _require_keys(history, keys, function):
    missing = [key for key in keys if key not in history]
    require(not missing, f"{function}: the history has no {', '.join(missing)} (it has "
            f"{', '.join(k for k in history if not k.startswith('val_')) or 'nothing'}); compile the model with "
            "that metric")


def loss_dice_plot(history, title, save_to=None):
    """The course's ``loss_dice_plot``: loss and Dice curves, train and validation, best epoch marked.

    Args:
        history: a Keras `History`, labkit's (from `train_unet`), a dict of per-epoch lists or a ``history.csv``.
        title: figure title.
        save_to: optional PNG path.

    Raises:
        LabkitInputError: the history has no ``loss`` or ``dice_coef`` (the course's plot raised ``KeyError``).
    """
    _require_keys(_history_dict(history), ("loss", "dice_coef"), "loss_dice_plot")
    return plot_history(history, ("loss", "dice_coef"), title, save_to=save_to)


def loss_dice_precision_recall_plot(history, title, save_to=None):
    """Loss, Dice, precision and recall curves (Lab 5), train and validation, one panel each, best epoch marked.

    Panels appear for the keys the history carries among ``loss``, ``dice_coef``, ``precision`` and ``recall``
    (e.g. from ``train_unet(..., metrics=[dice_coef, Precision(), Recall()])``).

    Raises:
        LabkitInputError: the history has none of ``dice_coef``, ``precision``, ``recall``.
    """
    data = _history_dict(history)
    keys = [k for k in ("dice_coef", "precision", "recall") if k in data]
    require(keys, "loss_dice_precision_recall_plot: the history has no dice_coef, precision or recall (it has "
            f"{', '.join(data) or 'nothing'})")
    return plot_history(history, ("loss", *keys), title, save_to=save_to)


def loss_accuracy_plot(history, title, accuracy="binary_accuracy", save_to=None):
    """The course's ``loss_accuracy_plot``: loss and `accuracy` curves, train and validation, best epoch marked.

    Args:
        history: a Keras `History`, labkit's history, a dict of per-epoch lists or a ``history.csv`` path.
        title: figure title.
        accuracy: the accuracy key to draw: ``"binary_accuracy"`` (default), ``"sparse_categorical_accuracy"``,
            ``"categorical_accuracy"`` or ``"accuracy"``. When the history lacks it but carries exactly one other
            accuracy key (Keras 3 logs ``metrics=["accuracy"]`` as ``accuracy``), that one is drawn; the course's
            plot drew nothing for an accuracy name it did not know.
        save_to: optional PNG path.

    Raises:
        LabkitInputError: the history has no loss or no accuracy key.

    Example:
        >>> loss_accuracy_plot(model.fit(...), "MLP on bottleneck features", accuracy="sparse_categorical_accuracy")
    """
    data = _history_dict(history)
    if accuracy not in data:
        present = [key for key in ACCURACY_KEYS if key in data]
        accuracy = present[0] if len(present) == 1 else accuracy
    _require_keys(data, ("loss", accuracy), "loss_accuracy_plot")
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
    return _finish(figure, save_to, title)


def classification_samples(images, true_labels, predicted_labels, class_names, n_columns=4, title=None,
                           save_to=None):
    """A grid of images, each titled ``true <class> / predicted <class>`` (green when right, red when wrong).

    Args:
        images: ``(n, h, w, c)`` in [0, 1].
        true_labels, predicted_labels: class indices ``(n,)``.
        class_names: names of the classes in index order.
        n_columns: images per row.

    Example:
        >>> classification_samples(images, labels, probabilities.argmax(1), ("Mel", "Nevi"), title="LeNet")
    """
    n = len(images)
    require(n > 0 and len(true_labels) == len(predicted_labels) == n,
            f"classification_samples: {n} images, {len(true_labels)} true and {len(predicted_labels)} predicted labels")
    columns = min(int(n_columns), n)
    rows = -(-n // columns)
    figure = Figure(figsize=(2.6 * columns, 2.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, image, true, predicted in zip(axes, images, true_labels, predicted_labels):
        _show(axis, image, f"true {class_names[int(true)]}\npredicted {class_names[int(predicted)]}")
        axis.title.set_color("tab:green" if int(true) == int(predicted) else "tab:red")
    for axis in axes[n:]:
        axis.axis("off")
    return _finish(figure, save_to, title)


#: Colours of classes 1, 2, … in `class_samples` (background stays transparent).
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def _class_overlay(axis, image, classes, title, n_class):
    from matplotlib.colors import ListedColormap

    _show(axis, image, title)
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
    from matplotlib.patches import Patch

    n = len(images)
    figure = Figure(figsize=(7.5, 2.6 * n + 0.4), layout="constrained")
    axes = figure.subplots(n, 3, squeeze=False)
    for i in range(n):
        _show(axes[i, 0], images[i], "image")
        _class_overlay(axes[i, 1], images[i], true_classes[i], "true classes", len(class_names))
        _class_overlay(axes[i, 2], images[i], pred_classes[i], "predicted" + (f" ({scores[i]})" if scores else ""),
                       len(class_names))
    figure.legend(handles=[Patch(color=CLASS_COLOURS[i], label=name) for i, name in enumerate(class_names)],
                  loc="outside lower center", ncols=len(class_names), fontsize="small")
    return _finish(figure, save_to, title)


def _object_slices(label, pred, n_slices):
    """`n_slices` axial (last-axis) indices spread over the slices of the true object (of the prediction when the
    true mask is empty, of the whole volume when both are)."""
    present = np.flatnonzero(np.any(label, axis=(0, 1)))
    if not present.size:
        present = np.flatnonzero(np.any(pred, axis=(0, 1)))
    low, high = (present[0], present[-1]) if present.size else (0, label.shape[2] - 1)
    return np.unique(np.linspace(low, high, n_slices + 2)[1:-1].round().astype(int)) if high > low else [low]


def volume_slices(images, labels, predictions, names=None, scores=None, n_slices=4, title=None, save_to=None):
    """Several axial slices per case: the image with the true contour (green) and the predicted contour (red).

    Slices are spread evenly over the slices where the true object lies (the predicted one when the true mask is
    empty). Image grey levels are windowed to each case's 1st–99th percentile (z-scored MRI has no fixed range).

    Args:
        images: sequence of volumes ``(x, y, z)`` (or with a trailing channel axis).
        labels: true masks, same shapes.
        predictions: predicted masks or probabilities (contoured at 0.5), same shapes.
        names: case names for the row titles.
        scores: optional per-case Dice values shown in the row titles.
        n_slices: slices per case.

    Returns:
        A `Figure` with one row per case and `n_slices` columns.

    Example:
        >>> volume_slices([image], [label], [prediction], names=["case1"], scores=[0.91])
    """
    squeeze = lambda v: np.asarray(v)[..., 0] if np.ndim(v) == 4 else np.asarray(v)  # noqa: E731
    n = len(images)
    figure = Figure(figsize=(2.6 * n_slices, 2.7 * n), layout="constrained")
    axes = figure.subplots(n, n_slices, squeeze=False)
    for row in range(n):
        image, label, pred = squeeze(images[row]), squeeze(labels[row]) > 0.5, squeeze(predictions[row]) > 0.5
        low, high = np.percentile(image, (1, 99))
        picked = list(_object_slices(label, pred, n_slices))
        for column, axis in enumerate(axes[row]):
            axis.axis("off")
            if column >= len(picked):
                continue
            z = picked[column]
            axis.imshow(image[:, :, z].T, cmap="gray", vmin=low, vmax=high)
            _outline(axis, label[:, :, z].T, "lime")
            _outline(axis, pred[:, :, z].T, "red")
            name = names[row] if names is not None else f"case {row}"
            score = f", Dice {scores[row]:.3f}" if scores is not None and column == 0 else ""
            axis.set_title(f"{name} z={z}{score}" if column == 0 else f"z={z}", fontsize="small")
    figure.legend(handles=[_line("lime", "true"), _line("red", "predicted")], loc="outside lower center", ncols=2)
    return _finish(figure, save_to, title)


def _line(color, label):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, label=label)


def _surface_mesh(mask, spacing, region, step):
    """Vertices (in spacing units) and faces of the 0.5 iso-surface of `mask` inside `region` (padded by one voxel,
    so objects touching the region's edge come out closed), or None for an empty mask."""
    from skimage.measure import marching_cubes

    block = np.pad(np.asarray(mask[region], dtype=np.float32), 1)
    if not block.any():
        return None
    verts, faces, _, _ = marching_cubes(block, 0.5, spacing=spacing, step_size=step)
    offset = np.array([s.start - 1 for s in region]) * np.asarray(spacing)
    return verts + offset, faces


def surface_view(label, prediction, spacing=None, title=None, names=("true", "predicted"), max_steps=80,
                 max_faces=30_000, save_to=None):
    """A 3D view of the true and the predicted surface side by side (marching cubes at 0.5, same axes and angle).

    Args:
        label: true mask ``(x, y, z)``.
        prediction: predicted mask or probabilities, same shape.
        spacing: voxel size per axis, so the object has its physical proportions (default 1 per axis).
        title: figure title.
        names: panel titles.
        max_steps: the marching-cubes step grows so that the object's box is at most about this many steps across
            (keeps full-size LA volumes quick to draw).
        max_faces: the step grows further until each surface has at most this many triangles (a fragmented
            prediction would otherwise take long to render).

    Returns:
        A `Figure` with two 3D axes; an empty mask gets a panel saying so.

    Example:
        >>> surface_view(label, prediction > 0.5, spacing=(0.625, 0.625, 0.625), title="case 1")
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    masks = [np.squeeze(np.asarray(label)) > 0.5, np.squeeze(np.asarray(prediction)) > 0.5]
    unit = "voxels" if spacing is None else "mm"
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0, 1.0, 1.0)))
    union = np.argwhere(masks[0] | masks[1])
    low, high = (union.min(0), union.max(0) + 1) if len(union) else (np.zeros(3, int), np.array(masks[0].shape))
    region = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    step = max(1, int(np.ceil((high - low).max() / max_steps)))
    figure = Figure(figsize=(10, 4.8), layout="constrained")
    for index, (mask, name, color) in enumerate(zip(masks, names, ("tab:green", "tab:red"))):
        axis = figure.add_subplot(1, 2, index + 1, projection="3d")
        mesh, mask_step = _surface_mesh(mask, spacing, region, step), step
        while mesh is not None and len(mesh[1]) > max_faces and mask_step < 8:
            mask_step += 1
            mesh = _surface_mesh(mask, spacing, region, mask_step)
        if mesh is None:
            axis.text2D(0.5, 0.5, "empty mask", transform=axis.transAxes, ha="center")
        else:
            verts, faces = mesh
            axis.add_collection3d(Poly3DCollection(verts[faces], facecolors=color, edgecolor="none", alpha=0.85,
                                                   shade=True))
        lows, highs = low * np.asarray(spacing), high * np.asarray(spacing)
        axis.set(xlim=(lows[0], highs[0]), ylim=(lows[1], highs[1]), zlim=(lows[2], highs[2]),
                 xlabel=f"x ({unit})", ylabel=f"y ({unit})", zlabel=f"z ({unit})", title=name)
        axis.set_box_aspect(highs - lows)
        axis.view_init(elev=25, azim=-60)
    return _finish(figure, save_to, title)


def comparison_curves(histories, metrics=("loss", "iou", "dice"), title=None, save_to=None, monitor=None):
    """Several models' training curves on shared axes: one panel per metric, one colour per model.

    Training values are solid lines, validation values (``val_<metric>``) dashed. With more than two models the
    legend moves beside the panels and names each model once (legible with a dozen).

    Args:
        histories: ``{model name: history}``, each a dict of per-epoch lists, a Keras `History` or a CSV path.
        metrics: history keys, one panel each.
        title: figure title.
        save_to: optional PNG path.
        monitor: when given, each model's best epoch by this key is marked with a dot on its validation curve.

    Returns:
        A `Figure` with one axis per metric.

    Example:
        >>> comparison_curves({"frozen": history_1, "finetune": history_2}, ("loss", "iou", "dice"))
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    histories = {name: _history_dict(h) for name, h in histories.items()}
    many = len(histories) > 2
    figure = Figure(figsize=(4.6 * len(metrics) + (2.4 if many else 0), 3.8), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    palette = colormaps["tab10" if len(histories) <= 10 else "tab20"].colors
    colours = {name: palette[i % len(palette)] for i, name in enumerate(histories)}
    for axis, metric in zip(axes, metrics):
        for name, history in histories.items():
            for key, style, split in ((metric, "-", "train"), (f"val_{metric}", "--", "validation")):
                if key in history:
                    _plot_epochs(axis, history, key, style, color=colours[name], label=f"{name} {split}")
            marked = f"val_{metric}" if f"val_{metric}" in history else metric
            if monitor in history and marked in history:
                best = best_epoch(history, monitor)
                axis.plot(_epoch_numbers(history)[best], history[marked][best], "o", color=colours[name],
                          markersize=6, markeredgecolor="black", markeredgewidth=0.6)
        _label_epoch_axis(axis, metric)
        if many:
            axis.get_legend().remove()
    if many:
        handles = [Line2D([], [], color=colours[n], label=n) for n in histories]
        handles += [Line2D([], [], color="grey", linestyle=s, label=l) for s, l in (("-", "train"), ("--", "validation"))]
        if monitor:
            handles.append(Line2D([], [], color="grey", marker="o", linestyle="", label=f"best epoch ({monitor})"))
        figure.legend(handles=handles, loc="outside right upper", fontsize="small")
    return _finish(figure, save_to, title)


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
        _show(axes[i, 0], images[i], "image" if names is None else str(names[i]))
        _show(axes[i, 1], masks[i], "true mask")
        for j, (model, probs) in enumerate(probabilities.items()):
            score = f"\nDice {scores[model][i]:.3f}" if scores is not None else ""
            _show(axes[i, 2 + 2 * j], probs[i], f"{model} probability", cmap="magma")
            _show(axes[i, 3 + 2 * j], np.asarray(probs[i]) > threshold, f"{model} mask{score}")
    return _finish(figure, save_to, title)


def _figure_png(figure):
    """The PNG bytes of `figure`, trimmed to its content (what Jupyter displays)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def show_figures_inline():
    """Let Jupyter draw a `Figure` that a cell returns, even when pyplot was never imported.

    IPython knows how to display a `Figure` only once matplotlib's inline backend is active (``%matplotlib inline``
    or an ``import matplotlib.pyplot``); before that, a cell ending in ``loss_dice_plot(history, "U-Net")`` shows only
    ``<Figure size 1000x380 with 2 Axes>``. This registers a PNG formatter for `Figure` with the running IPython shell,
    unless some formatter (e.g. the inline backend's, with the user's ``figure_formats``) already handles figures.
    Importing `labkit.plots` calls it; outside IPython it does nothing.

    Returns:
        True when the formatter was registered.

    Example:
        >>> from labkit.plots import loss_dice_plot
        >>> loss_dice_plot(history, "U-Net")      # last line of a notebook cell: drawn inline
    """
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    if any(formatter.for_type(Figure) is not None for formatter in formatters.values()):
        return False
    formatters["image/png"].for_type(Figure, _figure_png)
    return True


show_figures_inline()


def confusion_matrix_figure(y_true, y_pred, class_names, title=None, save_to=None):
    """The confusion matrix twice: counts, and row-normalised (each true class's row sums to 1, so the diagonal is
    the per-class recall).

    Args:
        y_true, y_pred: class indices ``(n,)`` (or one-hot / probability rows, reduced by arg-max).
        class_names: names of the classes in index order.
        title: figure title.

    Returns:
        A `Figure` with two panels; rows are true classes, columns predicted ones (scikit-learn's convention). A true
        class without images shows an empty row.

    Example:
        >>> confusion_matrix_figure(labels, probabilities, CLASSES, title="ResNet50, CE")
    """
    from labkit.evaluation.classification import confusion_counts

    n = len(class_names)
    counts = confusion_counts(y_true, y_pred, n)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    figure = Figure(figsize=(2 * (2.2 + 0.55 * n), 1.6 + 0.55 * n), layout="constrained")
    for axis, matrix, name, fmt in zip(figure.subplots(1, 2), (counts, normalised), ("counts", "row-normalised"),
                                       ("d", ".2f")):
        shown = axis.imshow(matrix / max(matrix.max(), 1e-12), cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                axis.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize="small",
                          color="white" if shown.norm(matrix[i, j] / max(matrix.max(), 1e-12)) > 0.6 else "black")
        axis.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class", title=name)
        axis.set_xticklabels(class_names, rotation=45, ha="right")
        axis.set_yticklabels([f"{c} ({r})" for c, r in zip(class_names, rows[:, 0])])
    return _finish(figure, save_to, title)


def roc_figure(y_true, probabilities, class_names, title=None, save_to=None):
    """One-vs-rest ROC curves of every class with its AUC in the legend, plus the micro and macro averages.

    Curves come from scikit-learn's `roc_curve`. The micro average pools every (image, class) decision; the macro
    average is the mean true-positive rate over a common false-positive-rate grid, and its legend shows the mean of
    the per-class AUCs (the ``macro_auc`` of `labkit.evaluation.classification`). A class with no positive image in
    `y_true` has no curve (its legend entry says so).

    Args:
        y_true: class indices ``(n,)`` or one-hot rows.
        probabilities: predicted probabilities ``(n, k)``.
        class_names: the `k` class names.
        title: figure title.

    Returns:
        A `Figure` with one axis.

    Example:
        >>> roc_figure(labels, probabilities, CLASSES, title="ResNet50, CE")
    """
    from sklearn.metrics import auc, roc_curve

    from labkit.evaluation.classification import as_labels, per_class_auc

    y_true = as_labels(y_true)
    probabilities = np.asarray(probabilities, dtype=float)
    onehot = np.eye(len(class_names))[y_true]
    aucs = per_class_auc(y_true, probabilities)
    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axis = figure.subplots()
    grid, tprs = np.linspace(0, 1, 201), []
    for k, name in enumerate(class_names):
        if not np.isfinite(aucs[k]):
            axis.plot([], [], label=f"{name}: no positive/negative test image")
            continue
        fpr, tpr, _ = roc_curve(onehot[:, k], probabilities[:, k])
        tprs.append(np.interp(grid, fpr, tpr))
        axis.plot(fpr, tpr, linewidth=1.2, label=f"{name} (AUC {aucs[k]:.3f})")
    fpr, tpr, _ = roc_curve(onehot.ravel(), probabilities.ravel())
    axis.plot(fpr, tpr, "k:", linewidth=2, label=f"micro-average (AUC {auc(fpr, tpr):.3f})")
    if tprs:
        mean_tpr = np.mean(tprs, axis=0)
        mean_tpr[0] = 0.0
        axis.plot(grid, mean_tpr, "k--", linewidth=2, label=f"macro-average (mean AUC {np.nanmean(aucs):.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, alpha=0.6)
    axis.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (1 − specificity)",
             ylabel="true positive rate (sensitivity)", title=title or "one-vs-rest ROC")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="lower right")
    return _finish(figure, save_to)


def class_gradcam_figure(images, heatmaps, true_labels, predicted_labels, class_names, alpha=0.4, title=None,
                         save_to=None):
    """Grad-CAM by true class: one row per class, each sample as the image and its heatmap overlay.

    Titles give the true and the predicted class (green when they agree, red otherwise).

    Args:
        images: images ``(n, h, w, c)`` in [0, 1].
        heatmaps: Grad-CAM maps ``(n, h, w)`` in [0, 1] (e.g. from `labkit.gradcam.grad_cam`).
        true_labels, predicted_labels: class indices ``(n,)``.
        class_names: names of the classes; rows follow their order, classes without samples are left out.
        alpha: opacity of the heatmap in the overlay.
        title: figure title.

    Returns:
        A `Figure` with a row per class present and two columns per sample.

    Example:
        >>> class_gradcam_figure(images, [grad_cam(model, im) for im in images], labels, predicted, CLASSES)
    """
    from labkit.gradcam import overlay_heatmap

    true_labels, predicted_labels = np.asarray(true_labels), np.asarray(predicted_labels)
    present = [k for k in range(len(class_names)) if (true_labels == k).any()]
    columns = max(int((true_labels == k).sum()) for k in present) if present else 1
    figure = Figure(figsize=(2.0 * 2 * columns, 2.2 * max(1, len(present))), layout="constrained")
    axes = figure.subplots(max(1, len(present)), 2 * columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for row, k in enumerate(present):
        for j, i in enumerate(np.flatnonzero(true_labels == k)):
            image = np.asarray(images[i])
            axes[row, 2 * j].imshow(np.squeeze(image), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
            axes[row, 2 * j + 1].imshow(overlay_heatmap(image, np.asarray(heatmaps[i]), alpha))
            right = predicted_labels[i] == k
            axes[row, 2 * j].set_title(f"true {class_names[k]}", fontsize="small")
            axes[row, 2 * j + 1].set_title(f"pred {class_names[predicted_labels[i]]}", fontsize="small",
                                           color="green" if right else "red")
    return _finish(figure, save_to, title)


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
        _show(axes[i, 0], np.asarray(images[i])[..., :1], "image")
        mask = np.asarray(masks[i])
        _show(axes[i, 1], (mask * np.arange(1, mask.shape[-1] + 1)).max(-1) / mask.shape[-1], "mask")
        shown = axes[i, 2].imshow(weights[i, ..., 0], cmap="viridis", vmin=1.0, vmax=top)
        axes[i, 2].set_title("weight map", fontsize="small")
        axes[i, 2].axis("off")
        figure.colorbar(shown, ax=axes[i, 2], fraction=0.046)
    return _finish(figure, save_to, title)


def autocontext_curve(rows, title=None, save_to=None):
    """Validation Dice of each auto-context step (`labkit.autocontext`): one point per step, joined.

    Args:
        rows: ``[{"step": s, "val_dice": mean, "val_dice_std": std (optional)}]``, one per step.
    """
    steps = [int(r["step"]) for r in rows]
    dice = [float(r["val_dice"]) for r in rows]
    spread = [float(r.get("val_dice_std") or 0.0) for r in rows]
    figure = Figure(figsize=(5, 3.6), layout="constrained")
    axis = figure.subplots()
    axis.errorbar(steps, dice, yerr=spread, marker="o", capsize=3)
    axis.set(xlabel="auto-context step", ylabel="validation Dice (mean per image)", xticks=steps)
    axis.grid(alpha=0.3)
    return _finish(figure, save_to, title)


def augmentation_preview(image, transformed, augmented, augment_title="random augmentation", title=None,
                         save_to=None):
    """Lab 3 Task 7's figure: deterministic transforms as before/after pairs, then random augmentations.

    The top part has one column per transform: the original above, the transformed image below. An image of
    another size (a rescale) is drawn on the original's pixel grid, with its axes, so the change of size shows. The
    bottom part is a grid of the original followed by its random augmentations.

    Args:
        image: the original, ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` in [0, 1].
        transformed: ``{name: transformed image}``, e.g. `labkit.data.image_transforms.apply_transforms`.
        augmented: random augmentations of `image`, each of its shape.
        augment_title: heading of the grid (e.g. the augmentation settings).

    Example:
        >>> augmentation_preview(image, apply_transforms(image), augmented, save_to="augmentation_preview.png")
    """
    require(len(transformed) > 0 and len(augmented) > 0, "augmentation_preview needs transforms and augmentations")
    columns = max(len(transformed), 4)
    grid_columns = max(columns, min(len(augmented) + 1, 6))
    grid_rows = -(-(len(augmented) + 1) // grid_columns)
    figure = Figure(figsize=(2.3 * grid_columns, 2.5 * (2 + grid_rows) + 0.6), layout="constrained")
    pairs, grid = figure.subfigures(2, 1, height_ratios=(2, grid_rows))
    pair_axes = pairs.subplots(2, columns, squeeze=False)
    height, width = np.shape(image)[:2]
    for column, (name, after) in enumerate(transformed.items()):
        _show(pair_axes[0, column], image, "before")
        _show(pair_axes[1, column], after, f"after: {name}")
        if np.shape(after)[:2] != (height, width):
            pair_axes[1, column].axis("on")
            pair_axes[1, column].set(xlim=(-0.5, width - 0.5), ylim=(height - 0.5, -0.5))
            pair_axes[1, column].tick_params(labelsize="x-small")
    for axis in pair_axes[:, len(transformed):].ravel():
        axis.axis("off")
    pairs.suptitle("scikit-image transforms: before and after")
    grid_axes = grid.subplots(grid_rows, grid_columns, squeeze=False).ravel()
    _show(grid_axes[0], image, "original")
    for number, (axis, picture) in enumerate(zip(grid_axes[1:], augmented), start=1):
        _show(axis, picture, f"augmented {number}")
    for axis in grid_axes[len(augmented) + 1:]:
        axis.axis("off")
    grid.suptitle(augment_title)
    return _finish(figure, save_to, title)


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
        _show(axis, image, names[index] if names is not None else "")
        for colour, value in zip(itertools.cycle(colours), [v for v in np.unique(mask) if v]):
            _outline(axis, mask == value, colour)
    return _finish(figure, save_to, title)


def series_prediction_figure(values, predicted, history_values=None, dates=None, title=None, save_to=None):
    """A series and its one-step-ahead prediction (Lab 6 Task 1), in the series' own units.

    Args:
        values: the true values ``(n,)`` of the predicted days (the validation series).
        predicted: the predicted values ``(n,)`` of the same days.
        history_values: optional values before them (the training series' tail), drawn in grey for context.
        dates: optional labels of the `values` days, used for a few x ticks.
        title: figure title.

    Returns:
        A `Figure` with one axis: day against value.
    """
    values, predicted = np.ravel(values), np.ravel(predicted)
    require(len(values) == len(predicted), f"{len(values)} values but {len(predicted)} predictions")
    figure = Figure(figsize=(9, 4), layout="constrained")
    axis = figure.subplots()
    days = np.arange(len(values))
    if history_values is not None and len(history_values):
        before = np.ravel(history_values)
        axis.plot(np.arange(-len(before), 0), before, color="grey", linewidth=1, label="training series (tail)")
    axis.plot(days, values, color="tab:blue", label="validation series")
    axis.plot(days, predicted, color="tab:orange", label="prediction (from the previous days)")
    if dates is not None and len(dates) == len(values):
        ticks = np.unique(np.linspace(0, len(values) - 1, min(5, len(values))).round().astype(int))
        axis.set_xticks(ticks, [dates[i] for i in ticks], fontsize="small", rotation=30, ha="right")
    axis.set(xlabel="day", ylabel="value")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return _finish(figure, save_to, title)


def streamlines_figure(streamlines, predicted, class_names, true_labels=None, title=None, save_to=None):
    """Streamlines in 3D, each coloured by its predicted class (Lab 6 Task 2); misclassified ones dashed.

    Args:
        streamlines: arrays ``(points_i, 3)`` in millimetres.
        predicted: predicted class index of each.
        class_names: names of the classes in index order.
        true_labels: optional true class indices: streamlines whose prediction is wrong are drawn dashed.
        title: figure title.

    Returns:
        A `Figure` with one 3D axis (x, y, z in mm).
    """
    from matplotlib import colormaps

    require(len(streamlines) == len(predicted), f"{len(streamlines)} streamlines but {len(predicted)} predictions")
    colors = colormaps["tab10"].colors
    figure = Figure(figsize=(7, 6), layout="constrained")
    axis = figure.add_subplot(projection="3d")
    for i, (points, label) in enumerate(zip(streamlines, predicted)):
        wrong = true_labels is not None and int(true_labels[i]) != int(label)
        points = np.asarray(points)
        axis.plot(points[:, 0], points[:, 1], points[:, 2], color=colors[int(label) % 10], linewidth=0.9,
                  linestyle="--" if wrong else "-", alpha=0.8)
    handles = [_line(colors[k % 10], f"predicted {name}") for k, name in enumerate(class_names)]
    if true_labels is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", linestyle="--", label="misclassified"))
    axis.legend(handles=handles, fontsize="small", loc="upper left")
    axis.set(xlabel="x (mm)", ylabel="y (mm)", zlabel="z (mm)")
    return _finish(figure, save_to, title)
