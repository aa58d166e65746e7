"""Soft Dice, thresholded Dice/IoU and the Dice losses on hand-made masks; saving and reloading a compiled model."""

import keras
import numpy as np
import pytest

from labkit import BCEDiceLoss, DiceLoss, dice_coef, dice_coef_loss, get_unet, iou_coef, thresholded_dice
from labkit.losses import segmentation_loss

ONES = np.ones((1, 4, 4, 1), np.float32)
LEFT = np.zeros((1, 4, 4, 1), np.float32)
LEFT[:, :, :2] = 1
RIGHT = 1 - LEFT
TOP_LEFT = np.zeros((1, 4, 4, 1), np.float32)
TOP_LEFT[:, :2, :2] = 1


@pytest.mark.parametrize(
    "y_true, y_pred, expected",
    [
        (LEFT, LEFT, 1.0),  # perfect
        (LEFT, RIGHT, 0.0),  # disjoint (up to the smoothing term)
        (LEFT, TOP_LEFT, 2 * 4 / (8 + 4)),  # half of the reference covered
        (LEFT, ONES, 2 * 8 / (8 + 16)),  # over-segmentation
        (LEFT, LEFT * 0.5, 2 * 4 / (8 + 4)),  # soft: probabilities are not thresholded
        (np.zeros_like(LEFT), np.zeros_like(LEFT), 1.0),  # both empty: smooth / smooth
    ],
)
def test_dice_coef_hand_values(y_true, y_pred, expected):
    assert float(dice_coef(y_true, y_pred)) == pytest.approx(expected, abs=1e-6)
    assert float(dice_coef_loss(y_true, y_pred)) == pytest.approx(1 - expected, abs=1e-6)


def test_dice_coef_is_over_the_whole_batch_not_a_mean_of_images():
    y_true = np.concatenate([LEFT, LEFT])
    y_pred = np.concatenate([LEFT, np.zeros_like(LEFT)])  # image 1 perfect, image 2 empty
    assert float(dice_coef(y_true, y_pred)) == pytest.approx(2 * 8 / (16 + 8))  # not (1 + 0) / 2


def test_float16_inputs_do_not_overflow():
    big = np.ones((8, 256, 256, 1), np.float16)  # sums to 524288 > float16 max 65504
    assert float(dice_coef(big, big)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "y_pred, dice, iou",
    [
        (LEFT * 0.9, 1.0, 1.0),
        (LEFT * 0.4, 0.0, 0.0),  # below the threshold: nothing predicted
        (TOP_LEFT * 0.7, 2 * 4 / 12, 4 / 8),
        (ONES * 0.6, 2 * 8 / 24, 8 / 16),
    ],
)
def test_thresholded_dice_and_iou(y_pred, dice, iou):
    assert float(thresholded_dice(LEFT, y_pred)) == pytest.approx(dice, abs=1e-6)
    assert float(iou_coef(LEFT, y_pred)) == pytest.approx(iou, abs=1e-6)


def test_dice_loss_from_logits_applies_a_sigmoid():
    logits = np.where(LEFT > 0, 3.0, -3.0).astype(np.float32)
    expected = 1 - float(dice_coef(LEFT, 1 / (1 + np.exp(-logits))))
    assert float(DiceLoss(from_logits=True)(LEFT, logits)) == pytest.approx(expected, abs=1e-6)


def test_bce_dice_loss_is_the_weighted_sum():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.05, 0.95, LEFT.shape).astype(np.float32)
    bce = -np.mean(LEFT * np.log(probs) + (1 - LEFT) * np.log(1 - probs))
    dice = 2 * np.sum(LEFT * probs) / (LEFT.sum() + probs.sum())
    loss = BCEDiceLoss(bce_weight=0.5, dice_weight=2.0)(LEFT, probs)
    assert float(loss) == pytest.approx(0.5 * bce + 2.0 * (1 - dice), rel=1e-4)


def test_unknown_loss_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown loss 'hinge2'"):
        segmentation_loss("hinge2")


def test_dice_loss_config_round_trip():
    loss = DiceLoss(smooth=0.5, from_logits=True)
    clone = DiceLoss.from_config(loss.get_config())
    assert (clone.smooth, clone.from_logits) == (0.5, True)


@pytest.mark.parametrize("loss", [dice_coef_loss, DiceLoss(), BCEDiceLoss()])
def test_saved_model_reloads_with_plain_load_model(tmp_path, loss):
    model = get_unet((16, 16, 1), base=2)
    model.compile(optimizer="adam", loss=loss, metrics=[dice_coef, iou_coef])
    x = np.random.default_rng(1).random((4, 16, 16, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")  # no custom_objects
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5)


def test_hinge_is_a_lab_loss_name_with_the_svm_value():
    from labkit.losses import get_loss

    labels, scores = np.array([[1.0], [-1.0], [1.0]]), np.array([[0.5], [0.5], [2.0]])
    # mean of max(0, 1 − y·s): (0.5 + 1.5 + 0) / 3
    assert float(get_loss("hinge")(labels, scores)) == pytest.approx(2.0 / 3.0, abs=1e-6)
