"""Lab 1 Task 4 (labs/lab1_mlp.py) and the shared classification run: the flat layout's labels from file names,
one tiny end-to-end run writing every documented file, one tiny sweep, and bad input."""

import json
import re
import shutil

import keras
import numpy as np
import pytest
from conftest import load_lab

from labkit.callbacks import DeadRunWatch
from labkit.classification_lab import classes_in_turn, find_labelled_set
from labkit.data.synthetic.lab1 import lab1_dataset
from labkit.errors import LabkitInputError
from labkit.lab import run_lab
from labkit.run_folder import read_csv

#: Every file the lab documents.
OUTPUTS = ("config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion_matrix.png",
           "samples.png", "report.txt", "report.csv", "predictions.csv", "split.csv")
TINY = ["--img-size", "32", "--base", "8", "--batch-size", "4", "--lr", "0.01", "--quiet"]


def run(name, argv):
    """Run a lab's main in-process; returns its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        run_lab(load_lab(name).main, [str(a) for a in argv])
    return exit_info.value.code


@pytest.fixture(scope="module")
def lab1(tmp_path_factory):
    """A tiny embedded Lab1 folder: 6 training and 3 test images per class, 32×32."""
    return lab1_dataset(n_train=6, n_test=3, size=32, root=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def mlp_run(lab1, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mlp"
    code = run("lab1_mlp", ["--data-dir", lab1, "--out", out, "--epochs", "2", *TINY])
    assert code == 0
    return out


def test_flat_layout_labels_come_from_file_names(lab1, tmp_path):
    train, val, layout = find_labelled_set(lab1, "skin")
    assert layout == "flat" and train.class_names == ("Mel", "Nevi")
    assert len(train) == 12 and len(val) == 6
    assert all(p.name.startswith(("Mel", "Nev")[k]) for p, k in zip(train.paths, train.labels))
    # The course's real folder says Nevi while its files say Nev: a file named Nevi_… is a nevus too.
    shutil.copytree(lab1 / "Skin", tmp_path / "Skin")
    nev = next((tmp_path / "Skin" / "train").glob("Nev_*"))
    nev.rename(nev.with_name(nev.name.replace("Nev_", "Nevi_")))
    train, _, _ = find_labelled_set(tmp_path / "Skin", "skin")
    assert [k for p, k in zip(train.paths, train.labels) if p.name.startswith("Nevi_")] == [1]


def test_validation_classes_take_turns_so_a_confident_model_is_not_called_dead(lab1):
    _, val, _ = find_labelled_set(lab1, "skin")  # sorted by name: every Mel image first
    turned = classes_in_turn(val)
    assert list(turned.labels) == [0, 1] * 3 and sorted(turned.paths) == sorted(val.paths)
    assert all(p.name.startswith(("Mel", "Nev")[k]) for p, k in zip(turned.paths, turned.labels))
    # fit's dead-run watch probes the first validation images: a confident, right model on one class looks dead
    right = lambda labels: np.where(np.asarray(labels)[:, None] == 1, 0.999, 0.001)  # noqa: E731
    watch = DeadRunWatch(probe=None)
    assert watch.dead_outputs(right(val.labels[:3])) is not None
    assert watch.dead_outputs(right(turned.labels[:3])) is None


def test_a_name_without_a_class_is_named(lab1, tmp_path):
    shutil.copytree(lab1 / "Skin", tmp_path / "Skin")
    sorted((tmp_path / "Skin" / "test").iterdir())[0].rename(tmp_path / "Skin" / "test" / "lesion_17.png")
    with pytest.raises(LabkitInputError, match=r"cannot label .*lesion_17\.png"):
        find_labelled_set(tmp_path, "skin")


@pytest.mark.slow
def test_tiny_run_writes_every_output(mlp_run):
    assert all((mlp_run / name).is_file() for name in OUTPUTS), sorted(p.name for p in mlp_run.iterdir())
    settings = json.loads((mlp_run / "config.json").read_text())["settings"]
    assert (settings["optimizer"], settings["model"], settings["loss"]) == ("sgd", "mlp", "bce")
    metrics = json.loads((mlp_run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["monitor"] == "val_accuracy"
    assert len(read_csv(mlp_run / "history.csv")) == 2
    # The reported accuracy is the one of the predictions it wrote.
    predictions = read_csv(mlp_run / "predictions.csv")
    assert len(predictions) == metrics["validation"]["images"] == 6
    assert [p["true"] for p in predictions] == ["Mel", "Nevi"] * 3  # the classes take turns (load_splits)
    right = np.mean([p["true"] == p["predicted"] for p in predictions])
    assert metrics["validation"]["accuracy"] == pytest.approx(right)
    model = keras.saving.load_model(mlp_run / "model.keras")
    # Flatten → 8 → 4 → 2 → 1: 32·32·8+8 + 8·4+4 + 4·2+2 + 2+1
    assert model.output_shape == (None, 1) and model.count_params() == 32 * 32 * 8 + 8 + 36 + 10 + 3


@pytest.mark.slow
def test_sweep_of_learning_rates(lab1, tmp_path, sgd_instances):
    code = run("lab1_mlp", ["--data-dir", lab1, "--out", tmp_path, "--epochs", "1", "--sweep", "lr=0.01,0.1",
                            *[t for t in TINY if t not in ("--lr", "0.01")]])
    assert code == 0
    rows = read_csv(tmp_path / "comparison.csv")
    assert [r["variant"] for r in rows] == ["lr=0.01", "lr=0.1"]
    for child in ("lr=0.01", "lr=0.1"):
        assert (tmp_path / child / "metrics.json").is_file() and (tmp_path / child / "samples.png").is_file()
    assert (tmp_path / "comparison.png").is_file()
    # Each child compiled its own SGD at its own rate and took its steps with it (12 images in batches of 4).
    trained = [optimizer for optimizer in sgd_instances if int(optimizer.iterations) > 0]
    assert [float(optimizer.learning_rate) for optimizer in trained] == pytest.approx([0.01, 0.1])
    assert [int(optimizer.iterations) for optimizer in trained] == [3, 3]
    assert [json.loads((tmp_path / child / "config.json").read_text())["settings"]["lr"]
            for child in ("lr=0.01", "lr=0.1")] == pytest.approx([0.01, 0.1])


def test_unreadable_image_is_named(lab_runner, lab1, tmp_path):
    shutil.copytree(lab1 / "Skin", tmp_path / "Skin")
    (tmp_path / "Skin" / "train" / "Mel_0001.png").write_bytes(b"not a png")
    code, _, stderr = lab_runner("lab1_mlp", ["--data-dir", tmp_path, "--out", tmp_path / "run", *TINY])
    assert code == 2 and re.search(r"^error: .*Mel_0001\.png", stderr, re.M), stderr


@pytest.mark.slow
def test_cosine_schedule_spans_the_run_and_ends_at_zero(lab1, tmp_path, monkeypatch):
    import labkit.classification_lab as lab

    compiled, real = [], lab.compile_classifier  # the real compile, watched
    monkeypatch.setattr(lab, "compile_classifier", lambda *a, **k: compiled.append(real(*a, **k)) or compiled[-1])
    code = run("lab1_mlp", ["--data-dir", lab1, "--out", tmp_path / "run", "--epochs", "2", "--lr-schedule", "cosine",
                            *TINY])
    assert code == 0
    optimizer = compiled[-1].optimizer  # SGD, as the course's Lab 1
    schedule = optimizer._learning_rate
    assert isinstance(optimizer, keras.optimizers.SGD) and schedule.warmup_target == pytest.approx(0.01)
    # 12 training images in batches of 4: 3 steps per epoch, 6 in the run; the rate is back at 0 at its end
    assert schedule.warmup_steps + schedule.decay_steps == 6 and int(optimizer.iterations) == 6
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-12)
