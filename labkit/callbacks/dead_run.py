"""`DeadRunWatch`: stop a run whose network has died (constant or saturated predictions and a flat loss)."""

import math

import keras
import numpy as np
import tensorflow as tf


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
