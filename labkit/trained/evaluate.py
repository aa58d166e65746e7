"""Score a finished run on a held-out folder with its lab's own data readers and metrics.

The folder may be in any layout the run's lab reads: the course ``Image/Mask`` folders (Lab 4 U-Net, Lab 5 CT/MRI),
ISIC 2016 (MobileNet segmenter; its test split when it has one), class folders or Lab 1's flat names (Labs 1–3),
UA-MT ``.h5`` cases or NIfTI pairs (3D U-Net), Lab 6's CSV pair or subject folders of ``.trk`` bundles
(`labkit.trained.sequences`). Images are read through the lab's own pipeline at the model's size, so the numbers are
the ones training reports: Dice and Jaccard per image at the threshold (0.5), the Dice of each structure for Lab 5's
left/right lungs, accuracy, balanced accuracy, macro AUC and F1 for classifiers (and Lab 6's streamlines), Dice,
Jaccard and surface distances in mm (the volume's spacing) for volumes, and MAE and RMSE in the series' units against
persistence for Lab 6's forecasts.

Outputs go to ``<run>/evaluations/<folder name>/`` (or `out`): ``per_item.csv`` (per image or case),
``metrics.json`` and the lab's figures. ``evaluations/`` is a run folder of its own (its own file manifest), so the
run's training files and manifest are never touched, and ``--overwrite`` of the run still removes exactly what
labkit wrote.
"""

from pathlib import Path

import numpy as np

from labkit.classification_lab import COURSE_SETS, find_labelled_set
from labkit.data import array_dataset, segmentation_dataset
from labkit.data.layouts import check_readable, subfolders
from labkit.data.layouts.class_folders import list_class_folders
from labkit.data.layouts.ct_mri import BINARY_LEVELS, CT_LEVELS, find_lab5_pairs, load_class_slices
from labkit.data.layouts.filename_labels import list_labelled_files
from labkit.data.layouts.isic2016 import find_isic2016_pairs, has_split
from labkit.data.layouts.isic2018 import ham10000_folders, ham10000_images, isic2018_images, task3_files
from labkit.data.layouts.volume_cases import find_la2018_cases, find_nifti_pairs, load_cases, volume_layout
from labkit.data.layouts.xray import find_xray_pairs
from labkit.data.patches import BLENDS, centre_crop
from labkit.data.pipeline import classification_dataset
from labkit.errors import LabkitInputError, require
from labkit.evaluation import (class_channels, evaluate_volumes as score_volumes, mean_std, per_image_class_scores,
                               per_image_scores)
from labkit.evaluation.classification import (classification_report_rows, classification_report_text,
                                              classification_scores, prediction_rows)
from labkit.inference import collect_predictions, predict_volume, sigmoid
from labkit.plots import (class_samples, classification_samples, confusion_matrix_figure, roc_figure,
                          segmentation_samples, volume_slices)
from labkit.run_folder import RunFolder
from labkit.run_manifest import MANIFEST
from labkit.trained.sequences import evaluate_series, evaluate_streamlines

EVALUATIONS = "evaluations"


def output_folder(run, data_dir, out=None):
    """The `RunFolder` of an evaluation: `out`, or ``<run>/evaluations/<data folder name>/``; an earlier
    evaluation there is replaced (only files labkit wrote; anything else stops with one line)."""
    if out is None:
        RunFolder.create(run.path / EVALUATIONS)  # a manifest of its own (kept, with its children, when there)
        out = run.path / EVALUATIONS / (Path(data_dir).resolve().name or "data")
    return RunFolder.create(out, overwrite=True)


# --- 2D segmentation -----------------------------------------------------------------------------------------------


def segmentation_pairs(run, data_dir):
    """``(image, mask)`` pairs of `data_dir` in the layout the run's lab reads, checked readable."""
    if run.family == "mobilenet":
        pairs = find_isic2016_pairs(data_dir, "test" if has_split(data_dir, "test") else "train")
    elif run.family == "lab5":
        pairs = find_lab5_pairs(data_dir, modality="MRI" if run.settings.get("task") == "mri" else "CT")
    else:
        pairs = find_xray_pairs(data_dir)
    return check_readable(pairs)


def segmentation_dataset_of(run, pairs, batch_size):
    """The ``(image, mask)`` batches the run's lab would validate on: Lab 5's class slices (masks checked against
    the task's grey levels) or the tf.data pipeline of the other labs."""
    if run.family != "lab5":
        return segmentation_dataset(pairs, run.image_size, batch_size, channels=run.channels)

    two_class = run.n_outputs > 1
    size = run.image_size[0]
    images, masks = load_class_slices(pairs, size, CT_LEVELS if two_class else (
        BINARY_LEVELS if run.settings.get("task") == "mri" else CT_LEVELS), one_hot=two_class)
    if two_class and not run.softmax_classes:
        masks = masks[..., 1:]
    return array_dataset(images, masks, batch_size)


