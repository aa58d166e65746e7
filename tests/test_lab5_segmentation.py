"""Lab 5: CT mask grey levels, multi-class Dice, the BraTS slicer, and labs/lab5_segmentation.py end to end."""

import json

import cv2
import numpy as np
import pytest

from labkit.data.layouts.ct_mri import (CT_LEVELS, brats_as_course_layout, brats_slices, is_brats_folder,
                                        load_class_slices, mask_classes, patient_of)
from labkit.data.synthetic import ct_dataset, mri_dataset
from labkit import get_unet
from labkit.errors import LabkitInputError
from labkit.evaluation import class_channels, per_image_class_scores
from labkit.history import monitor_mode
from labkit.losses import MultiClassDiceLoss, get_loss
from labkit.metrics import class_dice, multiclass_dice
from labkit.models.heads import with_sigmoid_heads
from labkit.run_folder import read_csv

TINY = ["--img-size", "32", "--epochs", "1", "--base", "4", "--batch-size", "4", "--quiet"]
#: The course's two lung levels as 8-bit mask values: ≈ 0.98 and ≈ 0.61 after /255.
LEFT, RIGHT = 250, 156


def write_pair(folder, name, image, mask):
    for sub, array in (("Image", image), ("Mask", mask)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / sub / name), np.asarray(array, np.uint8))


def test_mask_levels_become_classes_and_the_binary_union():
    mask = np.array([[0, LEFT, RIGHT, 0], [LEFT, LEFT, RIGHT, RIGHT]]) / 255.0
    assert mask_classes(mask, list(CT_LEVELS.values())).tolist() == [[0, 1, 2, 0], [1, 1, 2, 2]]


def test_load_class_slices_binarises_and_one_hot_codes_both_lungs(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[1:4, 1:3], mask[1:4, 5:7] = RIGHT, LEFT  # 6 pixels each
    write_pair(tmp_path, "Im0_1.png", np.full((8, 8), 90), mask)
    pair = [(tmp_path / "Image" / "Im0_1.png", tmp_path / "Mask" / "Im0_1.png")]
    _, binary = load_class_slices(pair, 8, CT_LEVELS, one_hot=False)
    assert binary.shape == (1, 8, 8, 1) and binary.sum() == 12
    np.testing.assert_array_equal(binary[0, ..., 0], (mask > 0).astype(np.float32))
    _, one_hot = load_class_slices(pair, 8, CT_LEVELS, one_hot=True)
    assert one_hot.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(one_hot[0, ..., 1], mask == LEFT)
    np.testing.assert_array_equal(one_hot[0, ..., 2], mask == RIGHT)
    np.testing.assert_array_equal(one_hot.sum(axis=-1), 1)


@pytest.mark.parametrize("mask_value, shown", [(1, "0.00"), (255, "1.00"), (200, "0.78")])
def test_a_mask_off_the_levels_is_named_with_the_levels_found(tmp_path, mask_value, shown):
    # 0/1 masks (not ×255) would binarise to empty and 0/255 ones would pass as one lung: both are refused
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = mask_value
    write_pair(tmp_path, "Im0_1.png", np.zeros((8, 8)), mask)
    pair = [(tmp_path / "Image" / "Im0_1.png", tmp_path / "Mask" / "Im0_1.png")]
    with pytest.raises(LabkitInputError, match=rf"Im0_1.png holds grey levels {shown} .*not the expected 0.98, 0.61"):
        load_class_slices(pair, 8, CT_LEVELS)


def test_patient_of_reads_course_slice_names():
    assert patient_of("CT/Image/Im12_64.png") == "12" and patient_of("scan_1.png") is None


def test_multiclass_dice_against_hand_worked_values():
    # 1×4 mask, classes [0, 1, 2, 2]; prediction probabilities per pixel (background, class 1, class 2)
    y_true = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]][None]
    y_pred = np.array([[[0.8, 0.2, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]], np.float32)
    # class 0: 2·0.8 / (1 + 1.3) = 0.695652; class 1: 2·0.5 / (1 + 1.7) = 0.370370; class 2: 2·1 / (2 + 1) = 0.666667
    expected = [1.6 / 2.3, 1.0 / 2.7, 2.0 / 3.0]
    for c in range(3):
        assert float(class_dice(y_true, y_pred, channel=c)) == pytest.approx(expected[c], abs=1e-6)
    assert float(multiclass_dice(y_true, y_pred)) == pytest.approx(np.mean(expected), abs=1e-6)
    assert float(multiclass_dice(y_true, y_pred, channels=[1, 2])) == pytest.approx(np.mean(expected[1:]), abs=1e-6)
    loss = get_loss("dice", channels=3)
    assert isinstance(loss, MultiClassDiceLoss)
    assert float(loss(y_true, y_pred)) == pytest.approx(1 - np.mean(expected), abs=1e-6)


def test_per_image_class_scores_treat_a_class_empty_in_both_as_one():
    ref = np.zeros((1, 2, 2, 2), bool)
    pred = ref.copy()
    ref[0, 0, :, 0] = True  # class "left": 2 pixels, predicted 1 of them → 2·1/(2+1)
    pred[0, 0, 0, 0] = True
    (row,) = per_image_class_scores(pred, ref, ["left", "right"], names=["a"])
    assert row == {"name": "a", "dice_left": pytest.approx(2 / 3), "dice_right": 1.0,
                   "dice_mean": pytest.approx((2 / 3 + 1) / 2)}


def test_brats_slicer_keeps_or_drops_empty_slices(tmp_path):
    nibabel = pytest.importorskip("nibabel")
    flair = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    seg = np.zeros((6, 5, 4), np.uint8)
    seg[1:3, 1:3, 1], seg[2, 2, 2] = 2, 4  # BraTS labels 1, 2, 4: every one is tumour
    case = tmp_path / "BraTS20_Training_001"
    case.mkdir()
    for name, data in (("flair", flair), ("seg", seg)):
        nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), str(case / f"{case.name}_{name}.nii.gz"))
    images, masks, indices = brats_slices(case, "flair")
    assert indices.tolist() == [1, 2] and images.shape == (2, 6, 5) and masks.dtype == np.uint8
    assert masks[0].sum() == 4 and masks[1].sum() == 1 and set(np.unique(masks)) == {0, 1}
    top = np.percentile(flair, 99.5)
    np.testing.assert_allclose(images[0], np.clip(flair[:, :, 1] / top, 0, 1), rtol=1e-6)
    assert brats_slices(case, "flair", keep_empty=True)[2].tolist() == [0, 1, 2, 3]
    with pytest.raises(LabkitInputError, match=r"no \*_t2.nii"):
        brats_slices(case, "t2")
    assert is_brats_folder(tmp_path) and not is_brats_folder(case)
    course = brats_as_course_layout(tmp_path, "flair", root=tmp_path / "home")
    assert sorted(p.name for p in (course / "Mask").iterdir()) == ["Im0_1.png", "Im0_2.png"]
    assert cv2.imread(str(course / "Mask" / "Im0_1.png"), cv2.IMREAD_UNCHANGED).max() == 255


