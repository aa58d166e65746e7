"""Boundary weight maps (labkit.data.weight_maps) against SciPy morphology, and the pixel-weighted losses."""

import json

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

import keras
from labkit.data.weight_maps import boundary_map, disk_rectangles, weight_map, with_weight_maps
from labkit.losses import PixelWeightedLoss, pixel_weighted_loss, weighted_dice_coef
from labkit.metrics import dice_coef


def scipy_disk(radius):
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x**2 + y**2 <= radius**2


def scipy_boundary(mask, radius):
    """dilation − erosion with SciPy; pixels outside the image neither grow nor erode the mask."""
    disk = scipy_disk(radius)
    grown = ndimage.binary_dilation(mask, structure=disk, border_value=0)
    shrunk = ndimage.binary_erosion(mask, structure=disk, border_value=1)
    return grown & ~shrunk


def hand_made_masks():
    square = np.zeros((16, 16), bool)
    square[5:11, 4:12] = True
    dot = np.zeros((16, 16), bool)
    dot[8, 8] = True
    corner = np.zeros((16, 16), bool)  # touches two image borders
    corner[:6, :5] = True
    ring = np.zeros((16, 16), bool)
    ring[2:14, 2:14] = True
    ring[6:10, 6:10] = False
    thin = np.zeros((16, 16), bool)
    thin[3:13, 7] = True
    return {"square": square, "dot": dot, "corner": corner, "ring": ring, "thin": thin,
            "empty": np.zeros((16, 16), bool), "full": np.ones((16, 16), bool)}


def test_disk_rectangles_cover_exactly_the_disk():
    for radius in range(5):
        union = np.zeros((2 * radius + 1,) * 2, bool)
        for height, width in disk_rectangles(radius):
            dy, dx = height // 2, width // 2
            union[radius - dy:radius + dy + 1, radius - dx:radius + dx + 1] = True
        assert (union == scipy_disk(radius)).all(), radius


@pytest.mark.parametrize("name", list(hand_made_masks()))
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_boundary_equals_scipy_dilation_minus_erosion(name, radius):
    mask = hand_made_masks()[name]
    ours = boundary_map(mask[None, ..., None].astype(np.float32), radius).numpy()[0, ..., 0]
    np.testing.assert_array_equal(ours, scipy_boundary(mask, radius).astype(np.float32))


def test_weight_map_course_settings_on_a_square():
    mask = hand_made_masks()["square"]
    weights = weight_map(mask[..., None].astype(np.float32), strength=1.5).numpy()[..., 0]  # unbatched (h, w, 1)
    expected = 1.0 + 1.5 * scipy_boundary(mask, 2)
    np.testing.assert_array_equal(weights, expected)
    assert weights[8, 8] == 1.0 and weights[0, 0] == 1.0 and weights[5, 4] == 2.5  # inside, far outside, corner


def test_per_class_boundary_is_the_union_of_the_classes_boundaries():
    left, right = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
    left[4:12, 1:7] = True
    right[4:12, 9:15] = True
    one_hot = np.stack([~(left | right), left, right], -1).astype(np.float32)
    ours = boundary_map(one_hot[None]).numpy()[0, ..., 0]
    expected = scipy_boundary(~(left | right), 2) | scipy_boundary(left, 2) | scipy_boundary(right, 2)
    np.testing.assert_array_equal(ours, expected)


def test_dataset_yields_image_mask_weight():
    masks = np.stack([m for m in hand_made_masks().values()])[..., None].astype(np.float32)
    images = np.random.default_rng(0).random(masks.shape, dtype=np.float32)
    dataset = with_weight_maps(tf.data.Dataset.from_tensor_slices((images, masks)).batch(3), strength=1.5)
    batches = list(dataset)
    assert [len(b) for b in batches] == [3, 3, 3]
    image, mask, weight = batches[0]
    np.testing.assert_array_equal(image.numpy(), images[:3])
    np.testing.assert_array_equal(weight.numpy()[1, ..., 0], 1.0 + 1.5 * scipy_boundary(masks[1, ..., 0] > 0, 2))


