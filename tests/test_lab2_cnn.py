"""Lab 2 Tasks 5–6 (labs/lab2_cnn.py): one tiny LeNet run writing every documented file, a bce-vs-hinge sweep of
AlexNet, and the hinge head: labels {−1, 1}, training that lowers the loss, and an accuracy computed on those labels."""

import json

import keras
import numpy as np
import pytest
from test_lab1_mlp import OUTPUTS, run

from labkit.classification_lab import Head, build_classifier, compile_classifier, head_for
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.metrics import sign_accuracy
from labkit.run_folder import read_csv

TINY = ["--img-size", "32", "--base", "4", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    """A tiny embedded Lab2 folder: 6 training and 3 validation images per class, 32×32."""
    return bone_skin_dataset(n_train=6, n_val=3, size=32, root=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def lenet_run(lab2, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet"
    assert run("lab2_cnn", ["--data-dir", lab2, "--out", out, "--epochs", "2", "--lr", "1e-3", *TINY]) == 0
    return out


@pytest.mark.slow
def test_tiny_lenet_run_writes_every_output(lenet_run):
    assert all((lenet_run / name).is_file() for name in OUTPUTS), sorted(p.name for p in lenet_run.iterdir())
    settings = json.loads((lenet_run / "config.json").read_text())["settings"]
    # --epochs and --lr given; the rest are Task 5's course settings (LeNet, Adam, Skin, binary cross-entropy)
    assert (settings["model"], settings["optimizer"], settings["dataset"], settings["loss"]) == \
        ("lenet", "adam", "skin", "bce")
    metrics = json.loads((lenet_run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["head"] == "sigmoid"
    assert {r["true"] for r in read_csv(lenet_run / "predictions.csv")} == {"Mel", "Nevi"}
    model = keras.saving.load_model(lenet_run / "model.keras")
    assert model.output_shape == (None, 1) and model.layers[-1].get_config()["activation"] == "sigmoid"


def test_hinge_targets_scores_and_accuracy_on_hand_made_values():
    head = head_for("hinge", 2)
    one_hot = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    assert head.targets(one_hot)[:, 0].tolist() == [-1, 1, 1, -1]
    scores = np.array([[-0.5], [2.0], [-0.1], [0.3]])  # right, right, wrong, wrong
    assert head.probabilities(scores).argmax(1).tolist() == [0, 1, 0, 1]
    assert float(sign_accuracy(head.targets(one_hot), scores)) == pytest.approx(0.5)
    # Keras's BinaryAccuracy would count every −1 label wrong; sign_accuracy does not
    assert float(sign_accuracy(np.array([[-1.0], [-1.0]]), np.array([[-0.2], [-3.0]]))) == 1.0
    assert head_for("bce", 2) == Head("sigmoid", "binary_crossentropy")
    assert head_for("bce", 9) == Head("softmax", "categorical_crossentropy")


def test_hinge_training_lowers_the_loss_and_reports_sign_accuracy():
    # bright vs dark 16×16 images: separable, so hinge training must lower the loss within a few epochs
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 16)
    images = (0.3 + 0.4 * labels[:, None, None, None] + rng.normal(0, 0.05, (32, 16, 16, 1))).astype(np.float32)
    head = head_for("hinge", 2)
    targets = head.targets(np.eye(2, dtype=np.float32)[labels])
    model = build_classifier("lenet", 16, 1, 2, head, base=4)
    assert model.layers[-1].get_config()["activation"] == "linear"  # one linear score unit
    compile_classifier(model, head, "adam", 1e-2)
    history = model.fit(images, targets, epochs=10, batch_size=8, verbose=0).history
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    scores = model.predict(images, verbose=0)
    by_hand = np.mean((scores[:, 0] > 0) == (labels == 1))
    assert model.evaluate(images, targets, verbose=0, return_dict=True)["accuracy"] == pytest.approx(by_hand)


@pytest.mark.slow
def test_sweep_bce_vs_hinge(lab2, tmp_path):
    code = run("lab2_cnn", ["--data-dir", lab2, "--out", tmp_path, "--model", "alexnet", "--epochs", "1",
                            "--sweep", "loss=bce,hinge", *TINY])
    assert code == 0
    assert [r["variant"] for r in read_csv(tmp_path / "comparison.csv")] == ["loss=bce", "loss=hinge"]
    hinge = json.loads((tmp_path / "loss=hinge" / "metrics.json").read_text())
    assert hinge["head"] == "hinge" and hinge["loss"] == "hinge"
    predictions = read_csv(tmp_path / "loss=hinge" / "predictions.csv")
    assert hinge["validation"]["accuracy"] == pytest.approx(np.mean([p["true"] == p["predicted"] for p in predictions]))
