"""tf.data input pipelines: decode in parallel, resize, (cache), shuffle, batch, augment whole batches, prefetch.

They stream from disk: without a cache only file paths are held in memory (they are shuffled before decoding), so
memory does not grow with the number of files; ``cache="auto"`` keeps decoded data in memory only when it fits
`CACHE_BUDGET_BYTES`. Every stage runs with ``AUTOTUNE`` parallelism. Every builder's ``augment`` is resolved by
`labkit.data.augment.make_augmenter`; segmentation batches get `labkit.data.augment.affine.JointAffineAugment` (one
composed affine resampling per batch, seeded per batch), classification batches an image-only augmenter.

Training data is made epoch by epoch (`EpochStream`): epoch e's order and augmentation depend only on the seed and
e. Keras's `fit` gets a dataset that reshuffles on every pass; `labkit.training.fit` trains on the stream itself, so
a run resumed at epoch k sees the batches an uninterrupted run would have seen.

Prefetching to the accelerator needs no option here: `keras.Model.fit` hands every dataset to its distribution
strategy's ``experimental_distribute_dataset``, which prefetches batches onto each replica's device. The datasets
shard by data (not by file) under ``MultiWorkerMirroredStrategy``.
"""

import inspect
import weakref

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


def _draw_seed(pair):
    """A full-range int64 drawn statelessly from a ``(2,)`` seed pair."""
    return tf.random.stateless_uniform([], seed=pair, minval=None, maxval=None, dtype=tf.int64)


def batch_seeds(epoch_seed):
    """An endless dataset of ``(2,)`` stateless seed pairs, one per batch of the epoch keyed by `epoch_seed`."""
    return tf.data.Dataset.counter().map(lambda index: tf.stack([epoch_seed, index]))


def _augmented(batches, augmenter, epoch_seed):
    """`batches` mapped through an augmenter ``(images, targets) -> (images, targets)``.

    An augmenter that takes ``seed=`` gets one stateless seed pair per batch (`batch_seeds`): batch b of an epoch is
    augmented the same way whatever ran before it and however many threads run it. One that keeps random state of
    its own (``sequential = True``: Keras layers reseeded per batch) runs one batch at a time; an augmenter without
    ``seed=`` keeps its own random state and runs one batch at a time, in order."""
    if augmenter is None:
        return batches
    takes_seed = "seed" in inspect.signature(augmenter.__call__).parameters
    if not takes_seed:
        return batches.map(lambda images, targets: augmenter(images, targets))
    parallel = None if getattr(augmenter, "sequential", False) else AUTOTUNE
    return tf.data.Dataset.zip((batches, batch_seeds(epoch_seed))).map(
        lambda batch, pair: augmenter(*batch, seed=pair), num_parallel_calls=parallel)


class EpochStream:
    """Training batches epoch by epoch: epoch e's order, augmentation and random crops depend only on the seed and
    e, never on what ran before.

    That is what makes ``--resume`` exact: `labkit.training.fit` trains on ``stream.starting_at(k)`` after a run was
    killed at epoch k and sees the very batches an uninterrupted run would have seen. Every training dataset a
    labkit builder makes (``shuffle=True`` or ``augment=``) is a plain `tf.data.Dataset` for `keras.Model.fit`
    (reshuffled on each pass, as Keras users expect) that carries its stream: `epoch_stream` finds it.

    Args:
        one_epoch: ``one_epoch(epoch_seed) -> tf.data.Dataset``, the batches of one epoch from an int64 scalar.
        steps_per_epoch: the number of batches of one epoch.
        seed: the builder's seed; epoch e's batches come from ``one_epoch(f(seed, e))``.
    """

    def __init__(self, one_epoch, steps_per_epoch, seed):
        self.one_epoch, self.steps_per_epoch, self.seed = one_epoch, int(steps_per_epoch), int(seed)

    def _epoch_batches(self, epoch):
        """The batches of `epoch` (an int64 scalar tensor), traced by tf.data."""
        return self.one_epoch(_draw_seed(tf.stack([tf.constant(self.seed, tf.int64), epoch])))

    def epoch(self, index):
        """The batches of epoch `index` (0-based), a finite dataset."""
        batches = tf.data.Dataset.from_tensors(tf.constant(int(index), tf.int64)).flat_map(self._epoch_batches)
        return batches.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))

    def starting_at(self, epoch=0):
        """An endless dataset of the batches of epochs `epoch`, `epoch` + 1, … (use with ``steps_per_epoch``)."""
        batches = tf.data.Dataset.counter(int(epoch)).flat_map(self._epoch_batches)
        return _shard_by_data(batches.prefetch(AUTOTUNE))

    def reshuffled(self, repeat=False):
        """A dataset with a new epoch on every pass (Keras's `fit` makes one pass an epoch), or endless ones."""
        keys = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True)
        batches = (keys if repeat else keys.take(1)).flat_map(self.one_epoch)
        if not repeat:
            batches = batches.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))
        return _shard_by_data(batches.prefetch(AUTOTUNE))

    def map(self, function):
        """The same stream with `function` applied to every batch (e.g. `labkit.data.weight_maps.with_weight_maps`)."""
        return self.apply(lambda batches: batches.map(function, num_parallel_calls=AUTOTUNE))

    def apply(self, transformation, steps_per_epoch=None):
        """The same stream with `transformation` (``dataset -> dataset``) applied to each epoch's batches, e.g. a
        regrouping (`even_replica_batches`); `steps_per_epoch`: the batches of a transformed epoch, when it changes
        their number."""
        return EpochStream(lambda key: transformation(self.one_epoch(key)),
                           self.steps_per_epoch if steps_per_epoch is None else steps_per_epoch, self.seed)


