"""Every public plotting function returns a Figure and has no side effects unless asked (``save_to=``).

"Public plotting function": every public function of `labkit.plots`, and every public function of `labkit.gradcam`
with a ``save_to`` parameter. Each needs a row in `CASES` (small sample arguments); a new function without one fails
`test_every_plotting_function_has_a_case`, so the side-effect checks cover it from the day it lands.
"""

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labkit import gradcam, plots  # noqa: E402
from labkit.plots import explain  # noqa: E402

#: Public functions of labkit.plots that draw nothing (helpers).
NOT_PLOTTING = {"labkit.plots.show_figures_inline"}

RNG = np.random.default_rng(0)
HISTORY = {  # val_loss is lowest at epoch 3, val_dice_coef highest at epoch 4, val_binary_accuracy at epoch 2
    "loss": [0.9, 0.7, 0.5, 0.45, 0.4],
    "val_loss": [0.95, 0.8, 0.6, 0.65, 0.7],
    "dice_coef": [0.2, 0.4, 0.6, 0.7, 0.75],
    "val_dice_coef": [0.1, 0.3, 0.5, 0.62, 0.6],
    "binary_accuracy": [0.6, 0.7, 0.8, 0.85, 0.9],
    "val_binary_accuracy": [0.5, 0.9, 0.7, 0.8, 0.85],
}
IMAGES = RNG.random((2, 16, 16, 1)).astype(np.float32)
MASKS = np.zeros((2, 16, 16, 1), np.float32)
MASKS[:, 4:12, 4:12] = 1
PREDICTIONS = np.clip(MASKS * 0.8 + RNG.random((2, 16, 16, 1)) * 0.3, 0, 1).astype(np.float32)
HEATMAPS = RNG.random((2, 16, 16)).astype(np.float32)
VOLUME = RNG.random((16, 16, 8)).astype(np.float32)
LABEL = np.zeros((16, 16, 8), np.float32)
LABEL[4:12, 5:11, 2:6] = 1
PREDICTED = np.roll(LABEL, 1, axis=0)
CLASSES = ["MEL", "NV", "BCC"]
LABELS = np.array([0, 0, 1, 1, 2, 2])
PROBABILITIES = np.array([[.7, .2, .1], [.3, .6, .1], [.1, .8, .1], [.2, .7, .1], [.1, .2, .7], [.5, .1, .4]])

