"""Run a lab script and kill it with SIGKILL at a precise point of its training, for the tests of ``--resume``.

usage: python tests/kill_after_epoch.py [--mid] [--fit N] [--final DIR] K LAB_SCRIPT [LAB ARGUMENTS ...]

* ``K``: the process kills itself right after epoch K has been recorded: its resume checkpoint committed, its row
  written to ``history.csv`` (and ``model.keras`` when the epoch improved), i.e. at the end of
  `labkit.callbacks.RunRecorder.on_epoch_end`, the last callback of the epoch.
* ``--mid``: kill inside epoch K + 1 instead, after its first training batch: before that epoch is committed, so the
  run keeps epochs 1..K and retrains K + 1.
* ``--fit N``: count only the N-th `labkit.training.fit` of the process (default 1): a sweep or an auto-context run
  trains several models in one process, and the kill lands in the N-th of them.
* ``K`` = ``none``: no kill; the lab runs to its end (with ``--final``, an uninterrupted or a resumed run).
* ``--final DIR``: when a fit ends, save the model's weights with the optimizer's state (``save_weights``) to
  ``DIR/<run folder name>.weights.h5`` and its seed-generator states (dropout) to ``DIR/<run folder name>.seeds.json``:
  the state at the last epoch, which ``model.keras`` (the best epoch, without optimizer) does not show.

Nothing in labkit knows about this: the script patches `labkit.callbacks.RunRecorder`'s methods, then runs the lab as
``python LAB_SCRIPT ARGUMENTS`` would (`runpy.run_path` with ``run_name="__main__"``). The kill is a real
``SIGKILL`` (no ``finally``, no ``atexit``, no flush): the process ends with return code -9. A process that never
reaches the point ends as the lab does.
"""

import argparse
import os
import runpy
import signal
import sys
from pathlib import Path


def parse_args(argv):
    """``(options, lab arguments)``: everything after the lab script (the first ``*.py``) is the lab's."""
    at = next((i for i, token in enumerate(argv) if token.endswith(".py")), len(argv) - 1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--mid", action="store_true", help="kill after the first batch of epoch K + 1")
    parser.add_argument("--fit", type=int, default=1, help="the N-th fit of the process (default 1)")
    parser.add_argument("--final", type=Path, help="save the weights and seed states at the end of every fit here")
    parser.add_argument("epoch", type=lambda text: None if text == "none" else int(text),
                        help="K: the last epoch the killed run has recorded (none: no kill)")
    parser.add_argument("script", type=Path, help="the lab script")
    return parser.parse_args(argv[:at + 1]), argv[at + 1:]


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(epoch, fit=1, mid=False, final=None):
    """Patch `labkit.callbacks.RunRecorder` so that the `fit`-th recorder of the process kills it after epoch
    `epoch` is recorded (or, `mid`, after the first batch of the epoch after it; None: never), and, with `final`, so
    that every fit leaves its last weights, optimizer and seed states in that folder."""
    import json

    from labkit.resume import model_seeds
    from labkit.callbacks import RunRecorder

    made = []
    init, epoch_end, batch_end = RunRecorder.__init__, RunRecorder.on_epoch_end, RunRecorder.on_train_batch_end

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    def armed(recorder):
        return len(made) == fit and made[-1] is recorder

    def on_epoch_end(self, index, logs=None):
        epoch_end(self, index, logs)
        if not mid and armed(self) and epoch is not None and index + 1 == epoch:
            kill()

    def on_train_batch_end(self, batch, logs=None):
        batch_end(self, batch, logs)
        # the first batch of epoch K + 1 (0-based index K)
        if mid and armed(self) and epoch is not None and self._epoch == epoch and batch == 0:
            kill()

    def on_train_end(self, logs=None):
        if final is not None and self.run is not None:
            final.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(final / f"{self.run.path.name}.weights.h5")
            (final / f"{self.run.path.name}.seeds.json").write_text(json.dumps(model_seeds(self.model)))

    RunRecorder.__init__, RunRecorder.on_epoch_end = __init__, on_epoch_end
    RunRecorder.on_train_batch_end, RunRecorder.on_train_end = on_train_batch_end, on_train_end


def main(argv=None):
    args, lab_args = parse_args(sys.argv[1:] if argv is None else argv)
    arm(args.epoch, args.fit, args.mid, args.final)
    script = args.script.resolve()
    sys.argv = [str(script), *lab_args]
    sys.path[0] = str(script.parent)  # as `python LAB_SCRIPT` sets it
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
