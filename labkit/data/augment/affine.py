"""Joint image + mask augmentation as one random affine transform per sample, for the tf.data pipeline.

`JointAffineAugment` draws the random transforms of the course's `ImageDataGenerator` with the Task 4e options —
flip, rotation, shift, independent zoom of height and width — but composes them into a single matrix per sample
and resamples each batch once (`affine_resample`, compiled with XLA). A stack of Keras image layers resamples once
per layer (rotation, translation and zoom: three bilinear passes), which costs about three times as long and
blurs the image three times. It is what ``augment=`` options become for segmentation data
(`labkit.data.augment.make_augmenter`).

Randomness is stateless: each batch gets its transforms from a seed pair (`segmentation_dataset` feeds one per
batch from ``tf.data.Dataset.random``), so a seeded pipeline gives the same batches however many threads run it.
"""

import math

import tensorflow as tf  # runs inside tf.data graphs, where TensorFlow ops are the native language

from labkit.data.augment.options import resolve_augment, zoom_bounds


def affine_transforms(seed, batch, height, width, rotation_range=0, width_shift_range=0.0, height_shift_range=0.0,
                      zoom_range=0.0, horizontal_flip=False, vertical_flip=False):
    """Random projective transforms (the 8-number rows ``ImageProjectiveTransformV3`` takes), one per sample.

    Each maps an output pixel ``(x, y)`` to the input pixel it samples: ``input = C + R·Z·F·(output − C) + t`` with
    C the image centre, F a random flip, Z = diag(zx, zy) with zx, zy drawn independently from [1 − zoom, 1 + zoom]
    (or from ``[low, high]`` when `zoom_range` is a pair)
    (as `ImageDataGenerator`), R a rotation by an angle in ±`rotation_range` degrees and t a shift of up to
    ±`width_shift_range`·width and ±`height_shift_range`·height pixels.

    Args:
        seed: int tensor of shape (2,), the stateless random seed of this batch.
        batch, height, width: batch size and image size (ints or scalar tensors).
        rotation_range, width_shift_range, height_shift_range, zoom_range, horizontal_flip, vertical_flip:
            `ImageDataGenerator`'s options.

    Returns:
        float32 tensor ``(batch, 8)``.

    Example:
        >>> affine_transforms(tf.constant([1, 2]), 4, 64, 64, rotation_range=10).shape
        TensorShape([4, 8])
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)

    def uniform(i, low, high):
        return tf.random.stateless_uniform([batch], seeds[i], minval=low, maxval=high)

    def flip(i, enabled):
        return tf.where(uniform(i, 0.0, 1.0) < 0.5, -1.0, 1.0) if enabled else tf.ones([batch])

    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    angle = uniform(0, -1.0, 1.0) * (float(rotation_range) * math.pi / 180.0)
    low, high = zoom_bounds(zoom_range)
    zx = uniform(1, low, high) * flip(4, horizontal_flip)
    zy = uniform(2, low, high) * flip(5, vertical_flip)
    tx = uniform(3, -1.0, 1.0) * float(width_shift_range) * width
    ty = uniform(6, -1.0, 1.0) * float(height_shift_range) * height
    cos, sin = tf.cos(angle), tf.sin(angle)
    a0, a1, b0, b1 = cos * zx, -sin * zy, sin * zx, cos * zy
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    a2 = cx + tx - a0 * cx - a1 * cy
    b2 = cy + ty - b0 * cx - b1 * cy
    zeros = tf.zeros([batch])
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


@tf.function(jit_compile=True)
def affine_resample(images, transforms):
    """Resample a batch through per-sample affine transforms: bilinear, zeros outside the image.

    The same result as ``ImageProjectiveTransformV3`` with ``interpolation="BILINEAR"``, ``fill_mode="CONSTANT"``
    and fill value 0 for affine rows (last two numbers 0), computed with four gathers instead. XLA fuses the
    coordinate arithmetic, the gathers and the blend into one pass over the output, which on a CPU is about three
    times faster than TensorFlow's kernel (that one recomputes every output pixel's source coordinates once per
    channel).

    Args:
        images: float32 ``(batch, height, width, channels)``.
        transforms: float32 ``(batch, 8)``, as from `affine_transforms`: output pixel ``(x, y)`` samples input
            ``(a0·x + a1·y + a2, b0·x + b1·y + b2)``.

    Returns:
        float32 tensor of the shape of `images`.
    """
    shape = tf.shape(images)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    # A one-pixel border of zeros: neighbours outside the image read 0, as in the kernel's constant fill.
    padded = tf.reshape(tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]]), [-1, channels])
    rows, cols = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    t = transforms[:, :, None, None]
    src_x = t[:, 0] * cols + t[:, 1] * rows + t[:, 2]
    src_y = t[:, 3] * cols + t[:, 4] * rows + t[:, 5]
    x0, y0 = tf.floor(src_x), tf.floor(src_y)
    wx, wy = (src_x - x0)[..., None], (src_y - y0)[..., None]

    def padded_index(coordinate, size):  # anything beyond the border reads the border's zeros
        return tf.cast(tf.clip_by_value(coordinate, -1.0, tf.cast(size, tf.float32)), tf.int32) + 1

    first_row = (tf.range(batch) * (height + 2))[:, None, None]
    x_left, x_right = padded_index(x0, width), padded_index(x0 + 1.0, width)
    y_top, y_bottom = padded_index(y0, height), padded_index(y0 + 1.0, height)

    def pixels(y, x):
        return tf.gather(padded, (first_row + y) * (width + 2) + x)

    top = pixels(y_top, x_left) * (1.0 - wx) + pixels(y_top, x_right) * wx
    bottom = pixels(y_bottom, x_left) * (1.0 - wx) + pixels(y_bottom, x_right) * wx
    return top * (1.0 - wy) + bottom * wy


class JointAffineAugment:
    """Apply one random affine transform per sample to a batch of images and their masks together.

    Image and mask channels are stacked and resampled in one bilinear pass (pixels from outside the image are 0);
    the mask channel is re-binarised at 0.5 and images are clipped to [0, 1].

    Args:
        options: None, True (the course's Task 4e set) or a dict of `ImageDataGenerator`-style options
            (see `labkit.data.augment.resolve_augment`).

    Example:
        >>> augment = JointAffineAugment(True)
        >>> images, masks = augment(images, masks, seed=tf.constant([7, 0]))
    """

    def __init__(self, options=True):
        self.options = resolve_augment(options) or {}

    def __call__(self, images, masks, seed=None):
        """Augment a batch; `seed` is a (2,) int tensor (None: a fresh random seed)."""
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
        images, masks = tf.cast(images, tf.float32), tf.cast(masks, tf.float32)
        if not self.options:
            return images, masks
        channels = images.shape[-1]
        shape = tf.shape(images)
        transforms = affine_transforms(seed, shape[0], shape[1], shape[2], **self.options)
        stacked = affine_resample(tf.concat([images, masks], axis=-1), transforms)
        out_images = tf.clip_by_value(stacked[..., :channels], 0.0, 1.0)
        out_masks = tf.cast(stacked[..., channels:] > 0.5, tf.float32)
        out_images.set_shape(images.shape)
        out_masks.set_shape(masks.shape)
        return out_images, out_masks
