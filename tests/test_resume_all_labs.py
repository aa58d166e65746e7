"""--resume is exact for every lab family: a run killed with SIGKILL and resumed ends as the run never interrupted.

For each family (table `CASES`) three lab processes run with the family's randomness switched on (shuffled batches,
augmentation, dropout, precise BatchNorm where the network has BatchNorm) under ``--deterministic``:

* an uninterrupted run;
* the same run into another ``--out``, killed with a real ``SIGKILL`` by ``tests/kill_after_epoch.py`` (no hook in
  labkit) either right after epoch K was recorded (its checkpoint committed, its ``history.csv`` row written) or
  inside epoch K + 1, after its first batch (before that epoch's commit);
* ``--resume --out`` of the killed run.

The killed process must die by the signal (return code -9) having recorded exactly epochs 1..K; the resumed run
must keep those rows of ``history.csv`` byte for byte and end **exactly** equal to the uninterrupted run: every
history column but ``seconds``, the weights of ``model.keras`` (best epoch), the weights, optimizer state and dropout
seed states after the last epoch, and every evaluation output (metrics.json numbers but timings, per-image /
per-case / prediction tables, reports, auto-context maps, comparison tables). No tolerance is needed: the processes
run the same ops in the same order on one thread each, from the same weights, optimizer, seed states and batches.

A sweep and an auto-context run train several models in one process: the kill lands in one of them (``--fit N``),
the children that had finished must stay untouched byte for byte, and every child must end as in the uninterrupted
multi-run.

The uninterrupted and the killed run of a family run side by side (two processes, one TensorFlow thread each).
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import h5py
import keras
import numpy as np
import pytest
from conftest import ROOT

import labkit  # noqa: F401  (the MobileNet and ResNet50 models hold labkit's preprocessing layers)
from labkit.run_folder import read_csv
from labkit.run_manifest import MANIFEST

KILL = ROOT / "tests" / "kill_after_epoch.py"
#: Every run: repeatable numbers, float32 whatever the CPU (the proof is about resuming, not about precision).
COMMON = ["--deterministic", "--seed", "5", "--precision", "float32", "--quiet"]
#: Files compared by content rather than byte for byte, or not at all: the settings and command name the run
#: folder; the Markdown tables and figures show the numbers compared in the CSV and JSON files (and timings).
NOT_COMPARED = {"config.json", MANIFEST}
NOT_COMPARED_SUFFIXES = (".md", ".png")


@dataclass
class Case:
    """One lab family: its script, data, flags, and where the kill lands.

    Attributes:
        lab: the script in ``labs/``.
        data: the name of a tiny dataset (`tiny_data`).
        args: the lab's flags (`COMMON` is added).
        epoch: K, the last epoch the killed run records.
        mid: kill inside epoch K + 1 (after its first batch) instead of right after epoch K was recorded.
        fit: the fit of the process the kill lands in (a multi-run trains several models).
    """

    lab: str
    data: str
    args: list
    epoch: int = 1
    mid: bool = False
    fit: int = 1


CASES = {
    # U-Net (Lab 4 Task 4): shuffled, augmented batches, dropout, batch norm with precise statistics
    "unet": Case("lab4_unet", "xray", ["--img-size", "16", "--base", "2", "--batch-size", "4", "--epochs", "2",
                                       "--augment", "--dropout", "0.2", "--batchnorm", "--precise-bn"]),
    # MobileNetV2: the per-group optimizer (encoder and decoder rates, cosine schedule), its decoder's dropout and
    # BatchNorm, lesion augmentation, the random encoder's BatchNorm calibration; killed inside epoch 2
    "mobilenet": Case("mobilenet_segmentation", "isic2016", [
        "--img-size", "32", "--batch-size", "4", "--epochs", "2", "--weights", "none", "--strategy", "finetune",
        "--decoder", "transpose", "--augment", "--precise-bn", "--lr-schedule", "cosine"], mid=True),
    # ResNet50: dermoscopy augmentation, dropout, balanced class weights, cosine schedule, precise statistics
    "resnet50": Case("resnet50_classification", "isic2018", [
        "--img-size", "32", "--batch-size", "16", "--epochs", "2", "--weights", "none", "--augment", "--precise-bn",
        "--class-weights", "balanced", "--lr-schedule", "cosine", "--gradcam-per-class", "1"]),
    # 3D U-Net: random (foreground-centred) crops, rotation/flip augmentation, dropout; killed inside epoch 2
    "unet3d": Case("unet3d_segmentation", "atrium", [
        "--patch", "16", "16", "8", "--base", "2", "--depth", "2", "--batch-size", "2", "--patches-per-volume", "2",
        "--epochs", "2", "--augment", "--dropout", "0.2", "--precise-bn"], mid=True),
    # Labs 1–3 classifiers (labkit.classification_lab): VGG16 with batch norm, dropout, spatial dropout, augmentation
    "lab3_cnn": Case("lab3_cnn", "skin", [
        "--dataset", "skin", "--model", "vgg16", "--img-size", "32", "--base", "2", "--batch-size", "4", "--epochs",
        "2", "--lr", "1e-3", "--augment", "--batchnorm", "--dropout", "0.4", "--spatial-dropout", "0.1",
        "--precise-bn"]),
    # Lab 5 auto-context: 2 steps, 2 inner folds (fits: step-1, step-1-fold-1, step-1-fold-2, step-2); killed in the
    # second fold model, after epoch 1: step 2 then trains on maps the resumed fold model made
    "autocontext": Case("lab5_segmentation", "ct", [
        "--task", "ct", "--autocontext", "2", "--autocontext-folds", "2", "--img-size", "16", "--base", "2",
        "--batch-size", "4", "--epochs", "2", "--augment", "--precise-bn"], fit=3),
    # a sweep (the Lab 2 AlexNet with dropout, the cheapest network with random state): killed inside epoch 2 of its
    # second variant, after the first variant finished
    "sweep": Case("lab2_cnn", "skin", ["--dataset", "skin", "--model", "alexnet", "--img-size", "32", "--base", "2",
                                       "--batch-size", "4", "--epochs", "2", "--sweep",
                                       "dropout=0.1,0.3"], mid=True, fit=2),
}


# --- data and processes ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """``tiny_data(name)``: the folder of a tiny embedded dataset in its course layout, made once per module."""
    from labkit.data.synthetic import ct_dataset, xray_dataset
    from labkit.data.synthetic.atrium import atrium_dataset
    from labkit.data.synthetic.bone_skin import bone_skin_dataset
    from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
    from labkit.data.synthetic.skin_lesions7 import isic2018_task3_dataset

    root = tmp_path_factory.mktemp("resume-data")
    makers = {
        "xray": lambda: xray_dataset(n_images=8, size=32, root=root / "xray"),
        "isic2016": lambda: dermoscopy_dataset(n_train=10, n_test=4, size=64, root=root / "isic2016"),
        "isic2018": lambda: isic2018_task3_dataset(n_images=56, size=32, min_per_class=6, root=root / "isic2018"),
        "atrium": lambda: atrium_dataset(n_volumes=5, n_test=1, shape=(24, 24, 12), root=root / "atrium"),
        "skin": lambda: bone_skin_dataset(n_train=4, n_val=2, size=32, root=root / "lab2"),
        "ct": lambda: ct_dataset(n_patients=4, n_slices=3, size=32, root=root / "ct"),
    }
    made = {}

    def get(name):
        if name not in made:
            made[name] = makers[name]()
        return made[name]

    return get


def environment():
    """The lab processes' environment: this checkout's labkit first, one TensorFlow thread each (the uninterrupted
    and the killed run share the cores)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "MPLBACKEND": "Agg"}


