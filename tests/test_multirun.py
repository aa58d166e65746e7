"""labkit.multirun and the `labkit` command: --sweep parsing, the child-run loop, --folds partitions, resume after
SIGKILL, `labkit compare`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, load_lab

from labkit.cli import main
from labkit.data.split import grouped_stratified_split, kfold_indices, train_val_split
from labkit.data.synthetic import xray_dataset
from labkit.errors import LabkitInputError
from labkit.multirun.tables import keep_winner
from labkit.multirun.variants import parse_sweep, plan, without_flags
from labkit.run_folder import RunFolder, read_csv

TINY = ["--img-size", "16", "--epochs", "1", "--base", "2", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def xray_dir(tmp_path_factory):
    return xray_dataset(n_images=8, size=32, root=tmp_path_factory.mktemp("xray"))


@pytest.fixture(scope="module")
def unet_parser():
    return load_lab("lab4_unet").parse_args([]).parser


# --- sweep specs, values and child flags (no training) ----------------------------------------------------------


@pytest.mark.parametrize("spec, key, values", [
    ("lr=1e-4,1e-5", "lr", [1e-4, 1e-5]),
    ("batch-size=2,4,8", "batch_size", [2, 4, 8]),
    ("dropout=none,0.4", "dropout", [None, 0.4]),
    ("augment=off,on", "augment", [False, True]),
    ("loss=bce,dice", "loss", ["bce", "dice"]),
])
def test_sweep_values_are_parsed_by_the_flags_own_types(unet_parser, spec, key, values):
    assert parse_sweep(unet_parser, [spec]) == [(key, values)]


@pytest.mark.parametrize("spec, message", [
    ("learning=1e-4", "--sweep learning=1e-4: learning is not a flag of this lab"),
    ("out=a,b", "out is not a flag of this lab that can be swept"),
    ("lr=1e-4,fast", "--sweep lr=1e-4,fast"),
    ("dropout=1.5", "--sweep dropout=1.5: 1.5 is not in [0, 1)"),
    ("loss=bce,focal", "--sweep loss=bce,focal: invalid choice 'focal'"),
    ("augment=maybe", "augment is an on/off flag: use on or off"),
    ("lr", "expected KEY=V1,V2"),
])
def test_a_bad_key_or_value_is_named(unet_parser, spec, message):
    with pytest.raises(LabkitInputError) as error:
        parse_sweep(unet_parser, [spec])
    assert message in str(error.value)


def test_a_bad_sweep_is_one_error_line_before_any_folder_exists(lab_runner, tmp_path):
    code, _, stderr = lab_runner("lab4_unet", ["--sweep", "base=8,x", "--out", tmp_path / "run"])
    assert code == 2 and stderr.startswith("error: --sweep base=8,x: 'x' is not a whole number")
    assert stderr.count("\n") == 1 and not (tmp_path / "run").exists()


def test_grid_names_and_child_flags(unet_parser):
    args = unet_parser.parse_args(["--sweep", "lr=1e-4,1e-5", "--sweep", "augment=off,on", "--augment", "--epochs",
                                   "3", "--out", "x"])
    variants = plan(unet_parser, args, [])
    assert [v["name"] for v in variants] == ["lr=0.0001,augment=off", "lr=0.0001,augment=on",
                                             "lr=1e-05,augment=off", "lr=1e-05,augment=on"]
    assert variants[3]["argv"] == ["--lr", "1e-05", "--augment"] and variants[0]["argv"] == ["--lr", "0.0001"]
    base = without_flags(unet_parser, ["--sweep", "lr=1", "--augment", "--epochs", "3", "--out", "x",
                                               "--sweep=augment=on", "--resume"], {"sweep", "augment", "out", "resume"})
    assert base == ["--epochs", "3"]
    for variant in variants:  # the child's own parser reads the variant back
        child = unet_parser.parse_args(["--epochs", "3", *variant["argv"]])
        assert (child.lr, bool(child.augment)) == (variant["settings"]["lr"], variant["settings"]["augment"])


# --- folds -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels, groups", [(None, None), ("labels", None), (None, "groups"), ("labels", "groups")])
def test_every_item_is_in_exactly_one_validation_fold_and_a_group_in_one(labels, groups):
    rng = np.random.default_rng(0)
    n = 40
    group_of = rng.integers(0, 15, n)
    label_of = group_of % 3  # a group (lesion) has one class
    kwargs = {"labels": label_of if labels else None, "groups": group_of if groups else None}
    folds = [kfold_indices(n, (i, 4), seed=7, **kwargs) for i in range(1, 5)]
    validation = np.concatenate([val for _, val in folds])
    assert sorted(validation) == list(range(n))  # a partition
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == n
        if groups:
            assert not set(group_of[train]) & set(group_of[val])
        if labels:
            assert set(label_of[val]) == {0, 1, 2}


def test_grouped_split_keeps_its_test_part_and_folds_the_rest_by_lesion():
    rng = np.random.default_rng(1)
    groups = [f"L{g}" for g in rng.integers(0, 40, 120)]
    labels = np.array([int(g[1:]) % 3 for g in groups])
    parts = [grouped_stratified_split(labels, groups, 0.15, 0.2, seed=3, kfold=(i, 3)) for i in (1, 2, 3)]
    tests = {tuple(test) for _, _, test in parts}
    assert len(tests) == 1  # the same test part for every fold
    val = np.concatenate([v for _, v, _ in parts])
    assert sorted(val) == sorted(set(range(120)) - set(parts[0][2]))
    for train, v, test in parts:
        lesions = [{groups[i] for i in idx} for idx in (train, v, test)]
        assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])


def test_train_val_split_takes_a_fold():
    items = [f"img{i}" for i in range(10)]
    vals = [train_val_split(items, 0.2, 5, kfold=(i, 5))[1] for i in range(1, 6)]
    assert sorted(sum(vals, [])) == sorted(items) and all(len(v) == 2 for v in vals)


def _split(run, part="val"):
    """Items of one part of a run's split.csv, as a list: Lab 2's train/ and validation/ folders reuse file names."""
    return [row["item"] for row in read_csv(run / "split.csv") if row["split"] == part]


# Every child run costs seconds of graph tracing whatever its size, so these tests run the fewest children that still
# exercise each mechanism: 2 folds × 2 variants, 2 folds of a classifier, and one 2×2 sweep (killed and resumed) whose
# files three tests read.


@pytest.mark.slow
def test_folds_with_a_sweep_partition_a_segmentation_set(lab_runner, xray_dir, tmp_path):
    out = tmp_path / "cv"
    code, _, stderr = lab_runner("lab4_unet", ["--data-dir", xray_dir, *TINY, "--folds", "2", "--sweep",
                                               "dropout=none,0.2", "--out", out])
    assert code == 0, stderr
    images = {p.name for p in (xray_dir / "Image").iterdir()}
    for variant in ("dropout=none", "dropout=0.2"):
        folds = [_split(out / variant / f"fold-{i}") for i in (1, 2)]
        assert sorted(sum(map(sorted, folds), [])) == sorted(images)  # each image validates exactly once
        fold_metrics = [json.loads((out / variant / f"fold-{i}" / "metrics.json").read_text()) for i in (1, 2)]
        summary = json.loads((out / variant / "metrics.json").read_text())
        best = [m["best"]["val_dice_coef"] for m in fold_metrics]
        assert summary["best"]["val_dice_coef"] == pytest.approx(np.mean(best))
        assert summary["std"]["best"]["val_dice_coef"] == pytest.approx(np.std(best))
        assert summary["folds"] == 2 and "±" in (out / variant / "comparison.md").read_text()
    rows = read_csv(out / "comparison.csv")
    assert [r["variant"] for r in rows] == ["dropout=none", "dropout=0.2"] and "best_val_dice_coef_std" in rows[0]
    assert len(read_csv(out / "folds.csv")) == 4
    assert "±" in (out / "comparison.md").read_text() and (out / "comparison.png").is_file()


@pytest.mark.slow
def test_folds_stratify_a_classification_set(lab_runner, tmp_path, monkeypatch):
    from labkit.data.synthetic.bone_skin import bone_skin_dataset

    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    data = bone_skin_dataset(n_train=4, n_val=2, size=32, root=tmp_path / "data")
    out = tmp_path / "cv"
    code, _, stderr = lab_runner("lab4_activation_map", ["--data-dir", data, "--img-size", "32", "--epochs", "1",
                                                         "--n-base", "2", "--maps-per-class", "1", "--quiet",
                                                         "--folds", "3", "--out", out])
    assert code == 0, stderr
    images = sorted(p.name for p in (data / "Bone").rglob("*.png"))
    folds = [_split(out / f"fold-{i}") for i in (1, 2, 3)]
    assert sorted(sum(map(sorted, folds), [])) == images
    for fold in folds:  # stratified: both classes validate in every fold
        assert {name[:3] for name in fold} == {"AFF", "NFF"}, fold
    assert [r["fold"] for r in read_csv(out / "folds.csv")] == [1, 2, 3]
    assert json.loads((out / "metrics.json").read_text())["folds"] == 3


# --- one 2×2 sweep, killed in its second variant and resumed: the resume, its table, `labkit compare` -------------

VARIANTS = ["base=2,batch_size=2", "base=2,batch_size=4", "base=3,batch_size=2", "base=3,batch_size=4"]
EPOCHS = 6  # a kill after two epochs of the second variant leaves four of them (and its evaluation) undone


@pytest.fixture(scope="module")
def resumed_sweep(xray_dir, tmp_path_factory):
    """A ``--sweep base=2,3 --sweep batch_size=2,4`` run, SIGKILLed once its second variant has two epochs, then
    resumed with ``--resume``: the sweep folder, what the kill left, and the resumed process."""
    out = tmp_path_factory.mktemp("resumed") / "sweep"
    command = [sys.executable, str(ROOT / "labs" / "lab4_unet.py"), "--out", str(out)]
    process = subprocess.Popen([*command, "--data-dir", str(xray_dir), *TINY, "--epochs", str(EPOCHS), "--sweep",
                                "base=2,3", "--sweep", "batch_size=2,4"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / VARIANTS[1] / "history.csv"
    deadline = time.time() + 400
    while time.time() < deadline and process.poll() is None:
        if second.is_file() and len(read_csv(second)) >= 2:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = {name: (out / name / "metrics.json").is_file() for name in VARIANTS}
    first_metrics = (out / VARIANTS[0] / "metrics.json").read_bytes() if killed[VARIANTS[0]] else None
    resumed = subprocess.run([*command, "--resume", "--quiet"], capture_output=True, text=True, timeout=900)
    return SimpleNamespace(out=out, finished_when_killed=killed, first_metrics=first_metrics, resumed=resumed)


@pytest.mark.slow
def test_a_sweep_killed_in_its_second_variant_resumes_to_one_row_per_variant(resumed_sweep):
    out, resumed = resumed_sweep.out, resumed_sweep.resumed
    assert resumed_sweep.finished_when_killed == {name: name == VARIANTS[0] for name in VARIANTS}
    assert resumed.returncode == 0, resumed.stderr
    assert f"{VARIANTS[0]}: finished earlier, kept" in resumed.stdout and "resuming" in resumed.stdout
    assert (out / VARIANTS[0] / "metrics.json").read_bytes() == resumed_sweep.first_metrics
    for variant in VARIANTS:
        assert [r["epoch"] for r in read_csv(out / variant / "history.csv")] == list(range(1, EPOCHS + 1))
    assert [r["variant"] for r in read_csv(out / "comparison.csv")] == VARIANTS


@pytest.mark.slow
def test_a_two_by_two_sweep_writes_four_runs_and_a_table_of_their_metrics(resumed_sweep):
    out = resumed_sweep.out
    assert resumed_sweep.resumed.returncode == 0, resumed_sweep.resumed.stderr
    rows = read_csv(out / "comparison.csv")
    assert [r["variant"] for r in rows] == VARIANTS
    for row in rows:
        child = json.loads((out / row["variant"] / "metrics.json").read_text())
        settings = json.loads((out / row["variant"] / "config.json").read_text())["settings"]
        assert (row["base"], row["batch_size"]) == (settings["base"], settings["batch_size"])
        assert row["best_epoch"] == child["best"]["epoch"]
        assert row["best_val_dice_coef"] == pytest.approx(child["best"]["val_dice_coef"], rel=1e-12)
        assert row["final_val_dice_coef"] == pytest.approx(child["final"]["val_dice_coef"], rel=1e-12)
        assert row["train_seconds"] == pytest.approx(child["train_seconds"])
    assert rows[0]["parameters"] == rows[1]["parameters"] < rows[2]["parameters"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["winner"] == max(rows, key=lambda r: r["best_val_dice_coef"])["variant"]
    assert set(metrics["variants"]) == set(VARIANTS)
    assert (out / "comparison.png").stat().st_size > 10_000 and (out / "comparison.md").read_text().count("\n") == 6


@pytest.mark.slow
def test_labkit_compare_rebuilds_the_table_from_the_run_folders(resumed_sweep, tmp_path, capsys):
    out = resumed_sweep.out
    labkit = Path(sys.executable).with_name("labkit")  # the console script installed with the package
    result = subprocess.run([str(labkit), "compare", *(out / n for n in VARIANTS), "--out", tmp_path / "again"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert read_csv(tmp_path / "again" / "comparison.csv") == read_csv(out / "comparison.csv")
    winner = json.loads((out / "metrics.json").read_text())["winner"]
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["winner"] == winner

    assert main(["compare", str(tmp_path / "nothing")]) == 2  # the console script's function, in-process
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: ") and "no finished run" in stderr and stderr.count("\n") == 1


def test_keep_winner_picks_the_highest_score_first_on_a_tie_and_keeps_its_model(tmp_path):
    children = {}
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.keras").write_text(f"model {name}")
        children[name] = tmp_path / name
    models = {"a": {"best": {"val_f1": 0.5}}, "b": {"best": {"val_f1": 0.9}}, "c": {"best": {"val_f1": 0.9}}}
    run = RunFolder(tmp_path / "parent")
    run.path.mkdir()
    assert keep_winner(run, children, models, lambda m: m["best"]["val_f1"]) == "b"
    assert (run.path / "model.keras").read_text() == "model b"
    tie_broken = lambda m: (m["best"]["val_f1"], m is models["c"])  # noqa: E731
    assert keep_winner(run, children, models, tie_broken) == "c"
    assert (run.path / "model.keras").read_text() == "model c"
