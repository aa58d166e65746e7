"""TensorBoard logs beyond Keras's epoch scalars: validation images with their true and predicted masks.

``labkit.training.fit(..., tensorboard=True)`` adds Keras's own `keras.callbacks.TensorBoard`, which writes the epoch
scalars (``epoch_loss``, ``epoch_dice_coef``, …) to ``<run>/tensorboard/train`` and ``<run>/tensorboard/validation``.
For segmentation labs, `SegmentationImages` adds a third TensorBoard run, ``<run>/tensorboard/validation_images``,
with a few validation images every N epochs, each shown as one strip::

    image | true mask | predicted probability | overlay (green: true only, red: predicted only, yellow: both)

Images use the same step as Keras's scalars (the 0-based epoch), so the IMAGES and SCALARS tabs line up.
Open the logs with ``tensorboard --logdir runs`` (every run) or ``--logdir <run>/tensorboard`` (one run).

Example:
    >>> images = SegmentationImages.from_dataset(run.file("tensorboard"), val, n_images=3)
    >>> fit(model, train, val, epochs, run=run, tensorboard=True, callbacks=[images])
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.special import expit

from labkit.errors import require

#: Subfolder of the TensorBoard log folder that holds the image summaries (a run of its own in TensorBoard).
IMAGES_RUN = "validation_images"
#: Width in pixels of the white bar between the panels of a strip.
GAP = 2
_OVERLAY_ALPHA = 0.5
_COLOURS = {"true": (0.0, 1.0, 0.0), "pred": (1.0, 0.0, 0.0), "both": (1.0, 1.0, 0.0)}


def _rgb(array):
    """``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` in [0, 1] → float32 ``(h, w, 3)`` clipped to [0, 1]."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.clip(array[..., :3], 0.0, 1.0)


def mask_strip(image, mask, prediction, threshold=0.5):
    """One validation sample as a single RGB strip: image | true mask | predicted probability | overlay.

    The overlay blends (alpha 0.5) green where only the true mask is set, red where only the prediction (at
    `threshold`) is set and yellow where both are, over the image. Panels are separated by `GAP` white columns.

    Args:
        image: ``(h, w, c)`` in [0, 1], c = 1 or 3.
        mask: ``(h, w, 1)`` or ``(h, w)`` true mask (foreground > 0.5).
        prediction: ``(h, w, 1)`` or ``(h, w)`` predicted probability in [0, 1].
        threshold: probability at which a pixel counts as predicted foreground.

    Returns:
        uint8 array ``(h, 4 * w + 3 * GAP, 3)``.

    Example:
        >>> mask_strip(np.zeros((8, 8, 1)), np.ones((8, 8, 1)), np.zeros((8, 8, 1))).shape
        (8, 38, 3)
    """
    base = _rgb(image)
    true = np.squeeze(np.asarray(mask, dtype=np.float32)) > 0.5
    pred = np.squeeze(np.asarray(prediction, dtype=np.float32)) >= threshold
    require(true.shape == base.shape[:2] == pred.shape, f"image {base.shape[:2]}, mask {true.shape} and prediction "
            f"{pred.shape} must have the same height and width")
    overlay = base.copy()
    for region, key in ((true & ~pred, "true"), (pred & ~true, "pred"), (true & pred, "both")):
        overlay[region] = (1 - _OVERLAY_ALPHA) * overlay[region] + _OVERLAY_ALPHA * np.array(_COLOURS[key])
    gap = np.ones((base.shape[0], GAP, 3), np.float32)
    panels = [base, _rgb(true.astype(np.float32)), _rgb(prediction), overlay]
    strip = np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1)
    return (strip * 255).round().astype(np.uint8)


def default_interval(epochs, snapshots=10):
    """Epochs between image snapshots so that a run of `epochs` logs about `snapshots` of them (at least 1)."""
    return max(1, int(epochs) // int(snapshots))


class SegmentationImages(keras.callbacks.Callback):
    """Log a few validation images with their true and predicted masks to TensorBoard every `every` epochs.

    Each sample is one image summary (tag ``validation/<name>``, one `mask_strip`) in
    ``<log_dir>/validation_images``, at step = the 0-based epoch like Keras's epoch scalars. The last epoch of
    ``fit`` is always logged, so the final masks are there whatever `every` is.

    Args:
        log_dir: the TensorBoard log folder of the run (the one given to `keras.callbacks.TensorBoard`).
        images: ``(n, h, w, c)`` validation images, as the model takes them.
        masks: ``(n, h, w, 1)`` their true masks.
        every: log every this many epochs (default: `default_interval` of the ``fit`` epochs, ~10 snapshots).
        names: optional name of each sample for the tags (default ``sample_0``, ``sample_1``, …).
        threshold: probability at which the overlay counts a pixel as predicted foreground.
        from_logits: the model outputs logits (a sigmoid is applied before drawing).
        channel: the output channel drawn as the predicted mask (0 for a one-channel sigmoid segmenter).

    Volumes ``(n, h, w, d, c)`` (3D U-Net) are drawn by their middle slice along the depth axis.

    Example:
        >>> callback = SegmentationImages(run.file("tensorboard"), val_images[:3], val_masks[:3], every=5)
        >>> model.fit(train, validation_data=val, epochs=50, callbacks=[callback])
    """

    def __init__(self, log_dir, images, masks, every=None, names=None, threshold=0.5, from_logits=False, channel=0):
        super().__init__()
        self.images = np.asarray(images, dtype=np.float32)
        self.masks = np.asarray(masks, dtype=np.float32)
        require(len(self.images) > 0, "SegmentationImages needs at least one validation image")
        require(len(self.images) == len(self.masks), f"{len(self.images)} images but {len(self.masks)} masks")
        require(every is None or int(every) >= 1, f"image logging interval must be at least 1 epoch, got {every}")
        self.log_dir = Path(log_dir)
        self.every = None if every is None else int(every)
        self.names = [str(n) for n in names] if names is not None else [f"sample_{i}" for i in range(len(self.images))]
        require(len(self.names) == len(self.images), f"{len(self.names)} names for {len(self.images)} images")
        self.threshold = float(threshold)
        self.from_logits, self.channel = bool(from_logits), int(channel)
        self._writer = None

    @classmethod
    def from_dataset(cls, log_dir, dataset, n_images=3, every=None, **kwargs):
        """The first `n_images` ``(image, mask)`` items of a batched dataset (e.g. the validation dataset)."""
        images, masks = [], []
        for x, y in dataset:
            images.extend(np.asarray(x))
            masks.extend(np.asarray(y))
            if len(images) >= n_images:
                break
        require(images, "the validation dataset is empty: no images to log to TensorBoard")
        if kwargs.get("names") is not None:
            kwargs["names"] = list(kwargs["names"])[: min(len(images), n_images)]
        return cls(log_dir, np.stack(images[:n_images]), np.stack(masks[:n_images]), every=every, **kwargs)

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(str(self.log_dir / IMAGES_RUN))

    def _due(self, epoch):
        epochs = int(self.params.get("epochs") or 0)
        every = self.every or default_interval(epochs or 1)
        return (epoch + 1) % every == 0 or epoch + 1 == epochs

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None or not self._due(epoch):
            return
        predictions = np.asarray(self.model.predict_on_batch(self.images), dtype=np.float32)
        predictions = predictions[..., self.channel : self.channel + 1]
        if self.from_logits:
            predictions = expit(predictions)
        images, masks = self.images, self.masks
        if images.ndim == 5:  # volumes: the middle slice along depth
            middle = images.shape[3] // 2
            images, masks, predictions = images[:, :, :, middle], masks[:, :, :, middle], predictions[:, :, :, middle]
        with self._writer.as_default():
            for name, image, mask, prediction in zip(self.names, images, masks, predictions):
                strip = mask_strip(image, mask, prediction, self.threshold)
                tf.summary.image(f"validation/{name}", strip[None], step=epoch,
                                 description="image | true mask | predicted probability | overlay "
                                             "(green: true only, red: predicted only, yellow: both)")
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
