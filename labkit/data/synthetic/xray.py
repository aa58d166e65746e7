"""Embedded chest X-ray set (Lab 4 Task 4) in the course layout ``X_ray/Image`` + ``X_ray/Mask``."""

import cv2
import numpy as np

from labkit.data.synthetic.common import default_data_home, write_once
from labkit.progress import progress

GENERATOR_VERSION = 1


def _blob_polygon(rng, center, radii, wobble, n_points=64):
    """A closed smooth irregular outline: an ellipse whose radius varies with a few low-frequency harmonics."""
    theta = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    radius = np.ones_like(theta)
    for k in (2, 3, 4):
        radius += wobble * rng.uniform(-1, 1) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    xs = center[0] + radii[0] * radius * np.cos(theta)
    ys = center[1] + radii[1] * radius * np.sin(theta)
    return np.stack([xs, ys], axis=1).round().astype(np.int32)


def chest_xray(rng, size=256):
    """One synthetic frontal chest X-ray and its lung mask.

    Two dark lung fields of varied shape and size inside a brighter thorax, a heart shadow cut out of the left lung,
    rib arcs, clavicles, blur and noise.

    Returns:
        ``(image, mask)``: uint8 arrays ``(size, size)``; the mask is 0/255.
    """
    s = size
    image = np.full((s, s), 0.08, np.float32)
    cv2.ellipse(image, (s // 2, int(s * 0.56)), (int(s * rng.uniform(0.40, 0.47)), int(s * 0.52)), 0, 0, 360, 0.58, -1)
    mask = np.zeros((s, s), np.uint8)
    spread = rng.uniform(0.17, 0.23)
    for side in (-1, 1):
        center = (s / 2 + side * s * spread, s * rng.uniform(0.47, 0.53))
        radii = (s * rng.uniform(0.11, 0.16), s * rng.uniform(0.24, 0.32))
        cv2.fillPoly(mask, [_blob_polygon(rng, center, radii, wobble=0.18)], 255)
    heart = (int(s * rng.uniform(0.53, 0.58)), int(s * rng.uniform(0.62, 0.68)))
    cv2.ellipse(mask, heart, (int(s * rng.uniform(0.10, 0.14)), int(s * 0.11)), rng.uniform(-20, 20), 0, 360, 0, -1)
    lungs = mask > 0
    image[lungs] = rng.uniform(0.20, 0.30)
    heart_shadow = np.zeros_like(image)
    cv2.ellipse(heart_shadow, heart, (int(s * 0.12), int(s * 0.11)), 0, 0, 360, 0.12, -1)
    image += heart_shadow
    ribs = np.zeros_like(image)
    for k in range(8):  # rib arcs: bright bands sweeping down and out from the spine
        y = int(s * (0.22 + 0.075 * k + rng.uniform(-0.01, 0.01)))
        for side in (-1, 1):
            cv2.ellipse(ribs, (s // 2, y), (int(s * 0.36), int(s * 0.08)), 0, 90 - side * 90, 90 - side * 15, 0.1, max(2, s // 64))
    cv2.line(ribs, (int(s * 0.2), int(s * 0.18)), (int(s * 0.45), int(s * 0.22)), 0.12, max(2, s // 50))
    cv2.line(ribs, (int(s * 0.8), int(s * 0.18)), (int(s * 0.55), int(s * 0.22)), 0.12, max(2, s // 50))
    image = cv2.GaussianBlur(image + ribs, (0, 0), s / 128)
    image = image * rng.uniform(0.85, 1.15) + rng.normal(0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


def xray_dataset(n_images=200, size=256, seed=0, root=None):
    """The embedded chest X-ray set in the course layout ``X_ray/Image/<name>.png`` + ``X_ray/Mask/<name>.png``.

    Args:
        n_images: number of image/mask pairs.
        size: side of the square images in pixels.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the ``X_ray`` folder (pass it, or its parent, as ``--data-dir``).

    Example:
        >>> xray = xray_dataset(n_images=20, size=64)
        >>> sorted(p.name for p in xray.iterdir())
        ['Image', 'Mask']
    """
    def write(folder):
        for sub in ("Image", "Mask"):
            (folder / "X_ray" / sub).mkdir(parents=True)
        for i in progress(range(n_images), desc="embedded X-ray set", unit="img"):
            image, mask = chest_xray(np.random.default_rng([seed, i]), size)
            cv2.imwrite(str(folder / "X_ray" / "Image" / f"xray_{i:04d}.png"), image)
            cv2.imwrite(str(folder / "X_ray" / "Mask" / f"xray_{i:04d}.png"), mask)

    name = f"xray-v{GENERATOR_VERSION}-n{n_images}-s{size}-seed{seed}"
    return write_once(root or default_data_home(), name, write) / "X_ray"
