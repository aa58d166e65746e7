"""Volumetric layouts: LA 2018 in the UA-MT preprocessing (HDF5 + case lists) and NIfTI image/label pairs.

**LA 2018 (UA-MT)**: one folder per case holding ``mri_norm2.h5`` with datasets ``image`` (float32, already
normalised) and ``label`` (uint8, 1 = left atrium), plus the case lists ``train.list`` and ``test.list`` (one case
name per line). UA-MT keeps the lists next to the cases' folder (``data/train.list`` and
``data/2018LA_Seg_Training Set/<case>/mri_norm2.h5``); `find_la2018_cases` accepts the lists in `data_dir` or in its
parent, and the cases in `data_dir`, next to the lists, or in ``2018LA_Seg_Training Set`` beside them. The h5 files
carry no voxel size; an optional ``spacing`` attribute on the file is read when present (the embedded data has one).

**NIfTI pairs**: an images folder and a labels folder with the same file names (``.nii`` or ``.nii.gz``), e.g. the
Medical Segmentation Decathlon's ``imagesTr`` / ``labelsTr`` (Task02_Heart is the left atrium); a label may carry a
suffix such as ``_label`` or ``_seg``. The voxel spacing comes from the image header (``pixdim``).

Labels: foreground is every nonzero voxel (integer label maps) or > 0.5 (float labels); arrays are ``(x, y, z)``
with ``z`` the slice axis, so the axial plane is axes 0 and 1.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.data.layouts.common import by_key, match_keys, name_some, note_skipped, subfolders
from labkit.data.split import train_val_split
from labkit.errors import LabkitInputError, require
from labkit.progress import progress

H5_NAME = "mri_norm2.h5"
LA2018_CASE_FOLDER = "2018LA_Seg_Training Set"
NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_SUFFIXES = ("_label", "_labels", "_seg", "_mask", "_gt")
#: (image folder, label folder) names tried in turn when none are given.
NIFTI_FOLDERS = (("imagesTr", "labelsTr"), ("images", "labels"), ("image", "label"), ("Image", "Label"))


@dataclass
class VolumeCase:
    """One loaded volume: ``image`` float32 ``(x, y, z)``, ``label`` uint8 {0, 1}, ``spacing`` (mm per axis, or
    None when the files do not say) and the file(s) it came from."""

    name: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple = None
    source: str = ""


def _strip_nifti(name):
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def read_case_list(path):
    """Case names in a ``train.list`` / ``test.list`` file: one per line, blank lines and ``#`` comments skipped."""
    path = Path(path)
    require(path.is_file(), f"case list not found: {path}")
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    require(names, f"case list {path} names no case")
    return names


def _list_file(data_dir, split):
    for folder in (data_dir, data_dir.parent):
        if (folder / f"{split}.list").is_file():
            return folder / f"{split}.list"
    raise LabkitInputError(f"no {split}.list in {data_dir} or its parent: the LA 2018 (UA-MT) layout needs "
                           f"train.list and test.list naming the case folders that hold {H5_NAME}")


def _h5_path(entry, data_dir, list_dir):
    """The h5 file of a list entry: a case name (folder holding mri_norm2.h5) or a path to an .h5 file."""
    relative = Path(entry) if entry.endswith(".h5") else Path(entry) / H5_NAME
    for base in dict.fromkeys((data_dir, list_dir, list_dir / LA2018_CASE_FOLDER)):
        if (base / relative).is_file():
            return base / relative
    return None


def find_la2018_cases(data_dir, split="train"):
    """The cases of `split` (``train`` or ``test``) in the LA 2018 UA-MT layout, in list order.

    Args:
        data_dir: the folder with the case folders or the case lists (see the module docstring).
        split: which list to read, ``train`` or ``test``.

    Returns:
        A list of ``(case_name, h5_path)``.

    Raises:
        LabkitInputError: the list is missing or empty, or names cases without an ``mri_norm2.h5`` (up to five named).

    Example:
        >>> find_la2018_cases("data/2018LA_Seg_Training Set", "test")[:1]
        [('4ZX1N8XK6N98W3Z1WGBV', PosixPath('data/2018LA_Seg_Training Set/4ZX1N8XK6N98W3Z1WGBV/mri_norm2.h5'))]
    """
    data_dir = Path(data_dir)
    require(data_dir.is_dir(), f"folder not found: {data_dir}")
    list_path = _list_file(data_dir, split)
    entries = read_case_list(list_path)
    found = [(entry, _h5_path(entry, data_dir, list_path.parent)) for entry in entries]
    missing = [entry for entry, path in found if path is None]
    require(not missing, f"{len(missing)} case(s) of {list_path} without {H5_NAME} in {data_dir}: "
            f"{name_some(missing)}")
    return [(Path(entry).parent.name if entry.endswith(".h5") else entry, path) for entry, path in found]


