"""Embedded Lab 1 sets (course Lab 1 Tasks 4–10, Lab 2, Lab 3): flat folders, class in the file name.

``<root>/Lab1/{Skin,Bone,X_ray}/{train,test}/<class>_<nnnn>.png``:

* Skin: ``Mel_0001.png`` / ``Nev_0002.png`` …, the colour dermoscopy renderer of `bone_skin` (the course code reads
  them grey).
* Bone: ``AFF_…`` / ``NFF_…``, the grey femoral-shaft renderer of `bone_skin`.
* X_ray: ``C1_…``–``C9_…``, nine grey radiograph-like "organ" classes drawn here (`organ_radiograph`): chest, skull,
  hand, pelvis, knee, lumbar spine, foot, forearm and abdomen. Each has a random pose (rotation, scale, shift),
  random anatomy proportions, exposure, blur and noise. The exposure varies so much that the mean grey level alone
  tells the classes apart poorly; the shapes tell them apart well.

File numbers run on across train and test, so no name occurs twice in a set (the course's files were numbered so too).
"""

import cv2
import numpy as np

from labkit.data.synthetic.bone_skin import _smooth_noise, bone_radiograph, skin_lesion
from labkit.data.synthetic.common import default_data_home, write_once
from labkit.progress import progress

GENERATOR_VERSION = 1
SKIN_CLASSES = ("Mel", "Nev")
BONE_CLASSES = ("AFF", "NFF")
XRAY_CLASSES = tuple(f"C{i}" for i in range(1, 10))
#: What each X-ray class shows (index 0 is ``C1``).
ORGANS = ("chest", "skull", "hand", "pelvis", "knee", "lumbar spine", "foot", "forearm", "abdomen")

_BACKGROUND, _AIR, _SOFT, _BONE = 0.05, 0.13, 0.30, 0.65


class _Canvas:
    """A float image drawn in coordinates that are fractions of its side (0–1), with grey levels as colours."""

    def __init__(self, size):
        self.s = size
        self.image = np.full((size, size), _BACKGROUND, np.float32)

    def _p(self, x, y):
        return int(round(x * self.s)), int(round(y * self.s))

    def ellipse(self, x, y, ax, ay, value, angle=0.0, thickness=None, arc=(0, 360)):
        """A filled ellipse (or, with `thickness` as a fraction of the side, its outline or an `arc` of it)."""
        width = -1 if thickness is None else max(1, int(round(thickness * self.s)))
        axes = (max(1, int(round(ax * self.s))), max(1, int(round(ay * self.s))))
        cv2.ellipse(self.image, self._p(x, y), axes, angle, arc[0], arc[1], float(value), width, cv2.LINE_AA)

    def bar(self, x0, y0, x1, y1, width, value):
        """A straight band of the given width between two points."""
        cv2.line(self.image, self._p(x0, y0), self._p(x1, y1), float(value), max(1, int(round(width * self.s))),
                 cv2.LINE_AA)

    def polygon(self, points, value):
        cv2.fillPoly(self.image, [np.array([self._p(x, y) for x, y in points], np.int32)], float(value),
                     cv2.LINE_AA)

    def box(self, x, y, w, h, angle, value):
        """A filled rectangle centred at (x, y), `w` × `h`, rotated by `angle` degrees."""
        corners = cv2.boxPoints(((x * self.s, y * self.s), (w * self.s, h * self.s), angle))
        cv2.fillPoly(self.image, [corners.round().astype(np.int32)], float(value), cv2.LINE_AA)


