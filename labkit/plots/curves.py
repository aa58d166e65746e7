"""Training curves: one run's history (`plot_history` and the course's ``loss_*_plot``), several runs overlaid
(`comparison_curves`) and the auto-context steps."""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from labkit.errors import require
from labkit.history import best_epoch
from labkit.plots.common import finish, history_dict


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
    history = history_dict(history)
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
    return finish(figure, save_to, title)


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
    _require_keys(history_dict(history), ("loss", "dice_coef"), "loss_dice_plot")
    return plot_history(history, ("loss", "dice_coef"), title, save_to=save_to)


def loss_dice_precision_recall_plot(history, title, save_to=None):
    """Loss, Dice, precision and recall curves (Lab 5), train and validation, one panel each, best epoch marked.

    Panels appear for the keys the history carries among ``loss``, ``dice_coef``, ``precision`` and ``recall``
    (e.g. from ``train_unet(..., metrics=[dice_coef, Precision(), Recall()])``).

    Raises:
        LabkitInputError: the history has none of ``dice_coef``, ``precision``, ``recall``.
    """
    data = history_dict(history)
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
    data = history_dict(history)
    if accuracy not in data:
        present = [key for key in ACCURACY_KEYS if key in data]
        accuracy = present[0] if len(present) == 1 else accuracy
    _require_keys(data, ("loss", accuracy), "loss_accuracy_plot")
    return plot_history(history, ("loss", accuracy), title, save_to=save_to)


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
    histories = {name: history_dict(h) for name, h in histories.items()}
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
    return finish(figure, save_to, title)


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
    return finish(figure, save_to, title)
