"""Grad-CAM (Selvaraju et al., 2017) for classifiers and segmenters, nested backbones included.

The target layer's output is captured during an ordinary forward pass and watched by the gradient tape, so the
map works wherever the layer sits: in a Sequential or functional model, or inside a nested backbone model (where
rebuilding a "gradient model" from layer outputs, the usual recipe, breaks because the inner layer's output belongs
to the inner model's graph, not the outer one).

Its figures (heatmap overlays) are in `labkit.plots.explain`.
"""

import keras
import numpy as np
import tensorflow as tf

from labkit.data.pipeline import decode_image
from labkit.errors import LabkitInputError, require

_FINAL_ACTIVATIONS = (keras.activations.softmax, keras.activations.sigmoid)


def _walk(model):
    """Every layer of `model`, depth first, nested models' layers included, in order."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def _feature_map_rank(layer):
    """The rank of the layer's (single) output, or None when it has several outputs or none yet."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return None
    shape = getattr(output, "shape", None)
    return len(shape) if shape is not None else None


def find_layer(model, layer_name=None):
    """The layer Grad-CAM explains.

    Args:
        model: a Keras model (nested models are searched too).
        layer_name: a layer name; default ``Last_ConvLayer`` when the model has one, else the last layer with a
            2D feature map (4D output) that is neither a pooling layer nor an output of `model` itself — e.g.
            ``block5_conv3`` in VGG16, ``conv5_block3_out`` in ResNet50, ``out_relu`` in MobileNetV2, the last
            decoder convolution of a U-Net.

    Returns:
        The `keras.layers.Layer`.

    Raises:
        LabkitInputError: no such layer, or no layer with a 2D feature map.
    """
    layers = list(_walk(model))
    name = layer_name or ("Last_ConvLayer" if any(l.name == "Last_ConvLayer" for l in layers) else None)
    if name:
        matches = [l for l in layers if l.name == name]
        require(matches, f"layer {name!r} not found in model {model.name}")
        return matches[-1]
    outputs = {id(getattr(t, "_keras_history", (None,))[0]) for t in model.outputs}
    spatial = [
        l for l in layers
        if not isinstance(l, (keras.Model, keras.layers.InputLayer))
        and "Pooling" not in type(l).__name__
        and id(l) not in outputs
        and _feature_map_rank(l) == 4
    ]
    require(spatial, f"model {model.name} has no layer with a 2D feature map for Grad-CAM")
    return spatial[-1]


class _Capture:
    """Temporarily wrap `layer.call` so its output is recorded and watched by `tape`."""

    def __init__(self, layer, tape):
        self.layer, self.tape, self.output = layer, tape, None

    def __enter__(self):
        self.saved = self.layer.__dict__.get("call")  # an instance-level call, if some wrapper set one
        original = self.layer.call

        def call(*args, **kwargs):
            self.output = original(*args, **kwargs)
            self.tape.watch(self.output)
            return self.output

        self.layer.call = call
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            del self.layer.call  # back to the class's method
        else:
            self.layer.call = self.saved


class _Logits:
    """Temporarily drop a final softmax/sigmoid so the class score is the pre-activation logit, as in the paper.

    Covers a final ``Dense(..., activation="softmax")`` / ``Conv2D(..., activation="sigmoid")`` and a separate
    final ``Activation("softmax")`` layer (the course's models).
    """

    def __init__(self, model):
        last = model.layers[-1]
        self.layer = last if getattr(last, "activation", None) in _FINAL_ACTIVATIONS else None

    def __enter__(self):
        if self.layer is not None:
            self.saved, self.layer.activation = self.layer.activation, keras.activations.linear
        return self

    def __exit__(self, *exc):
        if self.layer is not None:
            self.layer.activation = self.saved


