"""The one fit path every lab uses: compile and fit, with labkit's callbacks (`labkit.callbacks`).

`fit` wraps `keras.Model.fit` with a `RunRecorder` (after each epoch a resume checkpoint, ``history.csv`` and, when
the monitored metric improves, ``model.keras``, all written atomically; see `labkit.resume`), a NaN guard that stops
with the epoch and step at fault, a dead-run watch (`DeadRunWatch`) and, on request, precise BatchNorm
statistics (`PreciseBatchNorm`). A training dataset made by labkit's builders is trained epoch by epoch from its
`labkit.data.pipeline.EpochStream`, so a resumed run continues with the batches an uninterrupted run would see.
Precision, seeds and distribution are set up in `labkit.runtime`; a history's best epoch and summary come from
`labkit.history`.
"""

import keras
import numpy as np
import tensorflow as tf

from labkit.callbacks import PRECISE_BN_BATCHES, DeadRunWatch, PreciseBatchNorm, RunRecorder
from labkit.data.pipeline import epoch_stream
from labkit.errors import require
from labkit.history import monitor_mode, summarize
from labkit.inference import first_inputs
from labkit.losses import get_loss
from labkit.metrics import dice_coef, iou_coef, thresholded_dice


class TrainingStopped(RuntimeError):
    """Training was stopped because it cannot get anywhere; the best ``model.keras`` so far is kept."""


class TrainingDiverged(TrainingStopped):
    """The loss became NaN or infinite; the message names the epoch and step."""


class TrainingDied(TrainingStopped):
    """The network went dead: constant predictions and a loss that no longer moves, for several epochs."""


_METRIC_NAMES = {"dice_coef": dice_coef, "dice": thresholded_dice, "iou": iou_coef, "iou_coef": iou_coef}


def resolve_loss(loss):
    """A loss from a course or lab name (``binary_crossentropy``/``bce``, ``dice``/``dice_coef_loss``,
    ``bce+dice``), any other Keras loss name, or a callable."""
    if callable(loss):
        return loss
    try:
        return get_loss(loss)  # the one mapping of lab loss names (labkit.losses)
    except ValueError:
        return keras.losses.get(loss)


def steps_per_epoch(n_items, batch_size):
    """Optimizer steps of one epoch over `n_items` in batches of `batch_size`, the last one partial."""
    return -(-int(n_items) // int(batch_size))


def compile_model(model, learning_rate, loss, metrics=(), optimizer=None):
    """Compile with Adam(`learning_rate`) (or `optimizer`), `loss` (see `resolve_loss`) and `metrics`.

    `learning_rate` is a number or a Keras schedule (see `learning_rate_schedule`).
    """
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        require(float(learning_rate) > 0, f"learning rate must be > 0, got {learning_rate}")
        learning_rate = float(learning_rate)
    metrics = [_METRIC_NAMES.get(m, m) if isinstance(m, str) else m for m in metrics]
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate=learning_rate),
        loss=resolve_loss(loss),
        metrics=metrics,
    )
    return model


