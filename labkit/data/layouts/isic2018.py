"""Seven-class skin lesion layouts: ISIC 2018 Task 3 and HAM10000.

* ISIC 2018 Task 3: an input folder of ``ISIC_<id>.jpg`` and a ground-truth CSV
  ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` with one-hot values (``1.0``/``0.0``; some copies write ``1``/``0`` or
  reorder the columns, so columns are looked up by name). The official release names them
  ``ISIC2018_Task3_{Training,Validation,Test}_Input/`` and
  ``ISIC2018_Task3_{Training,Validation,Test}_GroundTruth/ISIC2018_Task3_<split>_GroundTruth.csv``; the optional
  ``ISIC2018_Task3_Training_LesionGroupings.csv`` (``image,lesion_id,...``) tells which images show one lesion.
* HAM10000: ``HAM10000_images_part_1/`` and/or ``HAM10000_images_part_2/`` with ``HAM10000_metadata.csv``
  (``lesion_id,image_id,dx,...``; ``dx`` in akiec bcc bkl df mel nv vasc; extra columns are ignored and
  ``image_id`` may carry ``.jpg``).

Images are matched to their labels by image ID, never by listing order. An image listed in a CSV but missing on
disk is an error naming it, or with ``skip_missing`` a warning with the count.
"""

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit.data.layouts.common import by_key, check_readable, list_image_files, name_some, subfolders
from labkit.data.split import grouped_stratified_split
from labkit.errors import LabkitInputError, require

#: The ISIC 2018 Task 3 class order (the ground-truth CSV's column order); labels are indices into it.
CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
CLASS_NAMES = {
    "MEL": "melanoma",
    "NV": "melanocytic nevus",
    "BCC": "basal cell carcinoma",
    "AKIEC": "actinic keratosis / intraepithelial carcinoma",
    "BKL": "benign keratosis",
    "DF": "dermatofibroma",
    "VASC": "vascular lesion",
}
SPLITS = ("train", "val", "test")
_TASK3_SPLIT_NAMES = {"train": "Training", "val": "Validation", "test": "Test"}


@dataclass
class LabelledImages:
    """Image files with their class index and their lesion (group) ID, in matching order.

    Attributes:
        paths: image files.
        labels: int array of class indices into `CLASSES`.
        groups: lesion ID of each image (the image ID itself when the layout has no lesion IDs).
        source: a short description of where the images came from, for messages.
    """

    paths: list
    labels: np.ndarray
    groups: list = field(default_factory=list)
    source: str = ""

    def __len__(self):
        return len(self.paths)

    @property
    def class_names(self):
        """The names of the class indices: `CLASSES`."""
        return CLASSES

    def subset(self, indices, source=None):
        """The images at `indices`, as a new `LabelledImages`."""
        indices = [int(i) for i in indices]
        return LabelledImages([self.paths[i] for i in indices], self.labels[indices],
                              [self.groups[i] for i in indices], source or self.source)

    def class_counts(self):
        """Number of images of each class, in `CLASSES` order."""
        return np.bincount(self.labels, minlength=len(CLASSES))


def _read_rows(csv_path):
    """Header and rows of a CSV (header names stripped), with the file's line number of each row."""
    csv_path = Path(csv_path)
    require(csv_path.is_file(), f"CSV file not found: {csv_path}")
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    require(header, f"{csv_path} is empty")
    return header, rows


def _columns(header, wanted, csv_path, what):
    """Index of each wanted column, looked up by name (case-insensitive)."""
    index = {name.lower(): i for i, name in enumerate(header)}
    missing = [name for name in wanted if name.lower() not in index]
    require(not missing, f"{csv_path} is not {what}: missing column(s) {', '.join(missing)} "
            f"(found {', '.join(header)})")
    return [index[name.lower()] for name in wanted]


def image_id(name):
    """The image ID of a CSV entry or file name: ``ISIC_0024306.jpg`` → ``ISIC_0024306``."""
    name = str(name).strip()
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in (".jpg", ".jpeg", ".png") else name


