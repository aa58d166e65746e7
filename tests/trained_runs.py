"""Tiny finished runs of the real lab scripts, for the tests of `labkit.trained` (predict, evaluate, grading)."""

from pathlib import Path

import pytest
from conftest import load_lab

from labkit.cli import main as labkit_main
from labkit.lab import run_lab

UNET = ["--img-size", "32", "--epochs", "1", "--base", "4", "--batch-size", "4", "--lr", "1e-3", "--quiet"]
LAB5 = ["--task", "ct-lr", "--img-size", "32", "--epochs", "1", "--base", "4", "--batch-size", "4", "--quiet"]
LENET = ["--img-size", "32", "--epochs", "1", "--base", "4", "--batch-size", "4", "--lr", "1e-3", "--quiet"]
UNET3D = ["--patch", "16", "16", "8", "--base", "4", "--depth", "2", "--epochs", "1", "--batch-size", "4", "--quiet"]


def train(lab, argv, out):
    """Run ``labs/<lab>.py`` in-process into `out`; returns `out` (a finished run folder)."""
    with pytest.raises(SystemExit) as exit_info:
        run_lab(load_lab(lab).main, [str(a) for a in [*argv, "--out", out]])
    assert exit_info.value.code == 0
    return Path(out)


def unet_run(data_dir, out, *extra):
    return train("lab4_unet", ["--data-dir", data_dir, *UNET, *extra], out)


def lab5_run(data_dir, out):
    return train("lab5_segmentation", ["--data-dir", data_dir, *LAB5], out)


def lenet_run(data_dir, out):
    return train("lab2_cnn", ["--data-dir", data_dir, "--model", "lenet", *LENET], out)


def unet3d_run(data_dir, out):
    return train("unet3d_segmentation", ["--data-dir", data_dir, *UNET3D], out)


def labkit_command(argv, capsys):
    """``labkit <argv>`` in-process: ``(exit code, stdout, stderr)``."""
    code = labkit_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


SERIES = ["--window", "10", "--units", "4", "--layers", "2", "--epochs", "1", "--batch-size", "8", "--quiet"]
TRACTS = ["--n-tracts", "4", "--units", "3", "--layers", "2", "--epochs", "1", "--batch-size", "4", "--quiet"]


def series_run(data_dir, out):
    return train("lab6_timeseries", ["--data-dir", data_dir, *SERIES], out)


def streamline_run(data_dir, out):
    return train("lab6_streamlines", ["--data-dir", data_dir, *TRACTS], out)


CAM = ["--img-size", "32", "--n-base", "2", "--epochs", "1", "--lr", "3e-3", "--batchnorm", "--quiet"]


def activation_map_run(data_dir, out):
    return train("lab4_activation_map", ["--data-dir", data_dir, *CAM], out)
