"""The embedded Lab 1 sets: flat course layout, labels from file names, determinism, not separable by brightness."""

import os

import cv2
import numpy as np
import pytest

from labkit.data.layouts.filename_labels import (SKIN_PATTERNS, get_train_test_arrays,
                                                 get_train_test_arrays_multiclass, label_from_name,
                                                 list_labelled_files)
from labkit.data.synthetic import lab1_dataset, organ_radiograph
from labkit.data.synthetic.lab1 import BONE_CLASSES, SKIN_CLASSES, XRAY_CLASSES

N_TRAIN, N_TEST, SIZE = 3, 2, 48
SETS = {"Skin": SKIN_CLASSES, "Bone": BONE_CLASSES, "X_ray": XRAY_CLASSES}


@pytest.fixture(scope="module")
def lab1(tmp_path_factory):
    return lab1_dataset(n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=0, root=tmp_path_factory.mktemp("lab1"))


def test_layout_and_names(lab1):
    assert lab1.name == "Lab1"
    assert sorted(p.name for p in lab1.iterdir()) == ["Bone", "Skin", "X_ray"]
    for set_name, classes in SETS.items():
        assert sorted(p.name for p in (lab1 / set_name).iterdir()) == ["test", "train"]
        for split, n in (("train", N_TRAIN), ("test", N_TEST)):
            names = sorted(p.name for p in (lab1 / set_name / split).iterdir())
            first = 1 if split == "train" else N_TRAIN + 1  # numbers run on, so train and test share no name
            expected = sorted(f"{c}_{k:04d}.png" for c in classes for k in range(first, first + n))
            assert names == expected
    assert (lab1 / "Skin" / "train" / "Nev_0001.png").is_file()  # the course's file names say Nev, not Nevi


def test_image_modes(lab1):
    skin = cv2.imread(str(lab1 / "Skin" / "train" / "Mel_0001.png"), cv2.IMREAD_UNCHANGED)
    assert skin.shape == (SIZE, SIZE, 3)
    for path in (lab1 / "Bone" / "test" / "AFF_0004.png", lab1 / "X_ray" / "train" / "C9_0003.png"):
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (SIZE, SIZE)


def test_readers_label_the_files(lab1):
    patterns = [f"C{i}" for i in range(1, 10)]  # the course's list, without the underscore
    paths, labels = list_labelled_files(lab1 / "X_ray" / "test", patterns)
    assert labels == [int(p.name[1]) - 1 for p in paths]
    assert sorted(set(labels)) == list(range(9))

    skin = lab1 / "Skin"
    x_train, x_test, y_train, y_test = get_train_test_arrays(
        skin / "train", skin / "test", os.listdir(skin / "train"), os.listdir(skin / "test"), 32, 32, seed=0)
    assert x_train.shape == (2 * N_TRAIN, 32, 32, 1) and x_test.shape == (2 * N_TEST, 32, 32, 1)
    assert sorted(y_train.tolist()) == [0] * N_TRAIN + [1] * N_TRAIN

    bone = lab1 / "Bone"
    _, _, y_train, y_test = get_train_test_arrays_multiclass(
        bone / "train", bone / "test", os.listdir(bone / "train"), os.listdir(bone / "test"), 32, 32, BONE_CLASSES)
    assert sorted(y_test.tolist()) == [0] * N_TEST + [1] * N_TEST
    # A Lab 2-style "Nevi" name is a nevus for the same patterns.
    assert label_from_name("Nevi_0001.png", SKIN_PATTERNS) == label_from_name("Nev_0001.png", SKIN_PATTERNS) == 1


def test_deterministic_by_seed(lab1, tmp_path):
    again = lab1_dataset(n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=0, root=tmp_path / "a")
    other = lab1_dataset(n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=1, root=tmp_path / "b")
    for name in ("Skin/train/Mel_0002.png", "Bone/test/NFF_0005.png", "X_ray/train/C4_0001.png"):
        assert (lab1 / name).read_bytes() == (again / name).read_bytes()
        assert (lab1 / name).read_bytes() != (other / name).read_bytes()
    assert lab1_dataset(n_train=N_TRAIN, n_test=N_TEST, size=SIZE, seed=0, root=lab1.parent.parent) == lab1


def test_xray_classes_not_told_apart_by_mean_intensity():
    """A nearest-class-mean classifier on the mean grey level stays far from perfect (chance is 1/9)."""
    def means(split):
        return np.array([[organ_radiograph(np.random.default_rng([split, c, i]), c, 48).mean() for i in range(20)]
                         for c in range(9)])

    train, test = means(0), means(1)
    predicted = np.abs(test[..., None] - train.mean(axis=1)).argmin(axis=-1)
    accuracy = (predicted == np.arange(9)[:, None]).mean()
    assert accuracy < 0.4