def read_ground_truth_csv(csv_path):
    """Labels of an ISIC 2018 Task 3 ground-truth CSV.

    Columns are looked up by name, so reordered columns and integer values (``1`` instead of ``1.0``) read the
    same. Every row must be one-hot: one class 1, the others 0.

    Args:
        csv_path: the CSV with columns ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` (others are ignored).

    Returns:
        A list of ``(image_id, class_index)`` in file order; `class_index` indexes `CLASSES`.

    Raises:
        LabkitInputError: a missing column, a duplicate image, or a row that is not one-hot (the message names the
            CSV, the line and the image).

    Example:
        >>> read_ground_truth_csv("ISIC2018_Task3_Training_GroundTruth.csv")[:2]
        [('ISIC_0024306', 1), ('ISIC_0024307', 1)]
    """
    header, rows = _read_rows(csv_path)
    image_col, *class_cols = _columns(header, ("image", *CLASSES), csv_path, "an ISIC 2018 Task 3 ground-truth CSV")
    entries, seen = [], set()
    for line, row in rows:
        name = image_id(row[image_col]) if image_col < len(row) else ""
        try:
            values = np.array([float(row[c]) for c in class_cols])
        except (ValueError, IndexError):
            raise LabkitInputError(f"{csv_path}, line {line} ({name or 'no image'}): class values must be the "
                                   f"numbers 0 or 1, got {', '.join(row[c] for c in class_cols if c < len(row))}"
                                   ) from None
        if not (np.isin(values, (0.0, 1.0)).all() and values.sum() == 1):
            shown = ", ".join(f"{c}={v:g}" for c, v in zip(CLASSES, values))
            raise LabkitInputError(f"{csv_path}, line {line} ({name}): labels are not one-hot ({shown})")
        require(name, f"{csv_path}, line {line}: empty image name")
        require(name not in seen, f"{csv_path}, line {line}: image {name} is listed twice")
        seen.add(name)
        entries.append((name, int(np.argmax(values))))
    require(entries, f"{csv_path} lists no images")
    return entries


def read_lesion_groupings(csv_path):
    """``{image_id: lesion_id}`` from ``ISIC2018_Task3_Training_LesionGroupings.csv`` (columns ``image,lesion_id``)."""
    header, rows = _read_rows(csv_path)
    image_col, lesion_col = _columns(header, ("image", "lesion_id"), csv_path, "a lesion groupings CSV")
    return {image_id(row[image_col]): row[lesion_col].strip() for _, row in rows}


def read_ham10000_metadata(csv_path):
    """Labels and lesion IDs of a ``HAM10000_metadata.csv``.

    Args:
        csv_path: the metadata CSV with at least the columns ``lesion_id``, ``image_id`` and ``dx`` (any order;
            extra columns are ignored; ``image_id`` with or without ``.jpg``).

    Returns:
        A list of ``(image_id, lesion_id, class_index)`` in file order; `class_index` indexes `CLASSES`
        (``dx`` ``mel`` → ``MEL`` and so on).

    Raises:
        LabkitInputError: a missing column, an unknown ``dx`` or a duplicate image (naming the CSV and the line).

    Example:
        >>> read_ham10000_metadata("HAM10000_metadata.csv")[0]
        ('ISIC_0027419', 'HAM_0000118', 4)
    """
    header, rows = _read_rows(csv_path)
    lesion_col, image_col, dx_col = _columns(header, ("lesion_id", "image_id", "dx"), csv_path,
                                             "a HAM10000 metadata CSV")
    codes = {name.lower(): i for i, name in enumerate(CLASSES)}
    entries, seen = [], set()
    for line, row in rows:
        try:
            lesion, name, dx = row[lesion_col].strip(), image_id(row[image_col]), row[dx_col].strip().lower()
        except IndexError:
            raise LabkitInputError(f"{csv_path}, line {line}: fewer columns than the header") from None
        require(dx in codes, f"{csv_path}, line {line} ({name}): unknown dx {dx!r} (expected one of "
                f"{', '.join(sorted(codes))})")
        require(name not in seen, f"{csv_path}, line {line}: image {name} is listed twice")
        seen.add(name)
        entries.append((name, lesion or name, codes[dx]))
    require(entries, f"{csv_path} lists no images")
    return entries


