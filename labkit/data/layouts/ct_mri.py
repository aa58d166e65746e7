"""Course Lab 5 layouts: CT lung slices and MRI brain-tumour slices (PNG), and BraTS NIfTI volumes sliced to 2D.

**CT** (``CT/Image/Im<patient>_<slice>.png`` + ``CT/Mask/`` same names): each mask holds both lungs, one at grey
level ≈ 0.98 (·255) and the other at ≈ 0.61 (`CT_LEVELS`). Task 1 binarises them (both lungs), Task 2 makes them
two classes. Which level is which lung could not be checked against the course data; labkit calls the 0.98 lung
"left" (the patient's left, on the image's right in radiological convention). Swapped, only the names swap.

**MRI** (``MRI/Image`` + ``MRI/Mask``): 240×240 slices with 0/255 tumour masks. **BraTS** volumes
(``<case>/<case>_flair.nii.gz``, ``_t1``, ``_t1ce``, ``_t2`` and ``_seg``) are sliced into 2D by `brats_slices`.

A mask whose grey levels match none of the expected ones (e.g. 0/1 masks saved without ×255, or a 0/255 binary mask
given to a CT task) raises one `LabkitInputError` naming the file and the levels found, rather than
turning silently into an empty or one-class mask.
"""

import re
from pathlib import Path

import numpy as np

from labkit.data.io import binarize_mask, load_image, load_mask_levels
from labkit.data.layouts.volume_cases import load_nifti
from labkit.data.layouts.xray import find_xray_pairs
from labkit.data.synthetic.common import default_data_home, write_once
from labkit.errors import LabkitInputError, require

#: Grey levels (after /255) of the two lungs in the course's CT masks.
CT_LEVELS = {"left": 0.98, "right": 0.61}
#: Grey level of a binary (tumour) mask after /255.
BINARY_LEVELS = {"foreground": 1.0}
#: How far (after /255) a mask value may lie from its level: ±4 grey levels, so 255 (1.0) is not taken for 0.98.
LEVEL_TOLERANCE = 0.015
#: Share of foreground pixels allowed off every level (anti-aliased edges); they join the nearest level.
OFF_LEVEL_FRACTION = 0.01
PATIENT = re.compile(r"^Im(\d+)_\d+$")


def find_lab5_pairs(data_dir, image_dir="Image", mask_dir="Mask", modality="CT"):
    """Image/mask pairs of the course CT or MRI layout: `data_dir` holds `image_dir` and `mask_dir`, or is the folder
    above ``<modality>/`` (`labkit.data.layouts.find_xray_pairs`: pairing by name)."""
    return find_xray_pairs(data_dir, image_dir, mask_dir, folder=modality, layout=modality)


def patient_of(path):
    """The patient of a slice named ``Im<patient>_<slice>`` (e.g. ``Im3_64.png`` → ``"3"``), else None."""
    match = PATIENT.match(Path(path).stem)
    return match.group(1) if match else None


def mask_classes(mask, levels, name="mask", tolerance=LEVEL_TOLERANCE):
    """Class index map of a mask that codes structures as grey levels: 0 background, ``i + 1`` for ``levels[i]``.

    Args:
        mask: values in [0, 1] (a mask file /255), any shape.
        levels: the grey level of each structure, e.g. ``list(CT_LEVELS.values())``.
        name: what the error message calls the mask (its file).
        tolerance: how far a value may lie from its level.

    Returns:
        uint8 array of `mask`'s shape with values in ``0 … len(levels)``.

    Raises:
        LabkitInputError: more than `OFF_LEVEL_FRACTION` of the foreground lies off every level, naming the mask
            and the levels found.

    Example:
        >>> mask_classes(np.array([0.0, 0.61, 0.98]), [0.98, 0.61]).tolist()
        [0, 2, 1]
    """
    mask = np.asarray(mask, dtype=np.float32)
    distance = np.abs(mask[..., None] - np.asarray(levels, dtype=np.float32))  # to each structure's level
    foreground = mask > 0  # every nonzero value: a 0/1 mask saved without ×255 must not pass as empty
    classes = np.where(foreground, distance.argmin(axis=-1) + 1, 0).astype(np.uint8)
    off = foreground & (distance.min(axis=-1) > tolerance)
    if off.sum() > OFF_LEVEL_FRACTION * max(1, foreground.sum()):
        found = ", ".join(f"{v:.2f}" for v in np.unique(np.round(mask[foreground], 2))[:8])
        expected = ", ".join(f"{v:.2f}" for v in levels)
        raise LabkitInputError(f"mask {name} holds grey levels {found} (after /255), not the expected {expected} "
                               f"(± {tolerance}); check that the masks are in the course's format")
    return classes