def is_la2018_layout(data_dir):
    """True when `data_dir` (or its parent) holds a ``train.list``: the UA-MT layout."""
    data_dir = Path(data_dir)
    return any((folder / "train.list").is_file() for folder in (data_dir, data_dir.parent))


def volume_layout(data_dir):
    """Which volumetric layout `data_dir` holds: ``"la2018"`` (a ``train.list`` here or in the parent) or ``"nifti"``
    (an image and a label folder from `NIFTI_FOLDERS`).

    Raises:
        LabkitInputError: the folder is missing or holds neither layout (the message describes both).
    """
    data_dir = Path(data_dir)
    require(data_dir.is_dir(), f"folder not found: {data_dir}")
    if is_la2018_layout(data_dir):
        return "la2018"
    if any((data_dir / image).is_dir() and (data_dir / label).is_dir() for image, label in NIFTI_FOLDERS):
        return "nifti"
    raise LabkitInputError(
        f"{data_dir} holds neither the LA 2018 (UA-MT) layout (train.list and test.list naming <case>/{H5_NAME}) nor "
        f"NIfTI image/label folders ({', '.join('/'.join(p) for p in NIFTI_FOLDERS)}); found: "
        f"{', '.join(subfolders(data_dir)) or 'no subfolders'}")


def find_train_test_cases(data_dir, test_split=0.2, seed=42):
    """Training and test case entries of `data_dir` and its layout's name: LA 2018's h5 case lists, or a seeded
    `test_split` share of NIfTI pairs held out for testing (`labkit.data.split.train_val_split`)."""
    if volume_layout(data_dir) == "la2018":
        return find_la2018_cases(data_dir, "train"), find_la2018_cases(data_dir, "test"), "LA 2018 (UA-MT h5)"
    return (*train_val_split(find_nifti_pairs(data_dir), test_split, seed), "NIfTI pairs")


def foreground(label):
    """A uint8 {0, 1} mask: nonzero voxels of an integer label map, > 0.5 of a float one."""
    label = np.asarray(label)
    mask = label > 0.5 if np.issubdtype(label.dtype, np.floating) else label != 0
    return mask.astype(np.uint8)


def _check_pair(image, label, what):
    require(image.ndim == 3, f"{what}: image has shape {image.shape}, expected a 3-D volume (x, y, z)")
    require(image.shape == label.shape, f"{what}: image shape {image.shape} differs from label shape {label.shape}")
    require(bool(np.isfinite(image).all()), f"{what}: image holds NaN or infinite values")


def load_h5_case(path, name=None):
    """Read one UA-MT ``mri_norm2.h5``: datasets ``image`` and ``label``, optional ``spacing`` file attribute.

    Returns:
        A `VolumeCase` (image as stored, cast to float32; label as {0, 1} uint8).

    Raises:
        LabkitInputError: the file is missing, not HDF5, lacks a dataset, or image and label shapes differ.
    """
    import h5py

    path = Path(path)
    require(path.is_file(), f"volume file not found: {path}")
    try:
        with h5py.File(path, "r") as handle:
            missing = [key for key in ("image", "label") if key not in handle]
            require(not missing, f"{path}: no dataset {' or '.join(missing)} (found: {', '.join(handle) or 'none'})")
            image = np.asarray(handle["image"][()], dtype=np.float32)
            label = foreground(handle["label"][()])
            spacing = handle.attrs.get("spacing")
    except OSError as exc:
        raise LabkitInputError(f"unreadable HDF5 file {path}: {exc}") from None
    _check_pair(image, label, str(path))
    spacing = tuple(float(s) for s in spacing) if spacing is not None else None
    return VolumeCase(name or path.parent.name, image, label, spacing, str(path))


def load_nifti(path):
    """Read one NIfTI volume: ``(array, spacing)`` with the data in voxel order and the header's voxel size.

    A trailing singleton axis (``x, y, z, 1``) is dropped.
    """
    import nibabel

    path = Path(path)
    require(path.is_file(), f"volume file not found: {path}")
    try:
        volume = nibabel.load(str(path))
        data = np.asanyarray(volume.dataobj)
    except Exception as exc:  # nibabel raises several types for a corrupt or foreign file
        raise LabkitInputError(f"unreadable NIfTI file {path}: {exc}") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    spacing = tuple(float(z) for z in volume.header.get_zooms()[:3])
    return data, spacing


def zscore(image):
    """``(image − mean) / std`` in float32 (UA-MT's normalisation; the h5 files are already normalised)."""
    image = np.asarray(image, dtype=np.float32)
    std = float(image.std())
    return (image - float(image.mean())) / (std if std > 0 else 1.0)


