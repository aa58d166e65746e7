"""Joint 3D augmentation of an image volume and its label: random rotation in the axial plane and random flips.

Image and label are stacked and rotated by one `scipy.ndimage.rotate` call (linear interpolation, the rotation
about the slice axis applied to every slice at once), then the label channel is re-binarised at 0.5, so both get the
identical transform and the label stays in {0, 1}. Flips are `numpy.flip` views of both arrays.

Arrays are ``(x, y, z)`` with ``z`` the slice axis: the axial plane is axes 0 and 1.
"""

import math

import numpy as np
from scipy import ndimage

from labkit.data.augment.options import resolve_augment
from labkit.errors import require

AXIAL_AXES = (0, 1)


def context_shape(patch, max_angle=20.0):
    """The block to cut around a patch so that rotating it by up to ±`max_angle`° in the axial plane and centre-
    cropping back to `patch` leaves no empty corners: ``px·cos θ + py·sin θ`` (and the same for y), plus a voxel
    of margin, rounded so that the block and the patch share their centre.

    Example:
        >>> context_shape((112, 112, 80), 20)
        (146, 146, 80)
    """
    theta = math.radians(abs(float(max_angle)))
    px, py, pz = (int(p) for p in patch)
    need = (px * math.cos(theta) + py * math.sin(theta), px * math.sin(theta) + py * math.cos(theta))
    grow = [max(0, math.ceil((n - p) / 2)) + 1 for n, p in zip(need, (px, py))]
    return px + 2 * grow[0], py + 2 * grow[1], pz


def rotate_axial(image, label, angle):
    """Rotate `image` and `label` by `angle` degrees about the slice axis (same shape; outside reads 0).

    Returns:
        ``(image, label)``: image float32 (linear interpolation), label re-binarised at 0.5 in its own dtype.
    """
    stacked = np.stack([np.asarray(image, np.float32), np.asarray(label, np.float32)], axis=-1)
    rotated = ndimage.rotate(stacked, float(angle), axes=AXIAL_AXES, reshape=False, order=1, mode="constant", cval=0.0)
    return rotated[..., 0], (rotated[..., 1] > 0.5).astype(np.asarray(label).dtype)


def random_rotate_flip(image, label, rng, max_angle=20.0, flip_axes=AXIAL_AXES):
    """A random rotation in the axial plane (uniform in ±`max_angle`°) and a random flip along each of
    `flip_axes` (probability ½ each), the same for image and label.

    Args:
        image: float volume ``(x, y, z)``.
        label: binary volume of the same shape.
        rng: a `numpy.random.Generator`.
        max_angle: largest rotation in degrees (course: 20).
        flip_axes: axes that may be flipped (default the two in-plane axes).

    Returns:
        ``(image, label)``: float32 image and a label in {0, 1} of the input dtype.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> image, label = random_rotate_flip(np.random.rand(32, 32, 8), np.ones((32, 32, 8), np.uint8), rng)
        >>> sorted(np.unique(label).tolist())
        [0, 1]
    """
    require(np.shape(image) == np.shape(label), f"image shape {np.shape(image)} differs from label shape "
            f"{np.shape(label)}")
    image, label = rotate_axial(image, label, rng.uniform(-max_angle, max_angle))
    for axis in flip_axes:
        if rng.random() < 0.5:
            image, label = np.flip(image, axis), np.flip(label, axis)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


class VolumeAugment:
    """The 3D augmenter of `labkit.data.patches.training_patches` (``augment=`` of `patch_dataset`): a random
    rotation in the axial plane and random in-plane flips, the same for an image block and its label.

    Args:
        options: None/True (`labkit.data.augment.VOLUME_AUGMENT`) or a dict of ``rotation_range`` (degrees, either
            way), ``horizontal_flip`` (axis 1) and ``vertical_flip`` (axis 0).
        seed: seed of the draws, or a `numpy.random.Generator` to draw from (the patch sampler shares its own).

    Example:
        >>> augment = VolumeAugment({"rotation_range": 10, "horizontal_flip": True}, seed=0)
        >>> block = augment.context((32, 32, 8))   # cut this much around the patch, augment, centre-crop
        >>> image, label = augment(image_block, label_block)
    """

    def __init__(self, options=True, seed=None):
        self.options = resolve_augment(True if options is None else options, "volume") or {}
        self.max_angle = float(self.options.get("rotation_range", 0))
        self.flip_axes = tuple(axis for axis, key in enumerate(("vertical_flip", "horizontal_flip"))
                               if self.options.get(key))
        self.rng = np.random.default_rng(seed)

    def context(self, patch):
        """The block to cut around a patch of shape `patch` so that the rotation brings no empty corners in."""
        return context_shape(patch, self.max_angle)

    def __call__(self, image, label):
        return random_rotate_flip(image, label, self.rng, self.max_angle, self.flip_axes)
