"""Augmentation: one `augment=` argument for every dataset builder, resolved by `make_augmenter`.

Every builder (`segmentation_dataset`, `array_dataset`, `classification_dataset`, `patch_dataset`) takes the same
kind of ``augment``:

- ``None`` or ``False``: no augmentation;
- ``True``: the course's set for that kind of data (`AUGMENT_DEFAULTS`: Lab 4 Task 4e for segmentation, Lab 3
  Tasks 8–9 for classification, the 3D lab's rotation and flips for volumes);
- a dict of options in `ImageDataGenerator`'s names (a Keras ``ImageDataGenerator`` itself for 2D data), checked by
  `resolve_augment` (unknown names are refused, naming them);
- an augmenter: an object called ``augmenter(images, targets) -> (images, targets)`` on what the builder makes (a
  batch of 2D images with their masks or labels; one 3D block with its label). One that also takes ``seed=``
  gets a stateless ``(2,)`` seed per batch, so a seeded pipeline gives the same batches at any parallelism. For
  classification a Keras preprocessing layer also works: it is applied to the images only (`ImageOnly`).

Segmentation applies one random transform jointly to image and mask (`labkit.data.affine.JointAffineAugment`) and
keeps masks in {0, 1}; classification transforms images only (`classification_augmentation`); volumes rotate in the
axial plane and flip (`labkit.data.augment3d.VolumeAugment`).
"""

import keras
from keras import layers, ops

from labkit.errors import require
from labkit.runtime import reseed, seed_states

#: Lab 4 Task 4e (segmentation), in `ImageDataGenerator`'s argument names.
COURSE_AUGMENT = {
    "rotation_range": 10,
    "width_shift_range": 0.1,
    "height_shift_range": 0.1,
    "zoom_range": 0.2,
    "horizontal_flip": True,
}
#: Lab 3 Tasks 8–9 and Lab 4 Task 3 (classification, training images only).
CLASSIFICATION_AUGMENT = {"rotation_range": 10, "width_shift_range": 0.1, "height_shift_range": 0.1,
                          "horizontal_flip": True}
#: Lab 3 Task 7's `ImageDataGenerator` settings (the augmentation preview; the handout shifts the width only).
LAB3_T7_AUGMENT = {"rotation_range": 20, "width_shift_range": 0.2, "horizontal_flip": True}
#: The 3D lab: rotation up to ±20° in the axial plane, flips of both in-plane axes.
VOLUME_AUGMENT = {"rotation_range": 20, "horizontal_flip": True, "vertical_flip": True}
#: What ``augment=True`` means for each kind of dataset.
AUGMENT_DEFAULTS = {"segmentation": COURSE_AUGMENT, "classification": CLASSIFICATION_AUGMENT,
                    "volume": VOLUME_AUGMENT}
_GEOMETRIC = ("rotation_range", "width_shift_range", "height_shift_range", "zoom_range", "horizontal_flip",
              "vertical_flip")
#: The option names each kind of dataset understands.
KNOWN_OPTIONS = {"segmentation": _GEOMETRIC, "classification": _GEOMETRIC + ("brightness", "contrast"),
                 "volume": ("rotation_range", "horizontal_flip", "vertical_flip")}


#: `ImageDataGenerator` settings labkit cannot apply jointly to an image and its mask, with their "off" values.
_UNSUPPORTED_IDG = {
    "featurewise_center": False, "samplewise_center": False, "featurewise_std_normalization": False,
    "samplewise_std_normalization": False, "zca_whitening": False, "shear_range": 0.0, "channel_shift_range": 0.0,
    "brightness_range": None, "rescale": None, "preprocessing_function": None,
}


def is_image_data_generator(obj):
    """True for a Keras ``ImageDataGenerator`` (or anything shaped like one: ``flow`` plus its range attributes)."""
    return hasattr(obj, "flow") and hasattr(obj, "rotation_range") and hasattr(obj, "zoom_range")


def zoom_bounds(zoom_range):
    """``(low, high)`` scale factors from a zoom option: a float z means ``(1 − z, 1 + z)``, a pair is taken as is."""
    if isinstance(zoom_range, (list, tuple)):
        low, high = (float(v) for v in zoom_range)
        return low, high
    return 1.0 - float(zoom_range), 1.0 + float(zoom_range)


