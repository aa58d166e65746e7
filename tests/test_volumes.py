"""Volumes: per-case evaluation tables, the LA 2018 h5 and NIfTI loaders, the embedded atrium set, patches,
sliding-window inference and 3D augmentation."""

import csv
import math

import h5py
import nibabel
import numpy as np
import pytest
from scipy import ndimage

from labkit.data.augment.spatial3d import context_shape, random_rotate_flip, rotate_axial
from labkit.data.layouts.volume_cases import (
    find_la2018_cases, find_nifti_pairs, is_la2018_layout, load_cases, load_h5_case, load_nifti_case, zscore)
from labkit.data.patches import (
    centre_crop, crop, crop_around, gaussian_weights, random_crop, sliding_window_inference, training_patches,
    validation_patches, window_starts)
from labkit.data.synthetic.atrium import atrium_dataset
from labkit.errors import LabkitInputError
from labkit.evaluation import evaluate_volumes
from labkit.reports import write_per_case_csv


def cube_pair(gap_start=10):
    """Two 4-voxel cubes along z: ASD 6.5·sz and HD95 8·sz (see test_surface_metrics), Dice 0."""
    a, b = np.zeros((16, 16, 20), bool), np.zeros((16, 16, 20), bool)
    a[2:6, 2:6, 2:6] = True
    b[2:6, 2:6, gap_start:gap_start + 4] = True
    return a, b


# --- evaluate_volumes ------------------------------------------------------------------------------------------------

def test_evaluate_volumes_rows_and_summary_by_hand():
    a, b = cube_pair()
    half = a.copy()
    half[2:6, 2:4, 2:6] = False  # 32 of a's 64 voxels
    rows, summary = evaluate_volumes([b, half], [a, a], spacing=(1.0, 1.0, 2.0), names=["far", "half"])
    assert [r["case"] for r in rows] == ["far", "half"]
    far, halved = rows
    assert (far["dice"], far["jaccard"]) == (0.0, 0.0)
    assert far["asd_vox"] == pytest.approx(6.5) and far["asd_mm"] == pytest.approx(13.0)
    assert far["hd95_vox"] == pytest.approx(8.0) and far["hd95_mm"] == pytest.approx(16.0)
    assert halved["dice"] == pytest.approx(2 * 32 / 96) and halved["jaccard"] == pytest.approx(0.5)
    assert summary["dice"]["mean"] == pytest.approx(np.mean([0.0, 2 / 3]))
    assert summary["dice"]["std"] == pytest.approx(np.std([0.0, 2 / 3]))
    assert summary["asd_mm"]["mean"] == pytest.approx((far["asd_mm"] + halved["asd_mm"]) / 2)
    assert summary["hd95_vox"]["n"] == 2 and summary["hd95_vox"]["n_infinite"] == 0


def test_empty_prediction_is_counted_not_averaged():
    a, b = cube_pair()
    rows, summary = evaluate_volumes([np.zeros_like(a), b, np.zeros_like(a)], [a, a, np.zeros_like(a)])
    assert [r["dice"] for r in rows] == [0.0, 0.0, 1.0]
    assert [r["hd95_vox"] for r in rows] == [math.inf, pytest.approx(8.0), 0.0]
    assert summary["hd95_vox"] == {"mean": pytest.approx(4.0), "std": pytest.approx(4.0), "n": 2, "n_infinite": 1}
    assert "asd_mm" not in rows[0]  # no spacing known: voxel columns only


def test_per_case_spacing_and_csv_round_trip(tmp_path):
    a, b = cube_pair()
    rows, summary = evaluate_volumes([b, b], [a, a], spacing=[(1.0, 1.0, 0.5), None], names=["known", "unknown"])
    assert rows[0]["hd95_mm"] == pytest.approx(4.0) and rows[1]["hd95_mm"] == ""
    assert summary["hd95_mm"]["n"] == 1
    path = write_per_case_csv(rows, tmp_path / "per_case.csv")
    with open(path, newline="") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["case", "dice", "jaccard", "asd_vox", "hd95_vox", "asd_mm", "hd95_mm"]
    assert float(read[0]["asd_mm"]) == pytest.approx(3.25) and read[1]["asd_mm"] == ""


