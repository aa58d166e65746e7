"""ISIC 2016 Part 1 layouts (official and Kaggle), pairing by ISIC id, the embedded set and lesion augmentation."""

import filecmp
import random

import cv2
import numpy as np
import pytest
import tensorflow as tf

from labkit.data.augment import LesionAugment
from labkit.data.layouts.isic2016 import (
    KAGGLE, OFFICIAL, find_isic2016_pairs, isic2016_layout, isic_id, pair_by_isic_id)
from labkit.data.pipeline import segmentation_dataset
from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
from labkit.errors import LabkitInputError

LAYOUTS = {"official": OFFICIAL, "kaggle": KAGGLE}
IDS = [7, 123, 4, 99, 50, 1000001, 2016]


def _write_pair(image_dir, mask_dir, number, size=(40, 30), mask_name="{id}_Segmentation.png"):
    """An image whose red channel encodes `number`, and a mask with a square in a column set by `number`."""
    name = f"ISIC_{number:07d}"
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 2] = 20 * (IDS.index(number) + 1)  # BGR: red channel
    mask = np.zeros((height, width), np.uint8)
    column = 4 * IDS.index(number)
    mask[2:6, column:column + 4] = 255
    cv2.imwrite(str(image_dir / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(mask_dir / mask_name.format(id=name)), mask)


def _make(root, layout="official", splits=("train", "test"), ids=IDS):
    folders = {}
    for split in splits:
        image_dir, mask_dir = (root / name for name in LAYOUTS[layout][split])
        image_dir.mkdir(parents=True)
        mask_dir.mkdir(parents=True)
        folders[split] = (image_dir, mask_dir)
        shuffled = list(ids)
        random.Random(3).shuffle(shuffled)  # written in an order unrelated to the ids
        for number in shuffled:
            _write_pair(image_dir, mask_dir, number)
        for junk in ("readme.txt", "metadata.csv", ".DS_Store", "Thumbs.db"):
            (image_dir / junk).write_text("not an image")
            (mask_dir / junk).write_text("not an image")
        cv2.imwrite(str(image_dir / f"ISIC_{ids[0]:07d}_superpixels.png"), np.zeros((4, 4), np.uint8))
    return folders


@pytest.mark.parametrize("layout", ["official", "kaggle"])
def test_pairs_follow_the_isic_id_through_the_pipeline(tmp_path, layout):
    _make(tmp_path, layout)
    for split in ("train", "test"):
        pairs = find_isic2016_pairs(tmp_path, split)
        assert [isic_id(image) for image, _ in pairs] == [f"ISIC_{n:07d}" for n in sorted(IDS)]
        assert all(isic_id(image) == isic_id(mask) for image, mask in pairs)
        images, masks = next(iter(segmentation_dataset(pairs, (30, 40), len(pairs), channels=3)))
        for image, mask in zip(images.numpy(), masks.numpy()):
            index = round(image[..., 0].mean() * 255 / 20) - 1  # the id's position in IDS, from the red level
            columns = np.flatnonzero(mask[..., 0].any(axis=0))
            assert columns.tolist() == list(range(4 * index, 4 * index + 4))


def test_layout_is_found_one_folder_down_and_named(tmp_path):
    _make(tmp_path / "ISIC2016", "official", splits=("train",))
    layout, folders = isic2016_layout(tmp_path)
    assert layout == "official" and set(folders) == {"train"}
    with pytest.raises(LabkitInputError, match="no test images"):
        find_isic2016_pairs(tmp_path, "test")


@pytest.mark.parametrize("value, foreground", [(0, 0.0), (127, 0.0), (128, 1.0), (255, 1.0)])
def test_masks_are_foreground_above_127(tmp_path, value, foreground):
    folders = _make(tmp_path, "kaggle", splits=("train",), ids=[7])
    mask_path = folders["train"][1] / "ISIC_0000007_Segmentation.png"
    cv2.imwrite(str(mask_path), np.full((30, 40), value, np.uint8))
    _, masks = next(iter(segmentation_dataset(find_isic2016_pairs(tmp_path), (30, 40), 1, channels=3)))
    assert np.unique(masks.numpy()).tolist() == [foreground]


@pytest.mark.parametrize("size", [(50, 37), (37, 50), (2816 // 32, 2112 // 32)])
def test_images_of_any_size_are_resized_to_the_input(tmp_path, size):
    image_dir, mask_dir = tmp_path / "train", tmp_path / "train_masks"
    image_dir.mkdir()
    mask_dir.mkdir()
    _write_pair(image_dir, mask_dir, 7, size=size)
    images, masks = next(iter(segmentation_dataset(find_isic2016_pairs(tmp_path), 32, 1, channels=3)))
    assert images.shape == (1, 32, 32, 3) and masks.shape == (1, 32, 32, 1)


@pytest.mark.parametrize("mask_name", ["{id}_Segmentation.png", "{id}_segmentation.png", "{id}.png"])
def test_mask_name_variants_pair(tmp_path, mask_name):
    image_dir, mask_dir = tmp_path / "img", tmp_path / "msk"
    image_dir.mkdir()
    mask_dir.mkdir()
    _write_pair(image_dir, mask_dir, 123, mask_name=mask_name)
    assert [(i.name, m.name) for i, m in pair_by_isic_id(image_dir, mask_dir)] == [
        ("ISIC_0000123.jpg", mask_name.format(id="ISIC_0000123"))]


@pytest.mark.parametrize("damage, message", [
    (lambda img, msk: (msk / "ISIC_0000007_Segmentation.png").unlink(), "1 image.*without a mask.*ISIC_0000007.jpg"),
    (lambda img, msk: (img / "ISIC_0000004.jpg").unlink(), "1 mask.*without an image.*ISIC_0000004_Segmentation"),
    (lambda img, msk: cv2.imwrite(str(msk / "ISIC_0000007.png"), np.zeros((3, 3), np.uint8)),
     "two masks for ISIC_0000007"),
    (lambda img, msk: cv2.imwrite(str(img / "holiday.jpg"), np.zeros((3, 3), np.uint8)),
     "without an ISIC id.*holiday.jpg"),
])
def test_broken_sets_name_the_file_at_fault(tmp_path, damage, message):
    folders = _make(tmp_path, "official", splits=("train",))
    damage(*folders["train"])
    with pytest.raises(LabkitInputError, match=message):
        find_isic2016_pairs(tmp_path)


def test_a_folder_without_the_layout_lists_what_is_there(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(LabkitInputError, match="ISIC 2016 Part 1 layout.*found images/, labels/"):
        find_isic2016_pairs(tmp_path)


def test_embedded_set_is_deterministic_paired_and_learnable(tmp_path):
    first = dermoscopy_dataset(n_train=9, n_test=3, size=64, root=tmp_path / "a")
    second = dermoscopy_dataset(n_train=9, n_test=3, size=64, root=tmp_path / "b")
    train, test = find_isic2016_pairs(first, "train"), find_isic2016_pairs(first, "test")
    assert (len(train), len(test)) == (9, 3)
    assert len({isic_id(p[0]) for p in train + test}) == 12
    for image, mask in train + test:
        twin = second / image.parent.name / image.name
        assert filecmp.cmp(image, twin, shallow=False)
        assert filecmp.cmp(mask, second / mask.parent.name / mask.name, shallow=False)
    sizes, fractions = set(), []
    for image_path, mask_path in train + test:
        image = cv2.imread(str(image_path)).astype(float).mean(axis=2)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(mask)) <= {0, 255}
        sizes.add(image.shape)
        fractions.append((mask > 127).mean())
        lesion, skin = image[mask > 127].mean(), image[mask <= 127].mean()
        assert lesion < skin - 10, image_path.name  # pigment darker than the skin around it: learnable
    assert sizes == {(48, 64), (60, 80)}  # two image sizes: the pipeline must resize
    assert 0.01 < min(fractions) and max(fractions) < 0.6 and np.std(fractions) > 0.02  # varied lesion size


def _square_batch():
    masks = np.zeros((6, 32, 32, 1), np.float32)
    masks[:, 8:20, 10:26] = 1.0
    return np.repeat(masks, 3, axis=-1) * 0.8 + 0.1, masks


def test_lesion_augment_moves_image_and_mask_together():
    images, masks = _square_batch()
    augment = LesionAugment({"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}, seed=3)
    out_images, out_masks = (t.numpy() for t in augment(tf.constant(images), tf.constant(masks)))
    assert set(np.unique(out_masks)) == {0.0, 1.0}
    disagreement = np.mean((out_images[..., :1] > 0.5) != (out_masks > 0.5))
    assert disagreement < 0.03  # only boundary pixels (bilinear image vs nearest mask) may differ
    assert len({round(float(m.mean()), 3) for m in out_masks}) > 3  # each sample got its own crop/rotation


def test_lesion_augment_jitters_colour_on_images_only():
    images, masks = _square_batch()
    augment = LesionAugment({"crop_scale": None, "horizontal_flip": False, "vertical_flip": False,
                             "rotation_range": 0, "brightness": 0.3, "contrast": 0.3}, seed=5)
    out_images, out_masks = (t.numpy() for t in augment(tf.constant(images), tf.constant(masks)))
    assert np.array_equal(out_masks, masks)
    assert np.abs(out_images - images).mean() > 0.01
    assert out_images.min() >= 0.0 and out_images.max() <= 1.0


def test_lesion_augment_runs_in_tf_data_with_fresh_draws_each_epoch():
    images, masks = _square_batch()
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(6).map(LesionAugment(seed=1))
    first, second = (next(iter(dataset))[1].numpy() for _ in range(2))
    assert first.shape == (6, 32, 32, 1) and not np.array_equal(first, second)


def test_lesion_augment_refuses_unknown_options():
    with pytest.raises(LabkitInputError, match="unknown lesion augmentation option.*zoom"):
        LesionAugment({"zoom": 0.2})
