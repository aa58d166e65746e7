"""Boundary weight maps (Lab 5, the course's 2022 option a): pixels at an object's edge weigh more in the loss.

``boundary = dilation(mask) − erosion(mask)`` with a disk of radius `radius` (course: 2), per class for a one-hot
mask (a pixel is boundary when it is on the edge of any class), and ``weight = 1 + strength · boundary`` (course
strength: 1.5). The maps are computed in the tf.data pipeline from each (augmented) mask batch, never stored on disk:
`with_weight_maps` turns a dataset of ``(image, mask)`` into ``(image, mask, weight)``, which Keras hands to the
loss as a per-pixel ``sample_weight`` (`labkit.losses.get_loss` with ``pixel_weights=True``).

The morphology is max-pooling: a disk is the union of the rectangles that fit in it (one per row offset), so
dilation is the maximum of one max-pool per rectangle, and erosion is ``−dilation(−mask)``. Pixels outside the image
take no part (max-pooling's padding is ignored): a mask is neither grown nor eroded by the image frame, so an object
cut by the border gets no boundary along it. In SciPy terms: ``binary_dilation(border_value=0)`` and
``binary_erosion(border_value=1)`` with the footprint ``x² + y² ≤ radius²``.

Example:
    >>> train = with_weight_maps(segmentation_dataset(pairs, 256, 8, shuffle=True), strength=1.5)
"""

import math

import tensorflow as tf

from labkit.data.pipeline import map_batches
from labkit.errors import require

#: The course's settings: boundary from a disk of radius 2, weight 1 + 1.5 on the boundary.
COURSE_RADIUS, COURSE_STRENGTH = 2, 1.5


def disk_rectangles(radius):
    """``[(height, width)]`` of centred rectangles whose union is the disk ``x² + y² ≤ radius²``.

    Example:
        >>> disk_rectangles(2)
        [(1, 5), (3, 3), (5, 1)]
    """
    require(int(radius) >= 0, f"weight-map radius must be >= 0, got {radius}")
    radius = int(radius)
    return [(2 * dy + 1, 2 * math.isqrt(radius**2 - dy**2) + 1) for dy in range(radius + 1)]


def _as_batch(masks):
    masks = tf.convert_to_tensor(masks)
    require(masks.shape.rank in (3, 4), f"masks must be (h, w, c) or (b, h, w, c), got shape {masks.shape}")
    return (masks[tf.newaxis] if masks.shape.rank == 3 else masks), masks.shape.rank == 3


def dilate(masks, radius=COURSE_RADIUS):
    """Grey dilation of a ``(b, h, w, c)`` batch with the disk of `radius`: each pixel becomes the maximum over the
    disk around it (pixels outside the image ignored)."""
    masks = tf.cast(masks, tf.float32)
    pooled = [tf.nn.max_pool2d(masks, size, strides=1, padding="SAME") for size in disk_rectangles(radius)]
    return tf.reduce_max(tf.stack(pooled), axis=0)


def erode(masks, radius=COURSE_RADIUS):
    """Grey erosion with the disk of `radius`: the minimum over the disk (pixels outside the image ignored)."""
    return -dilate(-tf.cast(masks, tf.float32), radius)


def boundary_map(masks, radius=COURSE_RADIUS):
    """``dilation − erosion`` of binary (or one-hot) masks, 1 where any class has an edge within `radius`.

    Args:
        masks: ``(b, h, w, c)`` or ``(h, w, c)``; foreground where > 0.5, each channel a class.

    Returns:
        float32 ``(b, h, w, 1)`` (or ``(h, w, 1)``) in {0, 1}.
    """
    batch, single = _as_batch(masks)
    binary = tf.cast(tf.cast(batch, tf.float32) > 0.5, tf.float32)
    edge = tf.reduce_max(dilate(binary, radius) - erode(binary, radius), axis=-1, keepdims=True)
    return edge[0] if single else edge


def weight_map(masks, strength=COURSE_STRENGTH, radius=COURSE_RADIUS):
    """``1 + strength · boundary_map(masks, radius)``: float32 ``(…, h, w, 1)``, 1 inside and outside objects,
    ``1 + strength`` within `radius` of an edge."""
    require(float(strength) >= 0, f"--weight-strength must be >= 0, got {strength}")
    return 1.0 + float(strength) * boundary_map(masks, radius)


def with_weight_maps(dataset, strength=COURSE_STRENGTH, radius=COURSE_RADIUS):
    """A dataset of ``(image, mask)`` batches as ``(image, mask, weight)``, the weight computed from each mask by
    `weight_map` (after any augmentation, so it follows the augmented mask).

    Keras's ``fit``/``evaluate`` pass the third item to the loss as ``sample_weight`` (not to the ``metrics`` of
    ``compile``, which stay unweighted).
    """
    return map_batches(dataset, lambda image, mask: (image, mask, weight_map(mask, strength, radius)))
