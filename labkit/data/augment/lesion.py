"""Augmentation for the dermoscopy labs: `LesionAugment` (joint random resized crop, flips and rotation of image
and mask, colour jitter on the image) and `dermoscopy_augmentation` for lesion classifiers."""

import math

import keras
import tensorflow as tf  # crop_and_resize has no keras.ops twin; this runs inside tf.data anyway
from keras import layers, ops

from labkit.data.augment.images import ImageOnly
from labkit.errors import require
from labkit.runtime import reseed, seed_states


#: The lesion lab's ``--augment``: random resized crop, horizontal and vertical flips and rotation applied to image and
#: mask alike, then colour jitter (brightness, contrast, saturation, hue) on the image only.
LESION_AUGMENT = {
    "crop_scale": (0.6, 1.0),
    "crop_ratio": (3 / 4, 4 / 3),
    "horizontal_flip": True,
    "vertical_flip": True,
    "rotation_range": 20,
    "brightness": 0.1,
    "contrast": 0.2,
    "saturation": 0.2,
    "hue": 0.02,
}


class LesionAugment:
    """Joint augmentation of image and mask batches for lesion segmentation, with colour jitter on images only.

    In order: a random resized crop (a box covering `crop_scale` of the area with aspect ratio in `crop_ratio`,
    resized back to the input size: bilinear for images, nearest for masks), random flips and a random rotation
    (reflect-padded; both as Keras's image layers, which move ``segmentation_masks`` with nearest interpolation),
    then `keras.layers.RandomColorJitter` on the images (saturation and hue only for RGB). Masks stay in {0, 1} and
    are never colour-jittered; each sample of a batch gets its own draw.

    Args:
        options: a dict overriding keys of `LESION_AUGMENT` (a missing or falsy key disables that step); None or
            True means `LESION_AUGMENT`.
        seed: seed of every random step.

    Example:
        >>> augment = LesionAugment(seed=1)
        >>> images, masks = augment(images, masks)   # (b, h, w, 3) in [0, 1] and (b, h, w, 1) in {0, 1}
        >>> train = segmentation_dataset(pairs, 128, 32, channels=3, shuffle=True, augment=augment)
    """

    def __init__(self, options=None, seed=None):
        options = dict(LESION_AUGMENT) if options in (None, True) else {**LESION_AUGMENT, **options}
        unknown = sorted(set(options) - set(LESION_AUGMENT))
        require(not unknown, f"unknown lesion augmentation option(s) {', '.join(unknown)}: known are "
                f"{', '.join(LESION_AUGMENT)}")
        if options["crop_scale"]:
            low, high = options["crop_scale"]
            require(0 < low <= high <= 1, f"crop_scale must satisfy 0 < low <= high <= 1, got {options['crop_scale']}")
        self.options = options
        seeds = iter(range(seed, seed + 8)) if seed is not None else iter([None] * 8)
        self.generator = keras.random.SeedGenerator(next(seeds))
        self.geometric = []
        flips = ("horizontal_and_vertical" if options["horizontal_flip"] and options["vertical_flip"]
                 else "horizontal" if options["horizontal_flip"] else "vertical" if options["vertical_flip"] else None)
        if flips:
            self.geometric.append(layers.RandomFlip(flips, seed=next(seeds)))
        if options["rotation_range"]:
            self.geometric.append(layers.RandomRotation(options["rotation_range"] / 360.0, fill_mode="reflect",
                                                        seed=next(seeds)))
        colour_seed = next(seeds)
        jitter = {"brightness_factor": options["brightness"] or None, "contrast_factor": options["contrast"] or None}
        colour = {"saturation_factor": (0.5 - options["saturation"] / 2, 0.5 + options["saturation"] / 2)
                  if options["saturation"] else None, "hue_factor": options["hue"] or None}
        self.grey_jitter = (layers.RandomColorJitter((0.0, 1.0), **jitter, seed=colour_seed)
                            if any(jitter.values()) else None)
        self.rgb_jitter = (layers.RandomColorJitter((0.0, 1.0), **jitter, **colour, seed=colour_seed)
                           if any(jitter.values()) or any(colour.values()) else None)

    def _resized_crop(self, images, masks):
        batch = ops.shape(images)[0]
        low, high = self.options["crop_scale"]
        ratio_low, ratio_high = self.options["crop_ratio"]
        area = keras.random.uniform((batch,), low, high, seed=self.generator)
        ratio = ops.exp(keras.random.uniform((batch,), math.log(ratio_low), math.log(ratio_high), seed=self.generator))
        height = ops.minimum(1.0, ops.sqrt(area / ratio))
        width = ops.minimum(1.0, ops.sqrt(area * ratio))
        top = keras.random.uniform((batch,), seed=self.generator) * (1.0 - height)
        left = keras.random.uniform((batch,), seed=self.generator) * (1.0 - width)
        boxes = ops.stack([top, left, top + height, left + width], axis=1)
        index, size = tf.range(batch), tf.shape(images)[1:3]
        images = tf.image.crop_and_resize(images, boxes, index, size, method="bilinear")
        masks = tf.image.crop_and_resize(masks, boxes, index, size, method="nearest")
        return images, masks

    sequential = True  # its Keras layers share their random state: one batch at a time

    def __call__(self, images, masks, seed=None):
        """Augment a batch; with `seed` (a ``(2,)`` pair) the draws depend on it alone (see `ImageOnly`)."""
        if seed is not None:
            reseed(seed_states(self.generator, *self.geometric, self.grey_jitter, self.rgb_jitter), seed)
        images, masks = ops.cast(images, "float32"), ops.cast(masks, "float32")
        if self.options["crop_scale"]:
            images, masks = self._resized_crop(images, masks)
        data = {"images": images, "segmentation_masks": masks}
        for layer in self.geometric:
            data = layer(data, training=True)
        images, masks = data["images"], data["segmentation_masks"]
        jitter = self.rgb_jitter if images.shape[-1] == 3 else self.grey_jitter
        if jitter is not None:
            images = jitter(images, training=True)
        return ops.clip(images, 0.0, 1.0), ops.cast(masks > 0.5, "float32")


