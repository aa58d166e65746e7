"""ISIC 2016 Part 1 (lesion segmentation): the official layout and the Kaggle copy, paired by ISIC id.

Official (ISBI 2016 challenge download)::

    ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg
    ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png
    ISBI2016_ISIC_Part1_Test_Data/…            ISBI2016_ISIC_Part1_Test_GroundTruth/…

Kaggle copy: ``train/``, ``train_masks/``, ``test/``, ``test_masks/`` with the same file names.

Images and masks are paired by their ISIC id (``ISIC_`` and 7 digits), never by listing order. Files that are not
images (``.csv``, ``.txt``, ``.DS_Store``, …) are ignored, and so are ISIC 2017-style ``ISIC_<id>_superpixels.png``
files; any other image whose name carries no ISIC id is an error. Masks are 0/255 PNGs, foreground above 127 (the
pipeline's rule); images of any size are resized to the network's input by the pipeline.
"""

import re
from pathlib import Path

from labkit.data.layouts.common import check_readable, list_image_files, match_keys, name_some, subfolders
from labkit.data.split import train_val_split
from labkit.errors import LabkitInputError, require

OFFICIAL = {
    "train": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
    "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
}
KAGGLE = {"train": ("train", "train_masks"), "test": ("test", "test_masks")}
SPLITS = ("train", "test")

_IMAGE_NAME = re.compile(r"^(ISIC_\d{7})$", re.IGNORECASE)
_MASK_NAME = re.compile(r"^(ISIC_\d{7})(_segmentation|_mask)?$", re.IGNORECASE)
_SKIPPED = re.compile(r"^ISIC_\d{7}_superpixels$", re.IGNORECASE)


def isic_id(path):
    """The ISIC id of an image or mask file (``ISIC_0000123``), or None when its name carries none.

    Example:
        >>> isic_id("ISIC_0000123_Segmentation.png")
        'ISIC_0000123'
    """
    match = _MASK_NAME.match(Path(path).stem)
    return match.group(1).upper() if match else None


def _by_id(folder, pattern, kind):
    """``{isic id: file}`` for the image files of `folder` matching `pattern`."""
    found, strangers = {}, []
    for path in list_image_files(folder):
        match = pattern.match(path.stem)
        if match is None:
            if not _SKIPPED.match(path.stem):
                strangers.append(path)
            continue
        key = match.group(1).upper()
        require(key not in found, f"two {kind}s for {key} in {folder}: {found.get(key, Path()).name}, {path.name}")
        found[key] = path
    if strangers:
        raise LabkitInputError(f"{len(strangers)} image file(s) in {folder} without an ISIC id in their name "
                               f"(expected ISIC_<7 digits>{'_Segmentation' if kind == 'mask' else ''}.png|jpg): "
                               f"{name_some(strangers)}")
    require(found, f"no ISIC {kind}s (ISIC_<7 digits>…) in {folder}")
    return found


def pair_by_isic_id(image_dir, mask_dir):
    """Pair every image of `image_dir` with the mask of the same ISIC id in `mask_dir`.

    Returns:
        A list of ``(image_path, mask_path)`` sorted by ISIC id.

    Raises:
        LabkitInputError: a folder is missing or holds no ISIC files, an image file has no ISIC id, two files share
            an id, or images lack masks / masks lack images (up to five of each are named).
    """
    images = _by_id(image_dir, _IMAGE_NAME, "image")
    masks = _by_id(mask_dir, _MASK_NAME, "mask")
    return match_keys(images, masks, image_dir, mask_dir)


def _layout_in(folder):
    """``("official" | "kaggle", {split: (image_dir, mask_dir)})`` for the splits present in `folder`, or None."""
    for name, layout in (("official", OFFICIAL), ("kaggle", KAGGLE)):
        present = {split: (folder / image, folder / mask) for split, (image, mask) in layout.items()
                   if (folder / image).is_dir()}
        if "train" in present:
            return name, present
    return None


def isic2016_layout(data_dir):
    """Find the ISIC 2016 Part 1 folders under `data_dir` (or one folder level below it).

    Returns:
        ``(layout, folders)``: ``"official"`` or ``"kaggle"``, and ``{split: (image_dir, mask_dir)}`` with
        ``"train"`` always and ``"test"`` when present.

    Raises:
        LabkitInputError: no such layout, naming the folders that are there.
    """
    root = Path(data_dir)
    require(root.is_dir(), f"data folder not found: {root}")
    for folder in [root] + [root / sub for sub in subfolders(root)]:
        found = _layout_in(folder)
        if found:
            return found
    there = subfolders(root)
    raise LabkitInputError(
        f"{root} does not have an ISIC 2016 Part 1 layout: expected {OFFICIAL['train'][0]}/ with "
        f"{OFFICIAL['train'][1]}/ (official) or train/ with train_masks/ (Kaggle copy); found "
        f"{', '.join(s + '/' for s in there[:8]) if there else 'no folders'}"
    )


def find_isic2016_pairs(data_dir, split="train"):
    """Image/mask pairs of one split of ISIC 2016 Part 1, in the official layout or the Kaggle copy.

    Args:
        data_dir: the folder holding the ``ISBI2016_ISIC_Part1_*`` folders (or ``train/``, ``train_masks/``, …),
            or its parent.
        split: ``"train"`` or ``"test"``.

    Returns:
        A list of ``(image_path, mask_path)`` sorted by ISIC id.

    Raises:
        LabkitInputError: unknown split, no ISIC 2016 layout, a missing test or mask folder, or unpaired files.

    Example:
        >>> pairs = find_isic2016_pairs("/data/ISIC2016", "test")
        >>> pairs[0][1].name
        'ISIC_0000003_Segmentation.png'
    """
    require(split in SPLITS, f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    _, folders = isic2016_layout(data_dir)
    require(split in folders, f"no {split} images in {data_dir}: expected {OFFICIAL[split][0]}/ or {KAGGLE[split][0]}/")
    image_dir, mask_dir = folders[split]
    require(mask_dir.is_dir(), f"mask folder not found: {mask_dir} (the masks of {image_dir.name}/)")
    return pair_by_isic_id(image_dir, mask_dir)


def has_split(data_dir, split):
    """True when `data_dir` holds the image folder of `split` (e.g. whether a test split exists)."""
    return split in isic2016_layout(data_dir)[1]


def isic2016_splits(data_dir, val_split=0.2, seed=42, kfold=None, skip_bad=False, warn=print):
    """The image/mask pairs a lab trains, validates and evaluates on: a seeded validation split of the training
    pairs (`labkit.data.split.train_val_split`; fold `i` of `k` with ``kfold=(i, k)``), and the test pairs, or the
    validation pairs again when `data_dir` has no test split (with a note to `warn`).

    Unreadable files stop with an error naming them, or with `skip_bad` are left out with a warning
    (`labkit.data.layouts.check_readable`).

    Returns:
        ``{"train", "val", "test": pairs, "evaluated_on": "test" or "validation", "layout": "official" or
        "kaggle"}``.
    """
    layout, folders = isic2016_layout(data_dir)
    pairs = check_readable(find_isic2016_pairs(data_dir, "train"), skip_bad=skip_bad)
    train, val = train_val_split(pairs, val_split, seed, kfold=kfold)
    if "test" not in folders:
        warn(f"note: {data_dir} has no test split; the best model is evaluated on the validation images")
        return {"train": train, "val": val, "test": val, "evaluated_on": "validation", "layout": layout}
    test = check_readable(find_isic2016_pairs(data_dir, "test"), skip_bad=skip_bad)
    return {"train": train, "val": val, "test": test, "evaluated_on": "test", "layout": layout}
