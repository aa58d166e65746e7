"""The one fit path every lab uses: compile, callbacks and the run record.

`fit` wraps `keras.Model.fit` with a `RunRecorder` (after each epoch a resume checkpoint, ``history.csv`` and, when
the monitored metric improves, ``model.keras``, all written atomically; see `labkit.resume`), a NaN guard that stops
with the epoch and step at fault, a dead-run watch and, on request, precise BatchNorm statistics
(`labkit.batchnorm`). A training dataset made by labkit's builders is trained epoch by epoch from its
`labkit.data.pipeline.EpochStream`, so a resumed run continues with the batches an uninterrupted run would see.
Precision, seeds and distribution are set up in `labkit.runtime`; a history's best epoch and summary come from
`labkit.history`.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from labkit import resume
from labkit.batchnorm import PRECISE_BN_BATCHES, PreciseBatchNorm
from labkit.data.pipeline import epoch_stream
from labkit.errors import require
from labkit.history import improved, monitor_mode, summarize
from labkit.inference import first_inputs
from labkit.losses import get_loss
from labkit.metrics import dice_coef, iou_coef, thresholded_dice
from labkit.runs import record_folder


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


LR_SCHEDULES = ("constant", "cosine")


def steps_per_epoch(n_items, batch_size):
    """Optimizer steps of one epoch over `n_items` in batches of `batch_size`, the last one partial."""
    return -(-int(n_items) // int(batch_size))


def learning_rate_schedule(learning_rate, schedule="constant", total_steps=None):
    """The optimizer's learning rate for ``--lr`` and ``--lr-schedule``.

    ``constant`` keeps `learning_rate` for the whole run (the course's choice). ``cosine`` (Keras's `CosineDecay`)
    rises linearly from 0 to `learning_rate` over the first 10 % of the steps, then decays to 0 along half a cosine.
    The warm-up spares the network Adam's first updates, which move every weight by about the learning rate at once
    and can saturate a sigmoid output for good; the decay makes the last epochs take ever smaller steps, so a run
    ends where it is best instead of bouncing out of it. On a resumed run the optimizer's step counter is restored,
    so the schedule goes on where it stopped.

    Args:
        learning_rate: the starting (for ``constant``, the only) learning rate.
        schedule: ``constant`` or ``cosine``.
        total_steps: optimizer steps of the whole run (epochs × steps per epoch); needed for ``cosine``.

    Returns:
        A float or a `keras.optimizers.schedules.LearningRateSchedule`, for an optimizer's ``learning_rate``.

    Example:
        >>> keras.optimizers.Adam(learning_rate_schedule(1e-3, "cosine", total_steps=12 * 16))
    """
    require(schedule in LR_SCHEDULES, f"unknown --lr-schedule {schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    require(float(learning_rate) > 0, f"learning rate must be > 0, got {learning_rate}")
    if schedule == "constant":
        return float(learning_rate)
    require(total_steps is not None and int(total_steps) >= 1,
            f"a cosine schedule needs the run's steps, got {total_steps}")
    warmup = max(1, int(total_steps) // 10)
    return keras.optimizers.schedules.CosineDecay(0.0, max(1, int(total_steps) - warmup), alpha=0.0,
                                                  warmup_target=float(learning_rate), warmup_steps=warmup)


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

class RunRecorder(keras.callbacks.Callback):
    """After every epoch: commit the resume checkpoint, write ``history.csv``, and ``model.keras`` whenever `monitor`
    improved; stop on a NaN loss.

    The order makes every kill safe: the checkpoint (`labkit.resume.commit`) is the record of an epoch, so a run
    killed before it retrains that epoch, and one killed after it gets its ``history.csv`` and ``model.keras``
    rewritten from the checkpoint (`restore`).

    Args:
        run: the `labkit.runs.RunFolder` (None: only collect the rows).
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