def load_class_slices(pairs, img_size, levels, one_hot=True):
    """Images and masks of Lab 5 pairs, the masks checked against `levels` and coded as classes.

    Args:
        pairs: ``(image, mask)`` paths.
        img_size: side of the square output; masks are resized by nearest neighbour.
        levels: ``{class name: grey level}`` (`CT_LEVELS`, `BINARY_LEVELS`).
        one_hot: masks ``(n, s, s, 1 + len(levels))`` with background first; False: the binarised union of every
            level, ``(n, s, s, 1)`` (Task 1: both lungs as one foreground).

    Returns:
        ``(images, masks)`` float32 arrays; images ``(n, s, s, 1)`` in [0, 1].
    """
    values = list(levels.values())
    images, masks = [], []
    for image_path, mask_path in pairs:
        images.append(load_image(image_path, img_size, img_size, 1))
        scaled = load_mask_levels(mask_path, img_size, img_size)[..., 0]  # nearest neighbour: no new levels
        classes = mask_classes(scaled, values, name=str(mask_path))
        if one_hot:
            masks.append(np.eye(len(values) + 1, dtype=np.float32)[classes])
        else:  # the course's binarize_mask on the class map: every structure is foreground
            masks.append(binarize_mask(classes, img_size, img_size, val_lower=1, val_upper=len(values))[0])
    return np.stack(images), np.stack(masks)


# --- BraTS NIfTI volumes -------------------------------------------------------------------------------------------

BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")


def brats_slices(case_dir, modality="flair", keep_empty=False, axis=2):
    """Axial 2D slices of one BraTS case: the chosen modality scaled to [0, 1] and the whole-tumour mask.

    Args:
        case_dir: folder holding ``<case>_<modality>.nii[.gz]`` and ``<case>_seg.nii[.gz]``.
        modality: ``flair``, ``t1``, ``t1ce`` or ``t2``.
        keep_empty: keep slices without tumour (default: drop them, as the course's MRI set).
        axis: the slice axis of the volumes (2: axial in BraTS).

    Returns:
        ``(images, masks, indices)``: float32 ``(n, h, w)`` images in [0, 1] (scaled by the volume's 99.5th
        percentile), uint8 ``(n, h, w)`` masks in {0, 1} (every label > 0) and the slice index of each.

    Raises:
        LabkitInputError: the modality or segmentation file is missing or unreadable.
    """
    case_dir = Path(case_dir)
    require(modality in BRATS_MODALITIES, f"unknown modality {modality!r}: choose one of {', '.join(BRATS_MODALITIES)}")

    def one(suffix):
        found = sorted(case_dir.glob(f"*_{suffix}.nii*"))
        require(found, f"no *_{suffix}.nii or .nii.gz file in {case_dir}")
        return load_nifti(found[0])[0]

    image, seg = one(modality).astype(np.float32), one("seg")
    require(image.shape == seg.shape, f"{case_dir}: {modality} volume {image.shape} and segmentation {seg.shape} differ")
    top = float(np.percentile(image, 99.5)) or 1.0
    image = np.clip(image / top, 0.0, 1.0)
    image, seg = np.moveaxis(image, axis, 0), np.moveaxis(seg > 0, axis, 0).astype(np.uint8)
    keep = np.arange(len(seg)) if keep_empty else np.flatnonzero(seg.reshape(len(seg), -1).any(axis=1))
    return image[keep], seg[keep], keep


def brats_to_course_layout(brats_dir, out_dir, modality="flair", keep_empty=False):
    """Write every BraTS case under `brats_dir` as course-layout PNG slices ``out_dir/Image`` + ``out_dir/Mask``,
    named ``Im<case number>_<slice>.png`` (so folds group by case). Returns `out_dir`."""
    import cv2

    cases = sorted(p for p in Path(brats_dir).iterdir() if p.is_dir() and any(p.glob("*_seg.nii*")))
    require(cases, f"no BraTS case folders (with a *_seg.nii.gz) in {brats_dir}")
    for sub in ("Image", "Mask"):
        (Path(out_dir) / sub).mkdir(parents=True, exist_ok=True)
    for number, case in enumerate(cases):
        images, masks, indices = brats_slices(case, modality, keep_empty)
        for image, mask, k in zip(images, masks, indices):
            cv2.imwrite(str(Path(out_dir) / "Image" / f"Im{number}_{k}.png"), (image * 255).round().astype(np.uint8))
            cv2.imwrite(str(Path(out_dir) / "Mask" / f"Im{number}_{k}.png"), mask * 255)
    return Path(out_dir)


def is_brats_folder(data_dir):
    """True when `data_dir` holds BraTS case folders (each with a ``*_seg.nii[.gz]``)."""
    root = Path(data_dir)
    return root.is_dir() and any(p.is_dir() and any(p.glob("*_seg.nii*")) for p in root.iterdir())


def brats_as_course_layout(brats_dir, modality="flair", keep_empty=False, root=None):
    """The BraTS cases under `brats_dir` as course-layout PNG slices (`brats_to_course_layout`), written once under
    the embedded-data home (`labkit.data.synthetic.default_data_home`, or `root`) and reused while the folder's
    path, the modality and `keep_empty` stay the same. Returns the folder holding ``Image/`` and ``Mask/``."""
    import hashlib

    key = hashlib.sha1(str(Path(brats_dir).resolve()).encode()).hexdigest()[:12]
    name = f"brats-{key}-{modality}-{'all' if keep_empty else 'tumour'}-slices"
    return write_once(root or default_data_home(), name,
                      lambda folder: brats_to_course_layout(brats_dir, folder, modality, keep_empty))
