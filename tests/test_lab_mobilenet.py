"""labs/mobilenet_segmentation.py end to end: a tiny --compare run, bad input, and the offline ImageNet behaviour."""

import argparse
import csv
import json
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import load_lab, run_lab_inprocess
from PIL import Image
from test_tensorboard import panels, read_events
from trained_runs import labkit_command

from labkit.callbacks.tensorboard_images import IMAGES_RUN
from labkit.data import segmentation_dataset
from labkit.data.layouts.isic2016 import find_isic2016_pairs
from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
from labkit.inference import collect_predictions, sigmoid
from labkit.models.mobilenet_seg import compiled_segmenter
from labkit.models.transfer import WeightsUnavailableError, resolve_weights
from labkit.plots import comparison_curves, comparison_samples

DECODER_TRAINABLE, ENCODER_TRAINABLE = 13_274_049, 2_223_872


@pytest.fixture(scope="module")
def tiny_isic(tmp_path_factory):
    """10 training and 4 test images in the official layout."""
    return dermoscopy_dataset(n_train=10, n_test=4, size=64, root=tmp_path_factory.mktemp("isic"))


def _offline(monkeypatch):
    """Make every ImageNet download fail as it does without network (no request is made)."""
    original = keras.applications.MobileNetV2

    def mobilenet_v2(*args, weights=None, **kwargs):
        if weights == "imagenet":
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        return original(*args, weights=weights, **kwargs)

    monkeypatch.setattr(keras.applications, "MobileNetV2", mobilenet_v2)


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_tiny_compare_run_writes_the_course_tables_and_figures(tiny_isic, tmp_path, lab_runner):
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner("mobilenet_segmentation", [
        "--data-dir", tiny_isic, "--compare", "--img-size", 32, "--epochs", 2, "--batch-size", 4, "--weights", "none",
        "--quiet", "--tensorboard", "--precise-bn", "--out", out])
    assert code == 0, stderr
    # precise BatchNorm statistics leave a frozen encoder's alone (its moving statistics are among its weights)
    assert "frozen: encoder weights after training bit-identical to the start" in stdout
    assert "finetune: encoder weights after training changed" in stdout

    rows = _rows(out / "comparison.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "parameters"]
    for name in ("frozen", "finetune"):
        history = _rows(out / name / "history.csv")
        assert [float(r["val_dice"]) for r in history] == [float(r[f"{name}_val_dice"]) for r in rows[:2]]
        assert [float(r["loss"]) for r in history] == [float(r[f"{name}_train_loss"]) for r in rows[:2]]
    assert int(rows[2]["frozen_trainable_params"]) == DECODER_TRAINABLE
    assert int(rows[2]["finetune_trainable_params"]) == DECODER_TRAINABLE + ENCODER_TRAINABLE
    assert (out / "comparison.md").read_text().count("\n") == 2 + 3  # header, rule, 3 rows
    assert "| test Dice (mean per image) |" in (out / "summary.md").read_text()

    metrics = json.loads((out / "metrics.json").read_text())
    per_image = _rows(out / "per_image.csv")
    assert len(per_image) == 4
    for name in ("frozen", "finetune"):
        dice = [float(r[f"{name}_dice"]) for r in per_image]
        assert metrics["test"][name]["dice"]["mean"] == pytest.approx(np.mean(dice))
        assert metrics["test"][name]["split"] == "test" and metrics["test"][name]["images"] == 4
    assert metrics["models"]["frozen"]["encoder_unchanged"] is True
    assert metrics["models"]["finetune"]["encoder_unchanged"] is False
    assert metrics["parameters"]["finetune"]["encoder"]["trainable"] == ENCODER_TRAINABLE
    assert metrics["weights"] == {"requested": "none", "used": "none", "note": None}

    for name in ("frozen", "finetune"):  # --tensorboard: validation strips of both models, sigmoid of the logits
        strips = read_events(out / name / "tensorboard" / IMAGES_RUN)
        assert len(strips) == 2 and all(tag.startswith("validation/ISIC_") for tag in strips)  # the 2 validation images
        for steps in strips.values():
            assert [step for step, _ in steps] == [0, 1]
            probability = panels(steps[-1][1], 32)[2]
            assert probability.shape == (32, 32, 3) and 0 < probability.mean() < 255
    assert metrics["best"]["model"] == metrics["winner"] and metrics["epochs_run"] == 2

    with Image.open(out / "samples.png") as samples, Image.open(out / "curves.png") as curves:
        assert samples.width > samples.height * 0.9 and curves.width > 2 * curves.height  # 6 columns; 3 panels
    # The lab reloaded each best model.keras (plain load_model, GroupedOptimizer inside) to evaluate it; the run's
    # model.keras is the winner's file.
    assert (out / "model.keras").samefile(out / metrics["winner"] / "model.keras") or (
        (out / "model.keras").read_bytes() == (out / metrics["winner"] / "model.keras").read_bytes())
    finetune = json.loads((out / "finetune" / "metrics.json").read_text())["variant"]  # each model: a run folder
    assert (finetune["encoder_lr"], finetune["decoder_lr"]) == (1e-4, 1e-3)
    for name in ("comparison.png", "variants.csv", "frozen/samples.png", "finetune/per_image.csv"):
        assert (out / name).is_file(), name  # --compare is a labkit.multirun preset: it gains the sweep's files
    config = json.loads((out / "config.json").read_text())["settings"]
    assert config["compare"] == "strategy" and config["weights"] == "none"



@pytest.fixture(scope="module")
def decoder_runs(tiny_isic, tmp_path_factory):
    """``--compare decoder`` for real at the tiny size, trained once for the module: ``(run folder, the
    encoder/decoder optimizers made)``."""
    import labkit.models.mobilenet_seg as mobilenet_seg

    optimizers, make = [], mobilenet_seg.encoder_decoder_optimizer  # the real function, watched
    out = tmp_path_factory.mktemp("mobilenet") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mobilenet_seg, "encoder_decoder_optimizer", lambda *a, **k: optimizers.append(make(*a, **k))
                      or optimizers[-1])
        code, _, stderr = run_lab_inprocess(load_lab("mobilenet_segmentation"), [
            "--data-dir", tiny_isic, "--compare", "decoder", "--img-size", 32, "--epochs", 1, "--batch-size", 4,
            "--weights", "none", "--lr-schedule", "cosine", "--quiet", "--out", out])
    assert code == 0, stderr
    keras.backend.clear_session()
    return out, optimizers