CASES = {  # qualified name → (args, kwargs) of a small valid call
    "labkit.plots.plot_history": ((HISTORY, ("loss", "dice_coef")), {"title": "t"}),
    "labkit.plots.loss_dice_plot": ((HISTORY, "U-Net"), {}),
    "labkit.plots.loss_accuracy_plot": ((HISTORY, "classifier"), {}),
    "labkit.plots.loss_dice_precision_recall_plot": (({**HISTORY, "precision": [0.5] * 5, "val_precision": [0.4] * 5,
                                                       "recall": [0.6] * 5, "val_recall": [0.5] * 5}, "U-Net"), {}),
    "labkit.plots.segmentation_samples": ((IMAGES, MASKS, PREDICTIONS), {"scores": [0.9, 0.8], "title": "t"}),
    "labkit.plots.class_samples": ((IMAGES, MASKS[..., 0].astype(int), 2 * PREDICTIONS[..., 0].round().astype(int),
                                    ["left", "right"]), {"scores": ["left 0.9", "left 0.8"]}),
    "labkit.plots.volume_slices": (([VOLUME], [LABEL], [PREDICTED]), {"names": ["case"], "n_slices": 2}),
    "labkit.plots.surface_view": ((LABEL, PREDICTED), {"spacing": (1.0, 1.0, 2.0)}),
    "labkit.plots.comparison_curves": (({"frozen": HISTORY, "finetune": HISTORY}, ("loss", "dice_coef")), {}),
    "labkit.plots.comparison_samples": ((IMAGES, MASKS, {"frozen": PREDICTIONS, "finetune": 1 - PREDICTIONS}),
                                        {"scores": {"frozen": [0.9, 0.8], "finetune": [0.1, 0.2]}}),
    "labkit.plots.confusion_matrix_figure": ((LABELS, PROBABILITIES.argmax(1), CLASSES), {"title": "t"}),
    "labkit.plots.roc_figure": ((LABELS, PROBABILITIES, CLASSES), {}),
    "labkit.plots.class_gradcam_figure": ((np.concatenate([IMAGES] * 3), np.concatenate([HEATMAPS] * 3), LABELS,
                                           PROBABILITIES.argmax(1), CLASSES), {}),
    "labkit.plots.activation_map_figure": ((IMAGES, HEATMAPS), {"titles": ["a", "b"]}),
    "labkit.plots.decision_boundary_figure": ((lambda x: x[:, :1], np.array([[0, 0], [0, 1], [1, 0], [1, 1]]),
                                              np.array([0, 1, 1, 0])), {"title": "t"}),
    "labkit.plots.classification_samples": ((IMAGES, [0, 1], [0, 0], ["Mel", "Nevi"]), {"title": "t"}),
    "labkit.plots.weight_map_figure": ((IMAGES, MASKS, 1 + 1.5 * MASKS), {"title": "t"}),
    "labkit.plots.autocontext_curve": (([{"step": 1, "val_dice": 0.8, "val_dice_std": 0.05},
                                         {"step": 2, "val_dice": 0.85}],), {}),
    "labkit.plots.augmentation_preview": ((IMAGES[0], {"flip": IMAGES[1], "half size": IMAGES[0, ::2, ::2]}, IMAGES),
                                         {"augment_title": "t"}),
    "labkit.plots.series_prediction_figure": (([3.0, 4.0, 3.5], [3.1, 3.8, 3.6]), {"history_values": [2.0, 2.5],
                                                                                   "dates": ["a", "b", "c"]}),
    "labkit.plots.prediction_overlays": (([IMAGES[0, ..., 0], np.ones((20, 30, 3)) / 2],
                                          [MASKS[0, ..., 0], np.pad(np.full((4, 6), 2), ((8, 8), (12, 12)))]),
                                         {"names": ["a.png", "b.png"]}),
    "labkit.plots.streamlines_figure": (([np.zeros((4, 3)), np.ones((6, 3))], [0, 1], ["CST_left", "CST_right"]),
                                        {"true_labels": [0, 0], "title": "t"}),
}


def plotting_functions():
    found = {}
    for module in (plots, gradcam):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            qualified = f"{module.__name__}.{name}"
            if name.startswith("_") or not function.__module__.startswith(module.__name__) or qualified in NOT_PLOTTING:
                continue
            if module is plots or "save_to" in inspect.signature(function).parameters:
                found[qualified] = function
    return found


FUNCTIONS = plotting_functions()


def test_every_plotting_function_has_a_case():
    missing = sorted(set(FUNCTIONS) - set(CASES))
    assert not missing, f"add sample arguments to CASES in tests/test_plots.py for: {', '.join(missing)}"
    assert set(CASES) <= set(FUNCTIONS), f"CASES names functions that no longer exist: {set(CASES) - set(FUNCTIONS)}"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_plotting_function_takes_save_to(name):
    assert "save_to" in inspect.signature(FUNCTIONS[name]).parameters


@pytest.fixture
def side_effects(monkeypatch, tmp_path):
    """Records plt.show / plt.figure / Figure.savefig calls while the test runs in an empty working folder."""
    plt.close("all")
    calls = {"show": 0, "pyplot_figure": 0, "savefig": []}
    real_figure, real_savefig = plt.figure, Figure.savefig

    def show(*args, **kwargs):
        calls["show"] += 1

    def figure(*args, **kwargs):
        calls["pyplot_figure"] += 1
        return real_figure(*args, **kwargs)

    def savefig(self, fname, *args, **kwargs):
        calls["savefig"].append(str(fname))
        return real_savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(plt, "show", show)
    monkeypatch.setattr(plt, "figure", figure)
    monkeypatch.setattr(Figure, "savefig", savefig)
    monkeypatch.chdir(tmp_path)
    yield calls
    plt.close("all")


