"""Embedded seven-class dermoscopy set (HAM10000 / ISIC 2018 Task 3) in the ISIC 2018 Task 3 layout.

Each class has its own look, loosely after the dermoscopic signs of the real diagnoses, so a network can learn them
from shape, colour, border and texture:

===== ======================================================================================================
MEL   large, asymmetric, irregular border; several colours (dark brown, black, blue-grey veil, red)
NV    round or oval, symmetric, smooth border, one even brown
BCC   pink, pearly nodule with bright red branching vessels and blue-grey ovoid nests
AKIEC red-pink, ill-defined patch covered with white scale
BKL   tan to brown, sharp "stuck-on" border, milia-like white dots and dark comedo-like openings
DF    small light-brown ring with a white scar-like centre
VASC  a cluster of red to purple round lacunae with sharp borders
===== ======================================================================================================

Classes are imbalanced like HAM10000 (NV about two thirds), with a floor per class so every split of a small set
still holds each class. As in HAM10000, some lesions have several images (another shot: rotated, shifted, zoomed,
other lighting); ``ISIC2018_Task3_Training_LesionGroupings.csv`` records which, so a grouped split keeps them
together.
"""

import csv

import cv2
import numpy as np

from labkit.data.layouts.isic2018 import CLASSES
from labkit.data.synthetic.common import default_data_home, write_once
from labkit.progress import progress

GENERATOR_VERSION = 1
#: Images per class in HAM10000 (10,015 in all), in `CLASSES` order.
HAM10000_COUNTS = (1113, 6705, 514, 327, 1099, 115, 142)
_VIEWS = (1, 2, 3)  # images per lesion …
_VIEW_ODDS = (0.7, 0.2, 0.1)  # … and how often


def class_counts(n_images, min_per_class=8):
    """Images per class for a set of `n_images`: HAM10000's proportions, at least `min_per_class` each.

    The floor is taken from NV (the majority), so the total stays `n_images`.
    """
    share = np.array(HAM10000_COUNTS, float) / sum(HAM10000_COUNTS)
    counts = np.maximum(min_per_class, np.round(share * n_images)).astype(int)
    nv = CLASSES.index("NV")
    counts[nv] = max(min_per_class, n_images - (counts.sum() - counts[nv]))
    return counts


