"""Apply a finished run's model to new files: masks at each image's own size, class probabilities, or whole volumes.

* 2D segmentation: ``<name>_mask.png`` at the image's own size (binary: 0/255; Lab 5's left/right lungs: the course's
  grey levels, so the file reads back as a mask of the lab's layout), with ``probabilities="png"`` a 16-bit
  ``<name>_prob.png`` per output channel (``_prob_<structure>.png`` for several) or ``"npy"`` one float32
  ``<name>_prob.npy`` ``(h, w, channels)``; ``overlay.png`` shows the first few.
* Classification: ``predictions.csv`` (file, its folder when they come from several, e.g. class folders given
  as their parent, predicted class, each class's probability); ``gradcam=True`` writes
  ``<name>_gradcam.png`` (the Grad-CAM map of the predicted class over the image).
* Lab 6: ``<name>_predictions.csv`` per series CSV, ``predictions.csv`` with a row per streamline of ``.trk`` files
  (`labkit.trained.sequences`).
* 3D: sliding-window prediction with the run's patch and overlap; NIfTI in → ``<name>_mask.nii.gz`` with the input's
  affine and header (and ``<name>_prob.nii.gz``); HDF5 in → ``<name>_mask.h5`` with the input's ``image`` dataset
  layout, a ``label`` dataset and the ``spacing`` attribute (and ``probability``).
"""

from pathlib import Path

import cv2
import numpy as np

from labkit.data.io import IMAGE_EXTENSIONS, read_scaled
from labkit.data.layouts import list_image_files
from labkit.data.layouts.ct_mri import CT_LEVELS
from labkit.data.layouts.volume_cases import load_nifti, zscore
from labkit.data.patches import BLENDS
from labkit.errors import LabkitInputError, require
from labkit.evaluation import class_channels
from labkit.gradcam import grad_cam
from labkit.inference import predict_volume
from labkit.plots import prediction_overlays
from labkit.plots.explain import overlay_heatmap
from labkit.progress import progress
from labkit.run_folder import write_csv
from labkit.trained.inputs import readable_inputs
from labkit.trained.sequences import predict_series, predict_streamlines

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".h5", ".hdf5")
PROBABILITY_FORMATS = ("png", "npy")
OVERLAY_IMAGES = 4
UA_MT_FILE = "mri_norm2.h5"


def _is_volume(path):
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


