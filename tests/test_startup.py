"""Importing labkit loads TensorFlow without its start-up notices, and lets every other line through."""

import subprocess
import sys

import pytest
from conftest import ROOT

from labkit.startup import passes_on

NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795323580.510480   28685 port.cc:153] oneDNN custom operations are on.\n",
    "I0000 00:00:1795323580.513055   28685 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n",
]
CUINIT = "E0000 00:00:1795323733.200576   28922 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
KEPT = [
    "W0000 00:00:1795323580.5 12 some_op.cc:10] a real warning\n",
    "E0000 00:00:1795323580.5 12 loader.cc:10] could not load a library\n",
    "Traceback (most recent call last):\n",
    "I think this line is a user's own\n",
]


@pytest.mark.parametrize("line", NOTICES)
def test_start_up_notices_are_dropped(line):
    assert not passes_on(line, no_gpu=False) and not passes_on(line, no_gpu=True)


@pytest.mark.parametrize("line", KEPT)
def test_warnings_errors_and_other_lines_pass(line):
    assert passes_on(line, no_gpu=True) and passes_on(line, no_gpu=False)


def test_the_cuinit_failure_is_dropped_only_when_no_gpu_was_found():
    assert not passes_on(CUINIT, no_gpu=True)
    assert passes_on(CUINIT, no_gpu=False)  # GPUs listed (or the listing failed): the driver error may matter


def test_importing_labkit_prints_nothing_on_stderr():
    script = "import labkit, tensorflow as tf; tf.constant(1.0) + 1.0; print('ready')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ready"
    assert result.stderr == "", result.stderr