def evaluate_segmentation(run, data_dir, folder, batch_size=8, threshold=None):
    """Per-image Dice/Jaccard (or each structure's Dice) of a 2D segmenter; writes per_item.csv and samples.png."""
    threshold = run.threshold if threshold is None else float(threshold)
    pairs = segmentation_pairs(run, data_dir)
    names = [Path(image).name for image, _ in pairs]
    images, masks, outputs = collect_predictions(run.model, segmentation_dataset_of(run, pairs, batch_size))
    probabilities = sigmoid(outputs) if run.from_logits else outputs.astype(np.float32)
    if masks.shape[-1] == 1:
        scores = per_image_scores(probabilities > threshold, masks, names=names)
        keys = ("dice", "jaccard")
        figure = segmentation_samples(images[:4, ..., :1] if run.channels == 1 else images[:4], masks[:4],
                                      probabilities[:4], scores=[s["dice"] for s in scores[:4]])
    else:
        softmax = run.softmax_classes
        true_classes, true_binary = class_channels(masks, softmax=softmax)
        pred_classes, pred_binary = class_channels(probabilities, softmax=softmax, threshold=threshold)
        scores = per_image_class_scores(pred_binary, true_binary, run.structures, names=names)
        keys = [f"dice_{c}" for c in run.structures] + ["dice_mean"]
        text = [" ".join(f"{c} {s[f'dice_{c}']:.2f}" for c in run.structures) for s in scores[:4]]
        figure = class_samples(images[:4, ..., :1], true_classes[:4], pred_classes[:4], run.structures, scores=text)
    figure.suptitle(f"{run.name} on {Path(data_dir).name}")
    folder.write_csv("per_item.csv", scores)
    folder.save_figure("samples.png", figure)
    return {"images": len(scores), "threshold": threshold, **mean_std(scores, keys)}, keys[0] if len(keys) == 2 \
        else "dice_mean"


# --- classification --------------------------------------------------------------------------------------------------


def labelled_files(run, data_dir):
    """``(paths, labels)`` of a held-out folder for a classifier: class subfolders (Lab 2 layout, named as the
    run's classes), Lab 1's flat folder (class from the file name), a whole course set folder (its validation
    split, as the lab validated), HAM10000 (every labelled image) or ISIC 2018 Task 3 (its test split, else
    validation, else training)."""
    folder, classes = Path(data_dir), run.class_names
    require(folder.is_dir(), f"--data-dir {folder}: folder not found")
    dataset = run.settings.get("dataset")
    inner = {name.lower() for name in subfolders(folder)}
    skin_lesions = lesion_files(folder)
    if skin_lesions is not None:
        return skin_lesions
    if dataset in COURSE_SETS and ("train" in inner or COURSE_SETS[dataset][0].lower() in inner):
        _, val, _ = find_labelled_set(folder, dataset)
        return list(val.paths), list(val.labels)
    if inner:
        split = list_class_folders(folder, classes)
        return list(split.paths), list(split.labels)
    patterns = COURSE_SETS[dataset][2] if dataset in COURSE_SETS else classes
    return list_labelled_files(folder, patterns)


def lesion_files(folder):
    """``(paths, labels)`` of a HAM10000 or ISIC 2018 Task 3 folder (the ResNet50 lab's layouts), or None."""
    parts, metadata = ham10000_folders(folder)
    if parts and metadata is not None:
        images = ham10000_images(folder)
        return list(images.paths), [int(label) for label in images.labels]
    found = task3_files(folder)
    split = next((s for s in ("test", "val", "train") if s in found), None)
    if split is None:
        return None
    images = isic2018_images(*found[split])
    return list(images.paths), [int(label) for label in images.labels]


def evaluate_classification(run, data_dir, folder, batch_size=8):
    """Accuracy, balanced accuracy, AUC and F1 of a classifier; writes per_item.csv (each image's true and predicted
    class and probabilities), report.txt/.csv, confusion_matrix.png, roc.png and samples.png."""
    paths, labels = labelled_files(run, data_dir)
    paths = check_readable(list(paths))
    classes = run.class_names
    data = classification_dataset(paths, labels, run.image_size, batch_size, len(classes), run.channels)
    images, _, outputs = collect_predictions(run.model, data)
    probabilities = run.head.probabilities(outputs)
    truth = np.asarray(labels)
    names = [Path(p).name for p in paths]
    folder.write_csv("per_item.csv", prediction_rows(names, truth, probabilities, classes))
    folder.write_text("report.txt", classification_report_text(truth, probabilities, classes))
    folder.write_csv("report.csv", classification_report_rows(truth, probabilities, classes))
    title = f"{run.name} on {Path(data_dir).name}"
    folder.save_figure("confusion_matrix.png", confusion_matrix_figure(truth, probabilities, classes, title=title))
    if len(set(labels)) > 1:
        folder.save_figure("roc.png", roc_figure(truth, probabilities, classes, title=title))
    folder.save_figure("samples.png", classification_samples(images[:16], truth[:16], probabilities[:16].argmax(1),
                                                             classes, title=title))
    return classification_scores(truth, probabilities, classes), "balanced_accuracy"


