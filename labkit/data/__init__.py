"""Data: dataset layouts, file decoding, joint augmentation, tf.data pipelines and embedded synthetic sets.

This module also holds the course's loader names (`load_data`, `load_partial_data`, `get_length`) and re-exports
`binarize_mask` (from `io`), the course's generators (`create_generator`, `image_mask_generator`, from
`generators`) and Lab 1–3 file-name-label helpers (`gen_labels`, `get_data`, …, from `layouts.filename_labels`).
"""

import os
from pathlib import Path

import numpy as np

from labkit.data.augment import COURSE_AUGMENT, augmentation_layers, make_augmenter, resolve_augment
from labkit.data.generators import create_generator, image_mask_generator
from labkit.data.io import IMAGE_EXTENSIONS, binarize_mask, find_unreadable, load_image, load_mask, load_mask_levels
from labkit.data.layouts import check_readable, find_xray_pairs, list_image_files, pair_by_name
from labkit.data.layouts.filename_labels import (
    gen_labels,
    gen_labels_multiclass,
    get_data,
    get_data_arrays,
    get_data_multiclass,
    get_train_test_arrays,
    get_train_test_arrays_multiclass,
)
from labkit.data.paths import find_path, resolve_path
from labkit.data.pipeline import array_dataset, segmentation_dataset
from labkit.errors import require
from labkit.progress import progress


def _image_mask_pairs(data_dir, image_dir, mask_dir):
    """Pairs of `load_data` / `load_partial_data`: both folders resolved by `labkit.data.paths.resolve_path`."""
    return pair_by_name(resolve_path(data_dir, image_dir), resolve_path(data_dir, mask_dir))


def load_data(data_dir, image_dir, mask_dir, img_width, img_height, channels=1):
    """Load every image of `image_dir` with its mask from `mask_dir` (the course's loader).

    Images and masks are paired by name (``a.png`` ↔ ``a.png`` or ``a_Mask.png``), never by listing order (the
    handout listed both folders and trusted ``os.listdir`` to give them in the same order).

    `image_dir` and `mask_dir` may be given either way course code does (`labkit.data.paths.resolve_path`): as
    subfolder names of `data_dir` (``load_data("Data/CT", "Image", "Mask", …)``), or as paths that already hold
    `data_dir`, as the handout's notebooks pass them (``os.path.join(data_dir, 'Image/')``; the handout ignored
    `data_dir`). Relative or absolute, ``str`` or `pathlib.Path`, with or without a trailing separator, ``~`` for the
    home folder. A bare name that exists both under `data_dir` and in the working directory is `data_dir`'s; a path
    that holds `data_dir` is read as it stands, never joined to `data_dir` again.

    Args:
        data_dir: folder holding `image_dir` and `mask_dir` (e.g. the course's ``X_ray``); None or ``""`` when both
            are full paths.
        image_dir, mask_dir: subfolder names, e.g. ``"Image"`` and ``"Mask"``, or paths to the folders.
        img_width, img_height: output size.
        channels: image channels (1 or 3).

    Returns:
        ``(images, masks)``: float32 arrays ``(n, h, w, channels)`` in [0, 1] and ``(n, h, w, 1)`` in {0, 1},
        sorted by image name.

    Raises:
        LabkitInputError: a folder found in neither convention (one line naming it and where it was looked for),
            unpaired files or an unreadable image (named in the message).

    Example:
        >>> images, masks = load_data("X_ray", "Image", "Mask", 256, 256)
        >>> data_dir = "Data/CT/"
        >>> images, masks = load_data(data_dir, os.path.join(data_dir, "Image/"), os.path.join(data_dir, "Mask/"),
        ...                           256, 256)
    """
    pairs = _image_mask_pairs(data_dir, image_dir, mask_dir)
    images, masks = [], []
    for image_path, mask_path in progress(pairs, desc="loading images", unit="img"):
        images.append(load_image(image_path, img_width, img_height, channels))
        masks.append(load_mask(mask_path, img_width, img_height))
    return np.stack(images), np.stack(masks)


