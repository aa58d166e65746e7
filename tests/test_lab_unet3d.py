"""labs/unet3d_segmentation.py end to end: every output file on the embedded h5 set and on NIfTI pairs, and
one-line errors for bad flags."""

import csv
import json
import shutil
from pathlib import Path

import keras
import nibabel
import numpy as np
import pytest
from conftest import load_lab, run_lab_inprocess
from test_tensorboard import read_events

from labkit.callbacks.tensorboard_images import GAP, IMAGES_RUN
from labkit.evaluation import asd, evaluate_volumes, hd95

LAB = "unet3d_segmentation"
TINY = ["--base", 4, "--depth", 2, "--epochs", 2, "--batch-size", 4, "--quiet"]
RUN_FILES = ("config.json", "history.csv", "metrics.json", "per_case.csv", "curves.png", "slices.png",
             "surface.png", "model.keras")


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_embedded_run_writes_every_file(tmp_path, lab_runner, adam_instances):
    code, out, err = lab_runner(LAB, ["--out", tmp_path / "run", "--patch", 32, 32, 16, *TINY, "--tensorboard",
                                      "--lr-schedule", "cosine"])
    assert code == 0, err
    assert "demo profile" in out and "--data-dir" in out and "(cosine schedule), precise BatchNorm statistics" in out
    # the warm-up + cosine spans the whole run: 2 epochs of the steps the lab printed
    steps = int(out.split(" steps of ")[0].rsplit(" ", 1)[-1])
    schedule = adam_instances[-1]._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.warmup_steps + schedule.decay_steps == 2 * steps and schedule.warmup_target == 1e-3
    run = tmp_path / "run"
    for name in RUN_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    rows = read_rows(run / "per_case.csv")
    assert len(rows) == 3  # the embedded set's test.list
    assert list(rows[0]) == ["case", "dice", "jaccard", "asd_vox", "hd95_vox", "asd_mm", "hd95_mm"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["train_seconds"] > 0
    assert {"best", "final", "test"} <= set(metrics)
    dice = [float(r["dice"]) for r in rows]
    assert metrics["test"]["dice"]["mean"] == pytest.approx(np.mean(dice))
    assert metrics["test"]["cases"] == 3 and metrics["test"]["inference"] == "sliding"
    config = json.loads((run / "config.json").read_text())["settings"]
    assert config["patch"] == [32, 32, 16] and config["lr"] == 1e-3 and config["demo"] is True
    assert config["lr_schedule"] == "cosine" and config["precise_bn"] is True
    model = keras.saving.load_model(run / "model.keras")
    assert model.input_shape == (None, 32, 32, 16, 1)
    strips = read_events(run / "tensorboard" / IMAGES_RUN)  # --tensorboard: middle slices of validation patches
    assert 1 <= len(strips) <= 3
    for steps in strips.values():
        assert [step for step, _ in steps] == [0, 1]
        assert steps[-1][1].shape == (32, 4 * 32 + 3 * GAP, 3)


@pytest.mark.slow
def test_surface_distances_of_a_real_run_are_in_the_spacing_given(tmp_path, lab_runner):
    # A real tiny run, nothing patched: its per_case.csv against medpy on the saved model's own masks, predicted here
    # on the central patch of each test volume read straight from its h5 file. The embedded files record their voxel
    # size (0.625 × 0.625 × 1.25 mm); this copy drops it, as the UA-MT files have none, so --spacing 1.5 2 3 is the
    # only source of the mm columns (three different sizes, so an axis taken for another shows).
    import h5py
    from medpy.metric import binary

    from labkit.data.synthetic.atrium import atrium_dataset

    data = Path(shutil.copytree(atrium_dataset(12, 3, (64, 64, 32)), tmp_path / "data"))
    for file in data.glob("*/mri_norm2.h5"):
        with h5py.File(file, "a") as volume:
            del volume.attrs["spacing"]
    patch, spacing = (32, 32, 16), (1.5, 2.0, 3.0)
    code, _, err = lab_runner(LAB, ["--data-dir", data, "--out", tmp_path / "run", "--patch", *patch, *TINY,
                                    "--patches-per-volume", 6, "--inference", "centre", "--spacing", *spacing])
    assert code == 0, err
    run = tmp_path / "run"
    model = keras.saving.load_model(run / "model.keras")
    rows = read_rows(run / "per_case.csv")
    assert [row["case"] for row in rows] == (data / "test.list").read_text().split()
    for row in rows:
        with h5py.File(data / row["case"] / "mri_norm2.h5", "r") as volume:
            image, label = volume["image"][()], volume["label"][()]
        block = tuple(slice(n // 2 - p // 2, n // 2 - p // 2 + p) for n, p in zip(image.shape, patch))
        mask = model.predict(image[block][None, ..., None].astype(np.float32), verbose=0)[0, ..., 0] > 0.5
        reference = label[block] > 0
        assert 0 < mask.sum() < mask.size and reference.any()  # a real, imperfect mask: every distance finite
        dice = 2 * (mask & reference).sum() / (mask.sum() + reference.sum())
        assert float(row["dice"]) == pytest.approx(dice, rel=1e-6)
        for name in ("hd95", "asd"):  # medpy's asd is directed result → reference, as labkit's
            in_mm, in_vox = (getattr(binary, name)(mask, reference, voxelspacing=s) for s in (spacing, None))
            assert float(row[f"{name}_mm"]) == pytest.approx(in_mm, rel=1e-6)
            assert float(row[f"{name}_vox"]) == pytest.approx(in_vox, rel=1e-6)
            assert in_mm >= 1.5 * in_vox  # voxels of 1.5 mm or more: mm and voxel columns cannot be confused


def write_nifti_set(folder, n_cases=5, shape=(20, 20, 12), zooms=(0.8, 0.8, 1.6)):
    rng = np.random.default_rng(0)
    grid = np.indices(shape)
    for i in range(n_cases):
        centre = rng.uniform(7, 13, 3) * np.array([1, 1, 0.6])
        label = (sum(((g - c) / 4.0) ** 2 for g, c in zip(grid, centre)) <= 1).astype(np.uint8)
        image = 200 + 100 * label + rng.normal(0, 20, shape)
        for sub, data in (("imagesTr", image.astype(np.float32)), ("labelsTr", label)):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            volume = nibabel.Nifti1Image(data, np.diag([*zooms, 1.0]))
            volume.header.set_zooms(zooms)
            nibabel.save(volume, str(folder / sub / f"la_{i:03d}.nii.gz"))


@pytest.mark.slow
def test_nifti_run_with_centre_inference_dice_loss_and_augmentation(tmp_path, monkeypatch, capsys):
    write_nifti_set(tmp_path / "data")
    argv = ["--data-dir", tmp_path / "data", "--out", tmp_path / "run", "--patch", 16, 16, 8, *TINY, "--epochs", 1,
            "--loss", "dice", "--augment", "--no-batchnorm",
            "--inference", "centre", "--test-split", 0.4, "--val-split", 0.34]
    # One epoch leaves the network's masks empty (every distance inf), which would make the mm check vacuous: the
    # evaluated prediction is the reference shifted one voxel along z (1.6 mm), so every distance is finite.
    lab = load_lab(LAB)
    real_predict, shifted = lab.predict_case, {}

    def predict_shifted(model, case, *options):
        _, reference = real_predict(model, case, *options)  # the lab's own centre inference still runs
        shifted[case.name] = np.roll(reference, 1, axis=2).astype(np.float32)
        return shifted[case.name], reference

    monkeypatch.setattr(lab, "predict_case", predict_shifted)
    code, out, err = run_lab_inprocess(lab, [str(a) for a in argv], capsys)
    assert code == 0, err
    assert "demo profile" not in out and "NIfTI" in out
    run = tmp_path / "run"
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    rows = read_rows(run / "per_case.csv")
    assert len(rows) == 2
    assert sorted(r["case"] for r in rows) == sorted(shifted)
    for row in rows:  # mm from the header's 0.8 × 0.8 × 1.6 voxels; voxel units from unit spacing
        reference = np.roll(shifted[row["case"]], -1, axis=2) > 0.5
        prediction = shifted[row["case"]] > 0.5
        for name, measure in (("hd95", hd95), ("asd", asd)):
            in_mm, in_vox = measure(prediction, reference, (0.8, 0.8, 1.6)), measure(prediction, reference)
            assert 0 < in_vox < float("inf") and 0 < in_mm < float("inf") and abs(in_mm - in_vox) > 0.01 * in_vox
            assert float(row[f"{name}_mm"]) == pytest.approx(in_mm, rel=1e-4)
            assert float(row[f"{name}_vox"]) == pytest.approx(in_vox, rel=1e-4)
    config = json.loads((run / "config.json").read_text())["settings"]
    assert config["lr"] == 1e-5 and config["loss"] == "dice"  # the course's Dice-loss learning rate
    assert config["lr_schedule"] == "constant"
    assert config["batchnorm"] is False and config["augment"] is True
    model = keras.saving.load_model(run / "model.keras")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["inference"] == "centre"


def test_evaluation_matches_the_lab_table_columns():
    """The lab's per_case.csv columns come from evaluate_volumes with a known spacing."""
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    rows, _ = evaluate_volumes([mask], [mask], spacing=(1, 1, 1), names=["a"])
    assert list(rows[0]) == ["case", "dice", "jaccard", "asd_vox", "hd95_vox", "asd_mm", "hd95_mm"]


@pytest.mark.parametrize("argv, message", [
    (["--patch", 30, 32, 16, "--depth", 4], "--patch 30 32 16 is not divisible by 2^4"),
    (["--patch", 32, 32, 12, "--depth", 3], "--patch 32 32 12 is not divisible by 2^3"),
    (["--img-size", 64], "--img-size does not apply"),
    (["--overlap", 1.0], "--overlap must be in [0, 1)"),
    (["--loss", "focal"], "invalid choice"),
    (["--patch", 32, 32], "--patch"),
])
def test_bad_flags_are_one_line_errors(tmp_path, lab_runner, argv, message):
    code, out, err = lab_runner(LAB, ["--out", tmp_path / "run", "--quiet", *argv])
    assert code == 2
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing created for a run that could not start


def test_folder_in_no_known_layout_is_an_error(tmp_path, lab_runner):
    (tmp_path / "data" / "random").mkdir(parents=True)
    code, _, err = lab_runner(LAB, ["--data-dir", tmp_path / "data", "--out", tmp_path / "run", *TINY])
    assert code == 2 and "holds neither the LA 2018" in err and "imagesTr/labelsTr" in err and "random" in err
    code, _, err = lab_runner(LAB, ["--data-dir", tmp_path / "missing", "--out", tmp_path / "run2", *TINY])
    assert code == 2 and err.strip() == f"error: folder not found: {tmp_path / 'missing'}"