# --- volumes ---------------------------------------------------------------------------------------------------------


def volume_cases(data_dir):
    """The cases of a held-out 3D folder: UA-MT's test list (``test.list``, else every case listed) or every NIfTI
    image/label pair."""
    if volume_layout(data_dir) == "la2018":
        entries = find_la2018_cases(data_dir, "test")
    else:
        entries = find_nifti_pairs(data_dir)
    return load_cases(entries)


def evaluate_volumes(run, data_dir, folder, batch_size=4, threshold=None, overlap=None):
    """Dice, Jaccard, HD95, ASD and ASSD (mm with the volumes' spacing) per case of a 3D U-Net, predicted as the lab
    does (sliding windows with the run's patch, overlap and blend, or only the central patch with
    ``--inference centre``); writes per_item.csv and slices.png."""
    threshold = run.threshold if threshold is None else float(threshold)
    overlap = float(overlap) if overlap is not None else run.number("overlap")
    blend = run.settings.get("blend", "gaussian")
    require(blend in BLENDS, f"{run.path}/config.json: unknown blend {blend!r}")
    centre = run.settings.get("inference") == "centre"
    cases = volume_cases(data_dir)
    spacing = run.spacing
    images, references, predictions = [], [], []
    for case in cases:
        image, label = case.image, case.label
        if centre:
            image, label = centre_crop(image, run.patch), centre_crop(label, run.patch)
        probability = predict_volume(run.model, image, run.patch, overlap, blend, batch_size)[..., 0]
        images.append(image)
        references.append(label)
        predictions.append(probability > threshold)
    spacings = [c.spacing or spacing for c in cases]
    names = [c.name for c in cases]
    rows, summary = score_volumes(predictions, references, spacings, names)
    folder.write_csv("per_item.csv", rows)
    folder.save_figure("slices.png", volume_slices(images[:3], references[:3], predictions[:3], names[:3],
                                                   scores=[r["dice"] for r in rows[:3]],
                                                   title=f"{run.name} on {Path(data_dir).name}"))
    return {"cases": len(rows), "threshold": threshold, "overlap": overlap, "blend": blend,
            "inference": "centre" if centre else "sliding", **summary}, "dice"


def _remove_if_empty(folder):
    """Remove an evaluation folder that holds nothing but its manifest (its evaluation stopped on bad input)."""
    if {p.name for p in folder.path.iterdir()} <= {MANIFEST}:
        (folder.path / MANIFEST).unlink(missing_ok=True)
        folder.path.rmdir()


def evaluate(run, data_dir, out=None, batch_size=8, threshold=None, overlap=None):
    """Score `run` (a `labkit.trained.TrainedRun`) on the held-out folder `data_dir`.

    Returns:
        The ``metrics.json`` written: ``{"run", "data_dir", "headline", "test": {…the lab's metrics…},
        "training": {"monitor", "best"}}``; ``headline`` names the test metric a grading table shows first.

    Raises:
        LabkitInputError: a missing folder, a folder in no layout the lab reads, images without masks, unreadable
            files (each one line naming it).
    """
    data_dir = Path(data_dir)
    require(data_dir.is_dir(), f"--data-dir {data_dir}: folder not found")
    folder = output_folder(run, data_dir, out)
    try:
        if run.kind == "series":
            scores, headline = evaluate_series(run, data_dir, folder, int(batch_size))
        elif run.kind == "streamlines":
            scores, headline = evaluate_streamlines(run, data_dir, folder, int(batch_size))
        elif run.kind == "volume":
            scores, headline = evaluate_volumes(run, data_dir, folder, min(int(batch_size), 4), threshold, overlap)
        elif run.kind == "classification":
            scores, headline = evaluate_classification(run, data_dir, folder, int(batch_size))
        else:
            scores, headline = evaluate_segmentation(run, data_dir, folder, int(batch_size), threshold)
    except LabkitInputError:
        _remove_if_empty(folder)
        raise
    metrics = {"run": str(run.path), "data_dir": str(data_dir), "headline": headline, "test": scores,
               "training": {"monitor": run.metrics.get("monitor"), "best": run.metrics.get("best")}}
    folder.write_json("metrics.json", metrics)
    return metrics