def image_data_generator_options(generator):
    """The joint-augmentation options of a Keras ``ImageDataGenerator``, in the names `resolve_augment` takes.

    Rotation, shifts, zoom and flips are read from the generator's attributes (its ``zoom_range`` is stored as a
    ``[low, high]`` pair; a symmetric pair becomes the float ``z``). Settings that would change the image and the mask
    differently, or scale the mask (``rescale``, shear, brightness, channel shift, centring and normalisation,
    ``preprocessing_function``), are refused rather than silently dropped. Pixels moved in from outside the image are
    0 (the generator's default ``fill_mode="nearest"`` smears mask borders).

    Raises:
        LabkitInputError: an unsupported setting is on, or a shift is given in pixels (>= 1) rather than as a fraction.
    """
    on = [name for name, off in _UNSUPPORTED_IDG.items()
          if getattr(generator, name, off) not in (off, 0, 0.0, 1, 1.0, None, False)]
    require(not on, f"ImageDataGenerator setting(s) {', '.join(on)} cannot be applied jointly to images and masks: "
            "labkit supports rotation_range, width_shift_range, height_shift_range, zoom_range, horizontal_flip and "
            "vertical_flip")
    options = {"rotation_range": float(generator.rotation_range or 0)}
    for key in ("width_shift_range", "height_shift_range"):
        value = getattr(generator, key, 0.0) or 0.0
        require(isinstance(value, (int, float)) and 0 <= float(value) < 1,
                f"ImageDataGenerator {key}={value!r}: give the shift as a fraction of the image in [0, 1)")
        options[key] = float(value)
    low, high = zoom_bounds(generator.zoom_range or (1.0, 1.0))
    options["zoom_range"] = round(high - 1.0, 12) if abs((1.0 - low) - (high - 1.0)) < 1e-9 else (low, high)
    options["horizontal_flip"] = bool(generator.horizontal_flip)
    options["vertical_flip"] = bool(generator.vertical_flip)
    return options


def resolve_augment(augment, kind="segmentation"):
    """The options of an ``augment`` argument: None/False → None, True → ``AUGMENT_DEFAULTS[kind]``, a dict →
    checked copy, a Keras ``ImageDataGenerator`` (2D kinds) → its settings (see `image_data_generator_options`).

    ``zoom_range`` is a float z (scale drawn from ``[1 − z, 1 + z]``) or a ``(low, high)`` pair of scale factors.

    Args:
        augment: the argument (an augmenter object is not options: see `make_augmenter`).
        kind: ``"segmentation"``, ``"classification"`` or ``"volume"`` (`KNOWN_OPTIONS`).

    Raises:
        LabkitInputError: for an unknown key (the message names it) or a negative range.
    """
    require(kind in KNOWN_OPTIONS, f"unknown kind of dataset {kind!r}: choose {', '.join(KNOWN_OPTIONS)}")
    if augment is None or augment is False:
        return None
    if augment is True:
        return dict(AUGMENT_DEFAULTS[kind])
    if is_image_data_generator(augment) and kind != "volume":
        augment = image_data_generator_options(augment)
    require(isinstance(augment, dict), f"augment must be None, True, False, a dict of options or an augmenter, got "
            f"{type(augment).__name__}")
    known = KNOWN_OPTIONS[kind]
    unknown = sorted(set(augment) - set(known))
    require(not unknown, f"unknown {kind} augmentation option(s) {', '.join(unknown)}: known are "
            f"{', '.join(sorted(known))}")
    scalars = ("rotation_range", "width_shift_range", "height_shift_range", "brightness", "contrast")
    zoom = augment.get("zoom_range", 0.0)
    for key in scalars + (() if isinstance(zoom, (list, tuple)) else ("zoom_range",)):
        require(float(augment.get(key, 0)) >= 0, f"augmentation {key} must be >= 0, got {augment.get(key)}")
    low, high = zoom_bounds(zoom)
    require(0 < low <= high, f"augmentation zoom_range must give scale factors 0 < low <= high, got "
            f"{augment.get('zoom_range')}")
    return dict(augment)


def make_augmenter(augment, kind, seed=None):
    """The one resolver of every builder's ``augment`` argument (see the module docstring).

    Args:
        augment: None/False, True, a dict of options (or an ``ImageDataGenerator``), or an augmenter object.
        kind: ``"segmentation"`` (joint image + mask), ``"classification"`` (images only) or ``"volume"`` (3D).
        seed: seed of the augmenter's random draws (for ``"volume"`` also a `numpy.random.Generator` to share).

    Returns:
        None (no augmentation, also when every option is off) or an augmenter ``(images, targets) -> (images,
        targets)``.

    Raises:
        LabkitInputError: unknown options, or a Keras layer for masks or volumes (it would move the image alone).

    Example:
        >>> make_augmenter({"rotation_range": 20, "horizontal_flip": True}, "classification", seed=1)
        ImageOnly(classification_augmentation)
    """
    if isinstance(augment, keras.layers.Layer):
        require(kind == "classification", f"a Keras layer moves the images alone, not their {kind} targets: pass "
                "a dict of options or an augmenter (images, targets) -> (images, targets)")
        return ImageOnly(augment)
    if callable(augment) and not is_image_data_generator(augment):
        return augment
    options = resolve_augment(augment, kind)
    if not options or not any(options.values()):  # every option off: nothing to do
        return None
    if kind == "segmentation":
        from labkit.data.affine import JointAffineAugment  # TensorFlow graph code, only when masks are augmented

        return JointAffineAugment(options)
    if kind == "classification":
        return ImageOnly(classification_augmentation(**options, seed=seed))
    from labkit.data.augment3d import VolumeAugment

    return VolumeAugment(options, seed)


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
        import math

        import tensorflow as tf  # crop_and_resize has no keras.ops twin; this runs inside tf.data anyway

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
