"""labs/lab4_unet.py as a user runs it: outputs of a tiny run, --help, and one-line errors for bad input."""

import json
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
from conftest import ROOT

from labkit.data import segmentation_dataset
from labkit.data.synthetic import xray_dataset
from labkit.evaluation import per_image_scores
from labkit.inference import collect_predictions
from labkit.run_folder import read_csv

TINY = ["--img-size", "32", "--epochs", "2", "--base", "4", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def xray_dir(tmp_path_factory):
    return xray_dataset(n_images=10, size=64, root=tmp_path_factory.mktemp("xray"))


@pytest.mark.slow
def test_tiny_run_writes_every_output_and_the_model_reproduces_its_numbers(lab_runner, tmp_path):
    # 40 images at 32 px, BCE, 6 epochs at lr 1e-2: a model that segments (Dice ≈ 0.9), so the reload check below
    # compares masks that depend on the weights (a near-constant model would pass any reload)
    xray_dir, out = xray_dataset(n_images=40, size=32, root=tmp_path / "data"), tmp_path / "run"
    code, stdout, stderr = lab_runner("lab4_unet", ["--data-dir", xray_dir, "--out", out, "--loss", "bce", *TINY,
                                                    "--epochs", "6", "--lr", "1e-2"])
    assert code == 0, stderr
    for name in ("config.json", "history.csv", "metrics.json", "curves.png", "samples.png", "model.keras",
                 "per_image.csv"):
        assert (out / name).is_file(), name
    history = read_csv(out / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "dice_coef", "val_loss", "val_dice_coef"} <= set(history[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 6 and metrics["final"]["epoch"] == 6
    assert metrics["best"]["val_dice_coef"] == max(row["val_dice_coef"] for row in history)
    assert metrics["train_seconds"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["loss"] == "bce" and config["settings"]["img_size"] == 32
    assert config["settings"]["demo"] is False and config["data"]["files"] == 80
    assert {"tensorflow", "keras", "labkit"} <= set(config["versions"])

    # The saved model reloads with plain Keras and reproduces the per-image Dice the run recorded, exactly: the
    # validation images of split.csv through the lab's own pipeline.
    model = keras.saving.load_model(out / "model.keras")
    rows = {row["name"]: row["dice"] for row in read_csv(out / "per_image.csv")}
    val_names = [row["item"] for row in read_csv(out / "split.csv") if row["split"] == "val"]
    assert sorted(rows) == sorted(val_names)
    pairs = [(xray_dir / "Image" / name, xray_dir / "Mask" / name) for name in val_names]
    _, masks, probabilities = collect_predictions(model, segmentation_dataset(pairs, 32, 4))
    assert 0.05 < (probabilities > 0.5).mean() < 0.95 and np.mean(list(rows.values())) > 0.6  # not near-constant
    again = per_image_scores(probabilities > 0.5, masks, names=val_names)
    assert {row["name"]: row["dice"] for row in again} == pytest.approx(rows, abs=1e-6)


def test_help_documents_every_flag_with_course_defaults():
    result = subprocess.run([sys.executable, str(ROOT / "labs" / "lab4_unet.py"), "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines at the terminal width
    for flag in ("--data-dir", "--out", "--loss", "--base", "--dropout", "--batchnorm", "--augment", "--epochs",
                 "--batch-size", "--lr", "--img-size", "--val-split", "--seed", "--resume", "--precision"):
        assert flag in text, flag
    for default in ("course default: 0.0001", "course default: 8", "course default: 256", "course default: 150",
                    "course default: 0.2", "course default: 42"):
        assert default in text, default


def make_bad(tmp_path, xray_dir, case):
    """Build the bad input of `case`; returns the extra arguments."""
    data = tmp_path / "X_ray"
    if case != "missing folder":
        for sub in ("Image", "Mask"):
            (data / sub).mkdir(parents=True)
    if case == "images without masks":
        for name in ("a.png", "b.png"):
            cv2.imwrite(str(data / "Image" / name), np.zeros((8, 8), np.uint8))
    if case in ("unreadable file", "size not divisible by 16"):
        for image in sorted((xray_dir / "Image").iterdir())[:4]:
            (data / "Image" / image.name).write_bytes(image.read_bytes())
            (data / "Mask" / image.name).write_bytes((xray_dir / "Mask" / image.name).read_bytes())
    if case == "unreadable file":
        (data / "Image" / "broken.png").write_text("not a png")
        (data / "Mask" / "broken.png").write_bytes((xray_dir / "Mask" / "xray_0000.png").read_bytes())
    size = ["--img-size", "40"] if case == "size not divisible by 16" else []
    return ["--data-dir", data, *size]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing folder", "data folder not found: .*X_ray"),
        ("empty image folder", "no images .* in .*Image"),
        ("images without masks", "2 image\\(s\\) in .*Image without a mask in .*Mask: a.png, b.png"),
        ("unreadable file", "unreadable image .*broken.png"),
        ("size not divisible by 16", "\\(40, 40\\) is not divisible by 16"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(lab_runner, xray_dir, tmp_path, case, message):
    args = make_bad(tmp_path, xray_dir, case)
    code, _, stderr = lab_runner("lab4_unet", [*args, "--out", tmp_path / "run", "--epochs", "1", "--quiet"])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert __import__("re").search(message, lines[0]), lines[0]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "0"], "argument --batch-size: 0 is not > 0"),
        (["--epochs", "-3"], "argument --epochs: -3 is not > 0"),
        (["--dropout", "1.5"], "argument --dropout: 1.5 is not in \\[0, 1\\)"),
        (["--lr", "0"], "argument --lr: 0 is not > 0"),
        (["--loss", "hinge"], "argument --loss: invalid choice: 'hinge'"),
        (["--base", "eight"], "argument --base: 'eight' is not a whole number"),
    ],
)
def test_impossible_flags_exit_2_naming_the_flag(lab_runner, flags, message):
    # In-process: the argument parser fails before anything is built (test_help_documents_… starts a real process).
    code, _, stderr = lab_runner("lab4_unet", flags)
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), stderr
    assert "Traceback" not in stderr