# --- the lab script ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct_dir(tmp_path_factory):
    return ct_dataset(n_patients=4, n_slices=3, size=32, root=tmp_path_factory.mktemp("ct"))


OUTPUTS = ("config.json", "split.csv", "history.csv", "metrics.json", "curves.png", "samples.png", "per_image.csv",
           "model.keras")


def check_run_folder(out, columns, per_image_columns):
    """Every documented file, the history's columns, one per-image row per validation slice."""
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert columns <= set(read_csv(out / "history.csv")[0])
    rows = read_csv(out / "per_image.csv")
    val = [r["item"] for r in read_csv(out / "split.csv") if r["split"] == "val"]
    assert sorted(r["name"] for r in rows) == sorted(val) and per_image_columns <= set(rows[0])
    assert json.loads((out / "metrics.json").read_text())["validation"]["images"] == len(val)
    return json.loads((out / "config.json").read_text())["settings"]


@pytest.mark.slow
def test_ct_lr_with_sigmoid_heads_writes_every_documented_file(lab_runner, tmp_path, ct_dir):
    out = tmp_path / "run"
    code, _, stderr = lab_runner("lab5_segmentation", ["--task", "ct-lr", "--heads", "sigmoid", "--loss", "bce",
                                                       "--data-dir", ct_dir, "--out", out, *TINY])
    assert code == 0, stderr
    settings = check_run_folder(out, {"dice_left", "dice_right", "val_dice_left", "val_dice_right", "val_dice_mean"},
                                {"dice_left", "dice_right", "dice_mean"})
    # with a data folder, Task 2's course settings apply to what the flags leave alone
    assert (settings["lr"], settings["augment"], settings["batchnorm"], settings["dropout"]) == (1e-5, True, True, 0.2)


