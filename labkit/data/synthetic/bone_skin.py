"""Embedded Bone (AFF/NFF) and Skin (Mel/Nevi) sets (Lab 2 / Lab 4 Tasks 1–3) in the course layout.

``<root>/Bone/{train,validation}/{AFF,NFF}/*.png`` and ``<root>/Skin/{train,validation}/{Mel,Nevi}/*.png``:

* Bone: radiograph-like grey images of a femoral shaft (cortex, medullary canal, soft tissue, noise, random tilt,
  position, width and exposure). An AFF (atypical femoral fracture) image carries a transverse, near-perpendicular
  dark fracture line across the shaft with a small step between the fragments and a cortical "beak" beside it; an
  NFF image has an intact shaft. Both classes get distractors (a thin oblique nutrient canal in the cortex, soft-tissue
  folds), so the fracture line, not any dark line, is what tells them apart.
* Skin: dermoscopy-like colour images of a lesion on skin (skin tone, uneven lighting, hairs, a dark vignette in some).
  Nevi are round or oval, smooth-edged and uniformly brown; Mel (melanoma) are irregular, asymmetric and
  multi-coloured (dark brown, black, blue-grey and reddish patches).
"""

import cv2
import numpy as np

from labkit.data.synthetic.common import default_data_home, write_once
from labkit.progress import progress

GENERATOR_VERSION = 2
BONE_CLASSES = ("AFF", "NFF")
SKIN_CLASSES = ("Mel", "Nevi")


def _smooth_noise(rng, size, scale, amount):
    """Low-frequency noise: white noise blurred with a Gaussian of sigma `scale` pixels, scaled to ±`amount`."""
    field = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), scale)
    return field / (np.abs(field).max() + 1e-6) * amount


def _smoothstep(edge, width, x):
    """0 below ``edge - width``, 1 above ``edge + width``, smooth in between."""
    t = np.clip((x - edge + width) / (2 * width), 0, 1)
    return t * t * (3 - 2 * t)


