"""labkit evaluate / TrainedRun.evaluate on tiny runs of the real lab scripts: per-image Dice equal to a hand
computation, the run's own validation (or test) metrics reproduced exactly, the grading table checked cell by cell,
and the run's training files left alone (its --overwrite still works)."""

import hashlib
import json
import shutil

import keras
import numpy as np
import pytest
from conftest import load_lab, run_lab_inprocess
from trained_runs import UNET, labkit_command, lenet_run, series_run, streamline_run, unet3d_run, unet_run

import labkit
from labkit.data import segmentation_dataset
from labkit.data.synthetic import xray_dataset
from labkit.data.synthetic.atrium import atrium_dataset
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.data.synthetic.stock import stock_dataset
from labkit.data.synthetic.tracts import tract_dataset
from labkit.evaluation import dice
from labkit.inference import collect_predictions
from labkit.run_folder import read_csv
from labkit.run_manifest import MANIFEST, foreign_file

pytestmark = pytest.mark.slow  # every test here scores runs the module trains once


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two Lab 4 U-Nets that differ in --base, a Lab 2 LeNet and a 3D U-Net, with their data; ``val`` holds the
    first U-Net's validation pairs in the course layout."""
    root = tmp_path_factory.mktemp("trained")
    xray = xray_dataset(n_images=12, size=32, root=root / "xray")
    skin = bone_skin_dataset(n_train=4, n_val=3, size=40, root=root / "lab2")
    atrium = atrium_dataset(n_volumes=4, n_test=2, shape=(40, 36, 20), root=root / "atrium")
    found = {"xray": xray, "skin": skin, "atrium": atrium, "unet": unet_run(xray, root / "unet-a"),
             "unet_b": unet_run(xray, root / "unet-b", "--base", "2"), "lenet": lenet_run(skin, root / "lenet"),
             "unet3d": unet3d_run(atrium, root / "unet3d")}
    val = root / "val"
    for sub in ("Image", "Mask"):
        (val / sub).mkdir(parents=True)
        for row in read_csv(found["unet"] / "split.csv"):
            if row["split"] == "val":
                shutil.copy(xray / sub / row["item"], val / sub / row["item"])
    return {**found, "val": val}


