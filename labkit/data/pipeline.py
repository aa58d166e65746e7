"""tf.data input pipelines: decode in parallel, resize, (cache), shuffle, batch, augment whole batches, prefetch.

They stream from disk: only file paths are held in memory, so memory does not grow with the number of files.
"""

import numpy as np
import tensorflow as tf

from labkit.data.augment import JointAugment, resolve_augment
from labkit.errors import require

AUTOTUNE = tf.data.AUTOTUNE


def as_size(img_size):
    """``(height, width)`` from an int or a pair."""
    if isinstance(img_size, (int, np.integer)):
        return int(img_size), int(img_size)
    height, width = img_size
    return int(height), int(width)


def decode_image(path, img_size, channels=1):
    """Read and decode one image file inside the graph: float32 ``(h, w, channels)`` in [0, 1], resized bilinearly.

    Any bit depth and colour type decodes (8/16-bit, grey/RGB/RGBA) and is converted to `channels`.
    """
    raw = tf.io.read_file(path)
    image = tf.io.decode_image(raw, channels=3, dtype=tf.float32, expand_animations=False)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    image = tf.image.resize(image, as_size(img_size), method="bilinear")
    return tf.clip_by_value(image, 0.0, 1.0)


def decode_mask(path, img_size):
    """Read one mask file inside the graph: float32 ``(h, w, 1)`` in {0, 1}, foreground where scaled value > 0.5."""
    return tf.cast(decode_image(path, img_size, channels=1) > 0.5, tf.float32)


def _batched(dataset, batch_size, augment, seed, shuffle, n_items, repeat):
    require(int(batch_size) >= 1, f"batch size must be at least 1, got {batch_size}")
    if shuffle:
        dataset = dataset.shuffle(n_items, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), num_parallel_calls=AUTOTUNE)
    options = resolve_augment(augment)
    if options:
        joint = JointAugment(options, seed=seed)
        dataset = dataset.map(joint, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def segmentation_dataset(
    pairs, img_size, batch_size, channels=1, augment=None, shuffle=False, seed=None, cache=False, repeat=False
):
    """A batched ``(image, mask)`` dataset read from image/mask file pairs.

    Args:
        pairs: list of ``(image_path, mask_path)``, e.g. from `labkit.data.layouts.find_xray_pairs`.
        img_size: int or ``(height, width)``.
        batch_size: images per batch.
        channels: image channels (1 grey, 3 RGB).
        augment: None, True (the course's Task 4e set) or a dict of `ImageDataGenerator`-style options;
            applied jointly to image and mask. Give it for training data only.
        shuffle: reshuffle every epoch (seeded by `seed`).
        seed: seed for shuffling and augmentation.
        cache: False, True (memory) or a file path prefix; caches decoded, resized pairs before shuffling.
        repeat: repeat forever (for ``steps_per_epoch``-style training).

    Returns:
        A `tf.data.Dataset` of float32 batches ``(b, h, w, channels)`` and ``(b, h, w, 1)``.
    """
    require(len(pairs) > 0, "no image/mask pairs to read")
    images = tf.constant([str(p[0]) for p in pairs])
    masks = tf.constant([str(p[1]) for p in pairs])
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).map(
        lambda i, m: (decode_image(i, img_size, channels), decode_mask(m, img_size)), num_parallel_calls=AUTOTUNE
    )
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    return _batched(dataset, batch_size, augment, seed, shuffle, len(pairs), repeat)


def array_dataset(images, masks, batch_size, augment=None, shuffle=False, seed=None, repeat=False):
    """The same batching and joint augmentation as `segmentation_dataset`, from in-memory NumPy arrays."""
    require(len(images) == len(masks), f"{len(images)} images but {len(masks)} masks")
    require(len(images) > 0, "no images")
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(images, np.float32), np.asarray(masks, np.float32)))
    return _batched(dataset, batch_size, augment, seed, shuffle, len(images), repeat)


def classification_dataset(
    paths, labels, img_size, batch_size, n_class, channels=3, augment=None, shuffle=False, seed=None, cache=False,
    repeat=False,
):
    """A batched ``(image, one_hot_label)`` dataset read from image files.

    Args:
        paths: image files.
        labels: integer class index of each file.
        img_size: int or ``(height, width)``.
        batch_size: images per batch.
        n_class: number of classes (labels are one-hot encoded to this width).
        channels: 1 or 3.
        augment: None, or a callable / Keras layer applied to each image batch (e.g. `classification_augmentation`).
        shuffle, seed, cache, repeat: as in `segmentation_dataset`.

    Returns:
        A `tf.data.Dataset` of float32 ``(b, h, w, channels)`` images in [0, 1] and ``(b, n_class)`` labels.
    """
    require(len(paths) > 0, "no images to read")
    require(len(paths) == len(labels), f"{len(paths)} images but {len(labels)} labels")
    labels = np.asarray(labels, dtype=np.int64)
    require(labels.min() >= 0 and labels.max() < n_class, f"labels must be in [0, {n_class}), got {labels.min()}…{labels.max()}")
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant([str(p) for p in paths]), labels)).map(
        lambda path, label: (decode_image(path, img_size, channels), tf.one_hot(label, n_class)),
        num_parallel_calls=AUTOTUNE,
    )
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), num_parallel_calls=AUTOTUNE)
    if augment is not None:
        dataset = dataset.map(lambda x, y: (tf.clip_by_value(augment(x, training=True), 0.0, 1.0), y),
                              num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)