def _score(output, class_index):
    """The scalar Grad-CAM explains and the class it belongs to (classifier: the class logit; segmenter: the mean
    logit of a class channel)."""
    if output.shape.rank == 2:
        index = int(tf.argmax(output[0])) if class_index is None else int(class_index)
        require(0 <= index < output.shape[-1], f"class_index {index} outside the model's {output.shape[-1]} classes")
        return output[0, index], index
    channels = output.shape[-1]
    if class_index is None:  # one channel: it; several: the foreground channel with the largest mean score
        index = 0 if channels == 1 else 1 + int(tf.argmax(tf.reduce_mean(output[0, ..., 1:], axis=(0, 1))))
    else:
        index = int(class_index)
    require(0 <= index < channels, f"class_index {index} outside the model's {channels} output channels")
    return tf.reduce_mean(output[0, ..., index]), index


def grad_cam(model, image, layer_name=None, class_index=None):
    """The Grad-CAM heatmap of one image.

    With ``A`` the layer's output (``h' × w' × K``) and ``y`` the score, the channel weights are
    ``α_k = mean_ij ∂y/∂A_ijk`` and the map is ``ReLU(Σ_k α_k A_k)``, resized (bilinear) to the input size and
    divided by its maximum.

    Args:
        model: a Keras classifier (``(b, n_class)`` output) or segmenter (``(b, h, w, n_class)`` output);
            Sequential or functional, with nested backbone models allowed.
        image: one image ``(h, w, c)`` (or a batch of one), scaled as the model expects.
        layer_name: the convolutional layer to explain (default: see `find_layer`; ``Last_ConvLayer`` when present).
        class_index: the class to explain (default: the predicted class). Classifier score: the class logit
            (a final softmax/sigmoid is bypassed). Segmenter score: the mean over pixels of the class channel's
            logit (default channel: 0 for one channel, else the foreground channel with the largest mean logit).

    Returns:
        float32 array ``(h, w)`` in [0, 1] (all zeros when no location raises the score).

    Raises:
        LabkitInputError: a batch of more than one image, an unknown layer or class, or a layer that the score does
            not depend on.

    Example:
        >>> heatmap = grad_cam(model, images[0])          # predicted class, last conv layer
        >>> heatmap.shape == images[0].shape[:2]
        True
    """
    batch = np.asarray(image, dtype=np.float32)
    batch = batch[None] if batch.ndim == len(model.input_shape) - 1 else batch
    require(batch.shape[0] == 1, f"grad_cam explains one image at a time, got a batch of {batch.shape[0]}")
    layer = find_layer(model, layer_name)
    with tf.GradientTape() as tape, _Capture(layer, tape) as capture, _Logits(model):
        output = tf.cast(model(batch, training=False), tf.float32)
        score, _ = _score(output, class_index)
    if capture.output is None:
        raise LabkitInputError(f"layer {layer.name!r} did not run in the forward pass of model {model.name}")
    gradients = tape.gradient(score, capture.output)
    if gradients is None:
        raise LabkitInputError(f"the output of model {model.name} does not depend on layer {layer.name!r}")
    features = tf.cast(capture.output, tf.float32)
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0]
    cam = tf.image.resize(cam[..., None], batch.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = float(np.nanmax(cam)) if cam.size else 0.0
    return (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32)


def class_examples(model, paths, labels, predicted, img_size, per_class=2, layer_name=None, seed=42, channels=3):
    """Grad-CAM of a few images of each class, for a figure such as `labkit.plots.class_gradcam_figure`.

    Args:
        model: the classifier.
        paths, labels, predicted: image files with their true and predicted class indices.
        img_size: side the images are read at (the model's input).
        per_class: images of each class, chosen at random (seeded) among that class's images.
        layer_name: the layer explained (default: see `find_layer`).
        seed: seed of the choice.
        channels: channels the images are read with.

    Returns:
        ``(images, heatmaps, true, predicted)`` of the chosen images, class by class: lists of arrays, then two
        int arrays.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    rng = np.random.default_rng(seed)
    chosen = [i for k in np.unique(labels) for i in rng.permutation(np.flatnonzero(labels == k))[:per_class]]
    images = [decode_image(str(paths[i]), img_size, channels).numpy() for i in chosen]
    heatmaps = [grad_cam(model, image, layer_name=layer_name) for image in images]
    return images, heatmaps, labels[chosen], predicted[chosen]