def test_mismatched_inputs_are_errors():
    a, _ = cube_pair()
    with pytest.raises(LabkitInputError, match="2 predicted volumes but 1"):
        evaluate_volumes([a, a], [a])
    with pytest.raises(LabkitInputError, match="spacings given for 2 cases"):
        evaluate_volumes([a, a], [a, a], spacing=[(1, 1, 1), (1, 1, 1), None])


# --- LA 2018 (UA-MT) h5 layout ---------------------------------------------------------------------------------------

def write_h5(path, image, label, spacing=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["image"], handle["label"] = image, label
        if spacing is not None:
            handle.attrs["spacing"] = spacing


def la_volume(seed, shape=(20, 18, 10)):
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    label[5:12, 4:10, 3:7] = 1
    return rng.normal(size=shape).astype(np.float32), label


@pytest.mark.parametrize("uamt_nesting", [False, True])
def test_la2018_layout_reads_lists_and_files(tmp_path, uamt_nesting):
    cases_dir = tmp_path / "2018LA_Seg_Training Set" if uamt_nesting else tmp_path
    volumes = {name: la_volume(i) for i, name in enumerate(["B2", "A1", "C3"])}
    for name, (image, label) in volumes.items():
        write_h5(cases_dir / name / "mri_norm2.h5", image, label)
    (tmp_path / "train.list").write_text("B2\nA1\n\n")
    (tmp_path / "test.list").write_text("C3\n")
    for folder in {tmp_path, cases_dir}:  # the lists' folder and (UA-MT) the cases' folder both work
        assert is_la2018_layout(folder)
        train = find_la2018_cases(folder, "train")
        assert [name for name, _ in train] == ["B2", "A1"]  # list order
        assert [name for name, _ in find_la2018_cases(folder, "test")] == ["C3"]
    case = load_cases(train)[1]
    assert case.name == "A1" and case.spacing is None
    np.testing.assert_array_equal(case.image, volumes["A1"][0])
    np.testing.assert_array_equal(case.label, volumes["A1"][1])
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8


def test_h5_spacing_attribute_and_label_values(tmp_path):
    image, label = la_volume(0)
    write_h5(tmp_path / "c" / "mri_norm2.h5", image, (label * 255).astype(np.uint8), spacing=(0.6, 0.6, 1.2))
    case = load_h5_case(tmp_path / "c" / "mri_norm2.h5")
    assert case.spacing == pytest.approx((0.6, 0.6, 1.2))
    np.testing.assert_array_equal(case.label, label)  # any nonzero label value is foreground


def test_h5_errors_name_the_file_or_case(tmp_path):
    image, label = la_volume(0)
    write_h5(tmp_path / "ok" / "mri_norm2.h5", image, label)
    (tmp_path / "train.list").write_text("ok\nmissing_case\n")
    with pytest.raises(LabkitInputError, match="missing_case"):
        find_la2018_cases(tmp_path, "train")
    with pytest.raises(LabkitInputError, match="no test.list"):
        find_la2018_cases(tmp_path, "test")
    bad = tmp_path / "bad" / "mri_norm2.h5"
    bad.parent.mkdir()
    with h5py.File(bad, "w") as handle:
        handle["image"] = image
    with pytest.raises(LabkitInputError, match=r"bad/mri_norm2.h5: no dataset label"):
        load_h5_case(bad)
    write_h5(tmp_path / "mismatch" / "mri_norm2.h5", image, label[:, :, :5])
    with pytest.raises(LabkitInputError, match="differs from label shape"):
        load_h5_case(tmp_path / "mismatch" / "mri_norm2.h5")
    (tmp_path / "junk" / "mri_norm2.h5").parent.mkdir()
    (tmp_path / "junk" / "mri_norm2.h5").write_text("not hdf5")
    with pytest.raises(LabkitInputError, match="unreadable HDF5 file .*junk"):
        load_h5_case(tmp_path / "junk" / "mri_norm2.h5")


# --- NIfTI pairs -----------------------------------------------------------------------------------------------------

def write_nifti(path, data, zooms):
    image = nibabel.Nifti1Image(data, np.diag([*zooms, 1.0]))
    image.header.set_zooms(zooms)
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, str(path))


