"""--skip-bad-files in every lab that reads image or volume files: a corrupt file stops the run before training
with one ``error:`` line naming it (exit 2); with the flag the run finishes and ``config.json`` lists the file."""

import json

import pytest

from labkit.data.synthetic import ct_dataset, xray_dataset
from labkit.data.synthetic.atrium import atrium_dataset
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
from labkit.data.synthetic.lab1 import lab1_dataset
from labkit.data.synthetic.skin_lesions7 import isic2018_task3_dataset

LAB2 = ["--img-size", "32", "--n-base", "2", "--dataset", "bone"]


def first(folder, pattern="*"):
    return sorted(folder.glob(pattern))[0]


def lab1(root):
    data = lab1_dataset(n_train=6, n_test=3, size=32, root=root)
    return data, first(data / "Skin" / "train"), ["--img-size", "32", "--base", "8", "--batch-size", "4"]


def lab2_bone(root):
    data = bone_skin_dataset(n_train=4, n_val=2, size=32, root=root)
    return data, first(data / "Bone" / "train" / "NFF"), [
        "--dataset", "bone", "--img-size", "32", "--base", "4", "--batch-size", "4"]


def ct(root):
    data = ct_dataset(n_patients=4, n_slices=3, size=32, root=root)
    return data, first(data / "Image"), ["--task", "ct", "--img-size", "32", "--base", "4", "--batch-size", "4"]


def xray(root):
    data = xray_dataset(n_images=8, size=32, root=root)
    return data, first(data / "Image"), ["--img-size", "16", "--base", "2", "--batch-size", "4"]


def lab2_transfer(root):
    data = bone_skin_dataset(n_train=4, n_val=2, size=32, root=root)
    return data, first(data / "Bone" / "train" / "AFF"), [*LAB2, "--weights", "none", "--method", "scratch"]


def lab2_cam(root):
    data = bone_skin_dataset(n_train=4, n_val=2, size=32, root=root)
    return data, first(data / "Bone" / "validation" / "NFF"), [*LAB2, "--maps-per-class", "1"]


def isic2016(root):
    data = dermoscopy_dataset(n_train=10, n_test=4, size=32, root=root)
    return data, first(data, "*Training_Data/*.jpg"), ["--img-size", "32", "--batch-size", "4", "--weights", "none"]


def isic2018(root):
    data = isic2018_task3_dataset(n_images=56, size=32, min_per_class=6, root=root)
    # float32: mixed bfloat16 (the CPU default) traces and runs ResNet50 about twice as slowly here
    return data, first(data / "ISIC2018_Task3_Training_Input"), [
        "--img-size", "32", "--batch-size", "8", "--weights", "none", "--precision", "float32"]


def atrium(root):
    data = atrium_dataset(n_volumes=6, n_test=2, shape=(32, 32, 16), root=root)
    case = (data / "train.list").read_text().split()[0]
    return data, first(data, f"*{case}*/mri_norm2.h5"), [
        "--patch", 16, 16, 8, "--base", 4, "--depth", 2, "--batch-size", 4, "--val-split", 0.34]


LABS = [("lab1_mlp", lab1), ("lab2_cnn", lab2_bone), ("lab3_cnn", lab2_bone), ("lab5_segmentation", ct),
        ("lab4_unet", xray), ("lab4_transfer", lab2_transfer), ("lab4_activation_map", lab2_cam),
        ("mobilenet_segmentation", isic2016), ("resnet50_classification", isic2018), ("unet3d_segmentation", atrium)]


@pytest.mark.slow
@pytest.mark.parametrize("lab, make", LABS, ids=[lab for lab, _ in LABS])
def test_a_corrupt_file_is_named_or_skipped_and_listed(lab_runner, tmp_path, monkeypatch, lab, make):
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    data, corrupt, argv = make(tmp_path / "data")
    corrupt.write_bytes(b"\x89PNG this is not an image nor a volume")
    argv = ["--data-dir", data, "--epochs", 1, "--quiet", *argv]

    code, _, stderr = lab_runner(lab, [*argv, "--out", tmp_path / "strict"])
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert str(corrupt) in errors[0] and "--skip-bad-files" in errors[0]
    assert not (tmp_path / "strict" / "history.csv").exists()  # stopped before training

    code, _, stderr = lab_runner(lab, [*argv, "--out", tmp_path / "skipping", "--skip-bad-files"])
    assert code == 0, stderr
    config = json.loads((tmp_path / "skipping" / "config.json").read_text())
    assert config["data"]["skipped_files"] == [str(corrupt)]
    assert (tmp_path / "skipping" / "metrics.json").is_file()
