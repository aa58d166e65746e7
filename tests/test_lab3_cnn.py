"""Lab 3 (labs/lab3_cnn.py): the nine-class X-ray set labelled from file names end to end (confusion matrix and
per-class report), and one tiny VGG16-vs-AlexNet sweep with every regularisation flag on."""

import argparse
import json

import keras
import pytest
from test_lab1_mlp import OUTPUTS, run

from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.data.synthetic.lab1 import lab1_dataset
from labkit.run_folder import read_csv

TINY = ["--img-size", "32", "--base", "4", "--batch-size", "4", "--epochs", "1", "--lr", "1e-3", "--quiet"]
ORGANS = tuple(f"C{i}" for i in range(1, 10))


@pytest.fixture(scope="module")
def xray9_run(tmp_path_factory):
    lab1 = lab1_dataset(n_train=4, n_test=2, size=32, root=tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("runs") / "xray9"
    assert run("lab3_cnn", ["--data-dir", lab1, "--dataset", "xray9", "--model", "lenet", "--out", out, *TINY]) == 0
    return out


@pytest.mark.slow
def test_nine_class_run_labels_from_file_names_and_reports_per_class(xray9_run):
    assert all((xray9_run / name).is_file() for name in OUTPUTS), sorted(p.name for p in xray9_run.iterdir())
    predictions = read_csv(xray9_run / "predictions.csv")
    assert len(predictions) == 18
    # the class of each validation image is the prefix of its file name (C1_… … C9_…)
    assert all(p["true"] == p["image"].split("_")[0] for p in predictions)
    assert sorted({p["true"] for p in predictions}) == sorted(ORGANS)
    report = read_csv(xray9_run / "report.csv")
    assert [r["class"] for r in report] == [*ORGANS, "accuracy", "macro avg", "weighted avg"]
    assert all(int(r["support"]) == 2 for r in report[:9])
    metrics = json.loads((xray9_run / "metrics.json").read_text())
    assert metrics["head"] == "softmax" and metrics["loss"] == "categorical_crossentropy"
    assert set(metrics["validation"]["per_class"]) == set(ORGANS)
    assert keras.saving.load_model(xray9_run / "model.keras").output_shape == (None, 9)


@pytest.mark.slow
def test_sweep_vgg16_vs_alexnet_with_regularisation(tmp_path, monkeypatch):
    import labkit.callbacks.precise_bn

    # the real estimate, watched where the precise-BatchNorm callback calls it
    estimated, real = [], labkit.callbacks.precise_bn.estimate_batchnorm_statistics
    monkeypatch.setattr(labkit.callbacks.precise_bn, "estimate_batchnorm_statistics",
                        lambda *a: estimated.append(real(*a)) or estimated[-1])
    lab2 = bone_skin_dataset(n_train=4, n_val=2, size=32, root=tmp_path / "data")
    code = run("lab3_cnn", ["--data-dir", lab2, "--dataset", "bone", "--out", tmp_path / "run", "--batchnorm",
                            "--dropout", "0.4", "--spatial-dropout", "0.1", "--augment", "--precise-bn", "--sweep",
                            "model=vgg16,alexnet", *TINY])
    assert code == 0
    # one validation per model, each after averaging the statistics of both training batches (8 images, batch 4)
    assert estimated == [2, 2]
    assert [r["variant"] for r in read_csv(tmp_path / "run" / "comparison.csv")] == ["model=vgg16", "model=alexnet"]
    for name in ("vgg16", "alexnet"):
        child = tmp_path / "run" / f"model={name}"
        settings = json.loads((child / "config.json").read_text())["settings"]
        assert (settings["batchnorm"], settings["dropout"], settings["spatial_dropout"], settings["augment"],
                settings["precise_bn"]) == (True, 0.4, 0.1, True, True)
        kinds = {type(layer).__name__ for layer in keras.saving.load_model(child / "model.keras").layers}
        assert {"BatchNormalization", "Dropout", "SpatialDropout2D"} <= kinds, kinds


@pytest.mark.parametrize("argv, precise", [([], True), (["--no-precise-bn"], False), (["--data-dir", "x"], False)])
def test_the_demo_validates_with_precise_batchnorm_statistics(argv, precise):
    from conftest import load_lab

    from labkit.lab import fit_options, resolve_settings

    lab3 = load_lab("lab3_cnn")
    settings, _ = resolve_settings(lab3.parse_args(argv), lab3.COURSE, lab3.DEMO)
    assert fit_options(argparse.Namespace(**settings))["precise_batchnorm"] is precise