@pytest.mark.slow
def test_ct_folds_never_split_a_patient_and_each_fold_is_a_full_run(lab_runner, tmp_path, ct_dir):
    out = tmp_path / "folds"
    code, _, stderr = lab_runner("lab5_segmentation", ["--task", "ct", "--data-dir", ct_dir, "--out", out,
                                                       "--folds", "2", *TINY])
    assert code == 0, stderr
    seen = []
    for fold in ("fold-1", "fold-2"):
        settings = check_run_folder(out / fold, {"dice_coef", "precision", "recall", "val_dice_coef", "val_precision",
                                                 "val_recall"}, {"dice", "jaccard", "true_pixels"})
        assert (settings["lr"], settings["augment"], settings["loss"]) == (1e-4, False, "dice")
        split = read_csv(out / fold / "split.csv")
        patients = {s: {patient_of(r["item"]) for r in split if r["split"] == s} for s in ("train", "val")}
        assert patients["train"] and patients["val"] and not patients["train"] & patients["val"]
        seen += [r["item"] for r in split if r["split"] == "val"]
    assert sorted(seen) == sorted(p.name for p in (ct_dir / "Image").iterdir())  # every slice validated once
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["folds"] == 2 and "val_dice_coef" in metrics["std"]["best"] and (out / "folds.csv").is_file()


def test_bad_input_is_one_error_line(lab_runner, tmp_path, ct_dir):
    missing = tmp_path / "nowhere"
    code, _, stderr = lab_runner("lab5_segmentation", ["--data-dir", missing, "--out", tmp_path / "a", "--quiet"])
    assert code == 2 and f"error: data folder not found: {missing}" in stderr
    orphan = tmp_path / "CT"
    for name in ("Im0_1.png", "Im0_2.png"):
        write_pair(orphan, name, np.zeros((32, 32)), np.zeros((32, 32)))
    (orphan / "Image" / "Im0_2.png").unlink()
    code, _, stderr = lab_runner("lab5_segmentation", ["--data-dir", orphan, "--out", tmp_path / "b", "--quiet"])
    assert code == 2 and "mask(s) in" in stderr and "without an image: Im0_2.png" in stderr
    code, _, stderr = lab_runner("lab5_segmentation", ["--task", "ct", "--loss", "ce", "--data-dir", ct_dir,
                                                       "--out", tmp_path / "c", "--quiet"])
    assert code == 2 and "--loss ce needs --task ct-lr" in stderr and not (tmp_path / "c").exists()


def test_precision_and_recall_are_best_when_highest():
    # the course's loss/Dice/precision/recall plot marks its best epoch by the last curve (recall) by default
    assert monitor_mode("val_recall") == "max" and monitor_mode("val_precision") == "max"
    assert monitor_mode("val_loss") == "min" and monitor_mode("hd95") == "min"


def test_class_channels_of_a_softmax_and_of_sigmoid_heads():
    softmax = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    classes, binary = class_channels(softmax)
    assert classes.tolist() == [0, 2, 1] and binary.tolist() == [[False, False], [False, True], [True, False]]
    heads = np.array([[0.2, 0.1], [0.6, 0.9], [0.1, 0.7]])  # overlapping heads show the first in the index map
    classes, binary = class_channels(heads, softmax=False)
    assert classes.tolist() == [0, 1, 2] and binary.tolist() == [[False, False], [True, True], [False, True]]


def test_sigmoid_heads_replace_only_the_output_convolution():
    base = get_unet((32, 32, 1), base=4, n_class=3)
    heads = with_sigmoid_heads(base, 2)
    assert heads.output_shape == (None, 32, 32, 2)
    assert heads.layers[-1].activation.__name__ == "sigmoid"
    # a 1×1 convolution from `base` features: (base + 1) weights per output channel; 3 softmax → 2 sigmoid channels
    assert heads.count_params() == base.count_params() - (4 + 1) * 3 + (4 + 1) * 2


def write_brats_case(folder, number, size=32, depth=6):
    """A BraTS-style case: flair and seg volumes, tumour in slices 2 and 3."""
    import nibabel

    case = folder / f"BraTS20_Training_{number:03d}"
    case.mkdir(parents=True)
    seg = np.zeros((size, size, depth), np.uint8)
    seg[8:16, 8:16, 2:4] = 1
    flair = np.random.default_rng(number).random((size, size, depth)).astype(np.float32) + 2 * seg
    for name, data in (("flair", flair), ("seg", seg)):
        nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), str(case / f"{case.name}_{name}.nii.gz"))


