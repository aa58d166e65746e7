"""The pipeline's joint augmentation: one composed affine transform per sample, in ImageDataGenerator's ranges."""

import math

import numpy as np
import pytest
import tensorflow as tf

from labkit.data import COURSE_AUGMENT
from labkit.data.augment.affine import JointAffineAugment, affine_resample, affine_transforms
from labkit.data.pipeline import array_dataset

NONE = {"rotation_range": 0, "width_shift_range": 0.0, "height_shift_range": 0.0, "zoom_range": 0.0,
        "horizontal_flip": False}


def decompose(transforms, height, width):
    """Angle (degrees), signed zooms (negative: flipped) and shift (pixels) of each row of `affine_transforms`.

    The matrix is R(θ)·diag(zx, zy): its second column is zy·(−sin θ, cos θ) with zy > 0 (no vertical flips here).
    """
    a0, a1, a2, b0, b1, b2 = (transforms[:, i].astype(np.float64) for i in range(6))
    theta = np.arctan2(-a1, b1)
    zx, zy = a0 * np.cos(theta) + b0 * np.sin(theta), -a1 * np.sin(theta) + b1 * np.cos(theta)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return np.degrees(theta), zx, zy, a2 - cx + a0 * cx + a1 * cy, b2 - cy + b0 * cx + b1 * cy  # centre → C + t


def test_transforms_stay_in_the_course_ranges_and_cover_them():
    transforms = affine_transforms(tf.constant([4, 2]), 512, 64, 80, **COURSE_AUGMENT).numpy()
    angle, zx, zy, tx, ty = decompose(transforms, 64, 80)
    assert np.abs(angle).max() <= 10 + 1e-3 and np.abs(angle).max() > 9  # ±10°, and it reaches the edges
    assert 0.8 - 1e-5 <= np.abs(zx).min() and np.abs(zx).max() <= 1.2 + 1e-5 and np.abs(zx).min() < 0.81
    assert 0.8 - 1e-5 <= zy.min() and zy.max() <= 1.2 + 1e-5  # no vertical flip in the course set
    assert np.abs(np.corrcoef(np.abs(zx), zy)[0, 1]) < 0.15  # height and width zoom drawn independently
    assert 0.4 < np.mean(zx < 0) < 0.6  # horizontal flip half of the time
    assert np.abs(tx).max() <= 0.1 * 80 + 1e-3 and np.abs(ty).max() <= 0.1 * 64 + 1e-3
    assert np.abs(tx).max() > 7 and np.abs(ty).max() > 5.5


def test_flip_alone_mirrors_exactly_and_rotation_by_90_degrees_is_rot90():
    rng = np.random.default_rng(0)
    images = rng.random((16, 12, 12, 1), np.float32)
    flipped, _ = JointAffineAugment({**NONE, "horizontal_flip": True})(images, images > 0.5, seed=tf.constant([1, 1]))
    flipped = flipped.numpy()
    mirrored = [np.allclose(f, i[:, ::-1], atol=1e-6) for f, i in zip(flipped, images)]
    kept = [np.allclose(f, i, atol=1e-6) for f, i in zip(flipped, images)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < 16

    transforms = affine_transforms(tf.constant([0, 0]), 1, 12, 12)  # identity …
    np.testing.assert_allclose(transforms.numpy()[0], [1, 0, 0, 0, 1, 0, 0, 0], atol=1e-6)
    c, s, centre = 0.0, 1.0, 5.5  # … and the same centring formula for an exact 90° rotation
    quarter = tf.constant([[c, -s, centre - c * centre + s * centre, s, c, centre - s * centre - c * centre, 0, 0]])
    turned = affine_resample(images[:1], quarter)
    np.testing.assert_allclose(turned.numpy()[0, ..., 0], np.rot90(images[0, ..., 0]), atol=1e-5)


def tf_kernel(images, transforms):
    """TensorFlow's own projective-transform kernel: bilinear, constant fill 0 (the independent reference)."""
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=images.shape[1:3],
                                                 interpolation="BILINEAR", fill_mode="CONSTANT", fill_value=0.0)


def test_affine_resample_matches_tensorflows_kernel_inside_across_and_beyond_the_border():
    rng = np.random.default_rng(3)
    images = rng.random((6, 20, 28, 3), np.float32)  # non-square, three channels
    transforms = affine_transforms(tf.constant([2, 5]), 6, 20, 28, rotation_range=45, width_shift_range=0.6,
                                   height_shift_range=0.6, zoom_range=0.5, horizontal_flip=True, vertical_flip=True)
    far_away = tf.constant([[1, 0, 500, 0, 1, -500, 0, 0]], tf.float32)  # every source pixel outside: all zeros
    transforms = tf.concat([transforms[:5], far_away], axis=0)
    ours = affine_resample(tf.constant(images), transforms).numpy()
    np.testing.assert_allclose(ours, tf_kernel(tf.constant(images), transforms).numpy(), atol=1e-5)
    assert np.all(ours[5] == 0) and np.mean(ours[:5] == 0) > 0.05  # the fill is really exercised
    assert 0 < np.mean(ours[:5] == 0) < 0.9


def test_image_and_mask_move_together_and_masks_stay_binary():
    masks = np.zeros((8, 32, 32, 1), np.float32)
    masks[:, 8:20, 10:26] = 1
    images, out_masks = JointAffineAugment({**COURSE_AUGMENT, "rotation_range": 30})(masks, masks,
                                                                                    seed=tf.constant([3, 9]))
    np.testing.assert_array_equal(out_masks.numpy(), (images.numpy() > 0.5).astype(np.float32))
    assert set(np.unique(out_masks.numpy())) <= {0.0, 1.0}
    assert np.mean(out_masks.numpy() != masks) > 0.01
    assert images.shape == masks.shape and out_masks.shape == masks.shape


@pytest.mark.parametrize("seed_a, seed_b, same", [((5, 1), (5, 1), True), ((5, 1), (6, 1), False)])
def test_the_seed_decides_the_transforms(seed_a, seed_b, same):
    a = affine_transforms(tf.constant(seed_a), 4, 32, 32, **COURSE_AUGMENT).numpy()
    b = affine_transforms(tf.constant(seed_b), 4, 32, 32, **COURSE_AUGMENT).numpy()
    assert np.array_equal(a, b) is same


def test_seeded_pipeline_repeats_across_runs_and_differs_between_epochs():
    masks = np.zeros((8, 24, 24, 1), np.float32)
    masks[:, 6:18, 4:14] = 1

    def epochs(dataset, n):
        return [np.concatenate([m.numpy() for _, m in dataset]) for _ in range(n)]

    first = epochs(array_dataset(masks, masks, 4, augment=True, seed=7), 2)
    second = epochs(array_dataset(masks, masks, 4, augment=True, seed=7), 2)
    np.testing.assert_array_equal(first[0], second[0])  # same seed, same batches
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # a new draw every epoch


def test_rotation_angle_formula():
    """The angle drawn for `rotation_range` r is uniform in ±r degrees: its mean is near 0 and spread near r/√3."""
    angle = decompose(affine_transforms(tf.constant([8, 8]), 4000, 32, 32, rotation_range=10).numpy(), 32, 32)[0]
    assert abs(angle.mean()) < 0.3 and angle.std() == pytest.approx(10 / math.sqrt(3), rel=0.05)