_STREAMS = weakref.WeakKeyDictionary()


def epoch_stream(dataset):
    """The `EpochStream` a labkit builder's training dataset carries, or None (any other dataset)."""
    try:
        return _STREAMS.get(dataset)
    except TypeError:  # not weakly referable: a NumPy array, a generator, ...
        return None


def with_stream(stream, repeat=False):
    """``stream.reshuffled(repeat)``, remembered as carrying `stream` (see `epoch_stream`)."""
    dataset = stream.reshuffled(repeat)
    _STREAMS[dataset] = stream
    return dataset


def map_batches(dataset, function):
    """``dataset.map(function)`` that keeps the dataset's `EpochStream` (mapped too), if it has one.

    Map a training dataset of labkit's builders this way, never with ``dataset.map``: a plain `tf.data` map makes
    a dataset without the stream, which `labkit.training.fit` then trains on as Keras does (a new order on every
    pass, counted from the first pass), so a resumed run would not see the batches of an uninterrupted one.
    """
    mapped = dataset.map(function, num_parallel_calls=AUTOTUNE)
    stream = epoch_stream(dataset)
    if stream is not None:
        _STREAMS[mapped] = stream.map(function)
    return mapped


def _shuffled(dataset, n_items, seed):
    """`dataset` in the order drawn from the int64 scalar tensor `seed`; called while tf.data traces a function."""
    # With a tensor op seed, tf.data pairs it with the graph's seed and checks the pair against (0, 0) in Python,
    # which fails on a graph seed of 0 (keras.utils.set_random_seed(0)). This function graph's own seed (only this
    # traced function's, never the global one) makes the check decidable; the order depends on `seed` alone.
    if not tf.executing_eagerly():
        tf.random.set_seed(1)
    return dataset.shuffle(n_items, seed=seed, reshuffle_each_iteration=False)


def default_seed(seed):
    """`seed`, or a seed drawn from NumPy's global generator (which `labkit.runtime.set_seed` seeds)."""
    return int(seed) if seed is not None else int(np.random.randint(0, 2**31 - 1))


