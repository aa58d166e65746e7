"""labs/lab1_perceptron.py as a user runs it: a NumPy run, a Keras run, the course's hidden-unit sweep, bad input."""

import json

import keras
import numpy as np
import pytest

from labkit import numpy_net
from labkit.run_folder import read_csv

OUTPUTS = ("config.json", "history.csv", "metrics.json", "curves.png", "decision_boundary.png")


def check_outputs(out, trained_file):
    for name in (*OUTPUTS, trained_file):
        assert (out / name).is_file(), name
    return json.loads((out / "metrics.json").read_text()), read_csv(out / "history.csv")


@pytest.mark.slow
def test_numpy_run_writes_every_output_and_its_weights_reproduce_the_outputs(lab_runner, tmp_path):
    out = tmp_path / "and"
    code, stdout, stderr = lab_runner("lab1_perceptron", ["--gate", "and", "--iterations", "300", "--out", out,
                                                          "--quiet"])
    assert code == 0, stderr
    metrics, history = check_outputs(out, "weights.npz")
    assert [row["epoch"] for row in history] == list(range(1, 301))  # epoch = iteration
    assert metrics["epochs_run"] == 300 and metrics["final"]["epoch"] == 300
    assert metrics["final_loss"] == pytest.approx(history[-1]["loss"])
    assert metrics["accuracy"] == 1.0 and metrics["parameters"] == 4 * 2 + 1
    X, y = numpy_net.logic_gate_data("and")
    weights = dict(np.load(out / "weights.npz"))
    outputs = numpy_net.predict(weights, X)
    assert metrics["final_loss"] == pytest.approx(numpy_net.sum_of_squares(outputs, y))
    assert [p["output"] for p in metrics["points"]] == pytest.approx(outputs.ravel(), abs=1e-4)
    assert [p["target"] for p in metrics["points"]] == [0, 0, 0, 1]
    config = json.loads((out / "config.json").read_text())["settings"]
    assert (config["model"], config["hidden"], config["lr"], config["gate"]) == ("numpy", 2, 2.0, "and")
    assert "accuracy 1.00" in stdout


@pytest.mark.slow
def test_keras_run_uses_the_fit_path_and_its_model_reloads(lab_runner, tmp_path):
    out = tmp_path / "keras"
    code, _, stderr = lab_runner("lab1_perceptron", ["--model", "keras", "--hidden", "3", "--iterations", "10",
                                                     "--out", out, "--quiet"])
    assert code == 0, stderr
    metrics, history = check_outputs(out, "model.keras")
    assert [row["epoch"] for row in history] == list(range(1, 11))
    assert {"loss", "binary_accuracy"} <= set(history[0])
    assert metrics["loss_function"] == "mean squared error" and metrics["parameters"] == 4 * 3 + 1
    model = keras.saving.load_model(out / "model.keras")
    assert model.count_params() == 13 and model.layers[0].activation.__name__ == "relu"
    # model.keras holds the lowest-loss epoch; SGD at lr 0.01 lowers the loss every update, so that is the last one,
    # the network metrics.json describes
    assert metrics["best"]["epoch"] == metrics["final"]["epoch"] == 10
    X, y = numpy_net.logic_gate_data("xor")
    outputs = model.predict(X.astype("float32"), verbose=0)
    assert [p["output"] for p in metrics["points"]] == pytest.approx(outputs.ravel(), abs=1e-4)
    assert metrics["final_loss"] == pytest.approx(float(np.mean((outputs - y) ** 2)), abs=1e-6)


@pytest.mark.slow
def test_hidden_sweep_one_unit_cannot_learn_xor(lab_runner, tmp_path):
    out = tmp_path / "sweep"
    code, _, stderr = lab_runner("lab1_perceptron", ["--sweep", "hidden=1,2", "--out", out, "--quiet"])
    assert code == 0, stderr
    for name in ("comparison.csv", "comparison.md", "comparison.png", "metrics.json"):
        assert (out / name).is_file(), name
    rows = {row["variant"]: row for row in read_csv(out / "comparison.csv")}
    assert set(rows) == {"hidden=1", "hidden=2"}
    assert rows["hidden=1"]["final_loss"] >= 0.125  # the bound of test_numpy_net.test_one_hidden_unit_cannot_learn_xor
    assert rows["hidden=2"]["final_loss"] < 0.01
    one = json.loads((out / "hidden=1" / "metrics.json").read_text())
    assert one["accuracy"] <= 0.75
    check_outputs(out / "hidden=2", "weights.npz")


@pytest.mark.parametrize("flags, pattern", [
    (["--data-dir", "somewhere"], "--data-dir does not apply to lab1_perceptron"),
    (["--epochs", "5"], "use --iterations"),
    (["--folds", "2"], "--folds does not apply"),
    (["--gate", "nand"], "argument --gate: invalid choice: 'nand'"),
    (["--hidden", "0"], "argument --hidden: 0 is not > 0"),
])
def test_bad_input_is_one_error_line(lab_runner, tmp_path, flags, pattern):
    code, _, stderr = lab_runner("lab1_perceptron", [*flags, "--out", tmp_path / "run"])
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and pattern in errors[0], stderr
    assert not (tmp_path / "run").exists()
