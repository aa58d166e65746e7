"""Sequence figures (Lab 6): a series with its one-step-ahead prediction, and streamlines coloured by bundle."""

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from labkit.errors import require
from labkit.plots.common import finish, legend_line


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
    return finish(figure, save_to, title)


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
    require(len(streamlines) == len(predicted), f"{len(streamlines)} streamlines but {len(predicted)} predictions")
    colors = colormaps["tab10"].colors
    figure = Figure(figsize=(7, 6), layout="constrained")
    axis = figure.add_subplot(projection="3d")
    for i, (points, label) in enumerate(zip(streamlines, predicted)):
        wrong = true_labels is not None and int(true_labels[i]) != int(label)
        points = np.asarray(points)
        axis.plot(points[:, 0], points[:, 1], points[:, 2], color=colors[int(label) % 10], linewidth=0.9,
                  linestyle="--" if wrong else "-", alpha=0.8)
    handles = [legend_line(colors[k % 10], f"predicted {name}") for k, name in enumerate(class_names)]
    if true_labels is not None:
        handles.append(Line2D([], [], color="black", linestyle="--", label="misclassified"))
    axis.legend(handles=handles, fontsize="small", loc="upper left")
    axis.set(xlabel="x (mm)", ylabel="y (mm)", zlabel="z (mm)")
    return finish(figure, save_to, title)
