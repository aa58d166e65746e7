"""Faults of the machine end a lab run with one line and leave a run that continues: a disk that fills up mid-run
(a writer that fails with ENOSPC, as a full file system makes it) and an --out that cannot be written."""

import errno
import os
import re

import pytest

from labkit.data.synthetic import xray_dataset
from labkit.run_folder import read_csv

EPOCHS = 4


@pytest.fixture(scope="module")
def xray_dir(tmp_path_factory):
    return xray_dataset(n_images=8, size=32, root=tmp_path_factory.mktemp("xray"))


def unet(xray_dir, out, *extra):
    return ["--data-dir", xray_dir, "--img-size", "16", "--base", "2", "--batch-size", "4", "--epochs", str(EPOCHS),
            "--quiet", "--deterministic", "--out", out, *extra]


def fill_the_disk_at(monkeypatch, file_name):
    """From the first time a temporary of `file_name` is synced to disk, every write fails as on a full disk."""
    real_fsync, full = os.fsync, []

    def fsync(fd):
        if full or os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(f".{file_name}.tmp"):
            full.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return full


@pytest.mark.slow
@pytest.mark.parametrize("full_at, kept, resumed", [
    ("epoch-3.weights.h5", "keeps epochs 1–2", "resuming {out} after epoch 2 of 4"),
    ("epoch-1.weights.h5", "keeps no completed epoch", "no checkpoint in {out}: starting from epoch 1"),
])
def test_a_full_disk_is_one_line_keeps_what_was_committed_and_resume_continues(lab_runner, xray_dir, tmp_path,
                                                                                monkeypatch, full_at, kept, resumed):
    out = tmp_path / "run"
    full = fill_the_disk_at(monkeypatch, full_at)
    code, _, stderr = lab_runner("lab4_unet", unet(xray_dir, out))
    assert full and code == 1
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [f"error: no space left on device writing {out / 'backup' / full_at}; {out} {kept}; "
                     "free space and rerun with --resume"]
    assert not [p for p in out.rglob(".*.tmp*")]  # no partial file
    committed = int(kept.split("–")[-1]) if "–" in kept else 0
    if committed:
        assert [row["epoch"] for row in read_csv(out / "history.csv")] == list(range(1, committed + 1))
        history = (out / "history.csv").read_bytes()
    assert not (out / "metrics.json").exists()

    monkeypatch.undo()  # space freed
    code, stdout, stderr = lab_runner("lab4_unet", ["--resume", "--out", out, "--quiet"])
    assert code == 0, stderr
    assert resumed.format(out=out) in stdout.splitlines()
    assert [row["epoch"] for row in read_csv(out / "history.csv")] == list(range(1, EPOCHS + 1))
    if committed:
        assert (out / "history.csv").read_bytes().startswith(history)  # epochs 1..k as they were


@pytest.mark.parametrize("obstacle", ["file", "parent-file"])
def test_an_out_that_cannot_be_a_folder_is_one_line_before_anything_trains(lab_runner, tmp_path, obstacle):
    if obstacle == "file":
        out = tmp_path / "run"
        out.write_text("a file")
        expected = f"--out {out} cannot be a run folder: it is a file"
    else:
        (tmp_path / "runs").write_text("a file")
        out = tmp_path / "runs" / "run"
        expected = f"--out {out} cannot be a run folder: {tmp_path / 'runs'} is a file"
    code, stdout, stderr = lab_runner("lab4_unet", ["--out", out, "--epochs", "1", "--quiet"])
    assert code == 2 and stderr.strip() == f"error: {expected}"
    assert "data:" not in stdout  # refused before any data was read


def test_an_out_that_cannot_be_written_is_one_line_with_the_reason(lab_runner, tmp_path, monkeypatch):
    from pathlib import Path

    real = Path.write_text

    def read_only(self, *args, **kwargs):
        if tmp_path in self.parents:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    code, _, stderr = lab_runner("lab4_unet", ["--out", tmp_path / "run", "--epochs", "1", "--quiet"])
    assert code == 2 and re.fullmatch(rf"error: --out {re.escape(str(tmp_path / 'run'))}: cannot write there "
                                      r"\(Permission denied\)\n", stderr)
