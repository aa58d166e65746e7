"""Reports of a trained model in its run folder: a classifier's report and figures, a segmenter's scores and samples,
and the per-case table of volumes.

The numbers come from `labkit.evaluation` (NumPy/SciPy); this module runs the model and writes the files.

`evaluate_classifier` scores the best model of a classification run on one split and writes the report files, the
figures and ``metrics.json``. `evaluate_segmenter` runs the model over a dataset of ``(image, mask)`` batches and scores every image with Dice and
Jaccard at a threshold (`labkit.evaluation.overlap`). `write_samples` keeps the first few images, masks and
probabilities in the run folder (``samples.npz``), so a comparison of several runs can draw them side by side later
(`read_samples`) without loading any model again.
"""

import io
from pathlib import Path

import numpy as np

from labkit.evaluation.classification import write_classification_report
from labkit.evaluation.overlap import class_channels, per_image_class_scores, per_image_scores
from labkit.evaluation.volumes import metric_columns
from labkit.gradcam import class_examples
from labkit.history import summarize
from labkit.lab import finish_run
from labkit.plots import (class_gradcam_figure, classification_samples, comparison_samples, confusion_matrix_figure,
                          plot_history, roc_figure)
from labkit.run_folder import atomic_write, read_csv, write_csv
from labkit.inference import collect_predictions, sigmoid

SAMPLES_FILE = "samples.npz"


def evaluate_classifier(run, history, model, split, dataset, head, title, monitor, split_name="validation",
                        names=None, curves=("loss", "accuracy"), n_samples=16, roc=False, gradcam=None, entries=None,
                        summary=None):
    """Score a classification run's best model on one split and write the run's results.

    Writes ``report.txt`` / ``report.csv`` (scikit-learn's per-class precision, recall, F1, support),
    ``predictions.csv`` (each image's true and predicted class and scores), ``curves.png`` (the `curves` keys, best
    epoch by `monitor` marked), ``confusion_matrix.png``, then as asked ``roc.png`` (one-vs-rest ROC),
    ``samples.png`` (`n_samples` images titled with true and predicted class, the classes in turn) and
    ``gradcam.png`` (`labkit.gradcam.class_examples`), and last ``metrics.json`` (`labkit.lab.finish_run`).

    Args:
        run: the run folder; history: the training history.
        model: the best model (e.g. `labkit.lab.best_model`).
        split: the scored images (``paths``, ``labels``, ``class_names``); dataset: their batches, in that order.
        head: how outputs become class probabilities (``head.probabilities``, `labkit.classification_lab.Head`);
            None: the outputs are probabilities (a softmax).
        title: title of the figures; monitor: the history key of the best epoch.
        split_name: the split's name in ``metrics.json`` and on screen.
        names: the images' names in ``predictions.csv`` (default: the file names).
        roc: draw ``roc.png``; gradcam: ``{"layer", "per_class", "img_size", "seed"}`` to draw ``gradcam.png``.
        entries: ``entries(scores) -> dict``, what ``metrics.json`` holds after the history's best/final epoch
            (default: ``{split_name: scores, "head": …, "loss": …}``).
        summary: ``summary(metrics, scores) -> str``, the result line on screen (default: best epoch and the
            split's accuracy and balanced accuracy).

    Returns:
        The ``metrics.json`` content.
    """
    images, _, outputs = collect_predictions(model, dataset)
    probabilities = head.probabilities(outputs) if head is not None else outputs
    truth, classes = np.asarray(split.labels), split.class_names
    names = names if names is not None else [Path(p).name for p in split.paths]
    scores = write_classification_report(run, names, truth, probabilities, classes)
    default = {split_name: scores, "head": head.name, "loss": head.loss} if head is not None else {split_name: scores}
    metrics = {**summarize(history, monitor), **(entries(scores) if entries else default)}
    figures = {"curves.png": plot_history(history, curves, title, monitor=monitor),
               "confusion_matrix.png": confusion_matrix_figure(truth, probabilities, classes, title=title)}
    if roc:
        figures["roc.png"] = roc_figure(truth, probabilities, classes, title=f"{title}: one-vs-rest ROC")
    if n_samples:
        shown = spread_over_classes(truth, n_samples)
        figures["samples.png"] = classification_samples(images[shown], truth[shown], probabilities[shown].argmax(1),
                                                        classes, title=f"{title}: {split_name} images")
    if gradcam:
        examples = class_examples(model, split.paths, truth, probabilities.argmax(axis=1), gradcam["img_size"],
                                  gradcam["per_class"], gradcam["layer"], gradcam["seed"])
        figures["gradcam.png"] = class_gradcam_figure(*examples, classes,
                                                      title=f"{title}: Grad-CAM of {gradcam['layer']}")
    line = summary(metrics, scores) if summary else (
        f"best epoch {metrics['best']['epoch']}: {monitor} {metrics['best'][monitor]:.4f}; best model on "
        f"{scores['images']} {split_name} images: accuracy {scores['accuracy']:.4f}, balanced accuracy "
        f"{scores['balanced_accuracy']:.4f}")
    return finish_run(run, metrics, figures, summary=line)