def test_nifti_pairs_spacing_from_header(tmp_path):
    image, label = la_volume(1)
    image = image * 40 + 300  # raw MRI intensities
    write_nifti(tmp_path / "imagesTr" / "la_003.nii.gz", image, (0.7, 0.8, 1.5))
    write_nifti(tmp_path / "labelsTr" / "la_003.nii.gz", label, (0.7, 0.8, 1.5))
    write_nifti(tmp_path / "imagesTr" / "la_004.nii", image[::-1], (1.0, 1.0, 2.0))
    write_nifti(tmp_path / "labelsTr" / "la_004_seg.nii", label[::-1], (1.0, 1.0, 2.0))
    pairs = find_nifti_pairs(tmp_path)
    assert [p[0] for p in pairs] == ["la_003", "la_004"]
    assert not is_la2018_layout(tmp_path)
    first, second = load_cases(pairs)
    assert first.spacing == pytest.approx((0.7, 0.8, 1.5)) and second.spacing == pytest.approx((1.0, 1.0, 2.0))
    np.testing.assert_allclose(first.image, (image - image.mean()) / image.std(), atol=1e-4)  # z-scored
    np.testing.assert_array_equal(first.label, label)
    np.testing.assert_array_equal(second.label, label[::-1])
    raw = load_nifti_case(*pairs[0][1:], normalise=False)
    np.testing.assert_allclose(raw.image, image, rtol=1e-6)


def test_nifti_errors_name_the_files(tmp_path):
    image, label = la_volume(2)
    write_nifti(tmp_path / "images" / "a.nii.gz", image, (1, 1, 1))
    write_nifti(tmp_path / "labels" / "a.nii.gz", label, (1, 1, 2))
    write_nifti(tmp_path / "images" / "orphan.nii.gz", image, (1, 1, 1))
    with pytest.raises(LabkitInputError, match="without a label in .*labels: orphan.nii.gz"):
        find_nifti_pairs(tmp_path)
    with pytest.raises(LabkitInputError, match="voxel size"):
        load_nifti_case(tmp_path / "images" / "a.nii.gz", tmp_path / "labels" / "a.nii.gz")
    with pytest.raises(LabkitInputError, match="no NIfTI image/label folders"):
        find_nifti_pairs(tmp_path / "images")


# --- embedded synthetic set ------------------------------------------------------------------------------------------

def test_embedded_atrium_set_is_deterministic_and_loads(tmp_path):
    folder = atrium_dataset(n_volumes=4, n_test=1, shape=(32, 32, 16), seed=3, root=tmp_path / "one")
    again = atrium_dataset(n_volumes=4, n_test=1, shape=(32, 32, 16), seed=3, root=tmp_path / "two")
    train, test = find_la2018_cases(folder, "train"), find_la2018_cases(folder, "test")
    assert len(train) == 3 and len(test) == 1
    for (_, path), (_, twin) in zip(train + test, find_la2018_cases(again, "train") + find_la2018_cases(again, "test")):
        assert path.read_bytes() == twin.read_bytes()
    for case in load_cases(train + test):
        assert case.spacing == pytest.approx((0.625, 0.625, 1.25))
        assert all(24 <= n <= 40 for n in case.image.shape[:2]) and 12 <= case.image.shape[2] <= 20
        assert ndimage.label(case.label)[1] == 1  # one connected object
        assert 0.01 < case.label.mean() < 0.3
        assert abs(case.image.mean()) < 1e-3 and case.image.std() == pytest.approx(1.0, abs=1e-3)
        assert case.image[case.label > 0].mean() > case.image[case.label == 0].mean() + 0.5  # learnable contrast


