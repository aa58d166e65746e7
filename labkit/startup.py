"""Load TensorFlow without its start-up notices.

TensorFlow 2.20+ prints a few INFO lines while its libraries load ("oneDNN custom operations are on", "Could not
find cuda drivers"), through absl before absl's logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them;
on a machine without a GPU driver, its first look for GPUs adds an ERROR line ("failed call to cuInit"). They would
bury a lab script's one-line error message. `import_tensorflow_quietly` captures the process's stderr (file
descriptor 2, where C++ writes) while TensorFlow loads and lists its GPUs, and passes on every line except those
INFO lines, absl's "All log messages before absl::InitializeLog()" preamble and, when no GPU was found, the cuInit
failure. Every other warning and error still gets through.
"""

import os
import re
import sys
import tempfile

#: An absl INFO line ("I0000 00:00:…") or absl's notice that logging is not set up yet.
_NOTICE = re.compile(r"^(I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog\(\))")
#: CUDA's complaint that there is no driver: noise on a machine without a GPU, where it is always printed.
_NO_DRIVER = re.compile(r"^E\d{4} .*failed call to cuInit")


def passes_on(line, no_gpu):
    """Whether a line TensorFlow printed while loading reaches the user (False for the start-up notices)."""
    return not _NOTICE.match(line) and not (no_gpu and _NO_DRIVER.match(line))


def import_tensorflow_quietly():
    """Import TensorFlow (once per process), dropping only its start-up notices (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the later C++ INFO/WARNING lines
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr descriptor: import as is
        import tensorflow  # noqa: F401

        return
    gpus = None
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            gpus = tensorflow.config.list_physical_devices("GPU")  # physical only: logical devices stay configurable
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if passes_on(line, no_gpu=gpus == [])))
