"""Course Lab 1–3 flat folders, class in the file name (Skin ``Mel…``/``Nev…``, Bone ``AFF…``/``NFF…``, X-ray
``C1_…``–``C9_…``), and the handout's helpers that read them.

Layout::

    Skin/train/Mel_0001.jpg  Skin/train/Nev_0001.jpg  …   Skin/test/…

A file's class is the index of the one pattern that occurs in its name. The handout's ``gen_labels`` failed with an
``UnboundLocalError`` for a name that matched no pattern (versions that initialised the label labelled it 0 silently),
took the first pattern for a name matching two, its ``gen_labels_multiclass`` silently took the *last* match, and
``get_data`` labelled everything with the hard-coded ``"Mel"``/``"Nev"``. Here a name that matches no pattern or
several is a `LabkitInputError` naming the file, and every reader takes the patterns.

The course's functions keep their names, arguments and return shapes: `gen_labels`, `get_data`, `get_data_arrays`,
`get_train_test_arrays` and the `_multiclass` forms.
"""

import os
import random
from pathlib import Path

import numpy as np

from labkit.data.io import IMAGE_EXTENSIONS, load_image
from labkit.data.layouts.common import by_key, list_image_files
from labkit.data.paths import resolve_path
from labkit.errors import LabkitInputError, require
from labkit.progress import progress

#: The handout's default patterns (Lab 1 Skin: melanoma vs nevus).
SKIN_PATTERNS = ("Mel", "Nev")


def label_from_name(name, patterns):
    """Index of the one pattern that occurs in the file name `name` (its folder part is ignored).

    Raises:
        LabkitInputError: no pattern or more than one occurs in the name; the message names the file and the patterns.
    """
    base = os.path.basename(os.fspath(name))  # str, Path or an os.scandir entry
    hits = [i for i, pattern in enumerate(patterns) if pattern in base]
    if len(hits) != 1:
        found = "none" if not hits else " and ".join(repr(patterns[i]) for i in hits)
        raise LabkitInputError(f"cannot label {name}: its name must contain exactly one of "
                               f"{', '.join(repr(p) for p in patterns)}; it contains {found}")
    return hits[0]


def list_labelled_files(folder, patterns=SKIN_PATTERNS):
    """Image files of a flat folder with their class indices from the file names, sorted by name.

    Returns:
        ``(paths, labels)``: lists of `Path` and int.

    Raises:
        LabkitInputError: the folder is missing or holds no images, or a name matches no pattern or several.
    """
    folder = Path(folder)
    require(folder.is_dir(), f"folder not found: {folder}")
    paths = list_image_files(folder)  # two files of one name but for the extension are an error
    require(paths, f"no images (.png, .jpg, .jpeg, .bmp) in {folder}")
    return paths, [label_from_name(p.name, patterns) for p in paths]


def gen_labels(im_name, pat1, pat2):
    """The handout's ``gen_labels``: ``np.array([0])`` if `pat1` is in the name, ``np.array([1])`` if `pat2` is.

    Raises:
        LabkitInputError: neither or both occur (the course raised ``UnboundLocalError`` or picked `pat1`).

    Example:
        >>> gen_labels("Mel_0042.jpg", "Mel", "Nev")
        array([0])
    """
    return np.array([label_from_name(im_name, (pat1, pat2))])


def gen_labels_multiclass(im_name, patterns=SKIN_PATTERNS):
    """The handout's ``gen_labels_multiclass``: ``np.array([i])`` for the pattern ``patterns[i]`` in the name.

    Raises:
        LabkitInputError: no pattern or several occur (the course kept the last match, or failed unbound).
    """
    return np.array([label_from_name(im_name, tuple(patterns))])


def _read_grey(path, img_h, img_w):
    return load_image(path, img_w, img_h, channels=1)[..., 0]


