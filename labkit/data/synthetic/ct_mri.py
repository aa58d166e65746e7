"""Embedded Lab 5 sets in the course layouts: CT lung slices (``CT/Image`` + ``CT/Mask``) and MRI brain-tumour
slices (``MRI/Image`` + ``MRI/Mask``).

Files are named ``Im<patient>_<slice>.png`` (as the course's CT set), so patient-grouped folds mean something: the
slices of one patient share its body and lung shapes and differ by where they cut through them.

CT masks hold the two lungs at the course's two grey levels (`labkit.data.layouts.ct_mri.CT_LEVELS`): the lung on
the image's right (the patient's left, radiological convention) at ≈ 0.98·255, the other at ≈ 0.61·255.
MRI masks are 0/255 (tumour); about a quarter of the slices have no tumour.
"""

import cv2
import numpy as np

from labkit.data.synthetic.common import default_data_home, write_once
from labkit.data.synthetic.xray import _blob_polygon
from labkit.progress import progress

GENERATOR_VERSION = 1
MRI_GENERATOR_VERSION = 2  # 2: larger tumours (radius 6–14 % of the slice), learnable at 64 px
#: Mask grey levels (0–255) of the lung on the image's left (patient's right) and on its right (patient's left).
CT_MASK_VALUES = {"image_left": 156, "image_right": 250}


