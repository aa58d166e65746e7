"""The run record of every fit: `RunRecorder` commits the resume checkpoint, ``history.csv`` and the best
``model.keras`` after each epoch, in the order that makes every kill safe (`labkit.resume`)."""

import math
import time

import keras

from labkit import resume
from labkit.history import improved
from labkit.run_manifest import record_folder


class RunRecorder(keras.callbacks.Callback):
    """After every epoch: commit the resume checkpoint, write ``history.csv``, and ``model.keras`` whenever `monitor`
    improved; stop on a NaN loss.

    The order makes every kill safe: the checkpoint (`labkit.resume.commit`) is the record of an epoch, so a run
    killed before it retrains that epoch, and one killed after it gets its ``history.csv`` and ``model.keras``
    rewritten from the checkpoint (`restore`).

    Args:
        run: the `labkit.run_folder.RunFolder` (None: only collect the rows).
        monitor, mode: the metric that picks the best epoch, and ``min``/``max``.
        stateful: ``{name: callback}`` whose ``get_state()`` goes into each checkpoint (``set_state`` on resume).
    """

    def __init__(self, run, monitor, mode, stateful=None):
        super().__init__()
        self.run, self.monitor, self.mode = run, monitor, mode
        self.stateful = stateful or {}
        self.rows, self.best_epoch = [], None
        self.diverged = None

    def restore(self, epochs):
        """Continue from the run's newest readable checkpoint (see `labkit.resume.restore`); returns the epoch to
        start from (0-based) and prints what happens."""
        restored = resume.restore(self.run, self.model, epochs)
        print(restored.message)
        self.rows, self.best_epoch = list(restored.rows), restored.best_epoch
        for name, state in restored.callbacks.items():
            if name in self.stateful:
                self.stateful[name].set_state(state)
        if restored.epoch:
            self.run.write_csv("history.csv", self.rows)  # a kill between commit and history.csv lost nothing
            if self.best_epoch == restored.epoch:  # nor one between history.csv and model.keras
                self.run.save_model(self.model)
        return restored.epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._start = epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = f"loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged:
            return
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["seconds"] = round(time.perf_counter() - self._start, 3)
        earlier = [r[self.monitor] for r in self.rows if r["epoch"] <= epoch and self.monitor in r]
        self.rows = [r for r in self.rows if r["epoch"] <= epoch] + [row]
        best = (max if self.mode == "max" else min)(earlier) if earlier else None
        better = self.monitor in row and improved(row[self.monitor], best, self.mode)
        self.best_epoch = epoch + 1 if better else self.best_epoch
        if self.run is None:
            return
        states = {name: callback.get_state() for name, callback in self.stateful.items()}
        resume.commit(self.run, self.model, resume.Checkpoint(epoch + 1, f"epoch-{epoch + 1}.weights.h5", self.rows,
                                                              self.best_epoch, resume.model_seeds(self.model), states))
        self.run.write_csv("history.csv", self.rows)
        if better:
            self.run.save_model(self.model)
        record_folder(self.run.file("tensorboard"))  # the event files TensorBoard wrote this epoch