def lab_process(case, argv, final, kill=None):
    """Start ``labs/<lab>.py argv`` through the kill helper: killed as `case` says when `kill`, else run to its end;
    every fit leaves its last weights, optimizer and seed states in `final`."""
    options = ["--final", str(final), *(["--mid"] * case.mid), "--fit", str(case.fit)]
    command = [sys.executable, str(KILL), *options, str(case.epoch) if kill else "none",
               str(ROOT / "labs" / f"{case.lab}.py"), *map(str, argv)]
    return subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=1500):
    """``(return code, stdout, stderr)`` of a started process (killed if it outlasts `timeout` seconds)."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


# --- what "the same run" means ------------------------------------------------------------------------------------


def without_timings(value):
    """`value` (JSON data) without timings (keys naming seconds) and the settings that name the run folder."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if "seconds" not in k and k not in ("out", "resume", "command")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def table(path):
    """A CSV file's rows without the columns of timings."""
    return [{k: v for k, v in row.items() if "seconds" not in k} for row in read_csv(path)]


def h5_arrays(path):
    """Every dataset of an HDF5 file (a ``.weights.h5``: the layers' weights and the optimizer's variables)."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                          else None)
    return arrays


def assert_same_arrays(mine, theirs, what):
    assert list(mine) == list(theirs), what
    for key in mine:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{what}: {key}")


def assert_same_file(mine, theirs):
    """Two files of the same name in the resumed and the uninterrupted run hold the same results."""
    what = f"{mine} vs {theirs}"
    if mine.suffix == ".csv":
        assert table(mine) == table(theirs), what
    elif mine.suffix == ".json":
        assert without_timings(json.loads(mine.read_text())) == without_timings(json.loads(theirs.read_text())), what
    elif mine.suffix == ".keras":
        weights = [keras.saving.load_model(p, compile=False).get_weights() for p in (mine, theirs)]
        assert_same_arrays(dict(enumerate(weights[0])), dict(enumerate(weights[1])), what)
        keras.backend.clear_session()
    elif mine.suffix == ".npz":
        with np.load(mine) as a, np.load(theirs) as b:  # zip entries carry their write time: compare the arrays
            assert_same_arrays({k: a[k] for k in sorted(a.files)}, {k: b[k] for k in sorted(b.files)}, what)
    else:
        assert mine.read_bytes() == theirs.read_bytes(), what


def compared_files(folder):
    """The result files of a run folder (children included), by relative path."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name not in NOT_COMPARED
                  and not p.name.endswith(NOT_COMPARED_SUFFIXES))