def dermoscopy_augmentation(img_size, crop_fraction=0.85, rotation_range=180, brightness=0.1, contrast=0.2,
                            saturation=0.2, hue=0.02, seed=None):
    """Image-only augmentation for dermoscopy classifiers (the ResNet50 lesion lab's ``--augment``).

    In order: random horizontal and vertical flips, a random rotation (a dermoscopy image has no "up"; reflected
    borders), a random crop of `crop_fraction` of each side resized back to `img_size`, and colour jitter
    (`keras.layers.RandomColorJitter`: brightness, contrast, saturation, hue), each drawn per image.

    Args:
        img_size: int or ``(height, width)`` of the image batches.
        crop_fraction: side of the random crop as a fraction of the image side (1 or 0: no crop).
        rotation_range: maximum rotation in degrees, either way.
        brightness: maximum brightness change, as a fraction of the [0, 1] range.
        contrast: maximum contrast change factor.
        saturation: saturation change around no change (Keras's 0.5), e.g. 0.2 draws from [0.4, 0.6].
        hue: maximum hue shift, as a fraction of the hue circle.
        seed: seed of the random layers.

    Returns:
        An `ImageOnly` augmenter ``(images, labels) -> (images, labels)`` for RGB image batches in [0, 1] (pass it
        as ``augment`` to `labkit.data.pipeline.classification_dataset`); its Keras layers are ``.layer``.

    Example:
        >>> train = classification_dataset(paths, labels, 224, 32, 7, augment=dermoscopy_augmentation(224, seed=1))
    """
    height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    seeds = iter(range(seed, seed + 8)) if seed is not None else iter([None] * 8)
    stack = [layers.RandomFlip("horizontal_and_vertical", seed=next(seeds))]
    if rotation_range:
        stack.append(layers.RandomRotation(rotation_range / 360.0, fill_mode="reflect", seed=next(seeds)))
    if crop_fraction and crop_fraction < 1:
        stack += [layers.RandomCrop(max(1, round(height * crop_fraction)), max(1, round(width * crop_fraction)),
                                    seed=next(seeds)),
                  layers.Resizing(height, width, interpolation="bilinear")]
    jitter = {"brightness_factor": brightness or None, "contrast_factor": contrast or None,
              "saturation_factor": (0.5 - saturation / 2, 0.5 + saturation / 2) if saturation else None,
              "hue_factor": hue or None}
    if any(value is not None for value in jitter.values()):
        stack.append(layers.RandomColorJitter((0.0, 1.0), **jitter, seed=next(seeds)))
    return ImageOnly(keras.Sequential(stack, name="dermoscopy_augmentation"))
