"""Apply a model to data: peek at a dataset's inputs, predict a dataset, batches of arrays or whole volumes.

Training (`labkit.training`), the labs' evaluation and the use of a finished run (`labkit.trained`) all predict
through these functions, so a model sees the same inputs, in the same batches, wherever it is applied.
"""

import keras
import numpy as np
import tensorflow as tf

from labkit.data.patches import centre_crop, sliding_window_inference
from labkit.progress import progress
from labkit.runtime import resolve_precision


def first_inputs(data, n=8):
    """The inputs of the first `n` items of a dataset or ``(x, y)`` arrays, for `DeadRunWatch`; None if unknown."""
    if isinstance(data, tf.data.Dataset):
        batch = next(iter(data.take(1)))
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return keras.tree.map_structure(lambda x: x[:n], inputs)
    if isinstance(data, (tuple, list)) and len(data) >= 1 and hasattr(data[0], "shape"):
        return data[0][:n]
    return None  # a Python generator: peeking would consume a batch


def collect_predictions(model, dataset, max_items=None):
    """Run `model` over a dataset of ``(inputs, targets)`` batches.

    Returns:
        ``(inputs, targets, predictions)`` as NumPy arrays, at most `max_items` of each.
    """
    inputs, targets, predictions = [], [], []
    count = 0
    batches = int(dataset.cardinality()) if hasattr(dataset, "cardinality") else None
    for x, y in progress(dataset, desc="predicting", total=batches if batches and batches > 0 else None, unit="batch"):
        inputs.append(np.asarray(x))
        targets.append(np.asarray(y))
        predictions.append(np.asarray(model.predict_on_batch(x)))
        count += len(inputs[-1])
        if max_items is not None and count >= max_items:
            break
    stack = lambda parts: np.concatenate(parts)[:max_items]  # noqa: E731
    return stack(inputs), stack(targets), stack(predictions)


def predict_arrays(model, images, batch_size=8):
    """The model's outputs for a stack of inputs ``(n, …)``, `batch_size` at a time, as float32 NumPy arrays
    (a mixed-precision model's float16/bfloat16 outputs are cast)."""
    images = np.asarray(images, dtype=np.float32)
    outputs = [np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(images[i:i + batch_size])), np.float32)
               for i in range(0, len(images), int(batch_size))]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def sigmoid(logits):
    """The logistic function of logits, computed in float64 and returned as float32."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))).astype(np.float32)


def predict_volume(model, volume, patch, overlap=0.5, blend="gaussian", batch_size=1):
    """A whole 3D volume ``(x, y, z)`` through a patch model: `labkit.data.patches.sliding_window_inference`
    (windows of `patch` overlapping by `overlap`, blended) with the outputs cast to float32.

    Returns:
        float32 ``(x, y, z, channels)``.
    """
    predict = lambda batch: np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(batch)), np.float32)  # noqa
    return sliding_window_inference(volume, predict, patch, overlap, blend, batch_size=batch_size)


def predict_case(model, case, patch, overlap=0.5, blend="gaussian", batch_size=1, centre=False):
    """A 3D segmenter's foreground probabilities for one volume case (``image``, ``label``) and the reference they
    are scored against: the whole volume by sliding windows (`sliding_window_inference`), or with `centre` only its
    central `patch` block. Returns ``(probabilities, label)``, both of the predicted region's shape."""
    if centre:
        image, label = centre_crop(case.image, patch), centre_crop(case.label, patch)
        return model.predict_on_batch(image[None, ..., None])[0, ..., 0], label
    probabilities = sliding_window_inference(case.image, model, patch, overlap, blend, batch_size=batch_size)
    return probabilities[..., 0], case.label


def set_model_precision(model, precision):
    """Compute a loaded model in another dtype policy (``--precision`` of ``labkit predict``/``evaluate``).

    A saved model keeps the policy it was trained with in every layer, so the global policy does not reach it; this
    sets each layer's policy (weights stay float32 in every policy) and drops the traced predict function.
    `precision` is a ``--precision`` name (`labkit.runtime.PRECISIONS`); None keeps the model as trained.

    Returns:
        The policy name now in effect (None when unchanged).
    """
    if precision is None:
        return None
    policy = resolve_precision(precision)
    for layer in model._flatten_layers(include_self=True):
        layer.dtype_policy = policy
    model.predict_function = None
    return policy