def load_nifti_case(image_path, label_path, name=None, normalise=True):
    """Read one NIfTI image/label pair into a `VolumeCase`; spacing from the image header.

    Args:
        image_path, label_path: the two files.
        name: case name (default: the image's name without extension).
        normalise: z-score the image (raw MRI intensities are arbitrary).

    Raises:
        LabkitInputError: a file is unreadable, the shapes differ, or the two headers give different voxel sizes.
    """
    image, spacing = load_nifti(image_path)
    label, label_spacing = load_nifti(label_path)
    _check_pair(np.asarray(image), np.asarray(label), f"{Path(image_path).name} / {Path(label_path).name}")
    require(np.allclose(spacing, label_spacing, rtol=1e-3), f"{image_path} has voxel size {spacing} but its label "
            f"{label_path} has {label_spacing}")
    image = zscore(image) if normalise else np.asarray(image, dtype=np.float32)
    return VolumeCase(name or _strip_nifti(Path(image_path).name), image, foreground(label), spacing, str(image_path))


def _nifti_files(folder):
    """``{case name: file}``; ``case.nii`` next to ``case.nii.gz`` is an error naming both."""
    return by_key([p for p in sorted(Path(folder).iterdir())
                   if p.is_file() and not p.name.startswith(".") and _strip_nifti(p.name)],
                  key=lambda p: _strip_nifti(p.name), kind="NIfTI files")


def _label_key(stem):
    for suffix in LABEL_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def find_nifti_pairs(data_dir, image_dir=None, label_dir=None):
    """Pair every NIfTI image with the label of the same name (``.nii`` or ``.nii.gz``, optional label suffix).

    Args:
        data_dir: folder holding the image and label folders.
        image_dir, label_dir: their names; when not given, the first of ``imagesTr/labelsTr``, ``images/labels``,
            ``image/label``, ``Image/Label`` that exists.

    Returns:
        A list of ``(case_name, image_path, label_path)`` sorted by name.

    Raises:
        LabkitInputError: no folders, no NIfTI files, or images without labels / labels without images (named).
    """
    data_dir = Path(data_dir)
    require(data_dir.is_dir(), f"folder not found: {data_dir}")
    if image_dir is None or label_dir is None:
        pairs = [p for p in NIFTI_FOLDERS if (data_dir / p[0]).is_dir() and (data_dir / p[1]).is_dir()]
        require(pairs, f"no NIfTI image/label folders in {data_dir} (looked for "
                f"{', '.join('/'.join(p) for p in NIFTI_FOLDERS)}; found: {', '.join(subfolders(data_dir)) or 'none'})")
        image_dir, label_dir = pairs[0]
    images, labels = _nifti_files(data_dir / image_dir), {}
    require(images, f"no .nii or .nii.gz images in {data_dir / image_dir}")
    for stem, path in _nifti_files(data_dir / label_dir).items():
        # The image's own name first (``a_seg`` may be a case of its own), then the name without a label suffix.
        key = stem if stem in images or _label_key(stem) not in images else _label_key(stem)
        require(key not in labels, f"two labels for image {key!r} in {data_dir / label_dir}: {labels.get(key)}, {path}")
        labels[key] = path
    pairs = match_keys(images, labels, data_dir / image_dir, data_dir / label_dir, kind="label")
    return [(key, image, label) for key, (image, label) in zip(sorted(images), pairs)]


def load_cases(entries, desc="loading volumes", skip_bad=False, warn=print):
    """Load a list of cases from `find_la2018_cases` (``(name, h5)``) or `find_nifti_pairs` (``(name, image,
    label)``) entries, with a progress bar. Returns a list of `VolumeCase`.

    With `skip_bad`, a case whose files cannot be read (or do not match) is left out with one warning and
    remembered for the run's ``config.json`` (`labkit.data.layouts.skipped_files`); without, it raises
    `LabkitInputError` naming the file."""
    cases, bad = [], []
    for entry in progress(entries, desc=desc, unit="vol"):
        try:
            if len(entry) == 2:
                cases.append(load_h5_case(entry[1], entry[0]))
            else:
                cases.append(load_nifti_case(entry[1], entry[2], entry[0]))
        except LabkitInputError as exc:
            if not skip_bad:
                raise LabkitInputError(f"{exc} (--skip-bad-files leaves such cases out)") from None
            bad.append((entry, exc))
    if bad:
        warn(f"warning: skipped {len(bad)} unreadable case(s): {'; '.join(str(exc) for _, exc in bad[:3])}"
             + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""))
        note_skipped(path for entry, _ in bad for path in entry[1:])
    return cases
