"""The augmentation vocabulary: the course's option sets in `ImageDataGenerator`'s names, and `resolve_augment`,
which checks an ``augment=`` argument against them (an ``ImageDataGenerator`` is read as its options)."""

from labkit.errors import require

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
PREVIEW_AUGMENT = {"rotation_range": 20, "width_shift_range": 0.2, "horizontal_flip": True}

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
