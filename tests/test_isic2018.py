"""Seven-class lesion data: ISIC 2018 Task 3 CSVs, HAM10000 metadata, missing images, the grouped split, and the
embedded synthetic set read back through the real loaders."""

import csv

import numpy as np
import pytest

from labkit.data.layouts.isic2018 import (CLASSES, ham10000_images, isic2018_images, read_ground_truth_csv,
                                          read_ham10000_metadata, skin_lesion_splits)
from labkit.data.split import grouped_stratified_split
from labkit.data.synthetic.skin_lesions7 import HAM10000_COUNTS, class_counts, isic2018_task3_dataset
from labkit.errors import LabkitInputError

# (image, class) pairs used by the CSV tests; one image of every class.
TRUTH = [("ISIC_0000001", "NV"), ("ISIC_0000002", "MEL"), ("ISIC_0000003", "VASC"), ("ISIC_0000004", "BCC"),
         ("ISIC_0000005", "AKIEC"), ("ISIC_0000006", "BKL"), ("ISIC_0000007", "DF"), ("ISIC_0000008", "NV")]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def ground_truth(path, columns=("image", *CLASSES), one="1.0", zero="0.0", truth=TRUTH):
    """An ISIC 2018 Task 3 ground-truth CSV with the given column order and value spelling."""
    rows = [[name if c.lower() == "image" else (one if c.upper() == label else zero) for c in columns]
            for name, label in truth]
    return write_csv(path, columns, rows)


def touch_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")  # the loaders match names; decoding is checked elsewhere
    return folder


EXPECTED = [(name, CLASSES.index(label)) for name, label in TRUTH]


@pytest.mark.parametrize("columns, one, zero", [
    (("image", *CLASSES), "1.0", "0.0"),                                            # the official file
    (("image", "VASC", "DF", "BKL", "AKIEC", "BCC", "NV", "MEL"), "1.0", "0.0"),    # reordered columns
    (("NV", "image", "MEL", "BCC", "VASC", "AKIEC", "BKL", "DF"), "1", "0"),        # reordered, integer values
    (("image", *CLASSES, "comment"), "1", "0"),                                     # an extra column
    (("Image", *(c.lower() for c in CLASSES)), "1.00", "0.00"),                     # other case
])
def test_ground_truth_csv_is_read_by_column_name(tmp_path, columns, one, zero):
    path = ground_truth(tmp_path / "truth.csv", columns, one, zero)
    assert read_ground_truth_csv(path) == EXPECTED


def test_ground_truth_csv_accepts_image_names_with_extension(tmp_path):
    truth = [(f"{name}.jpg", label) for name, label in TRUTH]
    assert read_ground_truth_csv(ground_truth(tmp_path / "truth.csv", truth=truth)) == EXPECTED


def test_ground_truth_csv_without_a_class_column_is_rejected_by_name(tmp_path):
    path = ground_truth(tmp_path / "truth.csv", ("image", "MEL", "NV", "BCC", "AKIEC", "BKL", "VASC"))
    with pytest.raises(LabkitInputError, match=r"truth\.csv .*missing column\(s\) DF"):
        read_ground_truth_csv(path)


