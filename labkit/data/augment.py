"""Joint image + mask augmentation with Keras preprocessing layers, on whole batches.

Image and mask are stacked along the channel axis and go through the same random layers together, so each pair gets
the identical geometric transform (the course's two unseeded `ImageDataGenerator`s could disagree). The mask channel
is re-binarised at 0.5 afterwards, so masks stay in {0, 1}.
"""

import keras
from keras import layers, ops

from labkit.errors import require

#: Lab 4 Task 4e, in `ImageDataGenerator`'s argument names.
COURSE_AUGMENT = {
    "rotation_range": 10,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
    "zoom_range": 0.2,
    "horizontal_flip": True,
}
_KNOWN = set(COURSE_AUGMENT) | {"vertical_flip"}


def resolve_augment(augment):
    """Normalise an ``augment`` argument: None/False → None, True → `COURSE_AUGMENT`, a dict → checked copy.

    Raises:
        LabkitInputError: for an unknown key (the message names it) or a negative range.
    """
    if augment is None or augment is False:
        return None
    if augment is True:
        return dict(COURSE_AUGMENT)
    unknown = sorted(set(augment) - _KNOWN)
    require(not unknown, f"unknown augmentation option(s) {', '.join(unknown)}: known are {', '.join(sorted(_KNOWN))}")
    for key in ("rotation_range", "width_shift_range", "height_shift_range", "zoom_range"):
        require(float(augment.get(key, 0)) >= 0, f"augmentation {key} must be >= 0, got {augment[key]}")
    return dict(augment)


def augmentation_layers(
    rotation_range=0,
    width_shift_range=0.0,
    height_shift_range=0.0,
    zoom_range=0.0,
    horizontal_flip=False,
    vertical_flip=False,
    seed=None,
):
    """A `keras.Sequential` of random geometric layers that mirrors `ImageDataGenerator`'s options.

    Args:
        rotation_range: maximum rotation in degrees (either way).
        width_shift_range, height_shift_range: maximum shift as a fraction of the width / height.
        zoom_range: zoom factor drawn from ``[1 − z, 1 + z]``, independently for height and width (as the course).
        horizontal_flip, vertical_flip: random flips.
        seed: seed of the random layers (each layer gets its own offset of it).

    Returns:
        A `keras.Sequential`; pixels moved in from outside the image are 0 (no smeared mask borders).
    """
    seeds = iter(range(seed, seed + 8)) if seed is not None else iter([None] * 8)
    fill = {"fill_mode": "constant", "fill_value": 0.0, "interpolation": "bilinear"}
    stack = []
    if horizontal_flip or vertical_flip:
        mode = "horizontal_and_vertical" if horizontal_flip and vertical_flip else (
            "horizontal" if horizontal_flip else "vertical")
        stack.append(layers.RandomFlip(mode, seed=next(seeds)))
    if rotation_range:
        stack.append(layers.RandomRotation(rotation_range / 360.0, seed=next(seeds), **fill))
    if width_shift_range or height_shift_range:
        stack.append(layers.RandomTranslation(height_shift_range, width_shift_range, seed=next(seeds), **fill))
    if zoom_range:
        stack.append(layers.RandomZoom((-zoom_range, zoom_range), (-zoom_range, zoom_range), seed=next(seeds), **fill))
    return keras.Sequential(stack, name="joint_augmentation")


class JointAugment:
    """Apply one random transform per sample to a batch of images and their masks together.

    Example:
        >>> augment = JointAugment(COURSE_AUGMENT, seed=1)
        >>> images, masks = augment(images, masks)   # (b, h, w, c) and (b, h, w, 1) tensors
    """

    def __init__(self, options, seed=None):
        self.options = resolve_augment(options) or {}
        self.layers = augmentation_layers(**self.options, seed=seed)

    def __call__(self, images, masks):
        channels = images.shape[-1]
        stacked = ops.concatenate([ops.cast(images, "float32"), ops.cast(masks, "float32")], axis=-1)
        stacked = self.layers(stacked, training=True)
        images = ops.clip(stacked[..., :channels], 0.0, 1.0)
        masks = ops.cast(stacked[..., channels:] > 0.5, "float32")
        return images, masks


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
        A `keras.Sequential` taking image batches in [0, 1].
    """
    geometric = augmentation_layers(rotation_range, width_shift_range, height_shift_range, zoom_range,
                                    horizontal_flip, vertical_flip, seed=seed)
    stack = list(geometric.layers)
    for layer in stack:
        if hasattr(layer, "fill_mode"):
            layer.fill_mode = "nearest"
    offset = (seed or 0) + 100
    if brightness:
        stack.append(layers.RandomBrightness(brightness, value_range=(0.0, 1.0), seed=offset if seed is not None else None))
    if contrast:
        stack.append(layers.RandomContrast(contrast, seed=offset + 1 if seed is not None else None))
    return keras.Sequential(stack, name="classification_augmentation")