def get_length(path, pattern):
    """Number of images in the folder `pattern` of `path` (the course's helper, e.g. ``get_length(train_dir, "AFF")``).

    `pattern` is a subfolder name or a path that already holds `path` (``os.path.join(train_dir, "AFF/")``),
    relative or absolute, ``str`` or `pathlib.Path`, with or without a trailing separator
    (`labkit.data.paths.resolve_path`). Counted are the files the loaders read: image files (.png, .jpg, .jpeg,
    .bmp) that are not hidden. The handout counted every entry of ``os.listdir``, so a ``Thumbs.db`` or
    ``.DS_Store`` made its label arrays longer than the images it loaded.

    Raises:
        LabkitInputError: the folder exists in neither convention (one line naming it).
    """
    folder = resolve_path(path, pattern)
    return sum(1 for entry in os.scandir(folder) if entry.is_file() and not entry.name.startswith(".")
               and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS)


def load_partial_data(data_dir, image_dir, mask_dir, img_width, img_height, number_of_images=0, partition=None,
                      channels=1):
    """The course's ``load_partial_data`` (Lab 5): `load_data` on a part of the pairs, for sets too big for memory.

    The pairs are matched by name and sorted by image name (as `load_data`), then cut:

    * ``partition=None``: from the first pair; an int k: the k-th block of `number_of_images` pairs (0-based, so
      ``partition=1`` with ``number_of_images=100`` loads pairs 100–199); a ``(start, stop)`` pair or a `slice`:
      those pairs.
    * ``number_of_images``: at most this many pairs from there (0 = all).

    Masks keep their grey levels scaled to [0, 1] (as the course's loader, which divided by 255 without
    thresholding), resized by nearest neighbour so that no in-between levels appear; pick a structure, or binarise,
    with `binarize_mask`. The course listed both folders separately and paired them by listing order; labkit pairs
    by name.

    `image_dir` and `mask_dir` are subfolder names of `data_dir` or paths that already hold it, as for `load_data`
    (``os.path.join(data_dir, 'Image/')`` as the handout's notebooks, ``"Image"``, absolute paths, `pathlib.Path`).

    Returns:
        ``(images, masks)`` float32 arrays ``(n, h, w, channels)`` in [0, 1] and ``(n, h, w, 1)`` in [0, 1].

    Raises:
        LabkitInputError: a folder found in neither convention, unpaired files (see `load_data`), a negative count,
            or a part that holds no pairs.

    Example:
        >>> images, masks = load_partial_data("MRI", "Image", "Mask", 240, 240, number_of_images=500, partition=1)
    """
    count = int(number_of_images or 0)
    require(count >= 0, f"number_of_images must be >= 0, got {number_of_images}")
    pairs = _image_mask_pairs(data_dir, image_dir, mask_dir)
    if isinstance(partition, (int, np.integer)) and not isinstance(partition, bool):
        require(count > 0, "an int partition needs number_of_images > 0 (the size of each part)")
        part = slice(int(partition) * count, (int(partition) + 1) * count)
    elif isinstance(partition, slice):
        part = partition
    elif partition is None:
        part = slice(0, count or None)
    else:
        start, stop = partition
        part = slice(start, stop)
    chosen = pairs[part][: count or None]
    require(chosen, f"partition {partition!r} with number_of_images={count} selects none of the {len(pairs)} pairs "
            f"in {pairs[0][0].parent}")
    images = [load_image(i, img_width, img_height, channels) for i, _ in progress(chosen, desc="loading images",
                                                                                   unit="img")]
    masks = [load_mask_levels(m, img_width, img_height) for _, m in chosen]
    return np.stack(images), np.stack(masks)


__all__ = [
    "COURSE_AUGMENT", "array_dataset", "augmentation_layers", "binarize_mask", "check_readable",
    "create_generator", "find_path", "find_unreadable", "find_xray_pairs", "gen_labels", "gen_labels_multiclass",
    "get_data", "get_data_arrays", "get_data_multiclass", "get_length", "get_train_test_arrays",
    "get_train_test_arrays_multiclass", "image_mask_generator", "list_image_files", "load_data", "load_image",
    "load_mask", "load_partial_data", "make_augmenter", "pair_by_name", "resolve_augment", "resolve_path",
    "segmentation_dataset",
]