@pytest.mark.parametrize("values, reason", [
    (["1.0", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"], "not one-hot"),    # two classes
    (["0.0"] * 7, "not one-hot"),                                          # no class
    (["0.5", "0.5", "0.0", "0.0", "0.0", "0.0", "0.0"], "not one-hot"),    # soft label
    (["yes", "0", "0", "0", "0", "0", "0"], "must be the numbers 0 or 1"),
])
def test_ground_truth_csv_names_the_first_bad_row(tmp_path, values, reason):
    rows = [["ISIC_0000001", "0.0", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"], ["ISIC_0000002", *values],
            ["ISIC_0000003", *values]]
    path = write_csv(tmp_path / "bad.csv", ["image", *CLASSES], rows)
    with pytest.raises(LabkitInputError, match=rf"bad\.csv, line 3 \(ISIC_0000002\).*{reason}"):
        read_ground_truth_csv(path)


def test_ground_truth_csv_rejects_an_image_listed_twice(tmp_path):
    truth = TRUTH + [("ISIC_0000002", "NV")]
    with pytest.raises(LabkitInputError, match=r"line 10: image ISIC_0000002 is listed twice"):
        read_ground_truth_csv(ground_truth(tmp_path / "truth.csv", truth=truth))


def test_isic_images_are_matched_to_labels_by_id_not_by_listing(tmp_path):
    ground_truth(tmp_path / "truth.csv", ("image", "DF", "NV", "MEL", "BCC", "AKIEC", "BKL", "VASC"), "1", "0")
    # Files created in reverse order, plus one the CSV does not list (ignored).
    folder = touch_images(tmp_path / "input", [f"{n}.jpg" for n, _ in reversed(TRUTH)] + ["ISIC_0009999.jpg"])
    data = isic2018_images(folder, tmp_path / "truth.csv")
    assert [p.stem for p in data.paths] == [n for n, _ in TRUTH]
    assert [CLASSES[k] for k in data.labels] == [label for _, label in TRUTH]
    assert data.groups == [n for n, _ in TRUTH]  # no lesion IDs: every image is its own group
    assert data.class_counts().tolist() == [1, 2, 1, 1, 1, 1, 1]


def test_missing_image_is_an_error_naming_it_or_skipped_with_a_count(tmp_path):
    ground_truth(tmp_path / "truth.csv")
    folder = touch_images(tmp_path / "input", [f"{n}.jpg" for n, _ in TRUTH if n not in ("ISIC_0000003",
                                                                                        "ISIC_0000006")])
    with pytest.raises(LabkitInputError, match=r"image ISIC_0000003 listed in .*truth\.csv is missing from .*input "
                                               r"\(1 more are missing\); --skip-missing"):
        isic2018_images(folder, tmp_path / "truth.csv")
    warnings = []
    data = isic2018_images(folder, tmp_path / "truth.csv", skip_missing=True, warn=warnings.append)
    assert len(warnings) == 1 and "left out 2 image(s)" in warnings[0] and "ISIC_0000003" in warnings[0]
    # The labels stay with their images: no shift after the gap.
    kept = [(n, CLASSES.index(c)) for n, c in TRUTH if n not in ("ISIC_0000003", "ISIC_0000006")]
    assert [(p.stem, int(k)) for p, k in zip(data.paths, data.labels)] == kept


# HAM10000: metadata rows (lesion_id, image_id, dx) and where each image sits.
HAM = [("HAM_0000118", "ISIC_0027419", "bkl", 1), ("HAM_0000118", "ISIC_0025030", "bkl", 2),
       ("HAM_0002730", "ISIC_0026769", "mel", 1), ("HAM_0001466", "ISIC_0031633", "nv", 2),
       ("HAM_0002761", "ISIC_0029176", "akiec", 1), ("HAM_0005132", "ISIC_0025837", "bcc", 2),
       ("HAM_0001396", "ISIC_0025276", "df", 1), ("HAM_0004234", "ISIC_0029396", "vasc", 2)]


def ham10000(root, columns=("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"),
             suffix="", parts=(1, 2), rows=HAM):
    root.mkdir(parents=True, exist_ok=True)
    extra = {"dx_type": "histo", "age": "80.0", "sex": "male", "localization": "scalp", "dataset": "vidir"}
    values = lambda lesion, image, dx: {"lesion_id": lesion, "image_id": image + suffix, "dx": dx}  # noqa: E731
    write_csv(root / "HAM10000_metadata.csv", columns,
              [[{**extra, **values(lesion, image, dx)}[c] for c in columns] for lesion, image, dx, _ in rows])
    for part in parts:
        touch_images(root / f"HAM10000_images_part_{part}", [f"{image}.jpg" for _, image, _, p in rows if p == part])
    return root


@pytest.mark.parametrize("columns, suffix", [
    (("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"), ""),
    (("image_id", "dx", "lesion_id", "dataset", "age"), ".jpg"),   # reordered, extra column, ids with .jpg
])
def test_ham10000_metadata_to_labels_and_lesions(tmp_path, columns, suffix):
    root = ham10000(tmp_path / "HAM10000", columns, suffix)
    expected = [(image, lesion, CLASSES.index(dx.upper())) for lesion, image, dx, _ in HAM]
    assert read_ham10000_metadata(root / "HAM10000_metadata.csv") == expected
    data = ham10000_images(root)
    assert [p.stem for p in data.paths] == [image for _, image, _, _ in HAM]
    assert [p.parent.name[-1] for p in data.paths] == [str(part) for *_, part in HAM]  # found in either folder
    assert [CLASSES[k] for k in data.labels] == ["BKL", "BKL", "MEL", "NV", "AKIEC", "BCC", "DF", "VASC"]
    assert data.groups == [lesion for lesion, *_ in HAM]


def test_ham10000_with_one_part_missing_names_the_image(tmp_path):
    root = ham10000(tmp_path / "HAM10000", parts=(1,))
    with pytest.raises(LabkitInputError, match=r"image ISIC_0025030 listed in .*HAM10000_metadata\.csv is missing "
                                               r"from HAM10000_images_part_1/ \(3 more"):
        ham10000_images(root)
    data = ham10000_images(root, skip_missing=True, warn=lambda message: None)
    assert [p.stem for p in data.paths] == [image for _, image, _, part in HAM if part == 1]


def test_ham10000_unknown_diagnosis_names_the_line(tmp_path):
    root = ham10000(tmp_path / "HAM10000", rows=HAM + [("HAM_9", "ISIC_9", "scc", 1)])
    with pytest.raises(LabkitInputError, match=r"line 10 \(ISIC_9\): unknown dx 'scc'"):
        ham10000_images(root)


def test_splits_found_by_official_names_use_lesion_groupings(tmp_path):
    ground_truth(tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv")  # the CSV may sit in the data folder
    touch_images(tmp_path / "ISIC2018_Task3_Training_Input", [f"{n}.jpg" for n, _ in TRUTH])
    (tmp_path / "ISIC2018_Task3_Test_GroundTruth").mkdir()
    ground_truth(tmp_path / "ISIC2018_Task3_Test_GroundTruth" / "ISIC2018_Task3_Test_GroundTruth.csv",
                 truth=TRUTH[:3])
    touch_images(tmp_path / "ISIC2018_Task3_Test_Input", [f"{n}.jpg" for n, _ in TRUTH[:3]])
    write_csv(tmp_path / "ISIC2018_Task3_Training_LesionGroupings.csv", ["image", "lesion_id"],
              [["ISIC_0000001", "HAM_1"], ["ISIC_0000008", "HAM_1"]])
    splits, layout = skin_lesion_splits(tmp_path)
    assert layout == "ISIC 2018 Task 3" and sorted(splits) == ["test", "train"]
    assert len(splits["train"]) == 8 and len(splits["test"]) == 3
    assert splits["train"].groups[0] == splits["train"].groups[7] == "HAM_1"
    assert splits["train"].groups[1] == "ISIC_0000002"


def test_no_training_data_says_which_layouts_are_expected(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LabkitInputError, match=r"no training data in .*expected HAM10000.*found images/"):
        skin_lesion_splits(tmp_path)


def lesion_set(n_lesions=120, seed=0):
    """Labels and lesion IDs of an imbalanced set: 1–3 images per lesion, every image of a lesion one class."""
    rng = np.random.default_rng(seed)
    share = np.array(HAM10000_COUNTS) / sum(HAM10000_COUNTS)
    lesion_class = np.concatenate([np.arange(7).repeat(4), rng.choice(7, n_lesions - 28, p=share)])
    views = rng.choice([1, 2, 3], n_lesions, p=[0.7, 0.2, 0.1])
    labels = np.repeat(lesion_class, views)
    groups = np.repeat([f"HAM_{i:04d}" for i in range(n_lesions)], views)
    return labels, groups


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("val_fraction, test_fraction", [(0.15, 0.15), (0.2, 0.1), (0.0, 0.2), (0.2, 0.0)])
def test_grouped_split_keeps_lesions_whole_and_every_class_in_each_split(seed, val_fraction, test_fraction):
    labels, groups = lesion_set(seed=seed)
    train, val, test = grouped_stratified_split(labels, groups, val_fraction, test_fraction, seed=seed)
    parts = [part for part in (train, val, test) if len(part)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))      # a partition of the items
    lesion_sets = [set(groups[part]) for part in parts]
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            assert not lesion_sets[i] & lesion_sets[j]                              # no lesion in two splits
    for part in parts:
        assert set(labels[part]) == set(range(7))                                   # every class everywhere
    assert len(val) == 0 if val_fraction == 0 else abs(len(val) / len(labels) - val_fraction) < 0.08
    assert len(test) == 0 if test_fraction == 0 else abs(len(test) / len(labels) - test_fraction) < 0.08


def test_grouped_split_is_reproducible_and_depends_on_the_seed():
    labels, groups = lesion_set()
    first = grouped_stratified_split(labels, groups, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, grouped_stratified_split(labels, groups, seed=3)))
    assert not np.array_equal(first[2], grouped_stratified_split(labels, groups, seed=4)[2])


def test_grouped_split_names_a_class_with_too_few_lesions():
    labels = np.array([0] * 30 + [1] * 30 + [2, 2, 2])  # class 2: three images of one lesion
    groups = [f"L{i}" for i in range(60)] + ["rare", "rare", "rare"]
    with pytest.raises(LabkitInputError, match=r"class DF has only 1 lesion"):
        grouped_stratified_split(labels, groups, 0.15, 0.15, class_names=["MEL", "NV", "DF"])


def test_grouped_split_of_a_set_smaller_than_its_folds_says_so():
    labels = np.repeat(np.arange(7), 6)  # 6 images per class; a 0.15 test part needs 7 folds
    with pytest.raises(LabkitInputError, match=r"fraction of 0.15 \(7 folds\): the largest class has 6 image"):
        grouped_stratified_split(labels, np.arange(42), 0.15, 0.15)
    train, val, test = grouped_stratified_split(labels, np.arange(42), 0.0, 0.34)  # 3 folds fit
    assert len(test) == 14 and len(set(labels[test])) == 7 and len(val) == 0


@pytest.mark.parametrize("n_images, min_per_class", [(60, 6), (240, 8), (2000, 8)])
def test_synthetic_class_counts_follow_ham10000_with_a_floor(n_images, min_per_class):
    counts = class_counts(n_images, min_per_class)
    nv = CLASSES.index("NV")
    assert counts.sum() == n_images and counts.min() >= min_per_class and counts.argmax() == nv
    share = np.array(HAM10000_COUNTS) / sum(HAM10000_COUNTS)
    others = np.arange(7) != nv  # NV gives up what the floor adds to the rare classes
    expected = np.maximum(min_per_class, share * n_images)
    assert np.all(np.abs(counts[others] - expected[others]) <= 0.5)
    assert counts[nv] == n_images - counts[others].sum()


def test_synthetic_set_reads_back_through_the_isic_loader(tmp_path):
    root = isic2018_task3_dataset(n_images=70, size=32, min_per_class=6, root=tmp_path)
    again = isic2018_task3_dataset(n_images=70, size=32, min_per_class=6, root=tmp_path / "again")
    splits, layout = skin_lesion_splits(root)
    data = splits["train"]
    assert layout == "ISIC 2018 Task 3" and len(data) == 70
    assert data.class_counts().tolist() == class_counts(70, 6).tolist()
    names = sorted(p.name for p in (root / "ISIC2018_Task3_Training_Input").iterdir())
    assert names == sorted(p.name for p in (again / "ISIC2018_Task3_Training_Input").iterdir())
    assert all((root / "ISIC2018_Task3_Training_Input" / n).read_bytes()
               == (again / "ISIC2018_Task3_Training_Input" / n).read_bytes() for n in names[:10])  # deterministic
    # Several images of one lesion share its class, and the lesion groupings reach the loader.
    by_lesion = {}
    for label, group in zip(data.labels, data.groups):
        by_lesion.setdefault(group, set()).add(int(label))
    assert all(len(classes) == 1 for classes in by_lesion.values())
    assert len(by_lesion) < len(data) and all(g.startswith("HAM_") for g in by_lesion)
    train, val, test = grouped_stratified_split(data.labels, data.groups, 0.15, 0.15)
    assert all(set(data.labels[part]) == set(range(7)) for part in (train, val, test))