def fit(
    model,
    train_data,
    val_data=None,
    epochs=1,
    run=None,
    monitor="val_loss",
    mode=None,
    steps_per_epoch=None,
    validation_steps=None,
    verbose=1,
    callbacks=(),
    tensorboard=False,
    class_weight=None,
    stop_dead=True,
    precise_batchnorm=False,
):
    """Train a compiled model and record the run.

    Args:
        model: a compiled `keras.Model`.
        train_data, val_data: datasets (or anything `Model.fit` takes as ``x``) of ``(inputs, targets)``. A training
            dataset from labkit's builders is trained epoch by epoch from its `EpochStream` (epoch e's batches
            depend on the seed and e alone).
        epochs: total epochs; a resumed run continues after its last committed epoch up to this.
        run: a `labkit.run_folder.RunFolder` (``history.csv``, best ``model.keras``, the resume checkpoint in
            ``backup/``), or None. A run opened with ``resume=True`` continues from its checkpoint and prints one
            line saying from where (`labkit.resume.restore`).
        monitor: history key that picks the best epoch, e.g. ``val_dice_coef``.
        mode: ``min`` or ``max`` (default: from the name, see `monitor_mode`).
        steps_per_epoch, validation_steps: as in `Model.fit` (needed for repeated datasets; a stream knows its own).
        verbose: Keras progress output (1 bar, 2 one line per epoch, 0 silent).
        callbacks: extra Keras callbacks.
        tensorboard: also write TensorBoard logs to ``<run>/tensorboard``.
        class_weight: as in `Model.fit`.
        stop_dead: stop a run whose network has died (`DeadRunWatch`: constant predictions on a few validation
            images and a flat training loss for 5 epochs); ``--no-stop-dead`` turns it off.
        precise_batchnorm: before each validation, set the BatchNorm statistics from the current weights
            (`labkit.callbacks.PreciseBatchNorm`, over the epoch's first training batches with dropout off), so
            validation scores and the saved model do not use statistics lagging behind the weights. Needs
            `train_data` as a `tf.data.Dataset`; a model without trainable BatchNorm layers is unaffected.

    Returns:
        The history as a dict of lists, one entry per epoch of the whole run (resumed epochs included),
        with ``epoch`` and ``seconds`` keys.

    Raises:
        LabkitInputError: `epochs` below 1, or a `steps_per_epoch` other than the training stream's own.
        TrainingDiverged: the loss became NaN or infinite (the message names the epoch and step); with a `run`, the
            last good ``model.keras`` is kept.
        TrainingDied: `DeadRunWatch` stopped the run; with a `run`, the best ``model.keras`` is kept and
            ``metrics.json`` holds the history's summary with ``stopped`` (why, and at which epoch).
        RunWriteError: a file of the run could not be written (e.g. a full disk); the last committed checkpoint is
            intact.
    """
    require(int(epochs) >= 1, f"epochs must be at least 1, got {epochs}")
    mode = mode or monitor_mode(monitor)
    stream = epoch_stream(train_data)
    if stream is not None:
        require(steps_per_epoch in (None, stream.steps_per_epoch), f"steps_per_epoch {steps_per_epoch} differs "
                f"from the training dataset's {stream.steps_per_epoch}")
        steps_per_epoch = stream.steps_per_epoch
    probe = first_inputs(val_data if val_data is not None else stream.epoch(0) if stream else train_data) \
        if stop_dead else None
    watch = DeadRunWatch(probe) if probe is not None else None
    recorder = RunRecorder(run, monitor, mode, stateful={"dead_run_watch": watch} if watch else {})
    recorder.set_model(model)
    start = recorder.restore(int(epochs)) if run is not None and run.resumed else 0
    stack = [*([watch] if watch else []), *callbacks]
    if precise_batchnorm and isinstance(train_data, tf.data.Dataset):
        batches = min(PRECISE_BN_BATCHES, steps_per_epoch or PRECISE_BN_BATCHES)
        stack.insert(0, PreciseBatchNorm(stream.epoch if stream else train_data, batches))
    if run is not None and tensorboard:
        stack.append(keras.callbacks.TensorBoard(str(run.file("tensorboard")), write_graph=False))
    stack.append(recorder)  # last: it commits the epoch once every other callback has done its part
    if start < int(epochs):
        model.fit(
            stream.starting_at(start) if stream is not None else train_data,
            validation_data=val_data,
            initial_epoch=start,
            epochs=int(epochs),
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            verbose=verbose,
            callbacks=stack,
            class_weight=class_weight,
            shuffle=False,  # datasets shuffle themselves (seeded); Keras cannot shuffle a tf.data.Dataset
        )
    if recorder.diverged:
        raise TrainingDiverged(recorder.diverged + (f"; last good model kept in {run.file('model.keras')}" if run else ""))
    history = {key: [row.get(key) for row in recorder.rows] for key in dict.fromkeys(k for r in recorder.rows for k in r)}
    if watch is not None and watch.died:
        raise TrainingDied(_record_death(run, history, monitor, mode, watch.died))
    return history


def _record_death(run, history, monitor, mode, reason):
    """Write a dead run's ``metrics.json`` (summary + ``stopped``) and return the message for the user."""
    summary = summarize(history, monitor, mode)
    advice = "a lower learning rate usually avoids it; --no-stop-dead keeps training"
    if run is None:
        return f"{reason}; {advice}"
    run.write_json("metrics.json", {**summary, "stopped": {"reason": "dead", "message": reason}})
    best = summary["best"]
    return (f"{reason}. Best model kept in {run.file('model.keras')} (epoch {best['epoch']}, {monitor} "
            f"{best.get(monitor, float('nan')):.4f}); {advice}")


def balanced_class_weight(labels):
    """``{class: weight}`` for `fit`'s ``class_weight``: scikit-learn's balanced weights, ``n / (k · n_c)`` for a
    class of ``n_c`` of the ``n`` labels, over the ``k`` classes present."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(k): float(w) for k, w in zip(present, weights)}
