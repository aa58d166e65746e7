"""tf.data input pipelines: decode in parallel, resize, (cache), shuffle, batch, augment whole batches, prefetch.

They stream from disk: without a cache only file paths are held in memory (they are shuffled before decoding), so
memory does not grow with the number of files; ``cache="auto"`` keeps decoded data in memory only when it fits
`CACHE_BUDGET_BYTES`. Every stage runs with ``AUTOTUNE`` parallelism. Every builder's ``augment`` is resolved by
`labkit.data.augment.make_augmenter`; segmentation batches get `labkit.data.affine.JointAffineAugment` (one
composed affine resampling per batch, seeded per batch), classification batches an image-only augmenter.

Prefetching to the accelerator needs no option here: `keras.Model.fit` hands every dataset to its distribution
strategy's ``experimental_distribute_dataset``, which prefetches batches onto each replica's device. The datasets
shard by data (not by file) under ``MultiWorkerMirroredStrategy``.
"""

import inspect

import numpy as np
import tensorflow as tf

from labkit.data.augment import make_augmenter
from labkit.errors import require

AUTOTUNE = tf.data.AUTOTUNE

#: ``cache="auto"`` keeps decoded images in memory only when they take at most this many bytes (1 GiB).
CACHE_BUDGET_BYTES = 2**30


def resolve_cache(cache, n_items, img_size, channels):
    """What to cache: False, ``""`` (memory) or a file prefix; ``"auto"`` means memory when the decoded float32 data
    (``n_items × h × w × channels × 4`` bytes) fits `CACHE_BUDGET_BYTES`, else no cache (stream from disk)."""
    if cache == "auto":
        height, width = as_size(img_size)
        return "" if n_items * height * width * channels * 4 <= CACHE_BUDGET_BYTES else False
    if cache is True:
        return ""
    return str(cache) if cache else False


