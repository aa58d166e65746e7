"""One `augment=` for every dataset builder: None/False, True (the builder's course set), a dict of
ImageDataGenerator options, or an augmenter object — all resolved by `make_augmenter`."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from labkit.data.augment import (AUGMENT_DEFAULTS, CLASSIFICATION_AUGMENT, COURSE_AUGMENT, VOLUME_AUGMENT, ImageOnly,
                                 dermoscopy_augmentation, make_augmenter, resolve_augment)
from labkit.data.augment.spatial3d import VolumeAugment, random_rotate_flip
from labkit.data.patches import patch_dataset, training_patches
from labkit.data.pipeline import array_dataset, classification_dataset
from labkit.errors import LabkitInputError

KINDS = ("segmentation", "classification", "volume")


@pytest.mark.parametrize("kind", KINDS)
def test_off_and_true_mean_the_same_for_every_kind(kind):
    assert make_augmenter(None, kind) is None and make_augmenter(False, kind) is None
    assert resolve_augment(True, kind) == AUGMENT_DEFAULTS[kind]


def test_course_defaults():
    assert COURSE_AUGMENT == {"rotation_range": 10, "width_shift_range": 0.1, "height_shift_range": 0.1,
                              "zoom_range": 0.2, "horizontal_flip": True}  # Lab 4 Task 4e
    assert CLASSIFICATION_AUGMENT == {"rotation_range": 10, "width_shift_range": 0.1, "height_shift_range": 0.1,
                                      "horizontal_flip": True}  # Lab 3 Tasks 8–9, Lab 4 Task 3
    assert VOLUME_AUGMENT == {"rotation_range": 20, "horizontal_flip": True, "vertical_flip": True}


@pytest.mark.parametrize("kind, bad", [("segmentation", "brightness"), ("classification", "shear_range"),
                                       ("volume", "zoom_range"), ("volume", "rotation")])
def test_unknown_options_are_named_for_every_kind(kind, bad):
    with pytest.raises(LabkitInputError, match=f"unknown {kind} augmentation option.*{bad}"):
        make_augmenter({bad: 0.2}, kind)


def test_classification_true_is_the_course_flip_rotation_and_shift():
    augmenter = make_augmenter(True, "classification", seed=3)
    assert isinstance(augmenter, ImageOnly)
    layers = {type(layer).__name__: layer for layer in augmenter.layer.layers}
    assert list(layers) == ["RandomFlip", "RandomRotation", "RandomTranslation"]
    assert layers["RandomFlip"].mode == "horizontal"
    assert layers["RandomRotation"].factor == pytest.approx((-10 / 360, 10 / 360))
    assert layers["RandomTranslation"].height_factor == layers["RandomTranslation"].width_factor == 0.1
    assert layers["RandomTranslation"].fill_mode == "nearest"  # no mask to keep honest: edge pixels, not black


def test_a_keras_layer_is_accepted_for_labels_but_refused_for_masks_and_volumes():
    flip = keras.layers.RandomFlip("horizontal")
    assert isinstance(make_augmenter(flip, "classification"), ImageOnly)
    for kind in ("segmentation", "volume"):
        with pytest.raises(LabkitInputError, match="moves the images alone"):
            make_augmenter(flip, kind)


def negate_images(images, targets):
    """A hand-made augmenter: every builder must call it with (images, targets) and use what it returns."""
    return 1.0 - images, targets


def test_every_builder_calls_an_augmenter_object(tmp_path):
    images = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    masks = (images > 0.5).astype(np.float32)
    got_images, got_masks = next(iter(array_dataset(images, masks, 4, augment=negate_images)))
    np.testing.assert_allclose(got_images.numpy(), 1.0 - images, atol=1e-6)
    np.testing.assert_array_equal(got_masks.numpy(), masks)

    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.round(image[..., 0] * 255).astype(np.uint8))
    got_images, labels = next(iter(classification_dataset(paths, [0, 1, 0, 1], 8, 4, 2, channels=1,
                                                          augment=negate_images)))
    np.testing.assert_allclose(got_images.numpy(), 1.0 - np.round(images * 255) / 255, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy().argmax(axis=1), [0, 1, 0, 1])

    class Case:
        image = np.random.default_rng(1).random((12, 12, 6)).astype(np.float32)
        label = (image > 0.5).astype(np.uint8)

    blocks = patch_dataset([Case], (8, 8, 4), 2, seed=0, augment=lambda image, label: (image * 0 - 1, label))
    got_images, got_labels = next(iter(blocks))
    assert np.all(got_images.numpy() == -1) and set(np.unique(got_labels.numpy())) <= {0.0, 1.0}


def test_classification_augmentation_keeps_labels_and_range():
    images = tf.constant(np.random.default_rng(2).random((6, 16, 16, 3)), tf.float32)
    labels = tf.one_hot([0, 1, 2, 0, 1, 2], 3)
    out_images, out_labels = make_augmenter({"rotation_range": 20, "width_shift_range": 0.2, "height_shift_range": 0.2,
                                             "horizontal_flip": True, "brightness": 0.3}, "classification",
                                            seed=1)(images, labels)
    assert out_images.shape == images.shape and float(tf.reduce_min(out_images)) >= 0.0
    assert float(tf.reduce_max(out_images)) <= 1.0 and not np.allclose(out_images.numpy(), images.numpy())
    np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())


def test_named_augmenters_share_the_one_call_signature():
    images = tf.constant(np.random.default_rng(3).random((2, 32, 32, 3)), tf.float32)
    labels = tf.one_hot([0, 6], 7)
    augmenter = dermoscopy_augmentation(32, seed=1)
    assert make_augmenter(augmenter, "classification") is augmenter
    out_images, out_labels = augmenter(images, labels)
    assert out_images.shape == images.shape and float(tf.reduce_max(out_images)) <= 1.0
    np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())


def test_volume_augmenter_draws_what_random_rotate_flip_draws():
    """`VolumeAugment(True)` is the 3D lab's rotation ±20° and in-plane flips, draw for draw."""
    image = np.random.default_rng(5).random((20, 20, 4)).astype(np.float32)
    label = (image > 0.7).astype(np.uint8)
    augmenter = make_augmenter(True, "volume", seed=np.random.default_rng(9))
    assert isinstance(augmenter, VolumeAugment) and augmenter.flip_axes == (0, 1) and augmenter.max_angle == 20
    reference_rng = np.random.default_rng(9)
    for _ in range(3):
        got, expected = augmenter(image, label), random_rotate_flip(image, label, reference_rng, 20.0, (0, 1))
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    assert VolumeAugment({"rotation_range": 5, "horizontal_flip": True}).flip_axes == (1,)


def test_volume_options_fail_before_any_patch_is_cut():
    class Case:
        image, label = np.zeros((8, 8, 4), np.float32), np.zeros((8, 8, 4), np.uint8)

    with pytest.raises(LabkitInputError, match="zoom_range"):
        patch_dataset([Case], (8, 8, 4), 1, augment={"zoom_range": 0.2})
    with pytest.raises(LabkitInputError, match="zoom_range"):
        training_patches([Case], (8, 8, 4), augment={"zoom_range": 0.2})


def test_a_seeded_classification_pipeline_repeats_its_augmented_batches(tmp_path):
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"{i}.png" for i in range(8)]
    for path in paths:
        cv2.imwrite(str(path), (rng.random((16, 16)) * 255).astype(np.uint8))

    def batches(seed):
        dataset = classification_dataset(paths, [0, 1] * 4, 16, 4, 2, channels=1, augment=True, shuffle=True,
                                         seed=seed)
        return np.concatenate([images.numpy() for images, _ in dataset])

    first = batches(1)
    np.testing.assert_array_equal(first, batches(1))
    assert not np.array_equal(first, batches(2))