# --- patches ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("length, patch, overlap, expected", [
    (64, 32, 0.5, [0, 16, 32]), (70, 32, 0.5, [0, 16, 32, 38]), (32, 32, 0.5, [0]), (20, 32, 0.5, [0]),
    (100, 40, 0.0, [0, 40, 60]), (10, 4, 0.75, [0, 1, 2, 3, 4, 5, 6])])
def test_window_starts_cover_the_axis(length, patch, overlap, expected):
    assert window_starts(length, patch, overlap) == expected


@pytest.mark.parametrize("shape, patch", [((50, 41, 23), (32, 32, 16)), ((64, 64, 32), (32, 32, 16)),
                                          ((10, 12, 5), (32, 32, 16)), ((33, 17, 16), (16, 16, 8))])
@pytest.mark.parametrize("blend", ["gaussian", "uniform"])
@pytest.mark.parametrize("overlap", [0.0, 0.5])
def test_sliding_window_reassembles_identity_exactly(shape, patch, blend, overlap):
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    out = sliding_window_inference(volume, lambda batch: batch, patch, overlap, blend, batch_size=3)
    assert out.shape == (*shape, 1)
    np.testing.assert_array_equal(out[..., 0], volume)


def test_sliding_window_averages_overlaps_and_accepts_a_model():
    calls = []

    def window_mean(batch):  # each window predicts its own mean: overlaps must blend several constants
        calls.append(len(batch))
        return np.broadcast_to(batch.mean(axis=(1, 2, 3), keepdims=True), batch.shape)

    volume = np.arange(8 * 4 * 4, dtype=np.float32).reshape(8, 4, 4)
    out = sliding_window_inference(volume, window_mean, (4, 4, 4), overlap=0.5, blend="uniform", batch_size=2)
    means = [volume[s:s + 4].mean() for s in (0, 2, 4)]  # windows start at x = 0, 2, 4
    np.testing.assert_allclose(out[0:2, ..., 0], means[0])
    np.testing.assert_allclose(out[2:4, ..., 0], (means[0] + means[1]) / 2)
    np.testing.assert_allclose(out[4:6, ..., 0], (means[1] + means[2]) / 2)
    assert calls == [2, 1]

    class Model:  # anything with predict_on_batch, like a Keras model
        def predict_on_batch(self, batch):
            return np.concatenate([batch, 2 * batch], axis=-1)

    two = sliding_window_inference(volume, Model(), (4, 4, 4))
    np.testing.assert_array_equal(two[..., 1], 2 * volume)


def test_gaussian_weights_peak_in_the_centre_and_stay_positive():
    weights = gaussian_weights((16, 16, 8))
    assert weights.max() == pytest.approx(1.0) and weights.min() >= 1e-3
    assert weights[7, 7, 3] > weights[0, 7, 3] and np.allclose(weights, weights[::-1, ::-1, ::-1])


def test_crops_pad_outside_and_centre():
    volume = np.arange(6 * 6 * 4).reshape(6, 6, 4)
    block = crop(volume, (-2, 1, 0), (4, 4, 4))
    np.testing.assert_array_equal(block[:2], 0)
    np.testing.assert_array_equal(block[2:], volume[0:2, 1:5, 0:4])
    np.testing.assert_array_equal(centre_crop(volume, (2, 2, 2)), volume[2:4, 2:4, 1:3])
    assert centre_crop(volume, (8, 8, 8)).sum() == volume.sum()  # padded, nothing lost
    np.testing.assert_array_equal(crop_around(volume, (3, 3, 2), (2, 2, 2)), volume[2:4, 2:4, 1:3])