def _tensors(seed=0, channels=1):
    rng = np.random.default_rng(seed)
    y = (rng.random((2, 8, 8, channels)) > 0.5).astype(np.float32)
    p = np.clip(0.6 * y + 0.4 * rng.random(y.shape), 0.01, 0.99).astype(np.float32)
    w = (1.0 + 1.5 * (rng.random((2, 8, 8, 1)) > 0.7)).astype(np.float32)
    return y, p, w


def test_weighted_dice_by_hand_and_without_weights():
    y = np.array([1, 1, 0, 0], np.float32).reshape(1, 2, 2, 1)
    p = np.array([1.0, 0.5, 0.5, 0.0], np.float32).reshape(1, 2, 2, 1)
    w = np.array([1.0, 2.5, 2.5, 1.0], np.float32).reshape(1, 2, 2, 1)
    # Σw·y·p = 1 + 1.25 = 2.25; Σw·y = 3.5; Σw·p = 1 + 1.25 + 1.25 = 3.5 → 4.5 / 7
    assert float(weighted_dice_coef(y, p, w, smooth=0.0)) == pytest.approx(4.5 / 7, abs=1e-6)
    y, p, _ = _tensors()
    assert float(weighted_dice_coef(y, p, np.ones_like(y))) == pytest.approx(float(dice_coef(y, p)), abs=1e-6)


def test_pixel_weighted_losses_against_keras_and_by_hand():
    y, p, w = _tensors()
    # Cross-entropy: exactly Keras's own per-pixel sample weighting (mean over pixels of w·BCE)
    keras_bce = keras.losses.BinaryCrossentropy()(y, p, sample_weight=w)
    assert float(PixelWeightedLoss("bce")(y, p, sample_weight=w)) == pytest.approx(float(keras_bce), rel=1e-5)
    # Dice: the weights inside the sums, not a scale of the unweighted value
    weighted = float(PixelWeightedLoss("dice")(y, p, sample_weight=w))
    assert weighted == pytest.approx(1.0 - float(weighted_dice_coef(y, p, w)), abs=1e-6)
    assert weighted != pytest.approx(float(np.mean(w)) * (1.0 - float(dice_coef(y, p))), abs=1e-3)
    both = float(PixelWeightedLoss("bce+dice")(y, p, sample_weight=w))
    assert both == pytest.approx(float(keras_bce) + weighted, rel=1e-5)
    # no weights: the unweighted losses
    assert float(pixel_weighted_loss("dice_coef_loss")(y, p)) == pytest.approx(1.0 - float(dice_coef(y, p)), abs=1e-6)
    y3, p3, w3 = _tensors(1, channels=3)
    p3 = p3 / p3.sum(-1, keepdims=True)
    keras_ce = keras.losses.CategoricalCrossentropy()(y3, p3, sample_weight=w3)
    assert float(pixel_weighted_loss("ce")(y3, p3, sample_weight=w3)) == pytest.approx(float(keras_ce), rel=1e-5)
    per_class = np.mean([float(weighted_dice_coef(y3[..., c:c + 1], p3[..., c:c + 1], w3)) for c in range(3)])
    loss = pixel_weighted_loss("dice", channels=3)
    assert float(loss(y3, p3, sample_weight=w3)) == pytest.approx(1.0 - per_class, abs=1e-6)


def test_fit_hands_the_weight_map_to_the_loss():
    """Model.fit on (image, mask, weight) batches: the logged loss is the weighted Dice, the metric unweighted."""
    masks = np.stack([m for m in hand_made_masks().values()][:4])[..., None].astype(np.float32)
    images = masks * 0.8 + 0.1
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=PixelWeightedLoss("dice"), metrics=[dice_coef])
    dataset = with_weight_maps(tf.data.Dataset.from_tensor_slices((images, masks)).batch(4))
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False).history
    predictions = model.predict(images, verbose=0)
    weights = weight_map(masks).numpy()
    assert history["loss"][0] == pytest.approx(1.0 - float(weighted_dice_coef(masks, predictions, weights)), abs=1e-4)
    assert history["dice_coef"][0] == pytest.approx(float(dice_coef(masks, predictions)), abs=1e-4)


