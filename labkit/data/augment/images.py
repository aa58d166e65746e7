"""Image-only augmentation from Keras preprocessing layers: the geometric layers that mirror `ImageDataGenerator`'s
options (`augmentation_layers`), the classifiers' set with colour jitter, and `ImageOnly`, which applies a layer to
the images of ``(images, labels)`` batches."""

import keras
from keras import layers, ops

from labkit.data.augment.options import zoom_bounds
from labkit.runtime import reseed, seed_states


class ImageOnly:
    """An augmenter from a Keras preprocessing layer: the layer transforms each image batch (clipped to [0, 1]),
    the labels pass unchanged.

    Called with ``seed=`` (a ``(2,)`` pair, as the dataset builders pass one per batch), the layer's random state is
    set from it first, so a batch's draws depend on its seed alone; the layer then runs one batch at a time
    (``sequential``), since its state is shared.
    """

    sequential = True

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, images, labels, seed=None):
        if seed is not None:
            reseed(seed_states(self.layer), seed)
        return ops.clip(self.layer(images, training=True), 0.0, 1.0), labels

    def __repr__(self):
        return f"ImageOnly({self.layer.name})"


def augmentation_layers(
    rotation_range=0,
    width_shift_range=0.0,
    height_shift_range=0.0,
    zoom_range=0.0,
    horizontal_flip=False,
    vertical_flip=False,
    seed=None,
    fill_mode="constant",
):
    """A `keras.Sequential` of random geometric layers that mirrors `ImageDataGenerator`'s options.

    Args:
        rotation_range: maximum rotation in degrees (either way).
        width_shift_range, height_shift_range: maximum shift as a fraction of the width / height.
        zoom_range: zoom factor drawn from ``[1 − z, 1 + z]`` (or a ``(low, high)`` pair), independently for height
            and width (as the course).
        horizontal_flip, vertical_flip: random flips.
        seed: seed of the random layers (each layer gets its own offset of it).
        fill_mode: how pixels moved in from outside the image are filled: ``"constant"`` (0) or ``"nearest"``.

    Returns:
        A `keras.Sequential`.
    """
    seeds = iter(range(seed, seed + 8)) if seed is not None else iter([None] * 8)
    fill = {"fill_mode": fill_mode, "fill_value": 0.0, "interpolation": "bilinear"}
    stack = []
    if horizontal_flip or vertical_flip:
        mode = "horizontal_and_vertical" if horizontal_flip and vertical_flip else (
            "horizontal" if horizontal_flip else "vertical")
        stack.append(layers.RandomFlip(mode, seed=next(seeds)))
    if rotation_range:
        stack.append(layers.RandomRotation(rotation_range / 360.0, seed=next(seeds), **fill))
    if width_shift_range or height_shift_range:
        stack.append(layers.RandomTranslation(height_shift_range, width_shift_range, seed=next(seeds), **fill))
    low, high = zoom_bounds(zoom_range)
    if (low, high) != (1.0, 1.0):  # RandomZoom: factor f scales the view by 1 + f (positive f zooms out)
        factor = (low - 1.0, high - 1.0)
        stack.append(layers.RandomZoom(factor, factor, seed=next(seeds), **fill))
    return keras.Sequential(stack, name="joint_augmentation")


def classification_augmentation(
    horizontal_flip=True, vertical_flip=False, rotation_range=0, width_shift_range=0.0, height_shift_range=0.0,
    zoom_range=0.0, brightness=0.0, contrast=0.0, seed=None,
):
    """Image-only augmentation for classifiers: the geometric layers of `augmentation_layers` plus colour jitter.

    Args:
        horizontal_flip, vertical_flip, rotation_range, width_shift_range, height_shift_range, zoom_range:
            as in `augmentation_layers` (fill with edge pixels here: no mask to keep honest).
        brightness: maximum brightness change, as a fraction of the [0, 1] range.
        contrast: maximum contrast change factor.
        seed: seed of the random layers.

    Returns:
        A `keras.Sequential` taking image batches in [0, 1] (`make_augmenter` builds one from ``augment=`` options).
    """
    geometric = augmentation_layers(rotation_range, width_shift_range, height_shift_range, zoom_range,
                                    horizontal_flip, vertical_flip, seed=seed, fill_mode="nearest")
    stack = list(geometric.layers)
    offset = (seed or 0) + 100
    if brightness:
        stack.append(layers.RandomBrightness(brightness, value_range=(0.0, 1.0), seed=offset if seed is not None else None))
    if contrast:
        stack.append(layers.RandomContrast(contrast, seed=offset + 1 if seed is not None else None))
    return keras.Sequential(stack, name="classification_augmentation")