@pytest.mark.parametrize("foreground_prob, expected_share", [(1.0, 1.0), (0.0, None)])
def test_random_crops_are_biased_to_foreground(foreground_prob, expected_share):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(80, 80, 40)).astype(np.float32)
    label = np.zeros((80, 80, 40), np.uint8)
    label[70:74, 5:9, 2:5] = 1  # a small object in a corner
    crops = [random_crop(image, label, (16, 16, 8), rng, foreground_prob) for _ in range(60)]
    share = np.mean([lab.any() for _, lab in crops])
    if expected_share is None:
        assert share < 0.3
    else:
        assert share == expected_share
    for img, lab in crops[:5]:
        assert img.shape == lab.shape == (16, 16, 8)


def test_training_and_validation_patches():
    class Case:
        def __init__(self, seed, shape):
            self.image, self.label = la_volume(seed, shape)

    cases = [Case(0, (20, 18, 10)), Case(1, (12, 30, 6))]  # the second is smaller than the patch along x and z
    stream = training_patches(cases, (16, 16, 8), seed=1, augment=True, foreground_prob=1.0)
    for _ in range(4):
        image, label = next(stream)
        assert image.shape == label.shape == (16, 16, 8, 1) and image.dtype == np.float32
        assert set(np.unique(label)) <= {0.0, 1.0} and label.any()
    images, labels = validation_patches(cases, (16, 16, 8))
    assert images.shape == labels.shape == (2, 16, 16, 8, 1)
    assert labels.sum(axis=(1, 2, 3, 4)).tolist() == [c.label.sum() for c in cases]  # object fully inside


# --- 3D augmentation -------------------------------------------------------------------------------------------------

def test_rotation_by_zero_is_identity_and_by_90_is_rot90():
    image, label = la_volume(0, (16, 16, 6))
    same_image, same_label = rotate_axial(image, label, 0.0)
    np.testing.assert_allclose(same_image, image, atol=1e-6)
    np.testing.assert_array_equal(same_label, label)
    turned_image, turned_label = rotate_axial(image, label, 90.0)
    np.testing.assert_allclose(turned_image, np.rot90(image, 1, axes=(0, 1)), atol=1e-4)
    np.testing.assert_array_equal(turned_label, np.rot90(label, 1, axes=(0, 1)))


@pytest.mark.parametrize("seed", range(5))
def test_image_and_label_get_the_same_transform(seed):
    label = np.zeros((24, 24, 6), np.uint8)
    label[4:14, 6:20, 1:5] = 1
    image = label.astype(np.float32)  # the image *is* the label: any mismatch would show
    rng = np.random.default_rng(seed)
    new_image, new_label = random_rotate_flip(image, label, rng, max_angle=20)
    assert new_label.dtype == np.uint8 and set(np.unique(new_label)) <= {0, 1}
    np.testing.assert_array_equal(new_image > 0.5, new_label.astype(bool))
    assert abs(int(new_label.sum()) - int(label.sum())) < 0.1 * label.sum()  # a rotation keeps the volume


@pytest.mark.parametrize("patch, angle, expected", [((112, 112, 80), 20, (146, 146, 80)),
                                                    ((32, 32, 16), 0, (34, 34, 16)),
                                                    ((32, 16, 8), 45, (36, 36, 8))])
def test_context_shape_holds_the_rotated_patch(patch, angle, expected):
    assert context_shape(patch, angle) == expected
    block = np.ones(expected, np.float32)
    rotated, _ = rotate_axial(block, block, angle)
    assert centre_crop(rotated, patch).min() > 0.99  # no empty corner reaches the patch


def test_zscore_constant_image():
    np.testing.assert_array_equal(zscore(np.full((3, 3, 3), 7.0)), 0.0)
