"""Embedded white-matter bundles (Lab 6 Task 2) in the course layout ``<subject>/<bundle>.trk``, written with nibabel.

Each bundle is a family of curved streamlines around a centre line rising from the brainstem to the cortex and
fanning out on the way; ``CST_left`` bends to the left (x < 0), ``CST_right`` is its mirror image, further bundles
(``bundle_3``, …) rise at other angles. Every subject shifts and scales its bundles (head position and size;
left-right shifts of about 5 mm), so where a point lies tells less than how the streamline bends; streamlines
start and stop at different heights and have 20–60 points.
"""

import zlib

import numpy as np

from labkit.data.layouts.tractography import COURSE_BUNDLES, COURSE_TRAIN_SUBJECTS, COURSE_VAL_SUBJECTS
from labkit.data.synthetic.common import default_data_home, write_once

GENERATOR_VERSION = 4


def bundle_centre(t, side, tilt=0.0):
    """Points ``(len(t), 3)`` of a bundle's centre line at heights ``t`` ∈ [0, 1]: from near the midline at the
    brainstem (z = −45 mm) up to the cortex (z = 55 mm), bending out to x = side · 34 mm; `tilt` leans it forward."""
    t = np.asarray(t, np.float64)
    x = side * (4 + 30 * t**2)
    y = -15 + 10 * np.sin(np.pi * t) + tilt * 40 * t
    z = -45 + 100 * t
    return np.stack([x, y, z], axis=1)


def streamline(rng, side, tilt, shift, scale):
    """One streamline of a bundle: its centre line between random start and end heights, fanned out and jittered.

    Returns:
        float32 ``(points, 3)`` in millimetres, 20–60 points.
    """
    start, end = rng.uniform(0.0, 0.15), rng.uniform(0.8, 1.0)
    t = np.linspace(start, end, int(rng.integers(20, 61)))
    fan = rng.normal(0, 8, 2)  # where in the cortex this streamline ends, relative to the centre line
    points = bundle_centre(t, side, tilt)
    points[:, 0] += fan[0] * t**1.5
    points[:, 1] += fan[1] * t**1.5
    points += rng.normal(0, 0.6, points.shape)
    return ((points * scale) + shift).astype(np.float32)


def bundle_shape(index):
    """``(side, tilt)`` of bundle `index`: 0 and 1 are the left and right CST; later ones alternate sides, tilted."""
    return (-1 if index % 2 == 0 else 1), 0.0 if index < 2 else 0.5 * (index // 2)


def tract_dataset(subjects=COURSE_TRAIN_SUBJECTS + COURSE_VAL_SUBJECTS, bundles=COURSE_BUNDLES, n_streamlines=40,
                  seed=0, root=None):
    """The embedded Lab 6 Task 2 set: ``<subject>/<bundle>.trk`` for every subject and bundle (TrackVis files
    written with ``nibabel.streamlines.save``, coordinates in RAS+ millimetres).

    Args:
        subjects: subject folder names (default: the course's four HCP subject IDs).
        bundles: bundle names (default: ``CST_left``, ``CST_right``).
        n_streamlines: streamlines per bundle file.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the folder holding the subject folders (pass it as ``--data-dir``).

    Example:
        >>> folder = tract_dataset(n_streamlines=10)
        >>> sorted(p.name for p in (folder / "601127").iterdir())
        ['CST_left.trk', 'CST_right.trk']
    """
    import nibabel as nib

    def write(folder):
        rng = np.random.default_rng(seed)
        for subject in subjects:
            (folder / subject).mkdir(parents=True)
            shift, scale = rng.normal(0, [5, 4, 3]), rng.uniform(0.9, 1.1)
            for index, bundle in enumerate(bundles):
                side, tilt = bundle_shape(index)
                lines = [streamline(rng, side, tilt, shift, scale) for _ in range(n_streamlines)]
                tractogram = nib.streamlines.Tractogram(lines, affine_to_rasmm=np.eye(4))
                nib.streamlines.save(tractogram, str(folder / subject / f"{bundle}.trk"))

    key = f"{len(subjects)}x{len(bundles)}_{zlib.crc32(' '.join([*subjects, '|', *bundles]).encode()):08x}"
    name = f"tracts_v{GENERATOR_VERSION}_{key}_{n_streamlines}_s{seed}"
    return write_once(root or default_data_home(), name, write)