class DeadRunWatch(keras.callbacks.Callback):
    """Stop a run whose network has died: constant or saturated predictions and a flat training loss for `patience`
    epochs.

    A dead network gives no gradient that could bring it back: every ReLU of a block is silent, so it gives the same
    output for every pixel of every image, or its sigmoid/softmax output sits in the flat tail for every pixel (all
    probabilities within `saturated` of 0 or of 1, the same decision everywhere). Its loss then sits at a constant
    (a Dice loss at 1.0). After each epoch the watch predicts a fixed probe batch (a few validation images) and calls
    the epoch dead when every output channel spans less than `spread` over the whole batch, or every channel is
    saturated at one end. The run stops when that has held for `patience` epochs, the training loss of those epochs
    varies by less than `flat` (relative) and it never fell below `progress` times the loss it started from (the
    untrained network's loss on its first batch, so a first epoch whose loss blew up to 1e16 on the way to a dead
    network does not count as a start it improved on). All three
    must hold, so none of these is stopped: a model that rightly predicts an empty mask for an empty probe image
    but still learns, a slow learner whose outputs sit near 0.5, and a trained classifier that is rightly sure of
    a probe whose images happen to share one class (its loss is far below where it started).

    Args:
        probe: model inputs of a few images (a tensor, array or dict of them).
        patience: consecutive dead epochs before stopping.
        spread: largest range of an output channel over the probe batch that counts as constant.
        flat: largest relative range of the training loss over `patience` epochs that counts as flat.
        saturated: distance from 0 or 1 within which a probability counts as saturated.
        progress: a run whose training loss fell below this fraction of its starting loss (its first batch's; the
            first epoch's when no batch was seen) has learnt something and is not called dead.
    """

    def __init__(self, probe, patience=5, spread=1e-3, flat=1e-2, saturated=1e-2, progress=0.5):
        super().__init__()
        self.probe, self.patience, self.spread, self.flat = probe, int(patience), float(spread), float(flat)
        self.saturated, self.progress = float(saturated), float(progress)
        self.losses, self.lowest, self.first_loss, self.dead_epochs, self.died = [], math.inf, None, 0, None

    def get_state(self):
        """What the watch has seen so far (for the resume checkpoint)."""
        return {"losses": self.losses, "lowest": self.lowest, "first_loss": self.first_loss,
                "dead_epochs": self.dead_epochs}

    def set_state(self, state):
        self.losses, self.lowest = list(state["losses"]), float(state["lowest"])
        self.first_loss, self.dead_epochs = state["first_loss"], int(state["dead_epochs"])

    def probe_outputs(self):
        """The model's outputs on the probe batch as float32 ``(pixels or items, channels)``.

        The forward pass is a `tf.function`, traced once per model: an eager call runs a recurrent layer's loop
        step by step in Python (seconds per epoch for Lab 6's LSTMs), and costs a convolutional network about what
        the one trace does."""
        if getattr(self, "_forward_of", None) is not self.model:
            model = self.model
            self._forward, self._forward_of = tf.function(lambda x: model(x, training=False)), model
        outputs = self._forward(self.probe)
        outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        values = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32")))
        return values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)

    def dead_outputs(self, values):
        """Why outputs ``(n, channels)`` look dead (constant, or saturated at one end per channel), or None."""
        span = float(np.max(np.ptp(values, axis=0)))
        if span < self.spread:
            return f"constant predictions (output range {span:.1e})"
        low, high = values.min(axis=0), values.max(axis=0)
        at_zero, at_one = high <= self.saturated, low >= 1 - self.saturated
        if np.all(low >= 0) and np.all(high <= 1) and np.all(at_zero | at_one):
            return (f"saturated predictions (every probability within {self.saturated:g} of "
                    f"{'0' if at_zero.all() else '1' if at_one.all() else '0 or 1'}, the same decision everywhere)")
        return None

    def on_train_batch_end(self, batch, logs=None):
        # The untrained network's loss on the first batch (logged before its update) is where the run started. The
        # first epoch's mean would do for a calm start, but a learning rate large enough to kill the network
        # usually blows the loss up on the way (1e16), and a dead run would then look as if it had learnt.
        if self.first_loss is None:
            loss = (logs or {}).get("loss")
            if loss is not None and math.isfinite(float(loss)):
                self.first_loss = float(loss)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or not math.isfinite(float(loss)):
            return
        self.losses = (self.losses + [float(loss)])[-self.patience:]
        self.first_loss = float(loss) if self.first_loss is None else self.first_loss
        self.lowest = min(self.lowest, float(loss))
        why = self.dead_outputs(self.probe_outputs())
        self.dead_epochs = self.dead_epochs + 1 if why else 0
        loss_flat = max(self.losses) - min(self.losses) <= self.flat * max(1.0, abs(float(np.mean(self.losses))))
        learnt = self.lowest < self.progress * self.first_loss
        if self.dead_epochs >= self.patience and loss_flat and not learnt:
            first = epoch + 2 - self.patience
            self.died = (f"the network died: {why} and training loss flat at {self.losses[-1]:.4f} for "
                         f"{self.patience} epochs ({first}–{epoch + 1})")
            self.model.stop_training = True


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
        run: a `labkit.runs.RunFolder` (``history.csv``, best ``model.keras``, the resume checkpoint in
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
            (`labkit.batchnorm.PreciseBatchNorm`, over the epoch's first training batches with dropout off), so
            validation scores and the saved model do not use statistics lagging behind the weights. Needs
            `train_data` as a `tf.data.Dataset`; a model without trainable BatchNorm layers is unaffected.

    Returns:
        The history as a dict of lists, one entry per epoch of the whole run (resumed epochs included),
        with ``epoch`` and ``seconds`` keys.

    Raises:
        TrainingDiverged: the loss became NaN/inf (the last good ``model.keras`` is kept).
        TrainingDied: the network died (the best ``model.keras`` is kept, and ``metrics.json`` records the
            history's summary with ``stopped``: why and at which epoch).
        RunWriteError: a file of the run could not be written (e.g. a full disk); the last checkpoint is intact.
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


def parameter_counts(layer):
    """Trainable, non-trainable and total parameter counts of a model or layer (as ``model.summary()`` counts them).

    Returns:
        ``{"trainable": int, "non_trainable": int, "total": int}``; BatchNorm moving statistics and the weights of
        frozen layers are non-trainable.

    Example:
        >>> parameter_counts(keras.layers.Dense(2, input_shape=(3,)))   # once built
        {'trainable': 8, 'non_trainable': 0, 'total': 8}
    """
    size = lambda weights: sum(math.prod(w.shape) for w in weights)  # noqa: E731
    trainable, total = size(layer.trainable_weights), size(layer.weights)
    return {"trainable": int(trainable), "non_trainable": int(total - trainable), "total": int(total)}