def assert_same_run(resumed, whole):
    """The resumed run folder (with its children) holds the results of the uninterrupted one, timings aside."""
    assert compared_files(resumed) == compared_files(whole)
    for relative in compared_files(whole):
        assert_same_file(resumed / relative, whole / relative)
    assert not list(resumed.rglob("backup")), "a finished run keeps no checkpoint"


def model_folders(folder):
    """The run folders that trained a model: `folder` itself or its children (a sweep's variants, auto-context steps
    and fold models)."""
    return sorted({p.parent for p in folder.rglob("history.csv") if (p.parent / "config.json").is_file()
                   and "multirun" not in json.loads((p.parent / "config.json").read_text())})


def snapshot(folder):
    """Every file under `folder` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- the test ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_a_killed_and_resumed_run_ends_as_the_run_never_interrupted(name, tiny_data, tmp_path):
    case = CASES[name]
    argv = ["--data-dir", tiny_data(case.data), *case.args, *COMMON]
    whole, killed = tmp_path / "whole" / "run", tmp_path / "killed" / "run"
    uninterrupted = lab_process(case, [*argv, "--out", whole], tmp_path / "whole" / "final")
    interrupted = lab_process(case, [*argv, "--out", killed], tmp_path / "killed" / "final", kill=True)
    (code, _, err), (killed_code, _, killed_err) = finish(uninterrupted), finish(interrupted)
    assert code == 0, err
    assert killed_code == -9, f"the killed run ended with {killed_code}, not by SIGKILL: {killed_err}"

    # What the kill left: the finished models whole, the killed one with epochs 1..K and no metrics.json.
    started = model_folders(killed)
    finished = [f for f in started if (f / "metrics.json").is_file()]
    assert len(started) == case.fit and len(finished) == case.fit - 1
    (cut,) = set(started) - set(finished)
    rows = cut.joinpath("history.csv").read_bytes()
    assert [r["epoch"] for r in read_csv(cut / "history.csv")] == list(range(1, case.epoch + 1))
    assert not (killed / "metrics.json").exists() and (cut / "backup" / "state.json").is_file()
    kept = {f: snapshot(f) for f in finished}

    code, out, err = finish(lab_process(case, ["--resume", "--out", killed, "--quiet"], tmp_path / "killed" / "final"))
    assert code == 0, err
    assert f"resuming {cut} after epoch {case.epoch} of " in out
    assert cut.joinpath("history.csv").read_bytes().startswith(rows), "rows 1..K of history.csv were rewritten"
    for folder, files in kept.items():
        assert snapshot(folder) == files, f"the finished {folder.name} was touched by the resume"

    # The same run: histories (all but seconds), best models, evaluation outputs, multi-run tables ...
    relative = lambda root: [f.relative_to(root) for f in model_folders(root)]  # noqa: E731
    assert relative(killed) == relative(whole)
    assert_same_run(killed, whole)
    # ... and the state after the last epoch of every model: weights, optimizer variables, dropout seed states.
    final = {p.name for p in (tmp_path / "whole" / "final").iterdir()}
    assert final == {f"{f.name}{suffix}" for f in model_folders(whole) for suffix in (".weights.h5", ".seeds.json")}
    for file in sorted(final):
        mine, theirs = tmp_path / "killed" / "final" / file, tmp_path / "whole" / "final" / file
        if file.endswith(".h5"):
            assert_same_arrays(h5_arrays(mine), h5_arrays(theirs), file)
        else:  # every case has dropout: the seed states are there to compare
            assert json.loads(theirs.read_text()) and mine.read_text() == theirs.read_text(), file