@pytest.mark.slow
def test_real_decoder_compare_trains_both_decoders_and_reports_their_own_numbers(decoder_runs):
    """--compare decoder for real at the tiny size: transpose/ and unet/ are finished runs of one strategy, and every
    number of the parent's files is read from their metrics.json, history.csv and per_image.csv."""
    out, optimizers = decoder_runs
    names = ("transpose", "unet")
    # 8 training images, batch 4: the one epoch is the whole cosine (2 steps), so both rates end at 0
    assert len(optimizers) == 2
    for optimizer in optimizers:
        assert int(optimizer.iterations) == 2 and float(optimizer.learning_rate) == 0.0
        assert optimizer.group_learning_rate("encoder") == 0.0
        assert optimizer.get_config()["groups"][0]["learning_rate"]["config"]["warmup_target"] == pytest.approx(1e-4)
    for name in ("comparison.csv", "comparison.md", "summary.md", "per_image.csv", "history.csv", "curves.png",
                 "samples.png", "model.keras", "metrics.json", "comparison.png", "variants.csv",
                 *(f"{n}/{f}" for n in names for f in ("metrics.json", "history.csv", "per_image.csv", "model.keras",
                                                        "curves.png", "samples.png"))):
        assert (out / name).is_file(), name
    child = {n: json.loads((out / n / "metrics.json").read_text()) for n in names}
    assert {n: (m["variant"]["decoder"], m["variant"]["strategy"]) for n, m in child.items()} == {
        "transpose": ("transpose", "finetune"), "unet": ("unet", "finetune")}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compare"] == list(names) and metrics["epochs_run"] == 1

    winner = max(names, key=lambda n: child[n]["best"]["val_dice"])
    assert metrics["winner"] == winner and metrics["best"] == {"model": winner, **child[winner]["best"]}
    assert (out / "model.keras").read_bytes() == (out / winner / "model.keras").read_bytes()
    assert metrics["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in child.values()), abs=0.01)
    rows, per_image = _rows(out / "comparison.csv"), _rows(out / "per_image.csv")
    assert [r["epoch"] for r in rows] == ["1", "parameters"] and len(per_image) == 4
    for n in names:
        assert metrics["test"][n] == child[n]["test"]
        history = _rows(out / n / "history.csv")
        assert float(rows[0][f"{n}_val_dice"]) == float(history[0]["val_dice"])
        assert float(rows[0][f"{n}_train_loss"]) == float(history[0]["loss"])
        assert int(rows[1][f"{n}_trainable_params"]) == child[n]["parameters"]["model"]["trainable"]
        own = _rows(out / n / "per_image.csv")
        assert [float(r[f"{n}_dice"]) for r in per_image] == [float(r["dice"]) for r in own]
        assert child[n]["test"]["dice"]["mean"] == pytest.approx(np.mean([float(r["dice"]) for r in own]))
    assert child["unet"]["parameters"]["model"]["trainable"] != child["transpose"]["parameters"]["model"]["trainable"]
    assert "| test Dice (mean per image) |" in (out / "summary.md").read_text()
    assert json.loads((out / "config.json").read_text())["settings"]["compare"] == "decoder"


@pytest.mark.slow
def test_predict_and_evaluate_a_trained_segmenter_reproduce_its_test_results(decoder_runs, tiny_isic, tmp_path,
                                                                             capsys):
    """``labkit predict`` on the ISIC test images (48×64; the model saw 32×32) writes masks at their own size that
    are the sigmoid of the model's logits on the lab's own preprocessing, resized back; ``labkit evaluate`` on the
    data folder reproduces each model's per-image test Dice exactly."""
    run = decoder_runs[0] / "transpose"
    pairs = find_isic2016_pairs(tiny_isic, "test")
    code, _, err = labkit_command(["predict", run, *(image for image, _ in pairs), "--out", tmp_path / "pred",
                                   "--probabilities", "npy"], capsys)
    assert code == 0, err
    model = keras.saving.load_model(run / "model.keras")
    _, _, logits = collect_predictions(model, segmentation_dataset(pairs, 32, 4, channels=3))
    for (image, _), logit in zip(pairs, logits):
        stored = np.load(tmp_path / "pred" / f"{image.stem}_prob.npy")
        mask = np.asarray(Image.open(tmp_path / "pred" / f"{image.stem}_mask.png"))
        size = Image.open(image).size[::-1]  # (height, width): the synthetic lesions are 48×64
        expected = tf.image.resize(sigmoid(logit), size).numpy()
        assert stored.shape == (*size, 1) and mask.shape == size
        assert np.abs(stored - expected).max() < 1e-3
        assert np.array_equal(mask > 0, stored[..., 0] > 0.5)

    for name in ("transpose", "unet"):
        code, _, err = labkit_command(["evaluate", decoder_runs[0] / name, "--data-dir", tiny_isic], capsys)
        assert code == 0, err
        folder = decoder_runs[0] / name / "evaluations" / tiny_isic.name
        own = {r["name"]: float(r["dice"]) for r in _rows(decoder_runs[0] / name / "per_image.csv")}
        tested = {Path(r["name"]).stem: float(r["dice"]) for r in _rows(folder / "per_item.csv")}  # file names
        assert tested == pytest.approx(own, abs=1e-12) and len(tested) == 4
        metrics = json.loads((folder / "metrics.json").read_text())["test"]
        trained = json.loads((decoder_runs[0] / name / "metrics.json").read_text())["test"]
        assert metrics["dice"]["mean"] == pytest.approx(trained["dice"]["mean"], abs=1e-12)


@pytest.mark.parametrize("extra, message", [
    (["--img-size", 48], "--img-size must be a multiple of 32"),
    (["--strategy", "frozen", "--encoder-lr", "1e-4"], "contradicts --strategy frozen"),
    (["--weights", "imagenet"], "ImageNet weights for mobilenet_v2 could not be fetched"),
])
def test_bad_settings_exit_2_with_one_line(tiny_isic, tmp_path, lab_runner, monkeypatch, extra, message):
    _offline(monkeypatch)
    code, _, stderr = lab_runner("mobilenet_segmentation", ["--data-dir", tiny_isic, "--epochs", 1, "--quiet",
                                                            "--out", tmp_path / "run", *extra])
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1


def test_a_folder_without_the_isic_layout_is_named(tmp_path, lab_runner):
    (tmp_path / "images").mkdir()
    code, _, stderr = lab_runner("mobilenet_segmentation", ["--data-dir", tmp_path, "--out", tmp_path / "run"])
    assert code == 2 and "does not have an ISIC 2016 Part 1 layout" in stderr


def _settings(**kwargs):
    defaults = {"img_size": 32, "channels": 3, "dropout": 0.5, "loss": "bce", "seed": 1, "weights": "imagenet",
                "demo": True, "resume": False}
    return argparse.Namespace(**{**defaults, **kwargs})


def test_offline_imagenet_is_an_error_when_chosen(monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(WeightsUnavailableError, match="--weights none"):
        compiled_segmenter((32, 32, 3), "transpose", "imagenet", 0.0, 1e-3)


def test_the_demo_without_cached_weights_uses_random_ones_and_says_so(monkeypatch, tmp_path, capsys):
    """The demo never downloads (labkit.models.transfer.decide_weights): no cached file → a random encoder, whose
    BatchNorm statistics are set from the images."""
    _offline(monkeypatch)
    monkeypatch.setattr("labkit.models.transfer.keras_cache_dir", lambda: tmp_path)
    settings = _settings()
    choice = resolve_weights(settings, None, "mobilenet_v2", (32, 32, 3))
    assert settings.weights == choice.used == "none" and settings.weights_requested == "imagenet"
    assert "UNTRAINED MobileNetV2" in settings.weights_note and "UNTRAINED" in capsys.readouterr().out
    images = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype("float32")
    model = compiled_segmenter((32, 32, 3), "transpose", settings.weights, 0.0, 1e-3, calibration_images=images)
    features = model.get_layer("encoder")(images, training=False).numpy()
    assert features.std(axis=0).mean() > 1e-2  # BatchNorm statistics were set from the images


def test_comparison_figures_have_one_column_per_panel():
    rng = np.random.default_rng(0)
    images, masks = rng.uniform(size=(3, 16, 16, 3)), (rng.uniform(size=(3, 16, 16, 1)) > 0.5).astype(float)
    probabilities = {"frozen": rng.uniform(size=(3, 16, 16, 1)), "finetune": rng.uniform(size=(3, 16, 16, 1))}
    figure = comparison_samples(images, masks, probabilities, scores={k: [0.5] * 3 for k in probabilities})
    assert len(figure.axes) == 3 * 6
    assert [a.get_title() for a in figure.axes[:6]] == [
        "image", "true mask", "frozen probability", "frozen mask\nDice 0.500", "finetune probability",
        "finetune mask\nDice 0.500"]
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "iou": [0.1, 0.2], "val_iou": [0.1, 0.3],
               "dice": [0.2, 0.3], "val_dice": [0.2, 0.4]}
    curves = comparison_curves({"frozen": history, "finetune": history})
    assert len(curves.axes) == 3 and all(len(axis.lines) == 4 for axis in curves.axes)
