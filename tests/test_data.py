"""Loading, pairing by name, bad files, the tf.data pipeline, joint augmentation and the embedded X-ray set."""

import os
import pathlib
import random

import cv2
import numpy as np
import pytest
import tensorflow as tf

from labkit import LabkitInputError, create_generator, get_length, image_mask_generator, load_data, load_image, load_mask
from labkit.data import COURSE_AUGMENT, check_readable, find_xray_pairs, make_augmenter, segmentation_dataset
from labkit.data.split import train_val_split
from labkit.data.synthetic import xray_dataset


def write_pair_set(root, n=6, image_ext=".png", mask_suffix=""):
    """Images whose grey level encodes their index, and masks whose foreground width encodes it too."""
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "Image" / f"case{i:02d}{image_ext}"), np.full((16, 16), 20 * (i + 1), np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        mask[:, : i + 1] = 255
        cv2.imwrite(str(root / "Mask" / f"case{i:02d}{mask_suffix}.png"), mask)
    return root


@pytest.fixture
def shuffled_listing(monkeypatch):
    """Make every directory listing come back in a different random order."""
    rng = random.Random(7)
    real_iterdir, real_listdir, real_scandir = pathlib.Path.iterdir, os.listdir, os.scandir

    def shuffled(items):
        items = list(items)
        rng.shuffle(items)
        return items

    monkeypatch.setattr(pathlib.Path, "iterdir", lambda self: iter(shuffled(real_iterdir(self))))
    monkeypatch.setattr(os, "listdir", lambda path=".": shuffled(real_listdir(path)))
    monkeypatch.setattr(os, "scandir", lambda path=".": iter(shuffled(real_scandir(path))))


@pytest.mark.parametrize("image_ext, mask_suffix", [(".png", ""), (".jpg", ""), (".png", "_Mask")])
def test_load_data_pairs_by_name_whatever_the_listing_order(tmp_path, shuffled_listing, image_ext, mask_suffix):
    write_pair_set(tmp_path, image_ext=image_ext, mask_suffix=mask_suffix)
    images, masks = load_data(tmp_path, "Image", "Mask", 16, 16)
    assert images.shape == (6, 16, 16, 1) and masks.shape == (6, 16, 16, 1)
    for i in range(6):
        assert images[i].mean() == pytest.approx(20 * (i + 1) / 255, abs=0.02)  # image i …
        assert masks[i].sum() == 16 * (i + 1)  # … sits with mask i


def test_pipeline_pairs_by_name_whatever_the_listing_order(tmp_path, shuffled_listing):
    write_pair_set(tmp_path)
    pairs = find_xray_pairs(tmp_path)
    images, masks = next(iter(segmentation_dataset(pairs, 16, batch_size=6)))
    index_from_image = np.round(images.numpy().mean(axis=(1, 2, 3)) * 255 / 20) - 1
    index_from_mask = masks.numpy().sum(axis=(1, 2, 3)) / 16 - 1
    np.testing.assert_array_equal(index_from_image, index_from_mask)


def test_unpaired_files_are_named(tmp_path):
    write_pair_set(tmp_path, n=8)
    for i in range(6):
        (tmp_path / "Mask" / f"case{i:02d}.png").unlink()
    cv2.imwrite(str(tmp_path / "Mask" / "stray.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(LabkitInputError) as error:
        find_xray_pairs(tmp_path)
    message = str(error.value)
    assert "6 image(s)" in message and "case00.png" in message and "case04.png" in message
    assert "case05.png" not in message and "(and 1 more)" in message  # at most five names
    assert "1 mask(s)" in message and "stray.png" in message


def test_wrong_layout_names_expected_and_found_folders(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LabkitInputError, match=r"expected folders Image/ and Mask/, found images/"):
        find_xray_pairs(tmp_path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(LabkitInputError, match="data folder not found"):
        find_xray_pairs(tmp_path / "nope")
    (tmp_path / "Image").mkdir()
    (tmp_path / "Mask").mkdir()
    with pytest.raises(LabkitInputError, match="no images"):
        find_xray_pairs(tmp_path)


def test_xray_parent_folder_is_accepted(tmp_path):
    write_pair_set(tmp_path / "X_ray", n=3)
    assert len(find_xray_pairs(tmp_path)) == 3


@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((32, 32), 100, np.uint8))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    truncated.write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    return good, empty, text, truncated


def test_unreadable_files_are_named(bad_files):
    good, empty, text, truncated = bad_files
    for bad in (empty, text, truncated):
        with pytest.raises(LabkitInputError, match=f"unreadable image .*{bad.name}"):
            check_readable([good, bad])


def test_skip_bad_files_warns_with_count_and_names(bad_files):
    warnings = []
    kept = check_readable([(p, p) for p in bad_files], skip_bad=True, warn=warnings.append)
    assert kept == [(bad_files[0], bad_files[0])]
    assert "3 unreadable" in warnings[0] and "empty.png" in warnings[0]


def test_load_image_converts_bit_depth_and_colour(tmp_path):
    grey16 = np.full((8, 8), 65535 // 4, np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    assert load_image(tmp_path / "g16.png", 8, 8).mean() == pytest.approx(0.25, abs=1e-3)
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = load_image(tmp_path / "red.png", 4, 6, channels=3)
    assert rgb.shape == (6, 4, 3)
    np.testing.assert_allclose(rgb[0, 0], [1, 0, 0])
    assert load_image(tmp_path / "red.png", 4, 4).mean() == pytest.approx(0.299, abs=0.01)  # luminance


@pytest.mark.parametrize(
    "values, dtype, expected",
    [([0, 127, 128, 255], np.uint8, [0, 0, 1, 1]), ([0, 32767, 32768, 65535], np.uint16, [0, 0, 1, 1])],
)
def test_load_mask_threshold_rule(tmp_path, values, dtype, expected):
    cv2.imwrite(str(tmp_path / "m.png"), np.array([values], dtype))
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", 4, 1)[0, :, 0], expected)


def test_rgb_mask_is_converted_and_pipeline_agrees(tmp_path):
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:12, 4:12] = 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    numpy_mask = load_mask(tmp_path / "m.png", 16, 16)
    assert numpy_mask.sum() == 64
    from labkit.data.pipeline import decode_mask

    np.testing.assert_array_equal(decode_mask(str(tmp_path / "m.png"), 16).numpy(), numpy_mask)


def test_pipeline_batches_are_resized_and_binary(tmp_path):
    write_pair_set(tmp_path, n=5)
    images, masks = next(iter(segmentation_dataset(find_xray_pairs(tmp_path), 32, batch_size=4)))
    assert images.shape == (4, 32, 32, 1) and masks.shape == (4, 32, 32, 1)
    assert set(np.unique(masks.numpy())) <= {0.0, 1.0}
    assert 0.0 <= images.numpy().min() and images.numpy().max() <= 1.0


def random_shapes(n=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size, 1), np.float32)
    for mask in masks:
        y, x = rng.integers(4, size - 12, 2)
        mask[y : y + rng.integers(5, 12), x : x + rng.integers(5, 12)] = 1
    return masks


def test_joint_augmentation_moves_image_and_mask_together():
    masks = random_shapes()
    images = masks.copy()  # an image that is its own mask: after any shared transform, mask == image > 0.5
    augment = make_augmenter({**COURSE_AUGMENT, "rotation_range": 30}, "segmentation")
    aug_images, aug_masks = augment(images, masks, seed=tf.constant([3, 0]))
    aug_images, aug_masks = np.asarray(aug_images), np.asarray(aug_masks)
    np.testing.assert_array_equal(aug_masks, (aug_images > 0.5).astype(np.float32))
    assert set(np.unique(aug_masks)) <= {0.0, 1.0}
    assert np.mean(aug_masks != masks) > 0.005  # it did transform them


def test_create_generator_is_endless_seeded_and_joint():
    masks = random_shapes(n=5)
    first = image_mask_generator(*create_generator(masks.copy(), masks, augment=True, batch_size=4, seed=11))
    second = image_mask_generator(*create_generator(masks.copy(), masks, augment=True, batch_size=4, seed=11))
    batches = [next(first) for _ in range(4)]  # more batches than one pass over 5 images
    assert [len(b[0]) for b in batches] == [4, 4, 4, 4]
    np.testing.assert_array_equal(batches[0][0], next(second)[0])
    for images, batch_masks in batches:
        np.testing.assert_array_equal(batch_masks, (images > 0.5).astype(np.float32))
    assert create_generator(masks, masks, None, 2).dataset.element_spec[0].shape.as_list() == [None, 32, 32, 1]


def test_unknown_augmentation_option_is_named():
    with pytest.raises(LabkitInputError, match="shear_range"):
        make_augmenter({"shear_range": 0.2}, "segmentation")


def test_get_length_counts_files_of_a_class_folder(tmp_path):
    (tmp_path / "AFF").mkdir()
    for i in range(3):
        (tmp_path / "AFF" / f"{i}.png").write_bytes(b"x")
    assert get_length(tmp_path, "AFF") == 3
    with pytest.raises(LabkitInputError, match="NFF"):
        get_length(tmp_path, "NFF")


def test_train_val_split_is_reproducible_disjoint_and_sized():
    items = [f"img{i:03d}" for i in range(50)]
    train, val = train_val_split(items, 0.2, seed=42)
    assert (len(train), len(val)) == (40, 10)
    assert not set(train) & set(val) and set(train) | set(val) == set(items)
    assert train_val_split(list(reversed(items)), 0.2, seed=42) == (train, val)  # order of listing is irrelevant
    assert train_val_split(items, 0.2, seed=1)[1] != val


def test_embedded_xray_set_is_deterministic_and_in_the_course_layout(tmp_path):
    first = xray_dataset(n_images=6, size=64, root=tmp_path / "a")
    second = xray_dataset(n_images=6, size=64, root=tmp_path / "b")
    assert sorted(p.name for p in first.iterdir()) == ["Image", "Mask"]
    pairs = find_xray_pairs(first)
    assert len(pairs) == 6
    for (image, mask), (image2, _) in zip(pairs, find_xray_pairs(second)):
        assert image.read_bytes() == image2.read_bytes()
        lung_fraction = (cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127).mean()
        assert 0.1 < lung_fraction < 0.5
        lungs = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)[cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127]
        assert lungs.mean() < 110  # lung fields are darker than the thorax around them
    assert xray_dataset(n_images=6, size=64, root=tmp_path / "a") == first  # reused, not rewritten


def test_a_partial_augmentation_dict_is_accepted_and_a_negative_range_named():
    from labkit.data import resolve_augment

    assert resolve_augment({"horizontal_flip": True}) == {"horizontal_flip": True}
    with pytest.raises(LabkitInputError, match="zoom_range must be >= 0, got -0.1"):
        resolve_augment({"zoom_range": -0.1})
