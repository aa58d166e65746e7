"""Grad-CAM (Selvaraju et al., 2017) for classifiers and segmenters, nested backbones included.

The target layer's output is captured during an ordinary forward pass and watched by the gradient tape, so the
map works wherever the layer sits: in a Sequential or functional model, or inside a nested backbone model (where
rebuilding a "gradient model" from layer outputs, the usual recipe, breaks).
"""

import keras
import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from matplotlib.figure import Figure

from labkit.errors import LabkitInputError, require


def _walk(model):
    """Every layer of `model`, depth first, nested models' layers included, in order."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def find_layer(model, layer_name=None):
    """The layer named `layer_name` (searched in nested models too), or by default ``Last_ConvLayer`` when present,
    else the last layer with a 4D (image-like) output."""
    layers = list(_walk(model))
    name = layer_name or ("Last_ConvLayer" if any(l.name == "Last_ConvLayer" for l in layers) else None)
    if name:
        matches = [l for l in layers if l.name == name]
        require(matches, f"layer {name!r} not found in model {model.name}")
        return matches[-1]
    spatial = [l for l in layers if not isinstance(l, keras.Model) and _is_feature_map(l)]
    require(spatial, f"model {model.name} has no layer with a 2D feature map for Grad-CAM")
    return spatial[-1]


def _is_feature_map(layer):
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return False
    return len(shape) == 4 and not isinstance(layer, keras.layers.InputLayer)


class _Capture:
    """Temporarily wrap `layer.call` so its output is recorded and watched by `tape`."""

    def __init__(self, layer, tape):
        self.layer, self.tape, self.output = layer, tape, None

    def __enter__(self):
        original = self.layer.call

        def call(*args, **kwargs):
            self.output = original(*args, **kwargs)
            self.tape.watch(self.output)
            return self.output

        self.layer.call = call
        return self

    def __exit__(self, *exc):
        del self.layer.call  # back to the class's method


class _Logits:
    """Temporarily drop a final softmax/sigmoid so the class score is the pre-activation logit, as in the paper."""

    def __init__(self, model):
        last = model.layers[-1]
        self.layer = last if getattr(last, "activation", None) in (
            keras.activations.softmax, keras.activations.sigmoid) else None

    def __enter__(self):
        if self.layer is not None:
            self.saved, self.layer.activation = self.layer.activation, keras.activations.linear
        return self

    def __exit__(self, *exc):
        if self.layer is not None:
            self.layer.activation = self.saved


def grad_cam(model, image, layer_name=None, class_index=None):
    """The Grad-CAM heatmap of one image.

    Channel weights are the spatial mean of the gradients of the class score with respect to the layer's output;
    the map is the ReLU of the weighted sum of the channels, resized (bilinear) to the input size and divided by
    its maximum.

    Args:
        model: a Keras classifier (``(b, n_class)`` output) or segmenter (``(b, h, w, n_class)`` output).
        image: one image ``(h, w, c)`` (or a batch of one), scaled as the model expects.
        layer_name: the convolutional layer to explain (default: ``Last_ConvLayer`` when present, else the last
            layer with a 2D feature map, nested models included).
        class_index: the class to explain (default: the predicted class; for a one-channel segmenter, 0).
            Classifier score: the class logit (a final softmax/sigmoid is bypassed). Segmenter score: the mean over
            pixels of the class channel's logit.

    Returns:
        float32 array ``(h, w)`` in [0, 1] (all zeros when no location raises the score).

    Example:
        >>> heatmap = grad_cam(model, images[0])          # predicted class, last conv layer
    """
    batch = np.asarray(image, dtype=np.float32)
    batch = batch[None] if batch.ndim == len(model.input_shape) - 1 else batch
    require(batch.shape[0] == 1, f"grad_cam explains one image at a time, got a batch of {batch.shape[0]}")
    layer = find_layer(model, layer_name)
    with tf.GradientTape() as tape, _Capture(layer, tape) as capture, _Logits(model):
        output = tf.cast(model(batch, training=False), tf.float32)
        if output.shape.rank == 2:
            index = int(tf.argmax(output[0])) if class_index is None else int(class_index)
            score = output[:, index]
        else:
            score = tf.reduce_mean(output[..., 0 if class_index is None else int(class_index)])
    if capture.output is None:
        raise LabkitInputError(f"layer {layer.name!r} did not run in the forward pass of model {model.name}")
    features = tf.cast(capture.output, tf.float32)
    gradients = tf.cast(tape.gradient(score, capture.output), tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0]
    cam = tf.image.resize(cam[..., None], batch.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.max()
    return (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32)


def overlay_heatmap(image, heatmap, alpha=0.4, cmap="jet"):
    """Blend a [0, 1] heatmap (coloured with `cmap`) over an image in [0, 1]; returns an RGB float array."""
    image = np.asarray(image, dtype=np.float32)
    image = np.repeat(image, 3, axis=-1) if image.ndim == 2 or image.shape[-1] == 1 else image[..., :3]
    image = image.reshape(heatmap.shape + (3,))
    colour = colormaps[cmap](np.clip(heatmap, 0, 1))[..., :3]
    return np.clip((1 - alpha) * image + alpha * colour, 0, 1)


def activation_map_figure(images, heatmaps, titles=None, alpha=0.4, save_to=None):
    """One row per image: the image, its heatmap and the overlay. Returns a `Figure`."""
    n = len(images)
    figure = Figure(figsize=(8, 2.7 * n), layout="constrained")
    axes = figure.subplots(n, 3, squeeze=False)
    for i, (image, heatmap) in enumerate(zip(images, heatmaps)):
        shown = np.squeeze(np.asarray(image))
        axes[i, 0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        axes[i, 1].imshow(heatmap, cmap="jet", vmin=0, vmax=1)
        axes[i, 2].imshow(overlay_heatmap(image, heatmap, alpha))
        for axis, label in zip(axes[i], ("image", "Grad-CAM", "overlay")):
            axis.set_title(f"{titles[i]}: {label}" if titles and label == "image" else label, fontsize="small")
            axis.axis("off")
    if save_to is not None:
        figure.savefig(save_to, dpi=110, bbox_inches="tight")
    return figure