def _match_files(entries, files, where, csv_path, skip_missing, warn):
    """Keep the entries whose image ID has a file; raise (or warn with `skip_missing`) about the others."""
    missing = [entry[0] for entry in entries if entry[0] not in files]
    if missing:
        if not skip_missing:
            raise LabkitInputError(f"image {missing[0]} listed in {csv_path} is missing from {where}"
                                   + (f" ({len(missing) - 1} more are missing)" if len(missing) > 1 else "")
                                   + "; --skip-missing leaves such images out")
        warn(f"warning: left out {len(missing)} image(s) listed in {csv_path} but missing from {where}: "
             f"{name_some(missing)}")
    kept = [entry for entry in entries if entry[0] in files]
    require(kept, f"none of the images listed in {csv_path} is in {where}")
    return kept


def _files_by_id(folders):
    """``{image id: file}`` over `folders`; an id with two files (two extensions, or in two HAM10000 parts) is an
    error naming both."""
    return by_key([path for folder in folders for path in list_image_files(folder)],
                  key=lambda path: image_id(path.name), kind="image files")


def isic2018_images(input_dir, csv_path, groupings=None, skip_missing=False, warn=print):
    """The labelled images of one ISIC 2018 Task 3 split.

    Args:
        input_dir: folder of ``ISIC_<id>.jpg``.
        csv_path: its ground-truth CSV (see `read_ground_truth_csv`).
        groupings: optional ``{image_id: lesion_id}`` (see `read_lesion_groupings`); images not in it form their
            own group.
        skip_missing: leave out listed images missing from `input_dir` with a warning, instead of raising.
        warn: where the warning goes.

    Returns:
        A `LabelledImages` in CSV order. Images in the folder but not in the CSV are ignored.

    Example:
        >>> train = isic2018_images("ISIC2018_Task3_Training_Input",
        ...                         "ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv")
    """
    require(Path(input_dir).is_dir(), f"image folder not found: {input_dir}")
    files = _files_by_id([input_dir])
    entries = _match_files(read_ground_truth_csv(csv_path), files, input_dir, csv_path, skip_missing, warn)
    groupings = groupings or {}
    return LabelledImages([files[name] for name, _ in entries], np.array([label for _, label in entries], np.int64),
                          [groupings.get(name, name) for name, _ in entries], f"{csv_path}")


def ham10000_folders(data_dir):
    """The ``HAM10000_images_part_*`` folders and the metadata CSV under `data_dir` (names in any letter case)."""
    root = Path(data_dir)
    parts = [root / name for name in subfolders(root) if name.lower().startswith("ham10000_images")]
    metadata = [p for p in root.iterdir() if p.is_file() and p.name.lower() == "ham10000_metadata.csv"] \
        if root.is_dir() else []
    return parts, (metadata[0] if metadata else None)