def fingerprints(folder):
    """``{file: sha256}`` of the files directly in a run folder (its training files and manifest)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_unet_dice_per_image_equals_a_hand_computation_and_the_runs_validation(runs, capsys):
    before = fingerprints(runs["unet"])
    code, out, err = labkit_command(["evaluate", runs["unet"], "--data-dir", runs["val"]], capsys)
    assert code == 0, err
    folder = runs["unet"] / "evaluations" / "val"
    assert {"per_item.csv", "metrics.json", "samples.png"} <= {p.name for p in folder.iterdir()}
    # By hand: the lab's pipeline, the best model, labkit.evaluation.dice of each mask at 0.5.
    model = labkit.load_run(runs["unet"]).model
    names = sorted(p.name for p in (runs["val"] / "Image").iterdir())
    pairs = [(runs["val"] / "Image" / n, runs["val"] / "Mask" / n) for n in names]
    _, masks, probabilities = collect_predictions(model, segmentation_dataset(pairs, 32, 4))
    by_hand = {n: dice(p > 0.5, m) for n, p, m in zip(names, probabilities, masks)}
    rows = read_csv(folder / "per_item.csv")
    assert {r["name"]: r["dice"] for r in rows} == pytest.approx(by_hand, abs=1e-12)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["dice"]["mean"] == pytest.approx(np.mean(list(by_hand.values())), abs=1e-12)
    trained = json.loads((runs["unet"] / "metrics.json").read_text())
    assert metrics["test"]["dice"]["mean"] == pytest.approx(trained["validation"]["dice"]["mean"], abs=1e-9)
    assert metrics["training"]["best"] == trained["best"]
    # The run's own files are untouched and its folder still holds only what labkit wrote.
    assert fingerprints(runs["unet"]) == before and MANIFEST in before
    assert foreign_file(runs["unet"]) is None


def test_classifier_evaluation_reproduces_the_runs_validation_scores(runs, capsys):
    code, _, err = labkit_command(["evaluate", runs["lenet"], "--data-dir", runs["skin"], "--out",
                                   runs["lenet"].parent / "lenet-eval"], capsys)
    assert code == 0, err
    folder = runs["lenet"].parent / "lenet-eval"
    test = json.loads((folder / "metrics.json").read_text())["test"]
    validation = json.loads((runs["lenet"] / "metrics.json").read_text())["validation"]
    for key in ("images", "accuracy", "balanced_accuracy", "macro_auc", "macro_f1"):
        assert test[key] == pytest.approx(validation[key], abs=1e-12), key
    assert {"confusion_matrix.png", "roc.png", "samples.png", "report.txt"} <= {p.name for p in folder.iterdir()}
    rows = read_csv(folder / "per_item.csv")
    assert len(rows) == 6 and all(r["Mel"] + r["Nevi"] == pytest.approx(1.0) for r in rows)


def test_volume_evaluation_reproduces_the_runs_test_metrics_in_mm(runs):
    metrics = labkit.load_run(runs["unet3d"]).evaluate(runs["atrium"])
    trained = json.loads((runs["unet3d"] / "metrics.json").read_text())["test"]
    for key in ("dice", "jaccard", "hd95_mm", "asd_mm"):
        assert metrics["test"][key]["mean"] == pytest.approx(trained[key]["mean"], abs=1e-9), key
    folder = runs["unet3d"] / "evaluations" / runs["atrium"].name
    assert (folder / "slices.png").is_file() and len(read_csv(folder / "per_item.csv")) == 2


def test_several_runs_make_one_table_checked_cell_by_cell(runs, capsys):
    out = runs["unet"].parent / "grades"
    broken = runs["unet"].parent / "broken"
    broken.mkdir()
    code, stdout, err = labkit_command(["evaluate", runs["unet"], runs["unet_b"], broken, "--data-dir", runs["val"],
                                        "--out", out], capsys)
    assert code == 0, err
    rows = read_csv(out / "grades.csv")
    assert [r["run"] for r in rows] == ["unet-a", "unet-b", "broken"]
    assert list(rows[0])[:3] == ["run", "base", "error"]  # the one setting that differs comes right after the name
    for row, folder, base in zip(rows, (runs["unet"], runs["unet_b"]), (4, 2)):
        trained = json.loads((folder / "metrics.json").read_text())
        tested = json.loads((folder / "evaluations" / "val" / "metrics.json").read_text())["test"]
        assert row["base"] == base and row["error"] == "" and row["monitor"] == "val_dice_coef"
        assert row["best_epoch"] == trained["best"]["epoch"]
        assert row["val_best"] == pytest.approx(trained["best"]["val_dice_coef"])
        assert row["test_dice"] == pytest.approx(tested["dice"]["mean"])
        assert row["test_jaccard"] == pytest.approx(tested["jaccard"]["mean"])
        assert row["test_images"] == 2
    assert "holds no model.keras" in rows[2]["error"]
    assert (out / "grades.md").is_file()


def test_images_without_masks_are_one_line_and_the_run_can_still_be_overwritten(runs, tmp_path, capsys):
    (tmp_path / "nomasks" / "Image").mkdir(parents=True)
    for path in (runs["val"] / "Image").iterdir():
        shutil.copy(path, tmp_path / "nomasks" / "Image" / path.name)
    code, _, err = labkit_command(["evaluate", runs["unet_b"], "--data-dir", tmp_path / "nomasks"], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert not (runs["unet_b"] / "evaluations" / "nomasks").exists()  # nothing left behind by a refused folder
    # The evaluations/ folder keeps its own manifest: --overwrite of the run removes it with the run's files.
    assert (runs["unet_b"] / "evaluations" / "val" / "metrics.json").is_file()
    code, _, err = run_lab_inprocess(load_lab("lab4_unet"), ["--data-dir", str(runs["xray"]), *UNET, "--base", "2",
                                                             "--out", str(runs["unet_b"]), "--overwrite"], capsys)
    assert code == 0, err
    assert not (runs["unet_b"] / "evaluations").exists()


# --- Lab 6: a forecaster on a CSV pair, a streamline classifier on subject folders ------------------------------------


@pytest.fixture(scope="module")
def lab6(tmp_path_factory):
    """A tiny Lab 6 forecaster (window 10) and streamline classifier (4 streamlines per bundle file, all drawn: the
    validation subject's folder is the run's validation set), trained once for the module, and their data."""
    root = tmp_path_factory.mktemp("lab6")
    stock = stock_dataset(n_train=60, n_val=15, root=root / "stock")
    tracts = tract_dataset(n_streamlines=4, root=root / "tracts")
    return {"stock": stock, "series": series_run(stock, root / "series"), "tracts": tracts,
            "streamlines": streamline_run(tracts, root / "streamlines")}


def test_series_evaluation_reproduces_the_runs_validation_and_scores_another_pair_as_numpy_does(lab6, tmp_path,
                                                                                                capsys):
    trained = json.loads((lab6["series"] / "metrics.json").read_text())["validation"]
    tested = labkit.load_run(lab6["series"]).evaluate(lab6["stock"], out=tmp_path / "same")["test"]
    for key in ("days", "mae", "rmse", "persistence_mae"):
        assert tested[key] == pytest.approx(trained[key], rel=1e-6), key
    # Another pair: 20 days of context, 8 to predict; windows, scaling and scores worked out here with NumPy.
    context, values = 260 + 20 * np.cos(np.arange(20) / 2), 270 + 15 * np.sin(np.arange(8))
    (tmp_path / "pair").mkdir()
    for name, series in (("train_data_stock.csv", context), ("val_data_stock.csv", values)):
        rows = [f"d{i},{v}" for i, v in enumerate(series)][::-1]  # newest first, as the course's files
        (tmp_path / "pair" / name).write_text("Date,Open\n" + "\n".join(rows) + "\n")
    code, _, err = labkit_command(["evaluate", lab6["series"], "--data-dir", tmp_path / "pair"], capsys)
    assert code == 0, err
    scaling = json.loads((lab6["series"] / "metrics.json").read_text())["scaling"]
    low, high = scaling["min"], scaling["max"]
    joined = (np.concatenate([context[-10:], values]) - low) / (high - low)
    windows = np.stack([joined[i:i + 10] for i in range(8)])[..., None]
    model = keras.saving.load_model(lab6["series"] / "model.keras")
    predicted = model.predict(windows, verbose=0)[:, 0] * (high - low) + low
    folder = lab6["series"] / "evaluations" / "pair"
    test = json.loads((folder / "metrics.json").read_text())["test"]
    assert test["mae"] == pytest.approx(np.mean(np.abs(predicted - values)), rel=1e-5)
    assert test["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - values) ** 2)), rel=1e-5)
    assert test["persistence_mae"] == pytest.approx(np.mean(np.abs(np.diff(np.concatenate([context[-1:], values])))))
    assert [r["predicted"] for r in read_csv(folder / "per_item.csv")] == pytest.approx(predicted, rel=1e-5)
    assert (folder / "prediction.png").is_file()


def test_streamline_evaluation_on_the_validation_subject_reproduces_the_runs_validation_scores(lab6, tmp_path,
                                                                                               capsys):
    shutil.copytree(lab6["tracts"] / "601127", tmp_path / "held_out" / "601127")
    code, _, err = labkit_command(["evaluate", lab6["streamlines"], "--data-dir", tmp_path / "held_out", "--out",
                                   tmp_path / "eval"], capsys)
    assert code == 0, err
    test = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    validation = json.loads((lab6["streamlines"] / "metrics.json").read_text())["validation"]
    for key in ("images", "accuracy", "balanced_accuracy", "macro_auc", "macro_f1"):
        assert test[key] == pytest.approx(validation[key], abs=1e-12), key
    rows = read_csv(tmp_path / "eval" / "per_item.csv")
    assert [r["image"] for r in rows[:5]] == [*(f"601127/CST_left/{i}" for i in range(4)), "601127/CST_right/0"]
    (tmp_path / "no_subjects").mkdir()
    code, _, err = labkit_command(["evaluate", lab6["streamlines"], "--data-dir", tmp_path / "no_subjects"], capsys)
    assert code == 2 and "no subject folders" in err and err.count("\n") == 1
