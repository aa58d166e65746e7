"""``--overwrite`` removes exactly what a run wrote, whatever the names of the other files: a student's lab report
beside the run, a file inside labkit's own folders or inside a variant, fold or auto-context step makes it refuse
(exit 2, one line naming the file, nothing deleted)."""

import shutil

import pytest
from conftest import load_lab

from labkit.data.synthetic import xray_dataset
from labkit.run_folder import RunFolder
from labkit.run_manifest import MANIFEST, foreign_file

#: What a student keeps beside a run (issue 26's list: names labkit's own files also have) and inside its folders.
USER_FILES = ["report.docx", "summary.xlsx", "comparison.pptx", "curves_mine.png", "backup/thesis.tex",
              "tensorboard/my_notes.txt"]


def tree(folder):
    """Every file under `folder` with its bytes (folders as None)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished tiny run of each lab named in the issue, with the command that made it (TensorBoard on, so
    ``tensorboard/`` is labkit's)."""
    root = tmp_path_factory.mktemp("overwrite")
    xray = xray_dataset(n_images=8, size=32, root=root / "data")
    commands = {
        "lab4_unet": ["--data-dir", str(xray), "--img-size", "16", "--base", "2", "--batch-size", "4", "--epochs", "2",
                      "--tensorboard", "--quiet"],
        "lab1_perceptron": ["--gate", "xor", "--iterations", "20", "--quiet"],
        "lab1_perceptron-sweep": ["--gate", "xor", "--iterations", "20", "--sweep", "hidden=1,2", "--quiet"],
        "lab4_unet-folds": ["--data-dir", str(xray), "--img-size", "16", "--base", "2", "--batch-size", "4", "--epochs",
                            "1", "--folds", "2", "--quiet"],
    }
    runs = {}
    for name, argv in commands.items():
        out = root / name
        load_lab(name.split("-")[0]).main([*argv, "--out", str(out)])
        runs[name] = (out, argv)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("run_name", ["lab4_unet", "lab1_perceptron", "lab1_perceptron-sweep", "lab4_unet-folds"])
def test_a_finished_run_holds_only_what_its_manifests_list(finished_runs, run_name):
    out, _ = finished_runs[run_name]
    assert foreign_file(out) is None
    listed = RunFolder.create(out, resume=True).path / MANIFEST
    assert listed.is_file()


@pytest.mark.slow
@pytest.mark.parametrize("user_file", USER_FILES)
@pytest.mark.parametrize("run_name", ["lab4_unet", "lab1_perceptron"])
def test_overwrite_refuses_a_run_beside_the_users_files_and_deletes_nothing(finished_runs, lab_runner, tmp_path,
                                                                            run_name, user_file):
    source, argv = finished_runs[run_name]
    out = tmp_path / "run"
    shutil.copytree(source, out)
    (out / user_file).parent.mkdir(exist_ok=True)
    (out / user_file).write_text("the student's own")
    before = tree(out)
    code, _, stderr = lab_runner(run_name, [*argv, "--out", out, "--overwrite"])
    errors = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(errors) == 1, stderr
    assert errors[0] == (f"error: --overwrite: {out} holds {user_file}, which labkit did not write; nothing was "
                         "deleted: choose another --out or move that file away")
    assert tree(out) == before


@pytest.mark.slow
@pytest.mark.parametrize("run_name, user_file", [
    ("lab1_perceptron-sweep", "hidden=2/notes.txt"), ("lab1_perceptron-sweep", "my_comparison.md"),
    ("lab4_unet-folds", "fold-2/report.docx"), ("lab4_unet-folds", "fold-1/backup/old.h5"),
])
def test_overwrite_of_a_multi_run_refuses_a_user_file_in_any_child(finished_runs, lab_runner, tmp_path, run_name,
                                                                   user_file):
    source, argv = finished_runs[run_name]
    out = tmp_path / "run"
    shutil.copytree(source, out)
    (out / user_file).parent.mkdir(parents=True, exist_ok=True)
    (out / user_file).write_text("mine")
    before = tree(out)
    code, _, stderr = lab_runner(run_name.split("-")[0], [*argv, "--out", out, "--overwrite"])
    assert code == 2 and f"holds {user_file}, which labkit did not write; nothing was deleted" in stderr
    assert tree(out) == before


@pytest.mark.slow
def test_overwrite_of_an_untouched_run_replaces_exactly_its_files(finished_runs, lab_runner, tmp_path):
    source, argv = finished_runs["lab1_perceptron-sweep"]
    out = tmp_path / "run"
    shutil.copytree(source, out)
    code, _, stderr = lab_runner("lab1_perceptron", [*argv, "--out", out, "--overwrite"])
    assert code == 0, stderr
    assert sorted(tree(out)) == sorted(tree(source))  # the same files again, nothing left over, nothing missing