def get_data_multiclass(data_path, data_list, img_h, img_w, patterns=SKIN_PATTERNS, seed=None):
    """The handout's ``get_data_multiclass``: read, grey-scale and resize each listed file and label it by name.

    Args:
        data_path: folder of the files (``str`` or `pathlib.Path`, relative or absolute, trailing separator or not).
        data_list: the files, either as names in `data_path` (``os.listdir(data_path)``, as the handout) or as paths
            that already hold it (``glob.glob(data_path + "/*.jpg")``, ``Path(data_path).iterdir()``) or absolute
            paths (`labkit.data.paths.resolve_path`); hidden and non-image files are skipped, which the course's
            loop tripped over.
        img_h, img_w: output size.
        patterns: class patterns, in label order.
        seed: seed of the shuffle (the course shuffled unseeded; None keeps that). The files are sorted by name
            before the shuffle, so one seed gives one order whatever order ``os.listdir`` lists them in.

    Returns:
        A shuffled list of ``[image, label]`` with ``image`` float32 ``(img_h, img_w)`` in [0, 1] and ``label`` an
        int array of shape (1,).

    Raises:
        LabkitInputError: a name matches no pattern or several, a listed file exists in neither convention, or a
            file cannot be read (each named).
    """
    names = sorted((n for n in data_list if not Path(os.fspath(n)).name.startswith(".")
                    and Path(os.fspath(n)).suffix.lower() in IMAGE_EXTENSIONS), key=lambda n: (Path(os.fspath(n)).name, os.fspath(n)))
    labels = [gen_labels_multiclass(name, patterns) for name in names]  # check every name before reading any file
    paths = [resolve_path(data_path, name, kind="file") for name in names]
    by_key(paths, kind="image files")  # a.png and a.jpg: one image twice, or two?
    img_labels = [[_read_grey(path, img_h, img_w), label]
                  for path, label in progress(list(zip(paths, labels)), desc="reading images", unit="img")]
    random.Random(seed).shuffle(img_labels)
    return img_labels


def get_data(data_path, data_list, img_h, img_w, patterns=SKIN_PATTERNS, seed=None):
    """The handout's ``get_data`` (two classes; the handout hard-coded ``"Mel"``/``"Nev"``, here `patterns`).

    `data_path` and `data_list` as `get_data_multiclass`: names in the folder or paths that already hold it.

    Returns:
        A shuffled list of ``[image (img_h, img_w) float32, label array([0 or 1])]``.
    """
    require(len(patterns) == 2, f"get_data takes two patterns, got {list(patterns)}: use get_data_multiclass")
    return get_data_multiclass(data_path, data_list, img_h, img_w, patterns, seed)


def get_data_arrays(nested_list, img_h, img_w):
    """The handout's ``get_data_arrays``: ``(images (n, img_h, img_w, 1) float32, labels (n,) int32)``."""
    images = np.zeros((len(nested_list), img_h, img_w), dtype=np.float32)
    labels = np.zeros(len(nested_list), dtype=np.int32)
    for index, (image, label) in enumerate(nested_list):
        images[index] = image
        labels[index] = int(np.asarray(label).reshape(-1)[0])
    return images[..., None], labels


def get_train_test_arrays_multiclass(train_data_path, test_data_path, train_list, test_list, img_h, img_w,
                                     patterns=SKIN_PATTERNS, seed=None):
    """The handout's ``get_train_test_arrays_multiclass``.

    Args:
        train_data_path, test_data_path: the two flat folders.
        train_list, test_list: their files, as names (``os.listdir(train_data_path)``) or as paths that already hold
            the folder, or absolute (see `get_data_multiclass`).
        img_h, img_w: output size.
        patterns: class patterns, in label order.
        seed: seed of both shuffles.

    Returns:
        ``(train_img, test_img, train_label, test_label)`` (the course's order): float32 ``(n, img_h, img_w, 1)``
        images and int32 ``(n,)`` labels.

    Example:
        >>> x_train, x_test, y_train, y_test = get_train_test_arrays_multiclass(
        ...     "Lab1/X_ray/train", "Lab1/X_ray/test", os.listdir(...), os.listdir(...), 128, 128,
        ...     [f"C{i}_" for i in range(1, 10)])
    """
    train_img, train_label = get_data_arrays(
        get_data_multiclass(train_data_path, train_list, img_h, img_w, patterns, seed), img_h, img_w)
    test_img, test_label = get_data_arrays(
        get_data_multiclass(test_data_path, test_list, img_h, img_w, patterns, seed), img_h, img_w)
    return train_img, test_img, train_label, test_label


def get_train_test_arrays(train_data_path, test_data_path, train_list, test_list, img_h, img_w,
                          patterns=SKIN_PATTERNS, seed=None):
    """The handout's ``get_train_test_arrays``: two classes, ``(train_img, test_img, train_label, test_label)``.

    Folders and file lists as `get_train_test_arrays_multiclass` (names or paths, ``str`` or `pathlib.Path`).
    """
    require(len(patterns) == 2, f"get_train_test_arrays takes two patterns, got {list(patterns)}")
    return get_train_test_arrays_multiclass(train_data_path, test_data_path, train_list, test_list, img_h, img_w,
                                            patterns, seed)


__all__ = ["SKIN_PATTERNS", "gen_labels", "gen_labels_multiclass", "get_data", "get_data_arrays",
           "get_data_multiclass", "get_train_test_arrays", "get_train_test_arrays_multiclass", "label_from_name",
           "list_labelled_files"]
