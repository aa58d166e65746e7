"""Every lab script meets the same bad input the same way: one `error: …` line naming the flag, file or folder at
fault, exit code 2, and no run files written for it."""

import re

import pytest

LABS = ["lab4_unet", "lab4_transfer", "lab4_activation_map", "mobilenet_segmentation", "resnet50_classification",
        "unet3d_segmentation", "lab2_cnn", "lab3_cnn", "lab5_segmentation", "lab6_timeseries", "lab6_streamlines"]
#: Labs without some of FLAG_CASES' flags (the Lab 1 MLP has no dropout): the data and run-folder cases only.
DATA_LABS = LABS + ["lab1_mlp"]

FLAG_CASES = [
    (["--batch-size", "0"], r"argument --batch-size: 0 is not > 0"),
    (["--epochs", "0"], r"argument --epochs: 0 is not > 0"),
    (["--lr=-1e-4"], r"argument --lr: -1e-4 is not > 0"),
    (["--dropout", "1"], r"argument --dropout: 1 is not in \[0, 1\)"),
    (["--img-size", "many"], r"argument --img-size: 'many' is not a whole number"),
    (["--precision", "fp8"], r"argument --precision: invalid choice: 'fp8'"),
]

CHOICE_CASES = [
    ("lab4_unet", ["--loss", "focal"], r"argument --loss: invalid choice: 'focal'"),
    ("mobilenet_segmentation", ["--decoder", "fpn"], r"argument --decoder: invalid choice: 'fpn'"),
    ("mobilenet_segmentation", ["--strategy", "half"], r"argument --strategy: invalid choice: 'half'"),
    ("resnet50_classification", ["--loss", "hinge"], r"argument --loss: invalid choice: 'hinge'"),
    ("unet3d_segmentation", ["--loss", "hinge"], r"argument --loss: invalid choice: 'hinge'"),
    ("unet3d_segmentation", ["--patch", "30", "32", "16"], r"--patch"),
    ("lab4_unet", ["--img-size", "40"], r"not divisible by 16"),
    ("lab2_cnn", ["--loss", "focal"], r"argument --loss: invalid choice: 'focal'"),
    ("lab2_cnn", ["--optimizer", "adagrad"], r"argument --optimizer: invalid choice: 'adagrad'"),
    ("lab3_cnn", ["--dataset", "xray"], r"argument --dataset: invalid choice: 'xray'"),
    ("lab1_mlp", ["--base", "0"], r"argument --base: 0 is not > 0"),
    ("lab5_segmentation", ["--task", "pet"], r"argument --task: invalid choice: 'pet'"),
    ("lab5_segmentation", ["--task", "ct-lr", "--heads", "sigmoid", "--loss", "ce"], r"--loss ce needs"),
]


def assert_one_error_line(code, stderr, pattern):
    assert code == 2, stderr
    lines = [line for line in stderr.strip().splitlines() if line]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert re.search(pattern, errors[0]), errors[0]


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("flags, pattern", FLAG_CASES, ids=[c[0][0] for c in FLAG_CASES])
def test_impossible_flag_values(lab_runner, tmp_path, lab, flags, pattern):
    code, _, stderr = lab_runner(lab, [*flags, "--out", tmp_path / "run"])
    assert_one_error_line(code, stderr, pattern)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("lab, flags, pattern", CHOICE_CASES)
def test_unknown_names_and_impossible_sizes(lab_runner, tmp_path, lab, flags, pattern):
    code, _, stderr = lab_runner(lab, [*flags, "--out", tmp_path / "run", "--quiet"])
    assert_one_error_line(code, stderr, pattern)


@pytest.mark.parametrize("lab", DATA_LABS)
def test_missing_data_folder_is_named(lab_runner, tmp_path, lab):
    missing = tmp_path / "no_such_folder"
    code, _, stderr = lab_runner(lab, ["--data-dir", missing, "--out", tmp_path / "run", "--quiet"])
    assert_one_error_line(code, stderr, re.escape(str(missing)))


@pytest.mark.parametrize("lab", DATA_LABS)
def test_empty_data_folder_is_named(lab_runner, tmp_path, lab):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = lab_runner(lab, ["--data-dir", empty, "--out", tmp_path / "run", "--quiet"])
    assert_one_error_line(code, stderr, re.escape(str(empty)))


@pytest.mark.parametrize("lab", DATA_LABS)
def test_a_finished_run_is_refused(lab_runner, tmp_path, lab):
    (tmp_path / "metrics.json").write_text('{"done": true}')
    code, _, stderr = lab_runner(lab, ["--out", tmp_path, "--quiet"])
    assert_one_error_line(code, stderr, r"already holds a finished run.*--overwrite or --resume")
    assert (tmp_path / "metrics.json").read_text() == '{"done": true}'


@pytest.mark.parametrize("lab", DATA_LABS)
def test_overwrite_never_deletes_files_labkit_did_not_write(lab_runner, tmp_path, lab):
    (tmp_path / "metrics.json").write_text('{"done": true}')
    (tmp_path / "scan_001.png").write_text("the user's data")
    code, _, stderr = lab_runner(lab, ["--out", tmp_path, "--overwrite", "--quiet"])
    # no manifest: nothing here was written by labkit, the first entry is named
    assert_one_error_line(code, stderr, re.escape(f"{tmp_path} holds metrics.json, which labkit did not write"))
    assert (tmp_path / "scan_001.png").read_text() == "the user's data"
    assert (tmp_path / "metrics.json").read_text() == '{"done": true}'


def test_a_sweep_with_overwrite_never_deletes_files_labkit_did_not_write(lab_runner, tmp_path):
    (tmp_path / "base=2" / "notes.txt").parent.mkdir()
    (tmp_path / "base=2" / "notes.txt").write_text("mine")
    code, _, stderr = lab_runner("lab4_unet", ["--out", tmp_path, "--overwrite", "--sweep", "base=2,4", "--quiet"])
    assert_one_error_line(code, stderr, re.escape("holds base=2/notes.txt, which labkit did not write"))
    assert (tmp_path / "base=2" / "notes.txt").read_text() == "mine"