def _skin(rng, size):
    """Skin background: an even tone with soft shading, fine noise and, sometimes, hairs and a dark vignette."""
    tone = np.array([rng.uniform(0.78, 0.92), rng.uniform(0.58, 0.72), rng.uniform(0.48, 0.62)], np.float32)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    shade = 1 + 0.06 * (rng.uniform(-1, 1) * ramp[None, :] + rng.uniform(-1, 1) * ramp[:, None])
    image = tone * shade[..., None] + rng.normal(0, 0.015, (size, size, 3)).astype(np.float32)
    if rng.random() < 0.35:  # hairs: dark thin curves
        for _ in range(rng.integers(1, 4)):
            points = np.cumsum(rng.normal(0, size / 12, (6, 2)), axis=0) + rng.uniform(0, size, 2)
            cv2.polylines(image, [points.astype(np.int32)], False, (0.18, 0.12, 0.1), max(1, size // 128))
    if rng.random() < 0.3:  # the round field of view of a dermatoscope
        yy, xx = np.mgrid[:size, :size] / (size / 2) - 1
        image *= np.clip(1.6 - np.hypot(yy, xx), 0.25, 1)[..., None]
    return image


def _outline(rng, center, radius, wobble, aspect=1.0, n_points=72):
    """A closed outline: a circle whose radius varies with low-frequency harmonics of amplitude `wobble`."""
    theta = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    radii = np.ones_like(theta)
    for k in (2, 3, 4, 5, 7):
        radii += wobble * rng.uniform(-1, 1) / np.sqrt(k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    radii = np.clip(radii, 0.35, None) * radius
    angle = rng.uniform(0, np.pi)
    x, y = radii * np.cos(theta) * aspect, radii * np.sin(theta)
    points = np.stack([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)], axis=1)
    return (points + center).round().astype(np.int32)


def _region(size, outline, blur=0.0):
    """A soft [0, 1] mask of a filled outline, its edge blurred by `blur` pixels."""
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [outline], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0 else mask


def _paint(image, mask, colour, opacity=1.0):
    alpha = (np.clip(mask, 0, 1) * opacity)[..., None]
    return image * (1 - alpha) + np.asarray(colour, np.float32) * alpha


def _jitter(rng, colour, amount=0.05):
    """`colour` made lighter or darker by up to `amount`, with a little independent change per channel."""
    shade = 1 + rng.uniform(-2 * amount, 2 * amount)
    return np.clip(np.asarray(colour) * shade + rng.uniform(-amount / 3, amount / 3, 3), 0, 1)


def _spots(rng, mask, n, radius, colour, image):
    """Draw `n` small round spots of `colour` at random places inside `mask`."""
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return image
    for i in rng.integers(0, len(xs), n):
        r = max(1, int(round(radius * rng.uniform(0.7, 1.3))))
        cv2.circle(image, (int(xs[i]), int(ys[i])), r, tuple(float(c) for c in _jitter(rng, colour, 0.03)), -1)
    return image


def _melanoma(rng, image, s, c):
    body = _region(s, _outline(rng, c, s * rng.uniform(0.24, 0.32), wobble=0.35, aspect=rng.uniform(0.8, 1.3)), s / 90)
    image = _paint(image, body, _jitter(rng, (0.36, 0.22, 0.15)))
    palette = [(0.10, 0.07, 0.07), (0.42, 0.45, 0.58), (0.62, 0.24, 0.22), (0.22, 0.12, 0.08)]
    for colour in rng.permutation(palette)[: rng.integers(2, 5)]:  # asymmetric colour zones
        offset = c + rng.normal(0, s * 0.09, 2)
        zone = _region(s, _outline(rng, offset, s * rng.uniform(0.07, 0.15), wobble=0.5), s / 40) * body
        image = _paint(image, zone, _jitter(rng, colour), opacity=rng.uniform(0.7, 0.95))
    return image


def _nevus(rng, image, s, c):
    body = _region(s, _outline(rng, c, s * rng.uniform(0.14, 0.22), wobble=0.05, aspect=rng.uniform(0.85, 1.2)), s / 70)
    colour = _jitter(rng, (0.45, 0.29, 0.19), 0.06)
    image = _paint(image, body, colour)
    centre = _region(s, _outline(rng, c, s * 0.08, wobble=0.05), s / 25) * body
    return _paint(image, centre, colour * 0.85, opacity=0.6)


def _bcc(rng, image, s, c):
    body = _region(s, _outline(rng, c, s * rng.uniform(0.17, 0.25), wobble=0.12), s / 35)
    image = _paint(image, body, _jitter(rng, (0.93, 0.68, 0.68)), opacity=0.85)
    red = (0.75, 0.05, 0.1)
    for _ in range(rng.integers(3, 6)):  # arborising vessels: thin branching red lines
        start = c + rng.normal(0, s * 0.06, 2)
        for _ in range(rng.integers(2, 4)):
            steps = np.cumsum(rng.normal(0, s * 0.04, (4, 2)), axis=0) + start
            cv2.polylines(image, [steps.astype(np.int32)], False, red, max(1, s // 90))
    for _ in range(rng.integers(1, 4)):  # blue-grey ovoid nests
        nest = _region(s, _outline(rng, c + rng.normal(0, s * 0.08, 2), s * 0.035, wobble=0.2), s / 120) * body
        image = _paint(image, nest, (0.40, 0.45, 0.55), opacity=0.8)
    return image


def _akiec(rng, image, s, c):
    body = _region(s, _outline(rng, c, s * rng.uniform(0.22, 0.3), wobble=0.3), s / 14)  # ill-defined edge
    image = _paint(image, body, _jitter(rng, (0.82, 0.38, 0.36)), opacity=0.9)
    flakes = (rng.random((s, s)) < 0.12).astype(np.float32) * (body > 0.4)
    flakes = cv2.GaussianBlur(flakes, (0, 0), s / 200 + 0.3)
    return _paint(image, np.clip(flakes * 3, 0, 1), (0.97, 0.95, 0.92), opacity=0.85)


def _bkl(rng, image, s, c):
    body = _region(s, _outline(rng, c, s * rng.uniform(0.18, 0.27), wobble=0.22, aspect=rng.uniform(0.8, 1.3)), 0.6)
    image = _paint(image, body, _jitter(rng, (0.62, 0.45, 0.28), 0.07))
    image = _spots(rng, body, rng.integers(6, 14), s / 60, (0.97, 0.95, 0.85), image)  # milia-like cysts
    return _spots(rng, body, rng.integers(5, 12), s / 70, (0.20, 0.13, 0.08), image)  # comedo-like openings


def _df(rng, image, s, c):
    body = _region(s, _outline(rng, c, s * rng.uniform(0.1, 0.14), wobble=0.08), s / 25)
    image = _paint(image, body, _jitter(rng, (0.58, 0.38, 0.28)), opacity=0.9)
    scar = _region(s, _outline(rng, c, s * rng.uniform(0.045, 0.065), wobble=0.15), s / 60)
    return _paint(image, scar, (0.96, 0.93, 0.9), opacity=0.9)


def _vasc(rng, image, s, c):
    for _ in range(rng.integers(4, 9)):  # red to purple lacunae
        spot = c + rng.normal(0, s * 0.07, 2)
        colour = _jitter(rng, (0.62, 0.05, 0.18) if rng.random() < 0.6 else (0.42, 0.08, 0.35), 0.06)
        lacuna = _region(s, _outline(rng, spot, s * rng.uniform(0.04, 0.08), wobble=0.1), 0.8)
        image = _paint(image, lacuna, colour)
    return image


_PAINTERS = (_melanoma, _nevus, _bcc, _akiec, _bkl, _df, _vasc)


def skin_lesion(rng, class_index, size=128):
    """One synthetic dermoscopy image of a lesion of class `class_index` (into `CLASSES`).

    Returns:
        RGB uint8 array ``(size, size, 3)``.
    """
    center = np.array([size / 2, size / 2]) + rng.normal(0, size * 0.04, 2)
    image = _PAINTERS[class_index](rng, _skin(rng, size), size, center)
    image = cv2.GaussianBlur(image, (0, 0), size / 256)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def another_view(rng, image):
    """Another shot of the same lesion: rotated, shifted, zoomed, with other lighting and noise."""
    size = image.shape[0]
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(0, 360), rng.uniform(0.85, 1.15))
    matrix[:, 2] += rng.normal(0, size * 0.03, 2)
    view = cv2.warpAffine(image.astype(np.float32) / 255, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    view = view * rng.uniform(0.9, 1.1) + rng.normal(0, 0.015, view.shape)
    return (np.clip(view, 0, 1) * 255).round().astype(np.uint8)


def lesion_plan(n_images, seed=0, min_per_class=8):
    """Which image shows which lesion of which class: a list of ``(image_id, lesion_id, class_index, view)``.

    Rare classes (fewer than 9 images) get one image per lesion, so they still have enough lesions to appear in
    every split.
    """
    rng = np.random.default_rng([seed, 7])
    plan, lesion = [], 0
    for class_index, count in enumerate(class_counts(n_images, min_per_class)):
        left = int(count)
        while left > 0:
            views = 1 if count < 9 else min(left, int(rng.choice(_VIEWS, p=_VIEW_ODDS)))
            plan += [(lesion, class_index, view) for view in range(views)]
            left -= views
            lesion += 1
    order = rng.permutation(len(plan))  # image IDs do not give the class away
    return [(f"ISIC_{9000000 + i:07d}", f"HAM_{9000000 + plan[k][0]:07d}", plan[k][1], plan[k][2])
            for i, k in enumerate(order)]


def isic2018_task3_dataset(n_images=420, size=96, seed=0, min_per_class=8, root=None):
    """The embedded seven-class lesion set in the ISIC 2018 Task 3 training layout.

    Writes ``ISIC2018_Task3_Training_Input/ISIC_<id>.jpg``,
    ``ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv`` (one-hot floats, official
    column order) and ``ISIC2018_Task3_Training_LesionGroupings.csv`` (``image,lesion_id,diagnosis_confirm_type``).

    Args:
        n_images: number of images (HAM10000's class proportions, see `class_counts`).
        size: side of the square JPEG images in pixels.
        seed: generator seed; the same arguments always give the same files.
        min_per_class: the least number of images of any class.
        root: where to write (default `default_data_home()`).

    Returns:
        The dataset folder (pass it as ``--data-dir``).

    Example:
        >>> folder = isic2018_task3_dataset(n_images=60, size=64)
        >>> sorted(p.name for p in folder.iterdir())[:2]
        ['ISIC2018_Task3_Training_GroundTruth', 'ISIC2018_Task3_Training_Input']
    """
    plan = lesion_plan(n_images, seed, min_per_class)

    def write(folder):
        images = folder / "ISIC2018_Task3_Training_Input"
        truth = folder / "ISIC2018_Task3_Training_GroundTruth"
        images.mkdir(parents=True)
        truth.mkdir()
        first_views = {}
        by_lesion = sorted(plan, key=lambda entry: (entry[1], entry[3]))  # a lesion's first view before the others
        for name, lesion, label, view in progress(by_lesion, desc="embedded skin lesion set", unit="img"):
            rng = np.random.default_rng([seed, int(name[5:]), 1])
            if view == 0:
                first_views[lesion] = skin_lesion(np.random.default_rng([seed, int(lesion[4:])]), label, size)
            image = first_views[lesion] if view == 0 else another_view(rng, first_views[lesion])
            cv2.imwrite(str(images / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
        with open(truth / "ISIC2018_Task3_Training_GroundTruth.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", *CLASSES])
            for name, _, label, _ in sorted(plan):
                writer.writerow([name, *("1.0" if k == label else "0.0" for k in range(len(CLASSES)))])
        with open(folder / "ISIC2018_Task3_Training_LesionGroupings.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "lesion_id", "diagnosis_confirm_type"])
            writer.writerows([name, lesion, "synthetic"] for name, lesion, _, _ in sorted(plan))

    name = f"skin_lesions7-v{GENERATOR_VERSION}-n{n_images}-s{size}-seed{seed}-min{min_per_class}"
    return write_once(root or default_data_home(), name, write)