def _shard_by_data(dataset):
    """Under a multi-worker strategy, shard by element (the file list is not a file-based source)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def as_size(img_size):
    """``(height, width)`` from an int or a pair."""
    if isinstance(img_size, (int, np.integer)):
        return int(img_size), int(img_size)
    height, width = img_size
    return int(height), int(width)


def decode_image(path, img_size, channels=1):
    """Read and decode one image file inside the graph: float32 ``(h, w, channels)`` in [0, 1], resized bilinearly.

    Any bit depth and colour type decodes (8/16-bit, grey/RGB/RGBA) and is converted to `channels`; grey files
    are read as one channel (no conversion), colour files go through luminance (`tf.image.rgb_to_grayscale`).
    Files already at `img_size` are not resampled.
    """
    raw = tf.io.read_file(path)
    if channels == 1:
        image = tf.io.decode_image(raw, channels=0, dtype=tf.float32, expand_animations=False)
        image = tf.cond(tf.shape(image)[-1] <= 2, lambda: image[..., :1],  # grey (+ alpha)
                        lambda: tf.image.rgb_to_grayscale(_as_rgb(image)))
    else:
        image = tf.io.decode_image(raw, channels=channels, dtype=tf.float32, expand_animations=False)
    size = as_size(img_size)
    same_size = tf.reduce_all(tf.shape(image)[:2] == size)
    image = tf.cond(same_size, lambda: image, lambda: tf.image.resize(image, size, method="bilinear"))
    image.set_shape((*size, channels))
    return tf.clip_by_value(image, 0.0, 1.0)


def _as_rgb(image):
    """The colour channels of a decoded RGB or RGBA image."""
    return image[..., :3]


def decode_mask(path, img_size):
    """Read one mask file inside the graph: float32 ``(h, w, 1)`` in {0, 1}, foreground where scaled value > 0.5."""
    return tf.cast(decode_image(path, img_size, channels=1) > 0.5, tf.float32)


def _augmented(dataset, augmenter, seed):
    """`dataset` of batches mapped through an augmenter ``(images, targets) -> (images, targets)``.

    An augmenter that takes ``seed=`` gets one stateless seed pair per batch, drawn from `seed`: the same seed
    gives the same batches whatever the parallelism. Others keep their own random state, so they run one batch
    at a time, in order (a seeded run then repeats its draws)."""
    if augmenter is None:
        return dataset
    if "seed" in inspect.signature(augmenter.__call__).parameters:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip((dataset, seeds)).map(
            lambda batch, pair: augmenter(*batch, seed=pair), num_parallel_calls=AUTOTUNE)
    return dataset.map(lambda images, targets: augmenter(images, targets))


def _batched(dataset, batch_size, augment, seed, shuffle, n_items, repeat):
    require(int(batch_size) >= 1, f"batch size must be at least 1, got {batch_size}")
    augmenter = make_augmenter(augment, "segmentation", seed)
    if shuffle:
        dataset = dataset.shuffle(n_items, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), num_parallel_calls=AUTOTUNE)
    return _shard_by_data(_augmented(dataset, augmenter, seed).prefetch(AUTOTUNE))


def segmentation_dataset(
    pairs, img_size, batch_size, channels=1, augment=None, shuffle=False, seed=None, cache=False, repeat=False
):
    """A batched ``(image, mask)`` dataset read from image/mask file pairs.

    Args:
        pairs: list of ``(image_path, mask_path)``, e.g. from `labkit.data.layouts.find_xray_pairs`.
        img_size: int or ``(height, width)``.
        batch_size: images per batch.
        channels: image channels (1 grey, 3 RGB).
        augment: None/False, True (the course's Task 4e set), a dict of `ImageDataGenerator`-style options
            (applied jointly to image and mask by `JointAffineAugment`) or an augmenter ``(images, masks) ->
            (images, masks)`` such as `labkit.data.augment.LesionAugment`; see `make_augmenter`. Give it for
            training data only.
        shuffle: reshuffle every epoch (seeded by `seed`).
        seed: seed for shuffling and augmentation.
        cache: False, True (memory), ``"auto"`` (memory if the decoded pairs fit `CACHE_BUDGET_BYTES`, else
            stream) or a file path prefix; caches decoded, resized pairs before shuffling.
        repeat: repeat forever (for ``steps_per_epoch``-style training).

    Returns:
        A `tf.data.Dataset` of float32 batches ``(b, h, w, channels)`` and ``(b, h, w, 1)``.
    """
    require(len(pairs) > 0, "no image/mask pairs to read")
    images = tf.constant([str(p[0]) for p in pairs])
    masks = tf.constant([str(p[1]) for p in pairs])
    cache = resolve_cache(cache, len(pairs), img_size, channels + 1)
    dataset = tf.data.Dataset.from_tensor_slices((images, masks))
    if shuffle and cache is False:  # streaming: shuffle the names, so the buffer never holds decoded images
        dataset = dataset.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda i, m: (decode_image(i, img_size, channels), decode_mask(m, img_size)), num_parallel_calls=AUTOTUNE
    )
    if cache is not False:
        dataset = dataset.cache(cache)
    return _batched(dataset, batch_size, augment, seed, shuffle and cache is not False, len(pairs), repeat)


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
        augment: None/False, True (the course's Lab 3 Tasks 8–9 set: rotation 10°, shifts 0.1, horizontal flip), a
            dict of `ImageDataGenerator`-style options (plus ``brightness``, ``contrast``), an augmenter
            ``(images, labels) -> (images, labels)`` (e.g. `labkit.data.augment.dermoscopy_augmentation`), or a
            Keras preprocessing layer applied to the images; see `make_augmenter`. Training data only.
        shuffle, seed, cache, repeat: as in `segmentation_dataset` (``cache="auto"`` included).

    Returns:
        A `tf.data.Dataset` of float32 ``(b, h, w, channels)`` images in [0, 1] and ``(b, n_class)`` labels.
    """
    require(len(paths) > 0, "no images to read")
    require(len(paths) == len(labels), f"{len(paths)} images but {len(labels)} labels")
    labels = np.asarray(labels, dtype=np.int64)
    require(labels.min() >= 0 and labels.max() < n_class, f"labels must be in [0, {n_class}), got {labels.min()}…{labels.max()}")
    augmenter = make_augmenter(augment, "classification", seed)
    cache = resolve_cache(cache, len(paths), img_size, channels)
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant([str(p) for p in paths]), labels))
    if shuffle and cache is False:  # streaming: shuffle the names, so the buffer never holds decoded images
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path, label: (decode_image(path, img_size, channels), tf.one_hot(label, n_class)),
        num_parallel_calls=AUTOTUNE,
    )
    if cache is not False:
        dataset = dataset.cache(cache)
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), num_parallel_calls=AUTOTUNE)
    return _shard_by_data(_augmented(dataset, augmenter, seed).prefetch(AUTOTUNE))


def even_replica_batches(dataset, n_items, batch_size, replicas):
    """`dataset` (finite: `n_items` items in batches of `batch_size`) regrouped so that no batch leaves a replica empty.

    A strategy with R replicas splits every batch over them, so a final batch of fewer than R items hands a replica
    nothing: BatchNorm fails on it, and a batch-wide metric such as `dice_coef` counts the empty replica as a batch
    of its own. Nothing is dropped or counted twice: a final batch of r < R items joins the batch before it (one last
    batch of `batch_size` + r, at most one item more per replica); a set of fewer items than replicas is repeated R
    times into one batch, so every replica gets every item once (means and batch-wide metrics as on one device).
    With one replica, a repeated (infinite) dataset or a final batch of 0 or at least R items, `dataset` is returned
    as it is.

    Example:
        >>> [len(b) for b in even_replica_batches(tf.data.Dataset.range(9).batch(4), 9, 4, replicas=2)]
        [4, 5]
    """
    n_items, batch_size, replicas = int(n_items), int(batch_size), int(replicas)
    remainder = n_items % batch_size
    finite = dataset.cardinality() != tf.data.INFINITE_CARDINALITY
    if replicas <= 1 or remainder == 0 or remainder >= replicas or not finite:
        return dataset
    if n_items < replicas:  # every replica gets the whole set
        batches, n_batches = dataset.unbatch().repeat(replicas).batch(n_items * replicas), 1
    else:  # the final r < R items join the batch before them
        n_batches = n_items // batch_size
        batches = dataset.rebatch([batch_size] * (n_batches - 1) + [batch_size + remainder])
    # The batch count stated: with an unknown one, Keras asks a distributed dataset for one step more, which hands
    # every replica an empty batch that batch-wide metrics count (Dice halved on a one-item set, measured).
    return batches.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(AUTOTUNE)
