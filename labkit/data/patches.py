"""Patches of volumes: foreground-biased random training crops, centre crops, and sliding-window inference.

A 3D U-Net sees fixed-size patches (the course's 112×112×80), while volumes come in any size. Training draws random
crops, a share of them centred on a random foreground voxel so that small objects are seen often enough; evaluation
covers the whole volume with overlapping windows and blends the overlapping predictions (Gaussian weights, the
nnU-Net / MONAI choice, or uniform). Volumes smaller than the patch are padded (zeros for images, background for
labels) and the padding is cut off again, so every volume size works.

Arrays are ``(x, y, z)`` or ``(x, y, z, channels)``: the patch applies to the first three axes.
"""

import itertools

import numpy as np

from labkit.data.augment import make_augmenter
from labkit.data.pipeline import EpochStream, default_seed, with_stream
from labkit.errors import require

BLENDS = ("gaussian", "uniform")


def as_patch(patch, ndim=3):
    """`patch` as a tuple of `ndim` positive ints (one int → the same on every axis)."""
    patch = (int(patch),) * ndim if np.ndim(patch) == 0 else tuple(int(p) for p in patch)
    require(len(patch) == ndim and all(p > 0 for p in patch), f"patch {patch} must be {ndim} sizes > 0")
    return patch


def pad_to(volume, shape, value=0):
    """Pad the first ``len(shape)`` axes of `volume` at both ends (centred) up to at least `shape`.

    Returns:
        ``(padded, region)``: the padded array and the slices that cut the original back out of it.
    """
    widths = [max(0, int(s) - n) for n, s in zip(volume.shape, shape)]
    pads = [(w // 2, w - w // 2) for w in widths] + [(0, 0)] * (volume.ndim - len(shape))
    region = tuple(slice(before, before + n) for (before, _), n in zip(pads, volume.shape[: len(shape)]))
    if not any(widths):
        return volume, region
    return np.pad(volume, pads, mode="constant", constant_values=value), region


def crop(volume, start, patch, value=0):
    """The `patch`-sized block of `volume` starting at `start` (which may lie outside: the outside reads `value`)."""
    start = np.asarray(start, dtype=int)
    stop = start + np.asarray(patch)
    low = np.maximum(0, -start)
    high = np.maximum(0, stop - np.asarray(volume.shape[: len(patch)]))
    inside = tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(start, stop, volume.shape))
    block = volume[inside]
    if low.any() or high.any():
        pads = list(zip(low, high)) + [(0, 0)] * (volume.ndim - len(patch))
        block = np.pad(block, pads, mode="constant", constant_values=value)
    return block


def crop_around(volume, centre, patch, value=0):
    """The `patch`-sized block of `volume` centred on voxel `centre` (padded with `value` where it sticks out)."""
    start = np.asarray(centre, dtype=int) - np.asarray(patch) // 2
    return crop(volume, start, patch, value)


def centre_crop(volume, patch, value=0):
    """The `patch`-sized block at the centre of `volume` (padded when the volume is smaller).

    Example:
        >>> centre_crop(np.zeros((120, 130, 90)), (112, 112, 80)).shape
        (112, 112, 80)
    """
    return crop_around(volume, np.asarray(volume.shape[: len(patch)]) // 2, patch, value)


def random_crop_start(label, patch, rng, foreground_prob=0.5):
    """The corner of a random `patch`-sized crop of a volume shaped like `label`.

    With probability `foreground_prob` the crop is centred on a random foreground voxel of `label` (when there is
    one), else placed uniformly. Either way it is then moved to lie inside the volume; along an axis where the volume
    is smaller than the patch it is centred (and `crop` pads both sides).
    """
    shape = np.asarray(label.shape[:3])
    patch = np.asarray(patch)
    low = np.where(shape < patch, (shape - patch) // 2, 0)
    high = np.where(shape < patch, (shape - patch) // 2, shape - patch)
    voxels = np.flatnonzero(label) if rng.random() < foreground_prob else ()
    if len(voxels):
        start = np.asarray(np.unravel_index(voxels[rng.integers(len(voxels))], label.shape[:3])) - patch // 2
    else:
        start = np.array([rng.integers(lo, hi + 1) for lo, hi in zip(low, high)])
    return np.clip(start, low, high)


def random_crop(image, label, patch, rng, foreground_prob=0.5):
    """The same random `patch`-sized crop of `image` and `label` (see `random_crop_start`).

    Example:
        >>> image, label = np.zeros((40, 40, 20), np.float32), np.zeros((40, 40, 20), np.uint8)
        >>> [a.shape for a in random_crop(image, label, (32, 32, 16), np.random.default_rng(0))]
        [(32, 32, 16), (32, 32, 16)]
    """
    start = random_crop_start(label, patch, rng, foreground_prob)
    return crop(image, start, patch), crop(label, start, patch)


def window_starts(length, patch, overlap):
    """Start positions of windows of size `patch` covering ``[0, length)`` with the given `overlap` fraction.

    The stride is ``max(1, round(patch · (1 − overlap)))``; the last window is moved back to end exactly at
    `length`. A `length` not larger than `patch` gives one window at 0.
    """
    if length <= patch:
        return [0]
    stride = max(1, int(round(patch * (1.0 - overlap))))
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def gaussian_weights(patch, sigma_scale=0.125):
    """Blending weights peaking at the patch centre: a Gaussian with ``σ = sigma_scale · patch`` per axis, scaled to
    a maximum of 1 and kept ≥ 1e-3 at the edges, so every voxel is covered by a nonzero weight."""
    axes = [np.exp(-0.5 * ((np.arange(p) - (p - 1) / 2) / max(sigma_scale * p, 1e-6)) ** 2) for p in patch]
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def sliding_window_inference(volume, predict, patch, overlap=0.5, blend="gaussian", batch_size=1):
    """Predict a whole volume of any size with a fixed-patch model, windows overlapping by `overlap`.

    The volume is padded to at least `patch` (then cut back), covered by windows from `window_starts`, predicted
    `batch_size` windows at a time, and the overlapping predictions are averaged with `blend` weights (accumulated
    in float64, so a model that returns its input gives back exactly the input).

    Args:
        volume: ``(x, y, z)`` or ``(x, y, z, channels)`` array.
        predict: a callable mapping a batch ``(b, *patch, channels)`` to ``(b, *patch, k)`` — e.g.
            ``model.predict_on_batch`` — or a Keras model.
        patch: window size ``(px, py, pz)``.
        overlap: fraction of a window shared with its neighbour along each axis, in [0, 1).
        blend: ``"gaussian"`` (centre voxels count more, fewer seams) or ``"uniform"`` (plain mean).
        batch_size: windows per call of `predict`.

    Returns:
        float32 ``(x, y, z, k)`` predictions for the input volume.

    Example:
        >>> volume = np.random.rand(50, 41, 23).astype(np.float32)
        >>> out = sliding_window_inference(volume, lambda batch: batch, (32, 32, 16))
        >>> bool(np.array_equal(out[..., 0], volume))
        True
    """
    require(0.0 <= float(overlap) < 1.0, f"--overlap must be in [0, 1), got {overlap}")
    require(blend in BLENDS, f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    patch = as_patch(patch)
    predict = getattr(predict, "predict_on_batch", predict)
    volume = np.asarray(volume)
    if volume.ndim == 3:
        volume = volume[..., None]
    padded, region = pad_to(volume, patch)
    weights = (gaussian_weights(patch) if blend == "gaussian" else np.ones(patch, np.float32)).astype(np.float64)
    corners = list(itertools.product(*[window_starts(n, p, overlap) for n, p in zip(padded.shape, patch)]))
    total = weight_sum = None
    for first in range(0, len(corners), int(batch_size)):
        group = corners[first:first + int(batch_size)]
        windows = np.stack([padded[tuple(slice(c, c + p) for c, p in zip(corner, patch))] for corner in group])
        outputs = np.asarray(predict(windows.astype(np.float32)))
        if total is None:
            total = np.zeros(padded.shape[:3] + outputs.shape[-1:], np.float64)
            weight_sum = np.zeros(padded.shape[:3], np.float64)
        for corner, output in zip(group, outputs):
            where = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            total[where] += output * weights[..., None]
            weight_sum[where] += weights
    return (total / weight_sum[..., None])[region].astype(np.float32)


def training_patches(cases, patch, seed=None, foreground_prob=0.5, augment=False):
    """An endless stream of random training patches ``(image, label)``, each ``(*patch, 1)`` float32.

    Cases are visited in a fresh random order each round; each gives one foreground-biased crop (`random_crop`).
    With `augment`, a larger block is cut (the augmenter's ``context``, if it has one), augmented, then
    centre-cropped to `patch`, so a rotation never brings empty corners into the patch.

    Args:
        cases: objects with ``image`` and ``label`` arrays ``(x, y, z)`` (e.g. `VolumeCase`).
        patch: ``(px, py, pz)``.
        seed: seed of the crop positions and augmentation (anything `numpy.random.default_rng` takes).
        foreground_prob: share of crops centred on a foreground voxel.
        augment: as every builder's (`labkit.data.augment.make_augmenter`, kind ``"volume"``): True is a random
            rotation (±20° about the slice axis) and in-plane flips, identical for image and label
            (`labkit.data.augment.spatial3d.VolumeAugment`); an augmenter is called ``(image_block, label_block)``.
    """
    patch = as_patch(patch)
    rng = np.random.default_rng(seed)
    augmenter = make_augmenter(augment, "volume", seed=rng)  # one generator: crops and transforms in one sequence
    return _patch_stream(cases, patch, rng, foreground_prob, augmenter)


def _patch_stream(cases, patch, rng, foreground_prob, augmenter):
    block = augmenter.context(patch) if hasattr(augmenter, "context") else patch
    while True:
        for index in rng.permutation(len(cases)):
            case = cases[index]
            start = random_crop_start(case.label, patch, rng, foreground_prob) - (np.asarray(block) - patch) // 2
            image, label = crop(case.image, start, block), crop(case.label, start, block)
            if augmenter is not None:
                image, label = augmenter(image, label)
                image, label = centre_crop(image, patch), centre_crop(label, patch)
            yield image[..., None].astype(np.float32), label[..., None].astype(np.float32)


def patch_dataset(cases, patch, batch_size, seed=None, foreground_prob=0.5, augment=False, steps_per_epoch=None):
    """Batches of `training_patches`, epoch after epoch, endless (train with ``steps_per_epoch``).

    Each epoch is `steps_per_epoch` batches whose crops and augmentation are drawn from `seed` and the epoch's index
    alone (`labkit.data.pipeline.EpochStream`), so a resumed run continues with the patches an uninterrupted run
    would have drawn.

    Args:
        cases, patch, seed, foreground_prob, augment: as in `training_patches`.
        batch_size: patches per batch.
        steps_per_epoch: batches of one epoch (default: enough for one patch per case).
    """
    import tensorflow as tf

    patch = as_patch(patch)
    training_patches(cases, patch, seed, foreground_prob, augment)  # bad options fail here, not inside tf.data
    seed, batch_size = default_seed(seed), int(batch_size)
    steps = int(steps_per_epoch or -(-len(cases) // batch_size))
    spec = tf.TensorSpec((*patch, 1), tf.float32)

    def one_epoch(epoch_seed):
        patches = tf.data.Dataset.from_generator(
            lambda key: training_patches(cases, patch, (seed, int(key) % 2**63), foreground_prob, augment),
            args=(epoch_seed,), output_signature=(spec, spec))
        return patches.take(steps * batch_size).batch(batch_size)

    return with_stream(EpochStream(one_epoch, steps, seed), repeat=True)


def foreground_centre(label):
    """The voxel at the centre of the foreground's bounding box (the volume centre when there is no foreground)."""
    voxels = np.argwhere(label)
    if not len(voxels):
        return np.asarray(label.shape[:3]) // 2
    return (voxels.min(axis=0) + voxels.max(axis=0)) // 2


def validation_patches(cases, patch):
    """One fixed patch per case, centred on its object (`foreground_centre`): ``(images, labels)`` arrays
    ``(n, *patch, 1)`` for monitoring Dice during training."""
    patch = as_patch(patch)
    images = [crop_around(c.image, foreground_centre(c.label), patch) for c in cases]
    labels = [crop_around(c.label, foreground_centre(c.label), patch) for c in cases]
    return np.stack(images)[..., None].astype(np.float32), np.stack(labels)[..., None].astype(np.float32)
