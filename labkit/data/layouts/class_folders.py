"""Course Lab 2 class-folder layout (Bone AFF/NFF, Skin Mel/Nevi), used by Lab 4 Tasks 1–3.

A set folder holds ``train/`` and ``validation/``, each with one subfolder per class; the class of an image is the
name of its folder, and the class index is the folder's position in sorted order (as Keras's
``flow_from_directory``: AFF 0, NFF 1; Mel 0, Nevi 1)::

    Bone/train/AFF/*.jpg   Bone/train/NFF/*.jpg   Bone/validation/AFF/*.jpg   Bone/validation/NFF/*.jpg
    Skin/train/Mel/*.jpg   Skin/train/Nevi/*.jpg  Skin/validation/Mel/*.jpg   Skin/validation/Nevi/*.jpg

`find_lab2_set` accepts the set folder itself or the course's ``Lab2`` folder that holds ``Bone/`` and ``Skin/``.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from labkit.data.layouts.common import list_image_files, subfolders
from labkit.data.paths import find_path, resolve_path
from labkit.errors import LabkitInputError, require

#: The course's two sets: folder name and class folders.
LAB2_SETS = {"bone": ("Bone", ("AFF", "NFF")), "skin": ("Skin", ("Mel", "Nevi"))}
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class ClassFolderSplit:
    """The images of one split: ``paths[i]`` has class index ``labels[i]``, named ``class_names[labels[i]]``."""

    paths: tuple
    labels: tuple
    class_names: tuple

    def __len__(self):
        return len(self.paths)

    def counts(self):
        """Images per class name."""
        return {name: self.labels.count(index) for index, name in enumerate(self.class_names)}


def _child(folder, name):
    """The subfolder of `folder` called `name`, matched without regard to case, or None."""
    return next((folder / sub for sub in subfolders(folder) if sub.lower() == name.lower()), None)


def _found(folder):
    names = subfolders(folder)
    return ", ".join(f"{n}/" for n in names) if names else "no folders"


def resolve_set_folder(data_dir, dataset=None):
    """The folder holding ``train/`` and ``validation/`` for `dataset` (``"bone"``, ``"skin"`` or None).

    `data_dir` may be that folder itself, or (with `dataset`) the folder that holds ``Bone/`` / ``Skin/``.

    Raises:
        LabkitInputError: neither layout is there; the message names the expected and the found folders.
    """
    root = Path(data_dir)
    require(root.is_dir(), f"data folder not found: {root}")
    if _child(root, "train") is not None:
        return root
    if dataset is not None:
        set_name = LAB2_SETS[dataset][0]
        inner = _child(root, set_name)
        if inner is not None:
            return inner
        expected = f"{set_name}/ (or train/ and validation/)"
    else:
        expected = "train/ and validation/"
    raise LabkitInputError(
        f"{root} does not have the course Lab 2 layout: expected {expected}, found {_found(root)}")


def _class_name(folder, name):
    """The class folder `name` of `folder`, given as its name or as a path that holds `folder` (``Bone/train/AFF/``,
    `labkit.data.paths.find_path`), as a bare name; a folder that is not a subfolder of `folder` stays as given, for
    the error message."""
    found = find_path(folder, name)
    if found is not None and found.resolve().parent == folder.resolve():
        return found.name
    return str(Path(os.fspath(name)))


def list_class_folders(folder, class_names=None):
    """Image files and class indices of a folder with one subfolder per class (one split of a Lab 2 set).

    Args:
        folder: e.g. ``Lab2/Bone/train`` (``str`` or `pathlib.Path`, relative or absolute, trailing separator or not).
        class_names: class folders in label order (default: every subfolder, sorted, as ``flow_from_directory``),
            as names (``"AFF"``) or as paths that already hold `folder` (``os.path.join(train_dir, "AFF/")``).

    Returns:
        A `ClassFolderSplit`, files sorted by class then name.

    Raises:
        LabkitInputError: the folder is missing, has fewer than two class folders, lacks an expected class folder,
            or a class folder holds no images; the message names the folders expected and found.

    Example:
        >>> train = list_class_folders("Lab2/Bone/train")
        >>> train.class_names, train.counts()
        (('AFF', 'NFF'), {'AFF': 520, 'NFF': 520})
    """
    folder = resolve_path(None, folder)
    found = subfolders(folder)
    if class_names is not None:
        class_names = tuple(_class_name(folder, name) for name in class_names)
    else:
        class_names = tuple(found)
        require(len(class_names) >= 2, f"{folder} needs one folder per class (at least two), found {_found(folder)}")
    missing = [name for name in class_names if name not in found]
    require(not missing, f"{folder} lacks class folder(s) {', '.join(m + '/' for m in missing)}: expected "
            f"{', '.join(c + '/' for c in class_names)}, found {_found(folder)}")
    paths, labels = [], []
    for index, name in enumerate(class_names):
        files = list_image_files(folder / name)
        require(files, f"no images (.png, .jpg, .jpeg, .bmp) in class folder {folder / name}")
        paths += files
        labels += [index] * len(files)
    return ClassFolderSplit(tuple(paths), tuple(labels), tuple(class_names))


def find_class_split(set_dir, split, class_names=None):
    """`list_class_folders` of the `split` folder (``train`` or ``validation``, any case) of a set folder.

    Raises:
        LabkitInputError: no such split folder (the message names the expected and the found folders), or see
            `list_class_folders`.
    """
    set_dir = Path(set_dir)
    folder = _child(set_dir, split)
    require(folder is not None, f"{set_dir} has no {split}/ folder: expected {', '.join(s + '/' for s in SPLITS)}, "
            f"found {_found(set_dir)}")
    return list_class_folders(folder, class_names)


def find_lab2_set(data_dir, dataset=None):
    """Training and validation images of a Lab 2 set, with class names from the training folders.

    Args:
        data_dir: the set folder (holding ``train/`` and ``validation/``) or, with `dataset`, the folder holding
            ``Bone/`` and ``Skin/``.
        dataset: ``"bone"``, ``"skin"`` or None (then `data_dir` must be the set folder).

    Returns:
        ``(train, validation)``: two `ClassFolderSplit` with the same class names.

    Raises:
        LabkitInputError: wrong layout (the message names the expected and the found folders), or validation class
            folders that differ from the training ones.

    Example:
        >>> train, val = find_lab2_set("/DL_course_data/Lab2", "bone")
        >>> train.class_names
        ('AFF', 'NFF')
    """
    require(dataset is None or dataset in LAB2_SETS, f"unknown Lab 2 set {dataset!r}: choose {', '.join(LAB2_SETS)}")
    set_dir = resolve_set_folder(data_dir, dataset)
    train = find_class_split(set_dir, "train")
    val_folder = _child(set_dir, "validation")
    require(val_folder is not None, f"{set_dir} has no validation/ folder: expected train/ and validation/, "
            f"found {_found(set_dir)}")
    require(set(subfolders(val_folder)) == set(train.class_names),
            f"class folders differ between {set_dir / 'train'} ({', '.join(train.class_names)}) and "
            f"{val_folder} ({', '.join(subfolders(val_folder)) or 'none'})")
    return train, find_class_split(set_dir, "validation", train.class_names)