@pytest.mark.parametrize("name", sorted(CASES))
def test_returns_figure_without_side_effects(name, side_effects, tmp_path):
    args, kwargs = CASES[name]
    figure = FUNCTIONS[name](*args, **kwargs)
    assert isinstance(figure, Figure)
    assert figure.axes, "the figure has no axes"
    assert figure.canvas.manager is None, "the figure belongs to pyplot (created with plt.figure/plt.subplots)"
    assert side_effects == {"show": 0, "pyplot_figure": 0, "savefig": []}
    assert plt.get_fignums() == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_to_writes_one_png(name, side_effects, tmp_path):
    args, kwargs = CASES[name]
    target = tmp_path / "figure.png"
    figure = FUNCTIONS[name](*args, **kwargs, save_to=target)
    assert isinstance(figure, Figure)
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = plt.imread(target)
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0, "the saved PNG is blank"
    assert plt.get_fignums() == []


def markers(axis):
    """``(x, y)`` of every point marker (the best-epoch dot) and the x of every vertical line on the axis."""
    dots = [(float(l.get_xdata()[0]), float(l.get_ydata()[0])) for l in axis.lines if l.get_marker() == "o"]
    vlines = [float(l.get_xdata()[0]) for l in axis.lines
              if len(set(np.atleast_1d(l.get_xdata()))) == 1 and l.get_marker() != "o"]
    return dots, vlines


@pytest.mark.parametrize(
    "call, metrics, best_epoch",
    [
        (lambda h: plots.plot_history(h, ("loss",)), ["loss"], 3),  # monitor val_loss: lowest at epoch 3
        (lambda h: plots.plot_history(h, ("loss",), monitor="val_dice_coef"), ["loss"], 4),
        (lambda h: plots.loss_dice_plot(h, "t"), ["loss", "dice_coef"], 4),  # monitor val_dice_coef: highest
        (lambda h: plots.loss_accuracy_plot(h, "t"), ["loss", "binary_accuracy"], 2),
    ],
)
def test_best_epoch_marker_position(call, metrics, best_epoch, side_effects):
    figure = call(HISTORY)
    assert len(figure.axes) == len(metrics)
    for axis, metric in zip(figure.axes, metrics):
        dots, vlines = markers(axis)
        assert dots == [(best_epoch, pytest.approx(HISTORY[f"val_{metric}"][best_epoch - 1]))]
        assert vlines == [best_epoch]
        train, val = [l for l in axis.lines if len(set(np.atleast_1d(l.get_xdata()))) > 1]
        np.testing.assert_allclose(train.get_xdata(), np.arange(1, 6))
        np.testing.assert_allclose(train.get_ydata(), HISTORY[metric])
        np.testing.assert_allclose(val.get_ydata(), HISTORY[f"val_{metric}"])


def test_plot_history_reads_history_csv(side_effects, tmp_path):
    from labkit.run_folder import write_csv

    rows = [{"epoch": i + 1, **{k: v[i] for k, v in HISTORY.items()}} for i in range(5)]
    write_csv(tmp_path / "history.csv", rows)
    figure = plots.loss_dice_plot(tmp_path / "history.csv", "from csv")
    dots, _ = markers(figure.axes[1])
    assert dots == [(4, pytest.approx(0.62))]
    assert figure._suptitle.get_text() == "from csv"


@pytest.mark.parametrize("draw", [lambda h: plots.plot_history(h, ("loss",), monitor="loss"),
                                  lambda h: plots.comparison_curves({"a": h}, ("loss",), monitor="loss")])