def _batches(items, n_items, batch_size, read=None, augment=None, kind="segmentation", shuffle=False, seed=None,
             cache=False, repeat=False):
    """The dataset every 2D builder returns: `items` (one element per image) shuffled, read, cached, batched and
    augmented.

    Args:
        items: a dataset with one element per image (file names or decoded arrays).
        n_items: how many.
        batch_size: images per batch (the last batch of an epoch may be smaller).
        read: maps an element to decoded tensors (None: elements are decoded already).
        augment: as every builder's (`make_augmenter` of `kind`).
        shuffle: a new order every epoch.
        seed: seed of the order and the augmentation.
        cache: as resolved by `resolve_cache` (False: read on every pass; with `read`, the names are shuffled, so
            the shuffle buffer never holds decoded images).
        repeat: endless full batches, one shuffled pass after the other (for ``steps_per_epoch``-style training).

    Returns:
        A `tf.data.Dataset`; a training one (shuffled or augmented, not repeated) carries an `EpochStream`
        (`epoch_stream`).
    """
    require(int(batch_size) >= 1, f"batch size must be at least 1, got {batch_size}")
    seed = default_seed(seed)
    augmenter = make_augmenter(augment, kind, seed)
    streaming = cache is False and read is not None  # shuffle the names, then decode
    source = items if read is None or streaming else items.map(read, num_parallel_calls=AUTOTUNE)
    if cache is not False:
        source = source.cache(cache)

    def one_pass(epoch_seed):
        ordered = _shuffled(source, n_items, epoch_seed) if shuffle else source
        return ordered.map(read, num_parallel_calls=AUTOTUNE) if streaming else ordered

    def one_epoch(epoch_seed):
        return _augmented(one_pass(epoch_seed).batch(int(batch_size), num_parallel_calls=AUTOTUNE), augmenter,
                          epoch_seed)

    if repeat:  # endless full batches, passes joined (the course's generators): no epochs to resume at
        passes = tf.data.Dataset.random(seed=seed).flat_map(one_pass).batch(int(batch_size))
        batches = _augmented(passes, augmenter, tf.constant(seed, tf.int64))
        return _shard_by_data(batches.prefetch(AUTOTUNE))
    stream = EpochStream(one_epoch, -(-int(n_items) // int(batch_size)), seed)
    if shuffle or augmenter is not None:
        return with_stream(stream)
    return _shard_by_data(stream.epoch(0).prefetch(AUTOTUNE))


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
        shuffle: a new order every epoch.
        seed: seed of the order and the augmentation: epoch e's batches depend only on `seed` and e
            (`EpochStream`), so a seeded run repeats its batches and a resumed one continues them.
        cache: False, True (memory), ``"auto"`` (memory if the decoded pairs fit `CACHE_BUDGET_BYTES`, else
            stream) or a file path prefix; caches decoded, resized pairs before shuffling.
        repeat: endless full batches, one shuffled pass after the other (for ``steps_per_epoch``-style
            training, as the course's generators; such a dataset carries no `EpochStream`).

    Returns:
        A `tf.data.Dataset` of float32 batches ``(b, h, w, channels)`` and ``(b, h, w, 1)``; a training one
        (shuffled or augmented) carries its `EpochStream` (`epoch_stream`).
    """
    require(len(pairs) > 0, "no image/mask pairs to read")
    names = tf.data.Dataset.from_tensor_slices((tf.constant([str(p[0]) for p in pairs]),
                                                tf.constant([str(p[1]) for p in pairs])))
    read = lambda image, mask: (decode_image(image, img_size, channels), decode_mask(mask, img_size))  # noqa: E731
    return _batches(names, len(pairs), batch_size, read, augment, "segmentation", shuffle, seed,
                    resolve_cache(cache, len(pairs), img_size, channels + 1), repeat)


def array_dataset(images, masks, batch_size, augment=None, shuffle=False, seed=None, repeat=False):
    """The same batching and joint augmentation as `segmentation_dataset`, from in-memory NumPy arrays."""
    require(len(images) == len(masks), f"{len(images)} images but {len(masks)} masks")
    require(len(images) > 0, "no images")
    arrays = tf.data.Dataset.from_tensor_slices((np.asarray(images, np.float32), np.asarray(masks, np.float32)))
    return _batches(arrays, len(images), batch_size, None, augment, "segmentation", shuffle, seed, False, repeat)


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
    names = tf.data.Dataset.from_tensor_slices((tf.constant([str(p) for p in paths]), labels))
    read = lambda path, label: (decode_image(path, img_size, channels), tf.one_hot(label, n_class))  # noqa: E731
    return _batches(names, len(paths), batch_size, read, augment, "classification", shuffle, seed,
                    resolve_cache(cache, len(paths), img_size, channels), repeat)


def even_replica_batches(dataset, n_items, batch_size, replicas):
    """`dataset` (finite: `n_items` items in batches of `batch_size`) regrouped so that no batch leaves a replica empty.

    A strategy with R replicas splits every batch over them, so a final batch of fewer than R items hands a replica
    nothing: BatchNorm fails on it, and a batch-wide metric such as `dice_coef` counts the empty replica as a batch
    of its own. Nothing is dropped or counted twice: a final batch of r < R items joins the batch before it (one last
    batch of `batch_size` + r, at most one item more per replica); a set of fewer items than replicas is repeated R
    times into one batch, so every replica gets every item once (means and batch-wide metrics as on one device).
    With one replica, a repeated (infinite) dataset or a final batch of 0 or at least R items, `dataset` is returned
    as it is. A training dataset's `EpochStream` is regrouped alike, epoch by epoch.

    Example:
        >>> [len(b) for b in even_replica_batches(tf.data.Dataset.range(9).batch(4), 9, 4, replicas=2)]
        [4, 5]
    """
    n_items, batch_size, replicas = int(n_items), int(batch_size), int(replicas)
    remainder = n_items % batch_size
    finite = dataset.cardinality() != tf.data.INFINITE_CARDINALITY
    if replicas <= 1 or remainder == 0 or remainder >= replicas or not finite:
        return dataset
    n_batches = 1 if n_items < replicas else n_items // batch_size

    def regroup(batches):
        if n_items < replicas:  # every replica gets the whole set
            return batches.unbatch().repeat(replicas).batch(n_items * replicas)
        # the final r < R items join the batch before them
        return batches.rebatch([batch_size] * (n_batches - 1) + [batch_size + remainder])

    # The batch count stated: with an unknown one, Keras asks a distributed dataset for one step more, which hands
    # every replica an empty batch that batch-wide metrics count (Dice halved on a one-item set, measured).
    regrouped = regroup(dataset).apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(AUTOTUNE)
    stream = epoch_stream(dataset)
    if stream is not None:  # a training dataset: its epochs regrouped alike (a resumed run sees the same batches)
        _STREAMS[regrouped] = stream.apply(regroup, n_batches)
    return regrouped
