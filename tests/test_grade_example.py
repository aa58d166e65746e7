"""examples/grade_unet.py as a teaching assistant runs it: one CSV row per student run, the architecture checked
against the course's get_unet, the hidden-folder Dice equal to labkit evaluate's, broken submissions graded as such."""

import importlib.util
import json
import shutil

import keras
import pytest
from conftest import ROOT
from trained_runs import unet_run

from labkit import get_unet
from labkit.data.synthetic import xray_dataset
from labkit.run_folder import read_csv


def grade_script():
    spec = importlib.util.spec_from_file_location("grade_unet", ROOT / "examples" / "grade_unet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_grading_script_checks_architecture_and_scores_the_hidden_folder(tmp_path):
    data = xray_dataset(n_images=8, size=32, root=tmp_path / "train")
    hidden = xray_dataset(n_images=3, size=40, seed=7, root=tmp_path / "hidden")
    good = unet_run(data, tmp_path / "submissions" / "alice")
    # bob changed his network but says base 4 in config.json: the parameter count gives him away
    bob = shutil.copytree(good, tmp_path / "submissions" / "bob")
    config = json.loads((bob / "config.json").read_text())
    keras.Model.save(get_unet((32, 32, 1), base=2), bob / "model.keras")
    # carol handed in a model that would run code when loaded
    carol = tmp_path / "submissions" / "carol"
    carol.mkdir()
    inputs = keras.Input((32, 32, 1))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x)(inputs)).save(carol / "model.keras")

    assert grade_script().main([str(good), str(bob), str(carol), "--data-dir", str(hidden),
                                "--out", str(tmp_path / "grades.csv")]) == 0
    alice_row, bob_row, carol_row = read_csv(tmp_path / "grades.csv")
    course = get_unet((32, 32, 1), base=config["settings"]["base"]).count_params()
    assert alice_row["course_parameters"] == bob_row["course_parameters"] == course
    assert alice_row["parameters"] == course and alice_row["architecture_ok"] == "True"
    assert bob_row["parameters"] == get_unet((32, 32, 1), base=2).count_params() and bob_row["architecture_ok"] == "False"
    evaluation = json.loads((good / "evaluations" / hidden.name / "metrics.json").read_text())
    assert alice_row["test_dice"] == pytest.approx(evaluation["test"]["dice"]["mean"])
    assert alice_row["val_dice"] == pytest.approx(json.loads((good / "metrics.json").read_text())["validation"]
                                                  ["dice"]["mean"])
    assert "unsafe deserialization" in carol_row["error"] and carol_row["test_dice"] == ""