def _chest(c, rng):
    c.ellipse(0.5, 0.56, rng.uniform(0.38, 0.46), 0.5, _SOFT)
    spread, height = rng.uniform(0.17, 0.22), rng.uniform(0.25, 0.31)
    for side in (-1, 1):
        c.ellipse(0.5 + side * spread, 0.5, rng.uniform(0.11, 0.15), height, _AIR, angle=side * rng.uniform(0, 8))
    c.ellipse(0.56, 0.66, rng.uniform(0.10, 0.14), 0.10, _SOFT + 0.05)
    c.bar(0.5, 0.05, 0.5, 0.98, 0.05, _BONE * 0.75)
    for k in range(rng.integers(6, 9)):
        y = 0.24 + 0.075 * k
        for side in (-1, 1):
            c.ellipse(0.5, y, 0.36, 0.08, _SOFT + 0.15, thickness=0.02, arc=(90 - side * 90, 90 - side * 15))
    for side in (-1, 1):
        c.bar(0.5 + side * 0.05, 0.2, 0.5 + side * 0.32, 0.16, 0.03, _BONE * 0.8)


def _skull(c, rng):
    ax, ay = rng.uniform(0.30, 0.36), rng.uniform(0.36, 0.42)
    c.ellipse(0.5, 0.46, ax, ay, _BONE)
    wall = rng.uniform(0.03, 0.05)
    c.ellipse(0.5, 0.46, ax - wall, ay - wall, _SOFT + 0.08)
    for side in (-1, 1):
        c.ellipse(0.5 + side * 0.13, 0.58, rng.uniform(0.06, 0.08), 0.06, _AIR + 0.05)
    c.polygon([(0.47, 0.66), (0.53, 0.66), (0.5, 0.74)], _AIR + 0.05)
    c.ellipse(0.5, 0.72, ax * 0.75, rng.uniform(0.14, 0.2), _BONE, thickness=0.045, arc=(10, 170))


def _hand(c, rng):
    c.bar(0.5, 0.85, 0.5, 1.05, 0.28, _SOFT)
    c.ellipse(0.5, 0.68, 0.2, 0.17, _SOFT)
    spread = rng.uniform(0.8, 1.2)
    for i, base_angle in enumerate((-75, -28, -8, 12, 32)):
        angle = np.deg2rad(base_angle * spread + rng.uniform(-4, 4))
        length = (0.2 if i == 0 else 0.3) * rng.uniform(0.9, 1.1)
        root = (0.5 + 0.16 * np.sin(angle), 0.66 - 0.12 * np.cos(angle))
        tip = (root[0] + length * np.sin(angle), root[1] - length * np.cos(angle))
        c.bar(*root, *tip, 0.065, _SOFT)
        c.bar(0.5 + 0.05 * np.sin(angle), 0.84, *root, 0.03, _BONE)  # metacarpal
        for k in range(3):  # phalanges with joint gaps
            a, b = (k + 0.12) / 3, (k + 0.88) / 3
            c.bar(root[0] + a * (tip[0] - root[0]), root[1] + a * (tip[1] - root[1]),
                  root[0] + b * (tip[0] - root[0]), root[1] + b * (tip[1] - root[1]), 0.028, _BONE)
    for k in range(6):  # carpals
        c.ellipse(0.42 + 0.035 * k, 0.86 + 0.02 * (k % 2), 0.022, 0.02, _BONE)


def _pelvis(c, rng):
    c.ellipse(0.5, 0.56, 0.48, 0.36, _SOFT)
    flare = rng.uniform(-6, 6)
    for side in (-1, 1):
        c.ellipse(0.5 + side * 0.22, 0.38, rng.uniform(0.14, 0.18), 0.17, _BONE, angle=side * (25 + flare))
        c.ellipse(0.5 + side * 0.12, 0.72, 0.08, 0.065, _BONE, thickness=0.03)  # obturator ring
        c.ellipse(0.5 + side * 0.3, 0.66, 0.065, 0.065, _BONE)  # femoral head
        c.bar(0.5 + side * 0.3, 0.66, 0.5 + side * 0.36, 1.0, 0.1, _BONE)
    c.polygon([(0.42, 0.3), (0.58, 0.3), (0.5, 0.62)], _BONE * 0.85)  # sacrum


