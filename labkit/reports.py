"""Reports of a trained model in its run folder: a segmenter's scores and samples, and the per-case table of volumes.

The numbers come from `labkit.evaluation` (NumPy/SciPy); this module runs the model and writes the files.

`evaluate_segmenter` runs the model over a dataset of ``(image, mask)`` batches and scores every image with Dice and
Jaccard at a threshold (`labkit.evaluation.overlap`). `write_samples` keeps the first few images, masks and
probabilities in the run folder (``samples.npz``), so a comparison of several runs can draw them side by side later
(`read_samples`) without loading any model again.
"""

import io
from pathlib import Path

import numpy as np

from labkit.evaluation.overlap import per_image_scores
from labkit.evaluation.volumes import metric_columns
from labkit.plots import comparison_samples
from labkit.run_folder import atomic_write, read_csv, write_csv
from labkit.inference import collect_predictions

SAMPLES_FILE = "samples.npz"


def evaluate_segmenter(model, dataset, names=None, from_logits=False, threshold=0.5):
    """Predict every image of `dataset` and score it.

    Args:
        model: a segmenter giving one channel of probabilities (or logits with `from_logits`).
        dataset: ``(images, masks)`` batches, e.g. from `labkit.data.segmentation_dataset`.
        names: one name per image, in dataset order (default: their indices).
        from_logits: the model outputs logits; probabilities are their sigmoid (computed in float64).
        threshold: probability above which a pixel is foreground.

    Returns:
        ``{"images", "masks", "probabilities", "scores"}``: NumPy arrays and ``[{name, dice, jaccard}]``.

    Example:
        >>> result = evaluate_segmenter(best, test, names, from_logits=True)
        >>> mean_std(result["scores"], ("dice", "jaccard"))
    """
    images, masks, outputs = collect_predictions(model, dataset)
    probabilities = outputs.astype(np.float32)
    if from_logits:
        probabilities = (1.0 / (1.0 + np.exp(-outputs.astype(np.float64)))).astype(np.float32)
    scores = per_image_scores(probabilities > threshold, masks, names=names)
    return {"images": images, "masks": masks, "probabilities": probabilities, "scores": scores}


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


def write_per_case_csv(rows, path):
    """Write the per-case table of `labkit.evaluation.evaluate_volumes` as CSV (atomically, no pandas); ``inf`` is
    written as ``inf``."""
    return write_csv(path, rows, ["case", *metric_columns(rows)])