def spread_over_classes(labels, n):
    """Indices of up to `n` items taking the classes in turn (the first items of each), for a sample grid."""
    by_class = [list(np.flatnonzero(labels == k)) for k in np.unique(labels)]
    chosen = []
    while len(chosen) < n and any(by_class):
        chosen += [c.pop(0) for c in by_class if c][: n - len(chosen)]
    return np.asarray(chosen, dtype=int)


def evaluate_segmenter(model, dataset, names=None, from_logits=False, threshold=0.5, classes=None, softmax=True):
    """Predict every image of `dataset` and score it, one foreground or several classes.

    Args:
        model: a segmenter giving probabilities (or logits with `from_logits`): one channel, or with `classes` one
            channel per class (after a background channel when `softmax`).
        dataset: ``(images, masks)`` batches, e.g. from `labkit.data.segmentation_dataset`.
        names: one name per image, in dataset order (default: their indices).
        from_logits: the model outputs logits; probabilities are their sigmoid (computed in float64).
        threshold: probability above which a pixel is foreground (of a class, for sigmoid class channels).
        classes: class names of a multi-class segmenter (`labkit.evaluation.class_channels` reads its outputs and
            masks); None: one foreground channel.
        softmax: with `classes`, the outputs are a softmax over background and the classes (else one sigmoid
            channel per class).

    Returns:
        ``{"images", "masks", "probabilities", "scores"}``: NumPy arrays and one row per image, ``{name, dice,
        jaccard, true_pixels}`` (true_pixels: foreground pixels of its mask), or with `classes` ``{name,
        dice_<class>…, dice_mean}`` and also ``true_classes`` / ``pred_classes``, the class index maps.

    Example:
        >>> result = evaluate_segmenter(best, test, names, from_logits=True)
        >>> mean_std(result["scores"], ("dice", "jaccard"))
    """
    images, masks, outputs = collect_predictions(model, dataset)
    probabilities = sigmoid(outputs) if from_logits else outputs.astype(np.float32)
    result = {"images": images, "masks": masks, "probabilities": probabilities}
    if classes is None:
        scores = per_image_scores(probabilities > threshold, masks, names=names)
        for row, mask in zip(scores, masks):  # images without foreground score 1 when predicted empty
            row["true_pixels"] = int(mask.sum())
        return {**result, "scores": scores}
    true_classes, true_binary = class_channels(masks, softmax=softmax)
    pred_classes, pred_binary = class_channels(probabilities, softmax=softmax, threshold=threshold)
    scores = per_image_class_scores(pred_binary, true_binary, classes, names=names)
    return {**result, "scores": scores, "true_classes": true_classes, "pred_classes": pred_classes}


def write_samples(run, result, n=4):
    """Keep the first `n` images, masks, probabilities and names of `result` in ``<run>/samples.npz``."""
    arrays = {key: np.asarray(result[key][:n]) for key in ("images", "masks", "probabilities")}
    arrays["names"] = np.asarray([s["name"] for s in result["scores"][:n]])

    def save(tmp):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        Path(tmp).write_bytes(buffer.getvalue())

    return atomic_write(run.file(SAMPLES_FILE), save)


def read_samples(path):
    """``{"images", "masks", "probabilities", "names"}`` kept by `write_samples` in the run folder `path`."""
    with np.load(Path(path) / SAMPLES_FILE) as data:
        return {key: data[key] for key in data.files}


def samples_figure(runs, title=None):
    """The samples of one or several runs side by side (`labkit.plots.comparison_samples`): the images and true
    masks kept by `write_samples` in the first run, then each run's probabilities and masks with its per-image Dice.

    Args:
        runs: ``{name: run folder}``, each with ``samples.npz`` and ``per_image.csv`` (a ``dice`` column), all made
            on the same evaluation images.
        title: the figure's title.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    samples = {name: read_samples(path) for name, path in runs.items()}
    scores = {name: [row["dice"] for row in read_csv(Path(path) / "per_image.csv")] for name, path in runs.items()}
    first = next(iter(samples.values()))
    probabilities = {name: s["probabilities"] for name, s in samples.items()}
    return comparison_samples(first["images"], first["masks"], probabilities, names=first["names"], scores=scores,
                              title=title)


def volume_summary(metrics, summary, monitor):
    """The lines that close a volume segmentation run: the best epoch by `monitor`, then every test summary of
    `labkit.evaluation.evaluate_volumes` as mean ± std (with the count of cases left out as inf)."""
    lines = [f"best epoch {metrics['best']['epoch']}: {monitor} {metrics['best'][monitor]:.4f}"]
    for key, value in summary.items():
        missed = f" ({value['n_infinite']} case(s) with an empty mask left out)" if value["n_infinite"] else ""
        lines.append(f"test {key}: {value['mean']:.4f} ± {value['std']:.4f}{missed}")
    return "\n".join(lines)


def write_per_case_csv(rows, path):
    """Write the per-case table of `labkit.evaluation.evaluate_volumes` as CSV (atomically, no pandas); ``inf`` is
    written as ``inf``."""
    return write_csv(path, rows, ["case", *metric_columns(rows)])