def ham10000_images(data_dir, skip_missing=False, warn=print):
    """Every labelled image of a HAM10000 folder, with its lesion ID as group.

    Args:
        data_dir: folder holding ``HAM10000_metadata.csv`` and ``HAM10000_images_part_1/`` and/or ``..._part_2/``.
        skip_missing: leave out listed images that are in neither folder, with a warning, instead of raising.
        warn: where the warning goes.

    Returns:
        A `LabelledImages` in metadata order.

    Example:
        >>> data = ham10000_images("HAM10000")
        >>> len(data), data.class_counts()[CLASSES.index("NV")]
        (10015, 6705)
    """
    parts, metadata = ham10000_folders(data_dir)
    require(metadata is not None and parts, f"{data_dir} does not have the HAM10000 layout: expected "
            "HAM10000_metadata.csv and HAM10000_images_part_1/ and/or HAM10000_images_part_2/")
    files = _files_by_id(parts)
    where = " and ".join(p.name + "/" for p in parts)
    entries = _match_files(read_ham10000_metadata(metadata), files, where, metadata, skip_missing, warn)
    return LabelledImages([files[name] for name, _, _ in entries], np.array([label for *_, label in entries], np.int64),
                          [lesion for _, lesion, _ in entries], f"{metadata}")


def _first_csv(folder, pattern):
    found = sorted(Path(folder).glob(pattern)) if Path(folder).is_dir() else []
    return found[0] if found else None


def task3_files(data_dir):
    """The ISIC 2018 Task 3 inputs and ground-truth CSVs found under `data_dir` by their official names.

    Returns:
        ``{split: (input_dir, csv_path)}`` for each split (``train``, ``val``, ``test``) whose folder and CSV are
        both there; the CSV may sit in ``..._GroundTruth/`` or directly in `data_dir`.
    """
    root, found = Path(data_dir), {}
    for split, name in _TASK3_SPLIT_NAMES.items():
        input_dir = root / f"ISIC2018_Task3_{name}_Input"
        csv_path = (_first_csv(root / f"ISIC2018_Task3_{name}_GroundTruth", "*GroundTruth*.csv")
                    or _first_csv(root, f"ISIC2018_Task3_{name}_GroundTruth*.csv"))
        if input_dir.is_dir() and csv_path is not None:
            found[split] = (input_dir, csv_path)
    return found


def lesion_groupings_file(data_dir):
    """``ISIC2018_Task3_Training_LesionGroupings.csv`` under `data_dir` (or its GroundTruth folder), or None."""
    root = Path(data_dir)
    return (_first_csv(root, "*LesionGroupings*.csv")
            or _first_csv(root / "ISIC2018_Task3_Training_GroundTruth", "*LesionGroupings*.csv"))


def skin_lesion_splits(data_dir=None, inputs=None, skip_missing=False, warn=print):
    """The labelled splits given by a data folder and/or explicit per-split inputs and CSVs.

    Args:
        data_dir: a HAM10000 folder, or an ISIC 2018 Task 3 folder with the official names (see `task3_files`).
        inputs: ``{split: (input_dir, csv_path)}`` given explicitly (e.g. ``--test-images``/``--test-csv``); they
            replace what `data_dir` provides for that split. A ``*LesionGroupings*.csv`` is looked for in `data_dir`,
            else next to the training CSV or in the folder above it.
        skip_missing: see `isic2018_images`.
        warn: where warnings go.

    Returns:
        ``(splits, layout)``: ``{split: LabelledImages}`` for the splits that were given (``train`` always; the lab
        carves missing ``val``/``test`` splits out of it) and ``"HAM10000"`` or ``"ISIC 2018 Task 3"``.

    Raises:
        LabkitInputError: no training data found; the message names the folder and the layouts expected.
    """
    inputs = dict(inputs or {})
    splits, layout = {}, "ISIC 2018 Task 3"
    if data_dir is not None:
        root = Path(data_dir)
        require(root.is_dir(), f"data folder not found: {root}")
        parts, metadata = ham10000_folders(root)
        if metadata is not None and parts:
            splits["train"], layout = ham10000_images(root, skip_missing, warn), "HAM10000"
        else:
            inputs = {**task3_files(root), **inputs}
    # Lesion groupings: in the data folder, else next to (or one folder above) the training CSV.
    places = [data_dir] if data_dir is not None else []
    if "train" in inputs:
        places += [Path(inputs["train"][1]).parent, Path(inputs["train"][1]).parent.parent]
    groupings_file = next((found for found in map(lesion_groupings_file, places) if found), None)
    groupings = read_lesion_groupings(groupings_file) if groupings_file else {}
    for split, (input_dir, csv_path) in inputs.items():
        require(split in SPLITS, f"unknown split {split!r}")
        splits[split] = isic2018_images(input_dir, csv_path, groupings, skip_missing, warn)
    if "train" not in splits:
        found = subfolders(data_dir) if data_dir is not None else []
        raise LabkitInputError(
            f"no training data in {data_dir}: expected HAM10000 (HAM10000_metadata.csv + HAM10000_images_part_1/) "
            "or ISIC 2018 Task 3 (ISIC2018_Task3_Training_Input/ + ISIC2018_Task3_Training_GroundTruth/*.csv), "
            f"or --train-images with --train-csv; found {', '.join(found) + '/' if found else 'no folders'}"
        )
    return splits, layout