def bone_radiograph(rng, fractured, size=128):
    """One synthetic femoral-shaft radiograph.

    Args:
        rng: a NumPy `Generator`.
        fractured: draw an atypical femoral fracture (transverse line, step and cortical beak).
        size: side of the square image in pixels.

    Returns:
        uint8 array ``(size, size)``.
    """
    s = float(size)
    fracture_rng = np.random.default_rng(rng.integers(2**32))  # drawn in both classes: the rest stays the same
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = np.deg2rad(rng.uniform(-14, 14))
    cx = s * (0.5 + rng.uniform(-0.08, 0.08))
    # u runs along the shaft (downwards), v across it.
    u = (yy - s / 2) * np.cos(angle) + (xx - cx) * np.sin(angle)
    v = -(yy - s / 2) * np.sin(angle) + (xx - cx) * np.cos(angle)
    half_width = s * rng.uniform(0.09, 0.13) * (1 + 0.08 * u / s)  # the shaft widens a little distally
    cortex = half_width * rng.uniform(0.28, 0.38)
    if fractured:
        u0 = s * fracture_rng.uniform(-0.25, 0.25)
        tilt = np.tan(np.deg2rad(fracture_rng.uniform(-10, 10)))
        line = u - u0 - tilt * v  # zero on the fracture line
        step = s * fracture_rng.uniform(0.03, 0.06) * fracture_rng.choice((-1, 1))
        bend = np.tan(np.deg2rad(fracture_rng.uniform(3, 8))) * fracture_rng.choice((-1, 1))
        v = v - (step + bend * (u - u0)) * _smoothstep(0, 1.0, line)  # the distal fragment shifted and angled
    tissue_width = s * rng.uniform(0.34, 0.46)
    image = (0.06 + 0.20 * (1 - _smoothstep(tissue_width, s * 0.04, np.abs(v)))).astype(np.float32)
    medulla = 1 - _smoothstep(half_width - cortex, 1.2, np.abs(v))
    bone = 1 - _smoothstep(half_width, 1.0, np.abs(v))
    image += bone * rng.uniform(0.50, 0.62) - medulla * rng.uniform(0.18, 0.26)
    # Distractors in both classes: a thin oblique nutrient canal in the cortex and a soft-tissue fold.
    canal_side = rng.choice((-1, 1))
    canal = np.abs((u - s * rng.uniform(-0.3, 0.3)) * 0.35 - (canal_side * v - (half_width - cortex / 2))) < 0.8
    image -= 0.12 * (canal & (np.abs(np.abs(v) - (half_width - cortex / 2)) < cortex / 2) & (np.abs(u) < s * 0.45))
    fold_u = s * rng.uniform(-0.45, 0.45)
    image += 0.05 * (1 - _smoothstep(1.5, 1.5, np.abs(u - fold_u - 0.6 * v))) * (np.abs(v) > half_width + 2)
    if fractured:
        gap = (1 - _smoothstep(s * fracture_rng.uniform(0.018, 0.03), 0.8, np.abs(line))) * bone
        image -= gap * fracture_rng.uniform(0.55, 0.7)
        beak_side = fracture_rng.choice((-1, 1))
        beak = np.exp(-((u - u0) ** 2) / (2 * (s * 0.05) ** 2)) * (1 - _smoothstep(s * 0.025, 1.0,
                                                                                    beak_side * v - half_width))
        image += 0.35 * beak * (beak_side * v > half_width - 1)
    image = image * rng.uniform(0.85, 1.15) + _smooth_noise(rng, size, s / 6, 0.05)
    image = cv2.GaussianBlur(image, (0, 0), max(0.5, s / 200))
    image += rng.normal(0, 0.025, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _lesion_outline(rng, center, radius, irregular, n_points=96):
    """A closed outline: a circle whose radius varies with low harmonics (and, when `irregular`, higher ones too)."""
    theta = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    radii = np.ones_like(theta)
    elongation = rng.uniform(0.0, 0.25)
    radii += elongation * np.cos(2 * (theta - rng.uniform(0, np.pi)))
    harmonics = ((2, 0.18), (3, 0.22), (4, 0.15), (5, 0.12), (7, 0.10), (9, 0.07)) if irregular else ((3, 0.02),)
    for k, amplitude in harmonics:
        radii += amplitude * rng.uniform(0.5, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    points = np.stack([center[0] + radius * radii * np.cos(theta), center[1] + radius * radii * np.sin(theta)], 1)
    return points.round().astype(np.int32)


def skin_lesion(rng, melanoma, size=128):
    """One synthetic dermoscopy image of a melanoma (irregular, multi-coloured) or a nevus (round, uniform).

    Args:
        rng: a NumPy `Generator`.
        melanoma: draw a melanoma instead of a nevus.
        size: side of the square image in pixels.

    Returns:
        uint8 RGB array ``(size, size, 3)``.
    """
    s = float(size)
    tone = np.array([0.88, 0.68, 0.58], np.float32) * rng.uniform(0.85, 1.05) + rng.uniform(-0.04, 0.04, 3)
    image = np.ones((size, size, 3), np.float32) * tone
    image *= (1 + _smooth_noise(rng, size, s / 5, 0.08))[..., None]
    center = (s / 2 + rng.uniform(-0.1, 0.1) * s, s / 2 + rng.uniform(-0.1, 0.1) * s)
    radius = s * (rng.uniform(0.20, 0.30) if melanoma else rng.uniform(0.13, 0.24))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [_lesion_outline(rng, center, radius, irregular=melanoma)], 255)
    edge = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), s / (90 if melanoma else 60))[..., None]
    brown = np.array([0.55, 0.36, 0.24], np.float32) * rng.uniform(0.8, 1.1)
    lesion = np.ones_like(image) * brown
    if melanoma:
        palette = [np.array(c, np.float32) for c in
                   ([0.30, 0.18, 0.12], [0.12, 0.09, 0.09], [0.36, 0.38, 0.47], [0.70, 0.35, 0.32], [0.62, 0.45, 0.30])]
        for _ in range(rng.integers(4, 8)):
            colour = palette[rng.integers(len(palette))]
            blob = np.zeros((size, size), np.uint8)
            spot = (center[0] + rng.uniform(-0.6, 0.6) * radius, center[1] + rng.uniform(-0.6, 0.6) * radius)
            cv2.fillPoly(blob, [_lesion_outline(rng, spot, radius * rng.uniform(0.2, 0.45), irregular=True)], 255)
            weight = cv2.GaussianBlur(blob.astype(np.float32) / 255, (0, 0), s / 50)[..., None]
            lesion = lesion * (1 - weight) + colour * weight
        lesion *= (1 + _smooth_noise(rng, size, s / 40, 0.15))[..., None]
    else:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        distance = np.hypot(xx - center[0], yy - center[1]) / radius
        lesion *= (0.92 + 0.08 * np.clip(distance, 0, 1))[..., None]  # slightly darker centre, evenly shaded
    image = image * (1 - edge) + lesion * edge
    for _ in range(rng.integers(0, 4)):  # hairs, in both classes
        start = rng.uniform(0, s, 2)
        end = start + rng.uniform(-1, 1, 2) * s * 0.8
        middle = (start + end) / 2 + rng.uniform(-0.1, 0.1, 2) * s
        curve = np.array([start, middle, end]).round().astype(np.int32)
        cv2.polylines(image, [curve], False, (0.2, 0.14, 0.1), thickness=max(1, size // 128), lineType=cv2.LINE_AA)
    if rng.random() < 0.4:  # the dark round border of some dermoscopes
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        r = np.hypot(xx - s / 2, yy - s / 2) / (s / 2)
        image *= (1 - _smoothstep(rng.uniform(0.95, 1.15), 0.08, r) * 0.85)[..., None]
    image = cv2.GaussianBlur(image, (0, 0), max(0.5, s / 256))
    image += rng.normal(0, 0.015, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _write_set(folder, classes, render, n_train, n_val, size, seed, label):
    """Write one set in the Lab 2 layout: ``{train,validation}/<class>/<class>_<i>.png``."""
    jobs = [(split, c, i) for split, n in (("train", n_train), ("validation", n_val))
            for c in range(len(classes)) for i in range(n)]
    for split, c, i in progress(jobs, desc=f"embedded {label} set", unit="img"):
        target = folder / split / classes[c]
        target.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, c, i])
        image = render(rng, c == 0, size)
        cv2.imwrite(str(target / f"{classes[c]}_{i:04d}.png"), image[..., ::-1] if image.ndim == 3 else image)


def bone_skin_dataset(n_train=40, n_val=12, size=128, seed=0, root=None):
    """The embedded Bone and Skin sets in the course's Lab 2 layout.

    Args:
        n_train: training images per class.
        n_val: validation images per class.
        size: side of the square images in pixels.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the folder holding ``Bone/`` and ``Skin/`` (pass it, or one of them, as ``--data-dir``).

    Example:
        >>> lab2 = bone_skin_dataset(n_train=8, n_val=4, size=64)
        >>> sorted(p.name for p in (lab2 / "Bone" / "train").iterdir())
        ['AFF', 'NFF']
    """
    def write(folder):
        _write_set(folder / "Bone", BONE_CLASSES, bone_radiograph, n_train, n_val, size, seed, "Bone")
        _write_set(folder / "Skin", SKIN_CLASSES, skin_lesion, n_train, n_val, size, seed, "Skin")

    name = f"lab2-v{GENERATOR_VERSION}-n{n_train}-{n_val}-s{size}-seed{seed}"
    return write_once(root or default_data_home(), name, write)
