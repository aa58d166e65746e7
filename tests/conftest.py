"""Shared test set-up: quiet TensorFlow, a non-interactive matplotlib, embedded data in a temporary home."""

import contextlib
import importlib.util
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the two cores (setup.cfg's -n 2): one TensorFlow thread each (lab subprocesses inherit it)
    # instead of each worker's thread pool fighting the other's.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import labkit  # noqa: E402,F401  (first: TensorFlow without its start-up notices)
import keras  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def embedded_data_home(tmp_path_factory):
    """Embedded datasets go to a per-session temporary folder, never into the checkout."""
    home = tmp_path_factory.mktemp("embedded")
    previous = os.environ.get("LABKIT_DATA_HOME")
    os.environ["LABKIT_DATA_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("LABKIT_DATA_HOME", None)
    else:
        os.environ["LABKIT_DATA_HOME"] = previous


def load_lab(name):
    """Import ``labs/<name>.py`` as a module, so tests can call its ``main(argv)`` in-process."""
    spec = importlib.util.spec_from_file_location(f"lab_{name}", ROOT / "labs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def watch_optimizer(monkeypatch, name):
    """The `keras.optimizers.<name>` objects made while the test runs (real optimizers, remembered), however the
    code names them: ``keras.optimizers.<name>`` or `labkit.optimizers.OPTIMIZERS` (``--optimizer``)."""
    import keras

    from labkit import optimizers

    made = []
    base = getattr(keras.optimizers, name)
    watched = type(f"Watched{name}", (base,), {
        "__init__": lambda self, *args, **kwargs: (base.__init__(self, *args, **kwargs), made.append(self))[0]})
    monkeypatch.setattr(keras.optimizers, name, watched)
    for key, value in list(optimizers.OPTIMIZERS.items()):
        if value is base:
            monkeypatch.setitem(optimizers.OPTIMIZERS, key, watched)
    return made


@pytest.fixture
def adam_instances(monkeypatch):
    """The `keras.optimizers.Adam` objects made while the test runs (real Adams, remembered), e.g. by a lab's
    compile: their learning rate or schedule shows what the lab trained with."""
    return watch_optimizer(monkeypatch, "Adam")


@pytest.fixture
def sgd_instances(monkeypatch):
    """The `keras.optimizers.SGD` objects made while the test runs, like `adam_instances` (Lab 1 trains with SGD)."""
    return watch_optimizer(monkeypatch, "SGD")


def run_lab_inprocess(module, argv, capsys=None):
    """Run a lab's ``main`` through `labkit.lab.run_lab`; returns ``(exit_code, stdout, stderr)``.

    `capsys`: the test's capsys; None (in a module-scoped fixture, where there is none) captures the output here.
    A run that finished leaves only files its manifest lists (else ``--overwrite`` would refuse labkit's own files):
    every in-process lab run of the suite checks that its ``--out`` holds nothing unrecorded.
    """
    from labkit.lab import run_lab
    from labkit.run_manifest import foreign_file

    argv = [str(a) for a in argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if capsys is None:
            stack.enter_context(contextlib.redirect_stdout(stdout))
            stack.enter_context(contextlib.redirect_stderr(stderr))
        exit_info = stack.enter_context(pytest.raises(SystemExit))
        run_lab(module.main, argv)
    out, err = capsys.readouterr() if capsys is not None else (stdout.getvalue(), stderr.getvalue())
    if exit_info.value.code == 0 and "--out" in argv:
        folder = Path(argv[argv.index("--out") + 1])
        unrecorded = foreign_file(folder) if folder.is_dir() else None
        assert unrecorded is None, f"{unrecorded} is in the run folder but not in its manifest"
    return exit_info.value.code, out, err


@pytest.fixture
def lab_runner(capsys):
    """``lab_runner(name, argv)`` → ``(exit_code, stdout, stderr)`` of an in-process lab run."""
    cache = {}

    def run(name, argv):
        if name not in cache:
            cache[name] = load_lab(name)
        return run_lab_inprocess(cache[name], [str(a) for a in argv], capsys)

    return run


@pytest.fixture(autouse=True)
def _reset_keras_state(request):
    """Each test starts from float32 (lab runs set a global dtype policy); tests that built Keras models (their
    module imports keras, or they ran a lab) also leave a clean Keras session behind."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")
    if "keras" in vars(request.module) or "lab_runner" in request.fixturenames:
        keras.backend.clear_session()


sys.path.insert(0, str(ROOT))


class CrashAt(keras.callbacks.Callback):
    """Simulate a kill: raise at the end of a given epoch (after the run files of that epoch are written)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt("simulated kill")
