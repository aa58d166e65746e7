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

Segmentation applies one random transform jointly to image and mask
(`labkit.data.augment.affine.JointAffineAugment`) and
keeps masks in {0, 1}; classification transforms images only (`classification_augmentation`); volumes rotate in the
axial plane and flip (`labkit.data.augment.spatial3d.VolumeAugment`).

The package by kind: `options` (the vocabulary: course defaults, known names, `resolve_augment`), `images` (Keras
image layers for 2D classification), `affine` (joint image + mask transforms for 2D segmentation), `lesion` (the
dermoscopy labs' crops and colour jitter), `spatial3d` (volumes); `make_augmenter`, here, picks among them.
"""

import keras

from labkit.data.augment.affine import JointAffineAugment
from labkit.data.augment.images import ImageOnly, augmentation_layers, classification_augmentation
from labkit.data.augment.lesion import LESION_AUGMENT, LesionAugment, dermoscopy_augmentation
from labkit.data.augment.options import (AUGMENT_DEFAULTS, CLASSIFICATION_AUGMENT, COURSE_AUGMENT, KNOWN_OPTIONS,
                                         PREVIEW_AUGMENT, VOLUME_AUGMENT, image_data_generator_options,
                                         is_image_data_generator, resolve_augment, zoom_bounds)
from labkit.data.augment.spatial3d import VolumeAugment
from labkit.errors import require


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
        return JointAffineAugment(options)
    if kind == "classification":
        return ImageOnly(classification_augmentation(**options, seed=seed))
    return VolumeAugment(options, seed)


__all__ = ["AUGMENT_DEFAULTS", "CLASSIFICATION_AUGMENT", "COURSE_AUGMENT", "KNOWN_OPTIONS", "PREVIEW_AUGMENT",
           "LESION_AUGMENT", "VOLUME_AUGMENT", "ImageOnly", "JointAffineAugment", "LesionAugment", "VolumeAugment",
           "augmentation_layers", "classification_augmentation", "dermoscopy_augmentation",
           "image_data_generator_options", "is_image_data_generator", "make_augmenter", "resolve_augment",
           "zoom_bounds"]
