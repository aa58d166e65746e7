"""The course's Lab 6 Task 2 layout: white-matter bundles as TrackVis files, one folder per subject.

``<data>/<subject>/<bundle>.trk`` (the course: HCP subjects ``613538``, ``599671``, ``599469`` for training and
``601127`` for validation, bundles ``CST_left`` and ``CST_right``). Each file holds the streamlines of one bundle;
a streamline is a sequence of 3D points (RAS+ millimetres, as nibabel gives them), of its own length.
"""

from pathlib import Path

import numpy as np

from labkit.data.layouts import subfolders
from labkit.errors import LabkitInputError, require

COURSE_TRAIN_SUBJECTS = ("613538", "599671", "599469")
COURSE_VAL_SUBJECTS = ("601127",)
COURSE_BUNDLES = ("CST_left", "CST_right")


def bundle_file(data_dir, subject, bundle):
    """The ``.trk`` file of `bundle` in `subject`'s folder of `data_dir`.

    Raises:
        LabkitInputError: the subject folder or the bundle file is missing (named, with what is there instead).
    """
    folder = Path(data_dir) / str(subject)
    require(folder.is_dir(), f"{folder}: subject folder not found (subjects in {data_dir}: "
            f"{', '.join(subfolders(data_dir)) or 'none'})")
    path = folder / f"{bundle}.trk"
    require(path.is_file(), f"{path}: bundle file not found (bundles of {subject}: "
            f"{', '.join(sorted(p.stem for p in folder.glob('*.trk'))) or 'none'})")
    return path


def read_streamlines(path):
    """Every streamline of a TrackVis file, as nibabel reads it (``nibabel.streamlines.load``).

    Returns:
        A list of float32 arrays ``(points, 3)`` in RAS+ millimetres, in file order.

    Raises:
        LabkitInputError: the file is missing, not a TrackVis file nibabel can read, or holds no streamline.
    """
    import nibabel as nib

    path = Path(path)
    require(path.is_file(), f"{path}: file not found")
    try:
        streamlines = nib.streamlines.load(str(path)).streamlines
    except Exception as exc:  # nibabel raises HeaderError, DataError, ValueError, struct.error, ... on a bad file
        raise LabkitInputError(f"{path}: not a readable TrackVis file ({type(exc).__name__}: {exc})") from None
    require(len(streamlines) > 0, f"{path}: no streamlines in the file")
    return [np.asarray(s, np.float32) for s in streamlines]


def load_streamlines(dataPath, subject_ids, bundles, n_tracts_per_bundle, seed=None):  # noqa: N803 (course name)
    """The course's loader: `n_tracts_per_bundle` streamlines of every bundle of every subject, with the bundle's index.

    The handout's signature and calling pattern (``load_streamlines(dataPath, train_subjects_list, bundles_list,
    20)`` with ``dataPath = '/…/HCP_lab/'``). The handout built paths as ``dataPath + subject + '/'``; here the folder
    may be given with or without a trailing separator, as ``str`` or `pathlib.Path`. The handout drew the
    streamlines with NumPy's unseeded global generator; `seed` makes the draw repeatable (None: NumPy's global
    generator, as the handout, which `labkit.runtime.set_seed` seeds).

    Args:
        dataPath: folder holding one folder per subject.
        subject_ids: subject folder names.
        bundles: bundle names (the ``.trk`` file stems); the label of a streamline is its bundle's index here.
        n_tracts_per_bundle: streamlines drawn (without replacement) from each file; None: all of them, in file order.
        seed: seed of the draw (see above).

    Returns:
        ``(X, y)``: a list of float32 arrays ``(points, 3)`` and a list of int labels, subject by subject, bundle by
        bundle.

    Raises:
        LabkitInputError: a missing subject or bundle file, an unreadable or empty one, or one with fewer
            streamlines than `n_tracts_per_bundle` (each named).

    Example:
        >>> X_train, y_train = load_streamlines("HCP_lab/", ["613538", "599671"], ["CST_left", "CST_right"], 20)
    """
    rng = np.random.default_rng(seed) if seed is not None else np.random
    X, y = [], []
    for subject in subject_ids:
        for label, bundle in enumerate(bundles):
            path = bundle_file(dataPath, subject, bundle)
            streamlines = read_streamlines(path)
            if n_tracts_per_bundle is None:
                chosen = range(len(streamlines))
            else:
                require(len(streamlines) >= n_tracts_per_bundle, f"{path}: {len(streamlines)} streamlines, fewer "
                        f"than the {n_tracts_per_bundle} asked for per bundle")
                chosen = rng.choice(len(streamlines), n_tracts_per_bundle, replace=False)
            X += [streamlines[i] for i in chosen]
            y += [label] * len(chosen)
    return X, y
