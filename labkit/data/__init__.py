"""Data: dataset layouts, file decoding, joint augmentation, tf.data pipelines and embedded synthetic sets.

This module also holds the course's loader names (`load_data`, `get_length`, `create_generator`,
`image_mask_generator`).
"""

import os
from pathlib import Path

import numpy as np

from labkit.data.augment import COURSE_AUGMENT, JointAugment, augmentation_layers, resolve_augment
from labkit.data.io import find_unreadable, load_image, load_mask
from labkit.data.layouts import check_readable, find_xray_pairs, list_image_files, pair_by_name
from labkit.data.pipeline import array_dataset, segmentation_dataset
from labkit.errors import require
from labkit.progress import progress


def load_data(data_dir, image_dir, mask_dir, img_width, img_height, channels=1):
    """Load every image of ``data_dir/image_dir`` with its mask from ``data_dir/mask_dir`` (the course's loader).

    Images and masks are paired by name (``a.png`` ↔ ``a.png`` or ``a_Mask.png``), never by listing order.

    Args:
        data_dir: folder holding `image_dir` and `mask_dir` (e.g. the course's ``X_ray``).
        image_dir, mask_dir: subfolder names, e.g. ``"Image"`` and ``"Mask"``.
        img_width, img_height: output size.
        channels: image channels (1 or 3).

    Returns:
        ``(images, masks)``: float32 arrays ``(n, h, w, channels)`` in [0, 1] and ``(n, h, w, 1)`` in {0, 1},
        sorted by image name.

    Raises:
        LabkitInputError: missing folders, unpaired files or an unreadable image (named in the message).

    Example:
        >>> images, masks = load_data("X_ray", "Image", "Mask", 256, 256)
    """
    pairs = pair_by_name(Path(data_dir) / image_dir, Path(data_dir) / mask_dir)
    images, masks = [], []
    for image_path, mask_path in progress(pairs, desc="loading images", unit="img"):
        images.append(load_image(image_path, img_width, img_height, channels))
        masks.append(load_mask(mask_path, img_width, img_height))
    return np.stack(images), np.stack(masks)


def get_length(path, pattern):
    """Number of files in ``path/pattern`` (the course's helper, e.g. ``get_length(train_dir, "AFF")``)."""
    folder = Path(path) / pattern
    require(folder.is_dir(), f"folder not found: {folder}")
    return sum(1 for entry in os.scandir(folder) if entry.is_file() and not entry.name.startswith("."))


def create_generator(images, masks, augment, batch_size, seed=None):
    """An endless, shuffled stream of ``(image_batch, mask_batch)`` with joint augmentation.

    Args:
        images, masks: arrays ``(n, h, w, c)`` and ``(n, h, w, 1)``.
        augment: None/False, True (the course's Task 4e set) or a dict with `ImageDataGenerator`'s names
            (``rotation_range``, ``width_shift_range``, ``height_shift_range``, ``zoom_range``, ``horizontal_flip``).
            Image and mask always get the same transform; masks stay binary.
        batch_size: images per batch.
        seed: seed of shuffling and augmentation.

    Returns:
        A repeating `tf.data.Dataset` (pass it to `train_unet(..., generator=...)` or `Model.fit` with
        ``steps_per_epoch``).
    """
    return array_dataset(images, masks, batch_size, augment=augment, shuffle=True, seed=seed, repeat=True)


def image_mask_generator(images, masks, augment, batch_size, seed=None):
    """`create_generator` as a Python iterator of NumPy batches: ``next(gen)`` gives ``(images, masks)``."""
    return create_generator(images, masks, augment, batch_size, seed).as_numpy_iterator()


__all__ = [
    "COURSE_AUGMENT", "JointAugment", "array_dataset", "augmentation_layers", "check_readable", "create_generator",
    "find_unreadable", "find_xray_pairs", "get_length", "image_mask_generator", "list_image_files", "load_data",
    "load_image", "load_mask", "pair_by_name", "resolve_augment", "segmentation_dataset",
]