def _finish(image, rng, blur, noise):
    """Blur, random gain and Gaussian noise; uint8 in 0–255."""
    image = cv2.GaussianBlur(image, (0, 0), blur)
    image = image * rng.uniform(0.9, 1.1) + rng.normal(0, noise, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def ct_slice(patient_rng, slice_rng, depth, size=256):
    """One synthetic axial CT slice through the chest and its two-level lung mask.

    A soft-tissue body outline, two dark lungs whose size follows `depth` (0 = apex, 1 = base; largest in between),
    a heart between them, the spine below, blur and noise.

    Args:
        patient_rng: generator seeded by the patient (the same for every slice of one patient: body and lung shape).
        slice_rng: generator seeded by the slice (noise and small changes).
        depth: position of the slice in [0, 1].

    Returns:
        ``(image, mask)``: uint8 arrays ``(size, size)``; the mask holds 0 and the two `CT_MASK_VALUES`.
    """
    s = size
    shape = np.random.default_rng(patient_rng.integers(2**32))  # the patient's anatomy, drawn afresh per slice
    body = (int(s * shape.uniform(0.40, 0.46)), int(s * shape.uniform(0.30, 0.36)))
    spread, lung_w, lung_h = shape.uniform(0.17, 0.21), shape.uniform(0.10, 0.13), shape.uniform(0.16, 0.21)
    wobble_seeds = shape.integers(2**32, size=2)
    extent = 0.55 + 0.45 * np.sin(np.pi * np.clip(depth, 0.05, 0.95))  # lungs grow from the apex, shrink to the base

    image = np.zeros((s, s), np.float32)
    cv2.ellipse(image, (s // 2, s // 2), body, 0, 0, 360, 0.45, -1)
    mask = np.zeros((s, s), np.uint8)
    for side, seed, value in ((-1, wobble_seeds[0], CT_MASK_VALUES["image_left"]),
                              (1, wobble_seeds[1], CT_MASK_VALUES["image_right"])):
        center = (s / 2 + side * s * spread, s * (0.47 + slice_rng.uniform(-0.01, 0.01)))
        radii = (s * lung_w * extent, s * lung_h * extent)
        cv2.fillPoly(mask, [_blob_polygon(np.random.default_rng(seed), center, radii, wobble=0.2)], int(value))
    heart = (s // 2 + int(s * 0.03), int(s * 0.50))
    cv2.ellipse(mask, heart, (int(s * 0.08 * extent), int(s * 0.10 * extent)), 0, 0, 360, 0, -1)
    image[mask > 0] = slice_rng.uniform(0.05, 0.12)
    cv2.ellipse(image, heart, (int(s * 0.08 * extent), int(s * 0.10 * extent)), 0, 0, 360, 0.55, -1)
    cv2.circle(image, (s // 2, int(s * 0.74)), int(s * 0.05), 0.9, -1)  # vertebral body
    return _finish(image, slice_rng, s / 200, 0.04), mask


def mri_slice(patient_rng, slice_rng, depth, tumour, size=240):
    """One synthetic axial brain MRI slice (FLAIR-like) and its tumour mask.

    A bright skull ring around grey brain tissue with two dark ventricles; with `tumour`, a bright irregular region
    whose size varies from slice to slice.

    Returns:
        ``(image, mask)``: uint8 arrays ``(size, size)``; the mask is 0/255 (all 0 without a tumour).
    """
    s = size
    shape = np.random.default_rng(patient_rng.integers(2**32))
    head = (int(s * shape.uniform(0.33, 0.38) * (0.8 + 0.2 * np.sin(np.pi * depth))), int(s * shape.uniform(0.40, 0.45)))
    tumour_center = (s * shape.uniform(0.35, 0.65), s * shape.uniform(0.35, 0.65))
    image = np.zeros((s, s), np.float32)
    cv2.ellipse(image, (s // 2, s // 2), head, 0, 0, 360, 0.85, -1)
    cv2.ellipse(image, (s // 2, s // 2), (head[0] - s // 30, head[1] - s // 30), 0, 0, 360, 0.40, -1)
    for side in (-1, 1):
        cv2.ellipse(image, (s // 2 + side * s // 22, s // 2), (s // 30, s // 9), side * 10, 0, 360, 0.15, -1)
    image += cv2.GaussianBlur(slice_rng.normal(0, 0.08, image.shape).astype(np.float32), (0, 0), s / 60) * (image > 0)
    mask = np.zeros((s, s), np.uint8)
    if tumour:
        radius = s * slice_rng.uniform(0.06, 0.14)
        cv2.fillPoly(mask, [_blob_polygon(slice_rng, tumour_center, (radius, radius * slice_rng.uniform(0.7, 1.2)),
                                          wobble=0.3)], 255)
        mask[image < 0.3] = 0  # a tumour lies in brain tissue, not outside the head
        image[mask > 0] = slice_rng.uniform(0.75, 0.9)
    return _finish(image, slice_rng, s / 160, 0.03), mask


def _write_pairs(folder, modality, n_patients, n_slices, make, seed):
    """Write ``make(patient_rng, slice_rng, depth, slice_index) -> (image, mask)`` for every slice of every patient
    as ``<modality>/Image|Mask/Im<patient>_<slice>.png``."""
    for sub in ("Image", "Mask"):
        (folder / modality / sub).mkdir(parents=True)
    for patient in progress(range(n_patients), desc=f"embedded {modality} set", unit="patient"):
        for k in range(n_slices):
            image, mask = make(np.random.default_rng([seed, patient]), np.random.default_rng([seed, patient, k]),
                               k / max(1, n_slices - 1), k)
            name = f"Im{patient}_{k}.png"
            cv2.imwrite(str(folder / modality / "Image" / name), image)
            cv2.imwrite(str(folder / modality / "Mask" / name), mask)


def ct_dataset(n_patients=8, n_slices=12, size=256, seed=0, root=None):
    """The embedded CT lung set in the course layout ``CT/Image/Im<patient>_<slice>.png`` + ``CT/Mask/`` (same names).

    Args:
        n_patients, n_slices: patients, and slices per patient (evenly spaced from apex to base).
        size: side of the square slices in pixels.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the ``CT`` folder (pass it as ``--data-dir``).

    Example:
        >>> sorted(p.name for p in ct_dataset(n_patients=2, n_slices=3, size=64).iterdir())
        ['Image', 'Mask']
    """
    def write(folder):
        _write_pairs(folder, "CT", n_patients, n_slices,
                     lambda prng, srng, depth, k: ct_slice(prng, srng, depth, size), seed)

    name = f"ct-v{GENERATOR_VERSION}-p{n_patients}-n{n_slices}-s{size}-seed{seed}"
    return write_once(root or default_data_home(), name, write) / "CT"


def mri_dataset(n_patients=8, n_slices=12, size=240, seed=0, root=None):
    """The embedded MRI tumour set in the course layout ``MRI/Image/Im<patient>_<slice>.png`` + ``MRI/Mask/``.

    Every patient has one tumour; the first and last quarter of each patient's slices cut above or below it (empty
    masks), the rest show it at a size that varies from slice to slice. Arguments as `ct_dataset`.

    Returns:
        Path of the ``MRI`` folder.
    """
    def has_tumour(k):
        return n_slices // 4 <= k < n_slices - n_slices // 4

    def write(folder):
        _write_pairs(folder, "MRI", n_patients, n_slices,
                     lambda prng, srng, depth, k: mri_slice(prng, srng, depth, has_tumour(k), size), seed)

    name = f"mri-v{MRI_GENERATOR_VERSION}-p{n_patients}-n{n_slices}-s{size}-seed{seed}"
    return write_once(root or default_data_home(), name, write) / "MRI"