def test_weight_map_figure_and_loss_round_trip(tmp_path):
    from labkit.plots import weight_map_figure

    masks = np.stack([hand_made_masks()["square"], hand_made_masks()["ring"]])[..., None].astype(np.float32)
    figure = weight_map_figure(masks, masks, weight_map(masks).numpy(), title="weights", save_to=tmp_path / "w.png")
    assert len(figure.axes) == 2 * 3 + 2  # three panels per row plus a colour bar per row
    assert (tmp_path / "w.png").stat().st_size > 1000
    loss = keras.losses.deserialize(keras.losses.serialize(PixelWeightedLoss("bce+dice", per_class=True)))
    assert (loss.kind, loss.per_class) == ("bce+dice", True)


def test_get_loss_maps_names_to_pixel_weighted_losses():
    from labkit.losses import get_loss

    assert get_loss("dice", pixel_weights=True).kind == "dice"
    assert get_loss("dice", channels=3, pixel_weights=True).per_class
    assert get_loss("categorical_crossentropy", pixel_weights=True).kind == "ce"
    with pytest.raises(ValueError, match="no pixel-weighted form of loss 'focal'"):
        get_loss("focal", pixel_weights=True)


# --- Lab 5 end to end ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_lab5_weight_maps_run_trains_on_the_weighted_loss(lab_runner, tmp_path):
    """``--weight-maps``: weight_map.png and every lab file; the validation loss Keras logged is the weighted Dice
    loss of the trained model (one epoch, one validation batch), so the weight maps reached the loss."""
    from labkit.data.layouts.ct_mri import CT_LEVELS, load_class_slices
    from labkit.data.synthetic import ct_dataset
    from labkit.run_folder import read_csv

    ct_dir = ct_dataset(n_patients=4, n_slices=3, size=32, root=tmp_path / "ct")
    out = tmp_path / "run"
    code, _, stderr = lab_runner("lab5_segmentation", [
        "--task", "ct", "--data-dir", ct_dir, "--out", out, "--weight-maps", "--weight-strength", "1.5",
        "--img-size", "32", "--epochs", "1", "--base", "4", "--batch-size", "4", "--precision", "float32", "--quiet"])
    assert code == 0, stderr
    for name in ("weight_map.png", "config.json", "history.csv", "metrics.json", "curves.png", "samples.png",
                 "per_image.csv", "model.keras"):
        assert (out / name).is_file(), name
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["weight_maps"], settings["weight_strength"]) == (True, 1.5)
    val = [ct_dir / "Image" / r["item"] for r in read_csv(out / "split.csv") if r["split"] == "val"]
    assert 0 < len(val) <= 4
    images, masks = load_class_slices([(p, ct_dir / "Mask" / p.name) for p in val], 32, CT_LEVELS, one_hot=False)
    predictions = keras.saving.load_model(out / "model.keras").predict(images, verbose=0)
    weighted = 1.0 - float(weighted_dice_coef(masks, predictions, weight_map(masks, 1.5)))
    assert float(read_csv(out / "history.csv")[0]["val_loss"]) == pytest.approx(weighted, abs=1e-4)
    assert abs(weighted - (1.0 - float(dice_coef(masks, predictions)))) > 1e-3  # unweighted would be another value


def test_lab5_negative_weight_strength_is_one_error_line(lab_runner, tmp_path):
    code, _, stderr = lab_runner("lab5_segmentation", ["--weight-maps", "--weight-strength", "-1", "--out",
                                                       tmp_path / "x", "--quiet"])
    assert code == 2 and "--weight-strength" in stderr and len(stderr.strip().splitlines()) == 1