def _stem(path):
    name = Path(path).name
    for suffix in (".nii.gz", *VOLUME_SUFFIXES, *IMAGE_EXTENSIONS):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def list_inputs(inputs, volumes=False, subfolders=False):
    """The files to predict: every file given, and the image files (2D) or volume files (3D, also in case
    subfolders, e.g. ``<case>/mri_norm2.h5``) of every folder given, in order. With `subfolders` (classifiers),
    a folder's images include those of its subfolders at any depth, so class folders (``validation/Mel/…``) work.

    Raises:
        LabkitInputError: a path that does not exist, or no file to predict at all.
    """
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    files = []
    for item in inputs:
        item = Path(item)
        require(item.exists(), f"input not found: {item}")
        if item.is_file():
            files.append(item)
        elif volumes:
            files += _files_below(item, _is_volume)
        elif subfolders:
            files += _files_below(item, lambda p: p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            files += list_image_files(item)
    require(files, f"no {'volume' if volumes else 'image'} files to predict in {', '.join(map(str, inputs))}")
    return files


def _files_below(folder, wanted):
    """The files in `folder` and its subfolders that `wanted` accepts, hidden files and folders skipped, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and wanted(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def output_names(files):
    """One output name per input file: its stem (a UA-MT ``<case>/mri_norm2.h5``: the case, as labkit names its
    cases), or ``<folder>_<stem>`` when stems repeat."""
    stems = [Path(f).parent.name if Path(f).name == UA_MT_FILE else _stem(f) for f in files]
    return [f"{Path(f).parent.name}_{s}" if stems.count(s) > 1 else s for f, s in zip(files, stems)]


def resize_to(array, size, nearest=False):
    """`array` ``(h, w[, c])`` resized to ``size = (height, width)`` (bilinear, or nearest), channels kept."""
    height, width = size
    if array.shape[:2] == (height, width):
        return array
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    resized = cv2.resize(array, (int(width), int(height)), interpolation=interpolation)
    return resized if resized.ndim == array.ndim else resized[..., None]


def mask_image(run, probabilities, threshold):
    """The mask file's pixels from probabilities ``(h, w, channels)``: uint8 0/255 for one channel; for several the
    class map (`labkit.evaluation.class_channels`) written in Lab 5's grey levels (left lung 250, right 156)."""
    if probabilities.shape[-1] == 1:
        return np.where(probabilities[..., 0] > threshold, 255, 0).astype(np.uint8)
    classes, _ = class_channels(probabilities, softmax=run.softmax_classes, threshold=threshold)
    levels = [0, *(round(255 * v) for v in CT_LEVELS.values())] if len(run.structures) == len(CT_LEVELS) \
        else np.linspace(0, 255, len(run.structures) + 1).round()
    return np.asarray(levels, dtype=np.uint8)[classes]


def _write_png(path, array):
    if not cv2.imwrite(str(path), array):
        raise LabkitInputError(f"cannot write {path}")


def _write_probabilities(run, out, name, probabilities, kind):
    if kind == "npy":
        np.save(out / f"{name}_prob.npy", probabilities.astype(np.float32))
        return
    channels = ([""] if probabilities.shape[-1] == 1 else
                [f"_{c}" for c in (["background"] if run.softmax_classes else []) + run.structures])
    for index, suffix in enumerate(channels):
        _write_png(out / f"{name}_prob{suffix}.png", np.round(np.clip(probabilities[..., index], 0, 1) * 65535)
                   .astype(np.uint16))


def predict_segmentation(run, files, out, threshold=None, probabilities=None, batch_size=8, skip_bad_files=False,
                         overlay=OVERLAY_IMAGES):
    """Masks of 2D images at each image's own size (see the module docstring). Returns one row per image:
    ``{"file", "name", "height", "width", "foreground"}`` plus ``"probabilities"`` (the map at the image's size)."""
    threshold = run.threshold if threshold is None else float(threshold)
    read = readable_inputs(files, skip_bad_files, run.read_image)
    results, shown = [], []
    names = output_names([path for path, _ in read])
    for first in progress(range(0, len(read), batch_size), desc="predicting", unit="batch"):
        group = read[first:first + batch_size]
        maps = run.probabilities(np.stack([image for _, (image, _) in group]), batch_size)
        for (path, (image, size)), name, prob in zip(group, names[first:], maps):
            prob = resize_to(prob, size)
            mask = mask_image(run, prob, threshold)
            results.append({"file": str(path), "name": name, "height": size[0], "width": size[1],
                            "foreground": float((mask > 0).mean()), "probabilities": prob, "mask": mask})
            if out is not None:
                _write_png(out / f"{name}_mask.png", mask)
                if probabilities:
                    _write_probabilities(run, out, name, prob, probabilities)
            if len(shown) < overlay:
                shown.append((read_scaled(path), mask, Path(path).name))
    if out is not None and shown:
        images, masks, names = zip(*shown)
        figure = prediction_overlays(images, masks, names, title=f"{run.name}: predicted masks")
        figure.savefig(out / "overlay.png", dpi=110, bbox_inches="tight")
    return results


def predict_classes(run, files, out, batch_size=8, skip_bad_files=False, gradcam=False):
    """Class probabilities of 2D images; with `out`, ``predictions.csv`` and (`gradcam`) ``<name>_gradcam.png``.
    Returns one row per image: ``{"file", "predicted", <class>: probability, …}``, with ``"folder"`` (the file's
    folder name, e.g. its class folder) after ``"file"`` when the images come from several folders."""
    classes = run.class_names
    read = readable_inputs(files, skip_bad_files, run.read_image)
    rows, names = [], output_names([path for path, _ in read])
    several_folders = len({Path(path).parent for path, _ in read}) > 1  # class folders, say: rows name theirs
    for first in progress(range(0, len(read), batch_size), desc="predicting", unit="batch"):
        group = read[first:first + batch_size]
        images = np.stack([image for _, (image, _) in group])
        for (path, (_, size)), name, image, prob in zip(group, names[first:], images, run.probabilities(images, batch_size)):
            folder = {"folder": Path(path).parent.name} if several_folders else {}
            rows.append({"file": Path(path).name, **folder, "predicted": classes[int(prob.argmax())],
                         **{c: float(p) for c, p in zip(classes, prob)}})
            if gradcam and out is not None:
                original = resize_to(image, size)  # the network's view, at the file's own size
                heat = overlay_heatmap(original, grad_cam(run.model, image))
                _write_png(out / f"{name}_gradcam.png", cv2.cvtColor((heat * 255).round().astype(np.uint8),
                                                                     cv2.COLOR_RGB2BGR))
    if out is not None:
        write_csv(out / "predictions.csv", rows)
    return rows


def read_volume(path):
    """One input volume as the 3D lab reads it: ``(image, source)`` with the image float32 ``(x, y, z)`` (NIfTI
    z-scored as `labkit.data.layouts.volume_cases.load_nifti_case` does; HDF5 ``image`` as stored, as UA-MT's files are
    already normalised) and what writing the output in the input's format needs."""
    path = Path(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel

        data, _ = load_nifti(path)
        require(np.asarray(data).ndim == 3, f"{path}: a {np.asarray(data).ndim}-D NIfTI; expected one 3-D volume")
        return zscore(data), {"format": "nifti", "image": nibabel.load(str(path))}
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            require("image" in handle, f"{path}: no dataset 'image' (found: {', '.join(handle) or 'none'})")
            image = np.asarray(handle["image"][()], dtype=np.float32)
            attrs = dict(handle.attrs)
    except OSError as exc:
        raise LabkitInputError(f"unreadable HDF5 file {path}: {exc}") from None
    require(image.ndim == 3, f"{path}: image has shape {image.shape}, expected a 3-D volume (x, y, z)")
    return image, {"format": "h5", "attrs": attrs}


def write_volume(out, name, source, mask, probabilities=None):
    """Write a predicted volume in its input's format: NIfTI with the input's affine and header, or HDF5 with an
    ``image``-shaped ``label`` dataset and the input's file attributes (``spacing``). Returns the mask file."""
    if source["format"] == "nifti":
        import nibabel

        image = source["image"]
        header = image.header.copy()
        header.set_data_dtype(np.uint8)
        target = out / f"{name}_mask.nii.gz"
        nibabel.save(nibabel.Nifti1Image(mask.astype(np.uint8), image.affine, header), str(target))
        if probabilities is not None:
            header = image.header.copy()
            header.set_data_dtype(np.float32)
            nibabel.save(nibabel.Nifti1Image(probabilities.astype(np.float32), image.affine, header),
                         str(out / f"{name}_prob.nii.gz"))
        return target
    import h5py

    target = out / f"{name}_mask.h5"
    with h5py.File(target, "w") as handle:
        handle.create_dataset("label", data=mask.astype(np.uint8), compression="gzip")
        if probabilities is not None:
            handle.create_dataset("probability", data=probabilities.astype(np.float32), compression="gzip")
        for key, value in source["attrs"].items():
            handle.attrs[key] = value
    return target


def predict_volumes(run, files, out, threshold=None, probabilities=None, batch_size=4, overlap=None,
                    skip_bad_files=False):
    """Sliding-window masks of 3D volumes (see the module docstring). Returns one row per volume."""
    threshold = run.threshold if threshold is None else float(threshold)
    overlap = float(overlap) if overlap is not None else run.number("overlap")
    blend = run.settings.get("blend", "gaussian")

    require(blend in BLENDS, f"{run.path}/config.json: unknown blend {blend!r}")
    results, names = [], output_names(files)
    for path, name in progress(list(zip(files, names)), desc="predicting", unit="volume"):
        try:
            image, source = read_volume(path)
        except LabkitInputError as exc:
            if not skip_bad_files:
                raise
            print(f"skipped: {exc}")
            continue
        prob = predict_volume(run.model, image, run.patch, overlap, blend, batch_size)[..., 0]
        prob = 1.0 / (1.0 + np.exp(-prob)) if run.from_logits else prob
        mask = prob > threshold
        if out is not None:
            write_volume(out, name, source, mask, prob if probabilities else None)
        results.append({"file": str(path), "name": name, "shape": image.shape, "foreground": float(mask.mean()),
                        "probabilities": prob, "mask": mask})
    require(results, "no readable input volume left to predict")
    return results


def predict(run, inputs, out=None, threshold=None, probabilities=None, batch_size=8, gradcam=False,
            skip_bad_files=False, overlap=None):
    """Apply a `labkit.trained.TrainedRun` to files and folders (2D images, 3D volumes, or Lab 6's series CSVs and
    ``.trk`` files, as the run's model takes).

    Args:
        run: the run.
        inputs: a file, a folder, or a list of them.
        out: folder for the outputs (created); None: only return the results.
        threshold: foreground probability threshold (default: the run's, else 0.5).
        probabilities: also write probability maps: ``"png"`` (16-bit) or ``"npy"`` (2D; 3D writes them in the
            volume's format with any value).
        batch_size: images (or 3D windows) per model call.
        gradcam: classifiers: write each image's Grad-CAM map.
        skip_bad_files: list and skip unreadable files instead of stopping.
        overlap: 3D window overlap (default: the run's ``--overlap``).

    Returns:
        One dict per input file (see `predict_segmentation`, `predict_classes`, `predict_volumes`).
    """
    require(probabilities in (None, False, *PROBABILITY_FORMATS), f"--probabilities must be png or npy, got "
            f"{probabilities!r}")
    require(int(batch_size) >= 1, f"--batch-size must be at least 1, got {batch_size}")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    if run.kind == "series":
        return predict_series(run, inputs, out, int(batch_size), skip_bad_files)
    if run.kind == "streamlines":
        return predict_streamlines(run, inputs, out, int(batch_size), skip_bad_files)
    files = list_inputs(inputs, volumes=run.kind == "volume", subfolders=run.kind == "classification")
    if run.kind == "volume":
        return predict_volumes(run, files, out, threshold, probabilities, int(batch_size), overlap, skip_bad_files)
    if run.kind == "classification":
        return predict_classes(run, files, out, int(batch_size), skip_bad_files, gradcam)
    return predict_segmentation(run, files, out, threshold, probabilities, int(batch_size), skip_bad_files)
