"""Lab 3 Task 7's deterministic scikit-image transforms, and the image the augmentation preview starts from.

The course shows each transform next to the original (rescale, rotate, flips, intensity rescaling) before turning
to random `ImageDataGenerator` augmentation (`labkit.data.augment.PREVIEW_AUGMENT`). Every function takes a float
image in [0, 1], ``(h, w)`` grey or ``(h, w, 3)`` RGB, and returns one in [0, 1].
"""

import numpy as np
from skimage import exposure, transform

from labkit.data.synthetic.bone_skin import bone_radiograph, skin_lesion
from labkit.data.synthetic.lab1 import organ_radiograph
from labkit.errors import require


def rescaled(image, scale=0.2):
    """The image resized by `scale` (course: 0.2), anti-aliased: a smaller array, ``round(h·scale)`` rows."""
    return transform.rescale(image, scale, anti_aliasing=True, channel_axis=-1 if np.ndim(image) == 3 else None)


def rotated(image, angle=30):
    """The image rotated `angle` degrees counter-clockwise about its centre (course: 30), same size, corners 0."""
    return transform.rotate(image, angle)


def flipped_horizontally(image):
    """Left and right swapped (the course's ``Img[:, ::-1]``)."""
    return np.asarray(image)[:, ::-1]


def flipped_vertically(image):
    """Top and bottom swapped (the course's ``Img[::-1, :]``)."""
    return np.asarray(image)[::-1]


def intensity_rescaled(image, percentiles=(5, 95)):
    """Contrast stretch: the grey levels between the two `percentiles` (course: 5th and 95th) spread over [0, 1],
    those outside clipped (``skimage.exposure.rescale_intensity``)."""
    low, high = np.percentile(image, percentiles)
    require(high > low, "intensity rescaling needs an image with more than one grey level")
    return exposure.rescale_intensity(np.asarray(image, np.float64), in_range=(low, high), out_range=(0.0, 1.0))


#: Lab 3 Task 7's transforms with the course's settings, by the name shown in the preview, in the course's order.
SKIMAGE_TRANSFORMS = {
    "rescaled ×0.2": rescaled,
    "rotated 30°": rotated,
    "horizontal flip": flipped_horizontally,
    "vertical flip": flipped_vertically,
    "intensity 5–95th pct": intensity_rescaled,
}


def apply_transforms(image, transforms=None):
    """``{name: transformed image}`` for each of `transforms` (default `SKIMAGE_TRANSFORMS`)."""
    return {name: np.clip(function(image), 0.0, 1.0) for name, function in (transforms or SKIMAGE_TRANSFORMS).items()}


def embedded_preview_image(dataset="xray", size=128, seed=0):
    """One image of an embedded set, drawn in memory, as a float array in [0, 1].

    Args:
        dataset: ``"xray"`` (a class ``C4`` radiograph of the nine-class Lab 1 set, as the course's
            ``C4_4662.jpg``), ``"bone"`` (an AFF femur) or ``"skin"`` (an RGB melanoma).
        size: side in pixels.
        seed: which image.

    Returns:
        ``(size, size)`` for the grey sets, ``(size, size, 3)`` for skin.
    """
    draw = {"xray": lambda rng: organ_radiograph(rng, 3, size), "bone": lambda rng: bone_radiograph(rng, True, size),
            "skin": lambda rng: skin_lesion(rng, True, size)}
    require(dataset in draw, f"unknown embedded set {dataset!r}: choose {', '.join(draw)}")
    return draw[dataset](np.random.default_rng(seed)).astype(np.float32) / 255.0


__all__ = ["SKIMAGE_TRANSFORMS", "apply_transforms", "embedded_preview_image", "flipped_horizontally",
           "flipped_vertically", "intensity_rescaled", "rescaled", "rotated"]