def test_the_mri_task_reads_a_brats_folder_by_case(tmp_path, monkeypatch):
    pytest.importorskip("nibabel")
    from argparse import Namespace

    from conftest import load_lab

    for number in range(5):
        write_brats_case(tmp_path / "brats", number)
    monkeypatch.setenv("LABKIT_DATA_HOME", str(tmp_path / "home"))
    lab = load_lab("lab5_segmentation")
    settings = Namespace(task="mri", data_dir=tmp_path / "brats", modality="flair", keep_empty=False, img_size=16,
                         skip_bad_files=False, val_split=0.2, seed=42, kfold=None, heads="softmax")
    data_dir, pairs, train_pairs, val_pairs, (train_x, train_y), (val_x, val_y) = lab.load_split(settings)
    assert len(pairs) == 10 and data_dir.parent == tmp_path / "home"  # 5 cases × 2 tumour slices, written once
    assert {patient_of(i) for i, _ in val_pairs}.isdisjoint({patient_of(i) for i, _ in train_pairs})
    assert train_x.shape == (8, 16, 16, 1) and val_y.shape == (2, 16, 16, 1) and val_y.sum() > 0
    settings.keep_empty = True
    assert len(lab.load_split(settings)[1]) == 30


def test_help_documents_the_tasks_and_course_defaults(lab_runner):
    code, stdout, _ = lab_runner("lab5_segmentation", ["--help"])
    text = " ".join(stdout.split())
    assert code == 0
    for flag in ("--task", "--loss", "--heads", "--augment", "--no-augment", "--batchnorm", "--modality",
                 "--keep-empty", "--folds", "--data-dir"):
        assert flag in text, flag
    for default in ("course default: 8", "course default: 0.2", "course default: 256", "course default: 50",
                    "course default: 0.0001", "course default: dice", "course default: on"):
        assert default in text, default


def test_embedded_sets_hold_the_course_levels_and_empty_tumour_slices(tmp_path):
    ct = ct_dataset(n_patients=2, n_slices=3, size=64, root=tmp_path / "a")
    levels = {int(v) for p in (ct / "Mask").iterdir() for v in np.unique(cv2.imread(str(p), cv2.IMREAD_UNCHANGED))}
    assert levels == {0, RIGHT, LEFT}
    left = cv2.imread(str(ct / "Mask" / "Im0_1.png"), cv2.IMREAD_UNCHANGED) == LEFT
    assert np.argwhere(left)[:, 1].mean() > 32  # the 0.98 ("left") lung lies on the image's right
    again = ct_dataset(n_patients=2, n_slices=3, size=64, root=tmp_path / "b")
    assert (again / "Image" / "Im1_2.png").read_bytes() == (ct / "Image" / "Im1_2.png").read_bytes()
    mri = mri_dataset(n_patients=1, n_slices=8, size=64, root=tmp_path / "c")
    tumour = [cv2.imread(str(mri / "Mask" / f"Im0_{k}.png"), cv2.IMREAD_UNCHANGED).max() for k in range(8)]
    assert tumour == [0, 0, 255, 255, 255, 255, 0, 0]


@pytest.mark.slow
def test_mri_task_end_to_end_reports_the_tumour_slices_beside_the_course_reference(lab_runner, tmp_path):
    mri_dir = mri_dataset(n_patients=4, n_slices=4, size=32, root=tmp_path / "data")
    out = tmp_path / "mri"
    code, stdout, stderr = lab_runner("lab5_segmentation", ["--task", "mri", "--data-dir", mri_dir, "--out", out,
                                                            *TINY])
    assert code == 0, stderr
    settings = check_run_folder(out, {"dice_coef", "precision", "recall", "val_dice_coef"}, {"dice", "true_pixels"})
    assert settings["task"] == "mri"
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_csv(out / "per_image.csv")
    with_tumour = [r for r in rows if int(r["true_pixels"]) > 0]
    assert 0 < len(with_tumour) < len(rows)  # the end slices of each patient have no tumour
    assert metrics["validation_with_foreground"]["images"] == len(with_tumour)
    assert metrics["validation_with_foreground"]["dice"]["mean"] == pytest.approx(
        np.mean([float(r["dice"]) for r in with_tumour]), abs=1e-4)
    assert "course reference: Dice ≈ 0.96" in stdout
