"""Embedded dermoscopy lesion-segmentation set in the official ISIC 2016 Part 1 layout.

Each image is skin seen through a dermatoscope: a skin tone from pale to dark brown with blotchy low-frequency colour,
fine pore texture, uneven lighting and vignetting (sometimes the dark round field of the scope), hair strokes; and
one pigmented lesion with an irregular outline of varied size, position, colour (light to dark brown, black-blue,
reddish), internal blotches and globules, and a sharp or fuzzy border. Hairs cross the lesion but not its mask, as
in the real ground truth. Images are landscape JPEGs of two sizes (so the pipeline's resize is exercised); masks are
0/255 PNGs of the lesion outline.

Written as ``ISBI2016_ISIC_Part1_{Training,Test}_{Data,GroundTruth}/`` with ``ISIC_<7 digits>.jpg`` and
``ISIC_<id>_Segmentation.png``; the ids are drawn at random (not in listing order), so the demo exercises the pairing by
id.
"""

import cv2
import numpy as np

from labkit.data.layouts.isic2016 import OFFICIAL
from labkit.data.synthetic.common import default_data_home, write_once
from labkit.progress import progress

GENERATOR_VERSION = 1
_SKIN = np.array([[238, 206, 186], [222, 178, 150], [196, 148, 112], [160, 112, 80], [118, 80, 56]], np.float32)
_LESION = np.array([[150, 100, 66], [112, 70, 44], [74, 46, 32], [52, 44, 58], [140, 74, 64]], np.float32)


def _smooth_noise(rng, shape, sigma):
    """Zero-mean noise of unit peak blurred with a Gaussian of `sigma` pixels."""
    field = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigma)
    return field / (np.abs(field).max() + 1e-6)


def _outline(rng, center, radii, irregularity, angle, n_points=96):
    """A closed irregular outline: an ellipse whose radius varies with random harmonics (k = 2…7)."""
    theta = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 8):
        radius += irregularity * rng.uniform(-1, 1) / k ** 0.8 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radius = np.clip(radius, 0.35, None)
    x, y = radii[0] * radius * np.cos(theta), radii[1] * radius * np.sin(theta)
    rotated = np.stack([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)], axis=1)
    return (rotated + center).round().astype(np.int32)


def _skin(rng, height, width):
    """Skin background: a tone between two neighbouring palette entries, blotches, pores, a reddish tinge."""
    index = rng.uniform(0, len(_SKIN) - 1)
    low = int(index)
    tone = _SKIN[low] + (index - low) * (_SKIN[min(low + 1, len(_SKIN) - 1)] - _SKIN[low])
    image = np.ones((height, width, 3), np.float32) * tone / 255.0
    image *= 1 + 0.06 * _smooth_noise(rng, (height, width), max(height, width) / 8)[..., None]
    redness = 0.05 * np.clip(_smooth_noise(rng, (height, width), max(height, width) / 6), 0, 1)
    image[..., 0] += redness
    image[..., 2] -= redness * 0.5
    image *= 1 + 0.035 * _smooth_noise(rng, (height, width), 0.8)[..., None]
    return image


