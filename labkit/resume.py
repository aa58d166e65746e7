"""Resuming a killed run exactly where it stopped: a checkpoint committed after every epoch.

After every epoch `labkit.training.fit` commits a checkpoint into the run folder's ``backup/``: first
``epoch-<k>.weights.h5`` (the network's weights and the optimizer's state: Adam's moments and the step counter that
drives a learning-rate schedule), then ``state.json``, whose atomic rename is the commit. It holds the epoch, every
history row so far, the best epoch, the model's random-seed states (dropout masks; ``save_weights`` leaves them
out) and the state of labkit's callbacks (the dead-run watch). A kill at any moment leaves the last committed
checkpoint whole. The two newest are kept, so a weights file that cannot be read falls back to the one before.

With training data made epoch by epoch (`labkit.data.pipeline.EpochStream`), a run resumed after epoch k trains
epoch k + 1 on the same batches, from the same weights, optimizer and random states as an uninterrupted run: under
``--deterministic`` both end with the same history and weights. ``metrics.json`` marks a finished run and removes
the checkpoint (`labkit.run_folder.RunFolder.write_json`).
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labkit.run_folder import atomic_write
from labkit.run_manifest import forget_written
from labkit.runtime import seed_states

FOLDER = "backup"
STATE = "state.json"
KEEP = 2  # checkpoints kept: the newest and the one before it


@dataclass
class Checkpoint:
    """One committed epoch: what `restore` needs to continue after it."""

    epoch: int
    weights: str  # file name in ``backup/``
    rows: list  # the history rows of epochs 1..epoch
    best_epoch: int = None  # the epoch ``model.keras`` holds
    seeds: list = field(default_factory=list)  # the model's seed-generator states
    callbacks: dict = field(default_factory=dict)  # {name: state} of labkit's stateful callbacks


@dataclass
class Restored:
    """Where a run continues: after `epoch` (0: from the start), with the history `rows`, `best_epoch` and the
    callbacks' states, and the line that tells the user."""

    epoch: int
    rows: list
    best_epoch: int
    message: str
    callbacks: dict = field(default_factory=dict)


def _state_path(run):
    return run.file(f"{FOLDER}/{STATE}")


def read_checkpoints(run):
    """The run's committed checkpoints, newest first, and why none could be read (None when fine or absent)."""
    path = _state_path(run)
    if not path.is_file():
        return [], None
    try:
        entries = json.loads(path.read_text())["checkpoints"]
        return [Checkpoint(**entry) for entry in entries], None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [], f"{path} cannot be read ({type(exc).__name__})"


def completed_epochs(run):
    """How many epochs the run folder's newest checkpoint holds (0 when none)."""
    checkpoints, _ = read_checkpoints(run)
    return checkpoints[0].epoch if checkpoints else 0


def commit(run, model, checkpoint):
    """Save the weights of `checkpoint` from `model`, commit its ``state.json``, and drop checkpoints older than
    the `KEEP` newest."""
    atomic_write(run.file(f"{FOLDER}/{checkpoint.weights}"), model.save_weights, suffix=".weights.h5")
    kept = [checkpoint, *read_checkpoints(run)[0]][:KEEP]
    text = json.dumps({"format": 1, "checkpoints": [asdict(c) for c in kept]}, indent=1) + "\n"
    atomic_write(_state_path(run), lambda tmp: Path(tmp).write_text(text))
    current = {c.weights for c in kept}
    stale = [p.name for p in run.file(FOLDER).glob("epoch-*.weights.h5") if p.name not in current]
    forget_written(run.path, *(f"{FOLDER}/{name}" for name in stale))


def model_seeds(model):
    """The model's seed-generator states as lists (see `labkit.runtime.seed_states`)."""
    return [np.asarray(state.numpy()).tolist() for state in seed_states(model)]


def _load(run, model, checkpoint):
    """Load `checkpoint`'s weights (optimizer state included) and seed states into `model`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:  # its variables must exist before they can be loaded
        with model.distribute_strategy.scope():
            optimizer.build(model.trainable_variables)
    model.load_weights(run.file(f"{FOLDER}/{checkpoint.weights}"))
    for state, value in zip(seed_states(model), checkpoint.seeds):
        state.assign(np.asarray(value, dtype=state.dtype))


def restore(run, model, epochs):
    """Load the newest readable checkpoint of `run` into `model`.

    Returns:
        A `Restored`: the epoch to continue after, the history so far, the best epoch and a one-line message (what
        happens, in the user's terms: resumed after epoch k, fell back to an older checkpoint, or started from
        epoch 1 because there was none or none could be read).
    """
    checkpoints, problem = read_checkpoints(run)
    if problem:
        return Restored(0, [], None, f"the checkpoint {problem}: starting from epoch 1")
    if not checkpoints:
        return Restored(0, [], None, f"no checkpoint in {run.path}: starting from epoch 1")
    failures = []
    for checkpoint in checkpoints:
        try:
            _load(run, model, checkpoint)
        except Exception as exc:  # noqa: BLE001 - h5py and Keras raise many types for a damaged file
            failures.append(f"the checkpoint of epoch {checkpoint.epoch} cannot be read ({type(exc).__name__})")
            continue
        done = (f"{run.path} had finished its {epochs} epochs: evaluating its best model"
                if checkpoint.epoch >= epochs else f"resuming {run.path} after epoch {checkpoint.epoch} of {epochs}")
        message = "; ".join([*failures, done if not failures else f"resuming after epoch {checkpoint.epoch} instead"])
        return Restored(checkpoint.epoch, checkpoint.rows, checkpoint.best_epoch, message, checkpoint.callbacks)
    return Restored(0, [], None, "; ".join(failures) + ": starting from epoch 1")