def _knee(c, rng):
    c.bar(0.5, -0.05, 0.5, 1.05, rng.uniform(0.40, 0.50), _SOFT)
    gap = rng.uniform(0.03, 0.05)
    c.bar(0.5, -0.05, 0.5, 0.40, 0.18, _BONE)
    for side in (-1, 1):
        c.ellipse(0.5 + side * 0.07, 0.42, 0.08, 0.065, _BONE)
    c.bar(0.5, -0.05, 0.5, 0.33, 0.08, _BONE - 0.15)  # femoral canal
    top = 0.49 + gap
    c.ellipse(0.5, top + 0.02, 0.15, 0.035, _BONE)
    c.bar(0.5, top + 0.02, 0.5, 1.05, 0.17, _BONE)
    c.bar(0.67, top + 0.08, 0.66, 1.05, 0.045, _BONE)  # fibula
    c.ellipse(0.5, 0.33, 0.065, 0.085, _BONE + 0.12)  # patella over the femur


def _lumbar_spine(c, rng):
    c.ellipse(0.5, 0.5, 0.42, 0.62, _SOFT)
    n = rng.integers(5, 7)
    height = 0.85 / n
    bend = rng.uniform(-0.06, 0.06)
    for k in range(n):
        t = (k + 0.5) / n
        x = 0.5 + bend * np.sin(np.pi * t)
        tilt = np.rad2deg(bend * np.pi * np.cos(np.pi * t) * 0.8)
        c.box(x, 0.075 + t * 0.85, 0.26, height * 0.72, tilt, _BONE)
        c.ellipse(x + 0.18, 0.075 + t * 0.85, 0.05, height * 0.25, _BONE * 0.85)  # spinous process


def _foot(c, rng):
    toe_y = rng.uniform(0.66, 0.74)
    c.polygon([(0.32, 0.0), (0.52, 0.0), (0.55, 0.45), (0.95, toe_y - 0.06), (0.97, toe_y + 0.06), (0.2, 0.76),
               (0.14, 0.64), (0.3, 0.45)], _SOFT)
    c.bar(0.42, -0.05, 0.42, 0.4, 0.13, _BONE)  # tibia
    c.ellipse(0.42, 0.46, 0.09, 0.06, _BONE)  # talus
    c.ellipse(0.27, 0.62, 0.11, 0.07, _BONE, angle=-12)  # calcaneus
    c.ellipse(0.52, 0.57, 0.06, 0.05, _BONE)  # navicular and cuneiforms
    for k in range(3):
        c.bar(0.56, 0.56 + 0.03 * k, 0.9, toe_y - 0.03 + 0.03 * k, 0.025, _BONE)  # metatarsals


def _forearm(c, rng):
    lean = rng.uniform(-0.05, 0.05)
    c.bar(0.5 - lean, -0.05, 0.5 + lean, 1.05, rng.uniform(0.34, 0.42), _SOFT)
    for offset, width in ((-0.08, 0.07), (0.08, 0.055)):  # radius and ulna, with their canals
        c.bar(0.5 - lean + offset, -0.05, 0.5 + lean + offset * 0.8, 1.05, width, _BONE)
        c.bar(0.5 - lean + offset, -0.05, 0.5 + lean + offset * 0.8, 1.05, width * 0.4, _BONE - 0.2)


def _abdomen(c, rng):
    c.ellipse(0.5, 0.5, rng.uniform(0.42, 0.48), 0.56, _SOFT + 0.05)
    for k in range(5):
        c.box(0.5, 0.12 + 0.15 * k, 0.1, 0.1, 0, _SOFT + 0.2)  # faint vertebrae behind the bowel
    for _ in range(rng.integers(10, 18)):  # bowel gas
        x, y = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        c.ellipse(x, y, rng.uniform(0.025, 0.06), rng.uniform(0.02, 0.045), _AIR + 0.04, angle=rng.uniform(0, 180))
    for side in (-1, 1):
        c.ellipse(0.5 + side * 0.3, 1.0, 0.16, 0.12, _BONE * 0.9, thickness=0.03, arc=(180, 360))  # iliac crests


