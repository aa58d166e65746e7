"""Embedded left-atrium set (3D U-Net lab) in the LA 2018 UA-MT layout: ``<case>/mri_norm2.h5`` + case lists.

Each volume holds one smooth irregular blob (the "atrium": a wobbly ellipsoid with a brighter, patchy wall) in
structured noise: a smooth background texture, a bright tube passing close by (an aorta-like distractor the network
must learn to leave out), a multiplicative bias field, blur and noise. Images are z-scored like UA-MT's
``mri_norm2.h5``; labels are uint8 {0, 1}. Volume sizes vary a little from case to case (as real crops do), and the
file carries a ``spacing`` attribute (mm per axis) that the loader reads.
"""

import numpy as np
from scipy import ndimage

from labkit.data.synthetic.common import default_data_home, write_once
from labkit.progress import progress

GENERATOR_VERSION = 2
#: Voxel size of the embedded volumes in mm (in-plane finer than between slices, as in many MRI protocols).
SPACING = (0.625, 0.625, 1.25)


def _smooth_noise(rng, shape, sigma):
    """Gaussian-filtered white noise scaled to unit standard deviation: a smooth random field."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    field -= field.mean()  # zero mean: a field much smoother than the volume is not a constant offset
    return field / (field.std() + 1e-12)


def _grid_mm(shape, spacing):
    return np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")


def _blob(rng, shape, spacing):
    """One connected smooth irregular blob: an ellipsoid (radii in mm) whose boundary wobbles with a smooth field."""
    x, y, z = _grid_mm(shape, spacing)
    extent = np.array(shape) * np.array(spacing)
    centre = extent / 2 + rng.uniform(-0.08, 0.08, 3) * extent
    radii = rng.uniform(0.18, 0.26, 3) * extent.min() * np.array([1.15, 1.0, 0.9])
    radius = np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                     + ((z - centre[2]) / radii[2]) ** 2)
    wobble = _smooth_noise(rng, shape, sigma=np.array([6.0, 6.0, 3.0]))
    mask = radius + 0.22 * wobble < 1.0
    labels, count = ndimage.label(mask)
    if count > 1:  # keep the largest piece: one object
        mask = labels == 1 + np.argmax(ndimage.sum(mask, labels, range(1, count + 1)))
    return mask, centre


def _tube(rng, shape, spacing, centre):
    """A bright curved tube along z beside the blob (aorta-like distractor)."""
    x, y, z = _grid_mm(shape, spacing)
    extent = np.array(shape) * np.array(spacing)
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(0.30, 0.38) * extent[:2].min()
    bend = rng.uniform(-0.1, 0.1) * extent[0] * np.sin(np.pi * z / extent[2])
    cx = centre[0] + offset * np.cos(angle) + bend
    cy = centre[1] + offset * np.sin(angle)
    return np.hypot(x - cx, y - cy) < rng.uniform(0.06, 0.09) * extent[:2].min()


def atrium_volume(rng, shape=(64, 64, 32), spacing=SPACING):
    """One synthetic volume and its label.

    Args:
        rng: a `numpy.random.Generator`.
        shape: ``(x, y, z)`` voxels.
        spacing: voxel size in mm; the blob is sized in mm, so it stays round in physical space.

    Returns:
        ``(image, label)``: float32 ``(x, y, z)`` z-scored, and uint8 {0, 1} with one connected object.
    """
    label, centre = _blob(rng, shape, spacing)
    wall = ndimage.binary_dilation(label, ndimage.generate_binary_structure(3, 1), iterations=1) & ~label
    image = 0.30 + 0.07 * _smooth_noise(rng, shape, sigma=3.0)
    image[label] = rng.uniform(0.62, 0.72)
    patchy = _smooth_noise(rng, shape, sigma=2.0) > 0.3
    image[wall & patchy] = 0.95  # enhanced wall patches, as in late-gadolinium MRI
    image[_tube(rng, shape, spacing, centre) & ~label & ~wall] = rng.uniform(0.60, 0.75)
    image = ndimage.gaussian_filter(image, 0.8)
    bias = 1.0 + 0.15 * _smooth_noise(rng, shape, sigma=12.0)
    image = image * bias + rng.normal(0.0, 0.07, shape)
    image = (image - image.mean()) / image.std()
    return image.astype(np.float32), label.astype(np.uint8)


def _case_shape(rng, shape):
    jitter = np.array([8, 8, 4]) * np.array(shape) // np.array([64, 64, 32])
    return tuple(int(n + rng.integers(-j, j + 1)) for n, j in zip(shape, jitter))


def atrium_dataset(n_volumes=12, n_test=3, shape=(64, 64, 32), seed=0, root=None):
    """The embedded left-atrium set in the UA-MT layout: ``<case>/mri_norm2.h5``, ``train.list``, ``test.list``.

    Args:
        n_volumes: number of cases (at least 2).
        n_test: how many of them go to ``test.list`` (the rest to ``train.list``).
        shape: typical ``(x, y, z)`` size; each case's size varies by up to an eighth along every axis.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the dataset folder (pass it as ``--data-dir``).

    Example:
        >>> folder = atrium_dataset(n_volumes=4, n_test=1, shape=(32, 32, 16))
        >>> sorted(p.name for p in folder.iterdir())[-2:]
        ['test.list', 'train.list']
    """
    import h5py

    n_test = min(max(1, int(n_test)), int(n_volumes) - 1)
    names = [f"synLA{i:03d}" for i in range(int(n_volumes))]

    def write(folder):
        folder.mkdir(parents=True)
        for i, name in enumerate(progress(names, desc="embedded atrium volumes", unit="vol")):
            rng = np.random.default_rng([seed, i])
            image, label = atrium_volume(rng, _case_shape(rng, shape))
            (folder / name).mkdir()
            with h5py.File(folder / name / "mri_norm2.h5", "w", track_order=False) as handle:
                handle.create_dataset("image", data=image, track_times=False)
                handle.create_dataset("label", data=label, track_times=False)
                handle.attrs["spacing"] = np.asarray(SPACING, dtype=np.float64)
        (folder / "train.list").write_text("".join(f"{n}\n" for n in names[n_test:]))
        (folder / "test.list").write_text("".join(f"{n}\n" for n in names[:n_test]))

    name = f"atrium-v{GENERATOR_VERSION}-n{n_volumes}-t{n_test}-{'x'.join(map(str, shape))}-seed{seed}"
    return write_once(root or default_data_home(), name, write)