def test_curves_and_best_marker_use_the_historys_own_epoch_column(side_effects, draw):
    """Lab 1's history.csv numbers its rows by update (one row every 50 updates): the x-axis shows those numbers."""
    axis = draw({"epoch": [50, 100, 150], "loss": [0.6, 0.3, 0.4]}).axes[0]
    train = next(line for line in axis.lines if line.get_label().endswith("train"))
    np.testing.assert_allclose(train.get_xdata(), [50, 100, 150])
    assert markers(axis)[0] == [(100, 0.3)]  # the best (lowest) loss, at update 100


@pytest.mark.parametrize("draw", [lambda h: plots.plot_history(h, ("loss",)),
                                  lambda h: plots.comparison_curves({"a": h, "b": h}, ("loss",))])
def test_a_one_epoch_history_is_drawn_as_points_longer_ones_as_plain_lines(side_effects, draw):
    one = draw({"loss": [0.5], "val_loss": [0.6]}).axes[0]
    curves = [line for line in one.lines if line.get_label().endswith(("train", "validation"))]
    assert len(curves) >= 2 and all(line.get_marker() == "o" for line in curves)  # visible without a second point
    assert {float(line.get_ydata()[0]) for line in curves} == {0.5, 0.6}  # train and validation at epoch 1
    longer = draw({"loss": [0.5, 0.4], "val_loss": [0.6, 0.5]}).axes[0]
    curves = [line for line in longer.lines if line.get_label().endswith(("train", "validation"))]
    assert curves and all(line.get_marker() in (None, "None", "") for line in curves)


def test_segmentation_samples_draws_each_input(side_effects):
    figure = plots.segmentation_samples(IMAGES, MASKS, PREDICTIONS, scores=[0.9, 0.8])
    assert len(figure.axes) == 2 * 4
    for row in range(2):
        image, mask, prediction, overlay = figure.axes[4 * row: 4 * row + 4]
        np.testing.assert_array_equal(image.images[0].get_array(), IMAGES[row, ..., 0])
        np.testing.assert_array_equal(mask.images[0].get_array(), MASKS[row, ..., 0])
        np.testing.assert_array_equal(prediction.images[0].get_array(), PREDICTIONS[row, ..., 0])
        assert overlay.get_title() == f"overlay (Dice {[0.9, 0.8][row]:.3f})"


def test_activation_map_figure_overlay_matches_overlay_heatmap(side_effects):
    figure = plots.activation_map_figure(IMAGES, HEATMAPS, titles=["a", "b"], alpha=0.4)
    assert len(figure.axes) == 2 * 3
    for row in range(2):
        image, heatmap, overlay = figure.axes[3 * row: 3 * row + 3]
        assert image.get_title() == ["a", "b"][row]
        np.testing.assert_array_equal(heatmap.images[0].get_array(), HEATMAPS[row])
        np.testing.assert_allclose(overlay.images[0].get_array(),
                                   explain.overlay_heatmap(IMAGES[row], HEATMAPS[row], 0.4), atol=1e-6)


def test_show_figures_inline_does_nothing_outside_ipython():
    assert plots.show_figures_inline() is False


def test_show_figures_inline_registers_a_png_formatter(monkeypatch):
    """With an IPython shell whose formatters know nothing of figures, the first labkit figure made registers a PNG
    formatter (nothing happens on import), so the figure a cell returns displays as a PNG."""
    import types

    import IPython
    from IPython.core.formatters import DisplayFormatter

    shell = types.SimpleNamespace(display_formatter=DisplayFormatter())
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert "image/png" not in shell.display_formatter.format(Figure())[0]  # not registered yet
    figure = plots.loss_dice_plot(HISTORY, "t")  # finishing it registers the formatter
    data, _ = shell.display_formatter.format(figure)
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.show_figures_inline() is False  # figures already handled: the user's formatter is kept