_ORGAN_DRAWERS = (_chest, _skull, _hand, _pelvis, _knee, _lumbar_spine, _foot, _forearm, _abdomen)


def organ_radiograph(rng, organ, size=128):
    """One synthetic radiograph of one of nine body parts (`ORGANS`), in a random pose and exposure.

    Args:
        rng: a NumPy `Generator`.
        organ: class index 0–8 (``C1``–``C9``).
        size: side of the square image in pixels.

    Returns:
        uint8 array ``(size, size)``.
    """
    canvas = _Canvas(size)
    _ORGAN_DRAWERS[organ](canvas, rng)
    image = canvas.image * (1 + _smooth_noise(rng, size, size / 10, 0.12))
    pose = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-20, 20), rng.uniform(0.8, 1.05))
    pose[:, 2] += rng.uniform(-0.07, 0.07, 2) * size
    image = cv2.warpAffine(image, pose, (size, size), flags=cv2.INTER_LINEAR, borderValue=_BACKGROUND)
    # Exposure: a wide gain and offset, so that brightness alone says little about the class.
    image = rng.uniform(-0.05, 0.2) + image * rng.uniform(0.55, 1.45)
    image = cv2.GaussianBlur(image, (0, 0), max(0.5, size / 160))
    image += rng.normal(0, 0.025, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _write_flat_set(folder, classes, render, n_train, n_test, size, seed, set_index, label):
    """Write ``{train,test}/<class>_<nnnn>.png``; `render(rng, class_index, size)` draws one image."""
    jobs = [(split, c, i) for split, n in (("train", n_train), ("test", n_test))
            for c in range(len(classes)) for i in range(n)]
    for split in ("train", "test"):
        (folder / split).mkdir(parents=True)
    for split, c, i in progress(jobs, desc=f"embedded Lab 1 {label} set", unit="img"):
        rng = np.random.default_rng([seed, set_index, 0 if split == "train" else 1, c, i])
        image = render(rng, c, size)
        number = i + 1 + (n_train if split == "test" else 0)
        name = folder / split / f"{classes[c]}_{number:04d}.png"
        cv2.imwrite(str(name), image[..., ::-1] if image.ndim == 3 else image)


def lab1_dataset(n_train=50, n_test=15, size=128, seed=0, root=None):
    """The embedded Lab 1 sets (Skin, Bone, X_ray) in the course's flat layout, class in the file name.

    Args:
        n_train: training images per class.
        n_test: test images per class.
        size: side of the square images in pixels.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the ``Lab1`` folder holding ``Skin/``, ``Bone/`` and ``X_ray/``, each with ``train/`` and ``test/``
        (the course's ``/DL_course_data/Lab1``).

    Example:
        >>> lab1 = lab1_dataset(n_train=4, n_test=2, size=64)
        >>> sorted(p.name for p in (lab1 / "Skin" / "train").iterdir())[:2]
        ['Mel_0001.png', 'Mel_0002.png']
    """
    def write(folder):
        lab1 = folder / "Lab1"
        _write_flat_set(lab1 / "Skin", SKIN_CLASSES, lambda rng, c, s: skin_lesion(rng, c == 0, s),
                        n_train, n_test, size, seed, 0, "Skin")
        _write_flat_set(lab1 / "Bone", BONE_CLASSES, lambda rng, c, s: bone_radiograph(rng, c == 0, s),
                        n_train, n_test, size, seed, 1, "Bone")
        _write_flat_set(lab1 / "X_ray", XRAY_CLASSES, organ_radiograph, n_train, n_test, size, seed, 2, "X-ray")

    name = f"lab1-v{GENERATOR_VERSION}-n{n_train}-{n_test}-s{size}-seed{seed}"
    return write_once(root or default_data_home(), name, write) / "Lab1"
