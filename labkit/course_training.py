"""The course's ``train_unet`` (Lab 4 Task 4, Lab 5): compile and fit a segmenter the way course notebooks call it.

It takes what course code passes — a loss as a Keras name, a function or a list of them, metrics mixing functions,
names and Keras metric objects (``Precision()``, ``Recall()``), and ``generator=ImageDataGenerator(...)`` — and runs
it through labkit's one fit path (`labkit.training.fit`). Three differences from the handout, all fixes:

* Augmentation is joint and for training only. The handout built two unseeded ``ImageDataGenerator.flow``
  iterators (images, masks) for the training **and the validation** data: masks got other transforms than their
  images, and the validation curves were measured on randomly transformed images, so they moved from epoch to epoch
  for no reason. labkit applies the generator's settings to each image and its mask together
  (`labkit.data.augment.image_data_generator_options`, masks stay binary) and validates on the untouched arrays.
* ``fit_generator`` is gone in Keras 3; labkit passes an endless `tf.data.Dataset` with ``steps_per_epoch =
  len(train_images) // batch_size``, as the handout computed it.
* History keys are the ones the course's plots read (``loss``, ``dice_coef``, ``precision``, ``recall`` and their
  ``val_`` twins), even when a metric object was already used by an earlier model.
"""

import keras

from labkit.data.generators import training_stream
from labkit.data.pipeline import array_dataset
from labkit.errors import LabkitInputError, require
from labkit.training import compile_model, fit, resolve_loss

#: Metric names that Keras's ``compile`` does not resolve by itself, as fresh metric objects.
_NAMED_METRICS = {"precision": keras.metrics.Precision, "recall": keras.metrics.Recall}


class _HistoryView:
    """Stands in for `keras.callbacks.History` for course code: ``.history`` (metric → per-epoch list), ``.epoch``
    (0-based, as Keras), ``.params`` and ``.model``."""

    def __init__(self, history, model=None, params=None):
        self.history = {k: v for k, v in history.items() if k not in ("epoch", "seconds")}
        self.epoch = [e - 1 for e in history.get("epoch", [])]
        self.model, self.params = model, dict(params or {})


def course_loss(loss, model):
    """One loss for `compile_model` from a course ``loss`` argument.

    A name (``"binary_crossentropy"``, ``"dice"``), a function, or a list/tuple of them as the course's notebooks
    pass it (``loss=[dice_coef_loss]``): a one-element list is its element; for a model with several outputs the
    list is kept, one loss per output.

    Raises:
        LabkitInputError: an empty list, or several losses for a model with one output.
    """
    if not isinstance(loss, (list, tuple)):
        return resolve_loss(loss)
    require(len(loss) > 0, "loss is an empty list")
    if len(loss) == 1:
        return resolve_loss(loss[0])
    outputs = len(model.outputs) if getattr(model, "outputs", None) else 1
    require(outputs == len(loss), f"{len(loss)} losses for a model with {outputs} output(s): give one loss per "
            "output (a single-output model takes one loss)")
    return [resolve_loss(item) for item in loss]


def course_metrics(metrics):
    """Fresh metrics for `compile_model` from a course ``metrics`` list (functions, names or metric objects).

    A metric object (e.g. ``Precision()``) is copied from its config, so one object can serve several models in a
    notebook without carrying state or a suffixed name (``precision_1``) into the history; ``"precision"`` and
    ``"recall"`` become `keras.metrics.Precision` / `Recall`.
    """
    if metrics is None:
        return []
    metrics = [metrics] if callable(metrics) or isinstance(metrics, (str, keras.metrics.Metric)) else list(metrics)
    fresh = []
    for metric in metrics:
        if isinstance(metric, keras.metrics.Metric):
            config = metric.get_config()
            fresh.append(type(metric).from_config(config))
        elif isinstance(metric, str) and metric.lower() in _NAMED_METRICS:
            fresh.append(_NAMED_METRICS[metric.lower()](name=metric.lower()))
        else:
            fresh.append(metric)
    return fresh


def train_unet(
    model,
    train_images,
    train_masks,
    val_images,
    val_masks,
    batch_size,
    epochs,
    learning_rate,
    metrics,
    verbose=1,
    loss="binary_crossentropy",
    generator=None,
):
    """The course's ``train_unet``: compile with Adam(`learning_rate`) and fit on in-memory arrays.

    Args:
        model: a `keras.Model`, e.g. from `get_unet`.
        train_images, train_masks, val_images, val_masks: NumPy arrays ``(n, h, w, c)`` / ``(n, h, w, 1)``.
        batch_size, epochs, learning_rate: training settings.
        metrics: a list mixing functions (`dice_coef`), Keras names and Keras metric objects (``Precision()``,
            ``Recall()``); ``"precision"``/``"recall"`` names work too.
        verbose: Keras verbosity.
        loss: a Keras loss name, ``"dice"`` (= `dice_coef_loss`), ``"bce+dice"``, a function, or a list of them as
            the course passes it (``[dice_coef_loss]``).
        generator: None (fit on the shuffled arrays); a Keras ``ImageDataGenerator`` or a dict of its option names
            (applied jointly to each training image and its mask; validation data is never augmented); or a ready
            stream: a `create_generator` pair, an `image_mask_generator`, a `tf.data.Dataset`.
            A generator runs ``len(train_images) // batch_size`` steps per epoch.

    Returns:
        ``(model, history)``; ``history.history`` maps ``loss``, each metric's name and their ``val_`` twins to
        per-epoch lists, as Keras's `History`.

    Raises:
        LabkitInputError: mismatched array lengths, an unsupported ``ImageDataGenerator`` setting (named), or a loss
            list that does not fit the model's outputs.

    Example:
        >>> datagen = ImageDataGenerator(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1,
        ...                              zoom_range=0.2, horizontal_flip=True)
        >>> model, history = train_unet(get_unet((256, 256, 1)), xt, yt, xv, yv, 8, 150, 1e-4,
        ...                             [dice_coef, Precision(), Recall()], loss=[dice_coef_loss], generator=datagen)
    """
    for images, masks, split in ((train_images, train_masks, "training"), (val_images, val_masks, "validation")):
        require(len(images) == len(masks), f"{len(images)} {split} images but {len(masks)} masks")
    try:
        compile_model(model, learning_rate, course_loss(loss, model), course_metrics(metrics))
    except (TypeError, ValueError) as exc:  # an unknown loss or metric name: one clear line
        if isinstance(exc, LabkitInputError):
            raise
        raise LabkitInputError(f"train_unet cannot compile with loss={loss!r}, metrics={metrics!r}: {exc}") from exc
    val = array_dataset(val_images, val_masks, batch_size)
    if generator is None:
        train, steps = array_dataset(train_images, train_masks, batch_size, shuffle=True), None
    else:
        train, steps = training_stream(generator, train_images, train_masks, batch_size)
    history = fit(model, train, val, epochs, monitor="val_loss", steps_per_epoch=steps, verbose=verbose)
    params = {"epochs": int(epochs), "steps": steps, "verbose": verbose}
    return model, _HistoryView(history, model, params)


__all__ = ["course_loss", "course_metrics", "train_unet"]