def lesion_splits(data_dir=None, inputs=None, val_split=0.15, test_split=0.15, seed=42, kfold=None,
                  skip_missing=False, skip_bad=False, warn=print):
    """Training, validation and test images: the splits given (`skin_lesion_splits`), the missing ones carved out of
    the training images, stratified by class and grouped by lesion (`labkit.data.split.grouped_stratified_split`).

    Args:
        data_dir, inputs, skip_missing, warn: as in `skin_lesion_splits`.
        val_split, test_split: fractions of the training images carved out when that split was not given.
        seed: the carving's seed.
        kfold: ``(i, k)``: validate on fold `i` of `k` of the training images (``--folds``).
        skip_bad: leave out unreadable images with a warning (`labkit.data.layouts.check_readable`) instead of
            stopping at the first.

    Returns:
        ``(splits, layout, origin)``: ``{"train", "val", "test": LabelledImages}``, the layout's name, and for each
        split where it came from (``given`` or carved).
    """
    splits, layout = skin_lesion_splits(data_dir, inputs, skip_missing=skip_missing, warn=warn)
    for split, images in splits.items():
        readable = set(check_readable(images.paths, skip_bad=skip_bad))
        splits[split] = images.subset([i for i, p in enumerate(images.paths) if p in readable])
    given = set(splits)
    train = splits.pop("train")
    fractions = {"val": 0.0 if "val" in given else val_split, "test": 0.0 if "test" in given else test_split}
    if (fractions["val"] or fractions["test"]) and all(g == p.stem for g, p in zip(train.groups, train.paths)):
        warn("warning: no lesion IDs (HAM10000 metadata or ISIC2018_Task3_Training_LesionGroupings.csv in "
             "--data-dir), so images of one lesion may land in different splits and inflate the test numbers")
    train_idx, val_idx, test_idx = grouped_stratified_split(train.labels, train.groups, fractions["val"],
                                                            fractions["test"], seed, CLASSES, kfold=kfold)
    for split, carved in (("val", val_idx), ("test", test_idx)):
        if split not in splits:
            splits[split] = train.subset(carved, f"{split} part of {train.source}")
    splits["train"] = train.subset(train_idx)
    origin = {s: "given" if s in given else "carved from training, stratified by class, grouped by lesion"
              for s in SPLITS}
    return splits, layout, origin


def describe_splits(splits, origin, out=print):
    """Per-split image counts by class: one line each to `out` (and a warning for a split missing a class), and
    ``{split: {images, lesions, origin, per_class}}`` for ``metrics.json``."""
    table = {}
    for split in SPLITS:
        counts = splits[split].class_counts()
        table[split] = {"images": len(splits[split]), "lesions": len(set(splits[split].groups)),
                        "origin": origin[split], "per_class": dict(zip(CLASSES, counts.tolist()))}
        out(f"  {split:5s} {len(splits[split]):6d} images  " + "  ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)))
        missing = [c for c, n in zip(CLASSES, counts) if n == 0]
        if missing:
            out(f"warning: the {split} split has no {', '.join(missing)} images")
    return table