def _add_lesion(rng, image):
    """Paint one pigmented lesion into `image` (in place); returns its 0/255 mask."""
    height, width = image.shape[:2]
    skin = image.reshape(-1, 3).mean(axis=0)
    short = min(height, width)
    size = rng.uniform(0.12, 0.38) * short
    radii = (size * rng.uniform(0.75, 1.3), size * rng.uniform(0.75, 1.3))
    center = (width / 2 + rng.uniform(-0.22, 0.22) * width, height / 2 + rng.uniform(-0.2, 0.2) * height)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [_outline(rng, center, radii, rng.uniform(0.05, 0.4), rng.uniform(0, np.pi))], 255)
    inside = mask.astype(np.float32) / 255.0
    # Opacity: fuzzy or sharp border, stronger towards the centre, blotchy.
    border = rng.uniform(0.4, 0.06 * short)
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    depth = np.clip(depth / (depth.max() + 1e-6), 0, 1)
    alpha = cv2.GaussianBlur(inside, (0, 0), border) if border > 0.5 else inside
    alpha *= rng.uniform(0.7, 0.97) * (0.8 + 0.2 * depth ** 0.5)
    alpha *= 1 + 0.25 * _smooth_noise(rng, (height, width), max(2.0, size / 4))
    colour = _LESION[rng.integers(len(_LESION))] / 255.0
    colour = colour * rng.uniform(0.85, 1.15)
    second = _LESION[rng.integers(len(_LESION))] / 255.0
    mix = np.clip(0.5 + _smooth_noise(rng, (height, width), max(2.0, size / 5)), 0, 1)[..., None] * rng.uniform(0, 0.7)
    paint = colour * (1 - mix) + second * mix
    # Pigment is darker than the skin around it (by 12–45 %), so dark skin does not hide every lesion.
    paint *= min(1.0, rng.uniform(0.55, 0.88) * skin.mean() / paint.reshape(-1, 3).mean())
    image[:] = image * (1 - alpha[..., None]) + paint * alpha[..., None]
    for _ in range(rng.integers(0, 12)):  # dark globules inside the lesion
        ys, xs = np.nonzero(mask)
        k = rng.integers(len(ys))
        cv2.circle(image, (int(xs[k]), int(ys[k])), int(rng.integers(1, max(2, short // 48) + 1)),
                   tuple(float(c) for c in paint[ys[k], xs[k]] * 0.6), -1, cv2.LINE_AA)
    return mask


def _add_hairs(rng, image):
    """Draw 0–8 dark hair strokes (quadratic curves) over the whole image, lesion included."""
    height, width = image.shape[:2]
    for _ in range(rng.choice(9, p=[0.3, 0.15, 0.12, 0.1, 0.09, 0.08, 0.06, 0.05, 0.05])):
        ends = rng.uniform(0, 1, (3, 2)) * (width, height)
        t = np.linspace(0, 1, 40)[:, None]
        curve = (1 - t) ** 2 * ends[0] + 2 * t * (1 - t) * ends[2] + t ** 2 * ends[1]
        shade = rng.uniform(0.05, 0.25)
        cv2.polylines(image, [curve.round().astype(np.int32)], False, (shade, shade * 0.8, shade * 0.7),
                      1 if rng.uniform() < 0.7 else 2, cv2.LINE_AA)


def _light(rng, image):
    """Uneven lighting, vignetting, and in some images the dark round field of the dermatoscope."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height / 2 + rng.uniform(-0.1, 0.1) * height, width / 2 + rng.uniform(-0.1, 0.1) * width
    r = np.hypot((yy - cy) / (height / 2), (xx - cx) / (width / 2)) / np.sqrt(2)
    image *= (1 - rng.uniform(0.1, 0.4) * r ** 2)[..., None]
    image *= (1 + 0.08 * (xx / width - 0.5) * rng.uniform(-1, 1))[..., None]
    if rng.uniform() < 0.4:
        field = np.hypot(yy - height / 2, xx - width / 2) / (np.hypot(height, width) / 2)
        edge = rng.uniform(0.75, 0.95)
        image *= np.clip((edge - field) / 0.05, 0.04, 1)[..., None]


def dermoscopy_image(rng, width=128, height=96):
    """One synthetic dermoscopy image and its lesion mask.

    Args:
        rng: a NumPy `Generator`.
        width, height: image size in pixels.

    Returns:
        ``(image, mask)``: uint8 RGB ``(height, width, 3)`` and uint8 ``(height, width)`` with values 0/255.
    """
    image = _skin(rng, height, width)
    mask = _add_lesion(rng, image)
    _add_hairs(rng, image)
    _light(rng, image)
    image = cv2.GaussianBlur(image, (0, 0), 0.6) + rng.normal(0, 0.012, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


def dermoscopy_dataset(n_train=100, n_test=30, size=128, seed=0, root=None):
    """The embedded lesion set in the official ISIC 2016 Part 1 layout (Training and Test folders).

    Args:
        n_train, n_test: numbers of training and test image/mask pairs.
        size: width of most images in pixels (4:3 landscape; every third image is 25 % larger).
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the folder holding the ``ISBI2016_ISIC_Part1_*`` folders (pass it as ``--data-dir``).

    Example:
        >>> folder = dermoscopy_dataset(n_train=20, n_test=5, size=64)
        >>> sorted(p.name for p in folder.iterdir())[:2]
        ['ISBI2016_ISIC_Part1_Test_Data', 'ISBI2016_ISIC_Part1_Test_GroundTruth']
    """
    ids = np.random.default_rng([seed, 2016]).choice(10_000_000, n_train + n_test, replace=False)

    def write(folder):
        jobs = [("train", i) for i in range(n_train)] + [("test", n_train + i) for i in range(n_test)]
        for split in ("train", "test"):
            for sub in OFFICIAL[split]:
                (folder / sub).mkdir(parents=True)
        for split, i in progress(jobs, desc="embedded ISIC 2016 set", unit="img"):
            width = size if i % 3 else round(size * 1.25)
            image, mask = dermoscopy_image(np.random.default_rng([seed, i]), width, round(width * 3 / 4))
            name = f"ISIC_{ids[i]:07d}"
            image_dir, mask_dir = OFFICIAL[split]
            cv2.imwrite(str(folder / image_dir / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            cv2.imwrite(str(folder / mask_dir / f"{name}_Segmentation.png"), mask)

    name = f"isic2016-v{GENERATOR_VERSION}-n{n_train}+{n_test}-s{size}-seed{seed}"
    return write_once(root or default_data_home(), name, write)
