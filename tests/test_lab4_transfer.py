"""Lab 4 Tasks 1–3: the Lab 2 class-folder layout, the embedded Bone/Skin sets, and tiny end-to-end lab runs."""

import json
import shutil
import urllib.error
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from labkit.data.layouts.class_folders import find_lab2_set, list_class_folders
from labkit.data.synthetic.bone_skin import bone_radiograph, bone_skin_dataset, skin_lesion
from labkit.errors import LabkitInputError
from labkit.run_folder import read_csv

LABS = Path(__file__).resolve().parents[1] / "labs"


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    """A tiny copy of the course's Lab2 folder (Bone/ and Skin/), from the embedded generator."""
    return bone_skin_dataset(n_train=4, n_val=2, size=32, root=tmp_path_factory.mktemp("data"))


# --- layout ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, where, classes", [
    ("bone", ".", ("AFF", "NFF")),        # the Lab2 folder holding Bone/ and Skin/
    ("bone", "Bone", ("AFF", "NFF")),     # the set folder itself
    ("skin", ".", ("Mel", "Nevi")),
    (None, "Skin", ("Mel", "Nevi")),
])
def test_lab2_layout_classes_from_folder_names(lab2, dataset, where, classes):
    train, val = find_lab2_set(lab2 / where, dataset)
    assert train.class_names == val.class_names == classes
    assert train.counts() == {classes[0]: 4, classes[1]: 4} and val.counts() == {classes[0]: 2, classes[1]: 2}
    # Labels follow the folder of each file, never the listing order.
    assert all(Path(p).parent.name == classes[label] for p, label in zip(train.paths, train.labels))


def test_class_names_are_whatever_folders_hold(tmp_path, lab2):
    """Any class folders work (three here), in sorted order as flow_from_directory."""
    for split in ("train", "validation"):
        for name in ("c", "a", "b"):
            shutil.copytree(lab2 / "Bone" / split / "AFF", tmp_path / "set" / split / name)
    train, _ = find_lab2_set(tmp_path / "set")
    assert train.class_names == ("a", "b", "c") and train.labels == (0,) * 4 + (1,) * 4 + (2,) * 4


def _make(root, *folders):
    root.mkdir(parents=True)
    for folder in folders:
        (root / folder).mkdir(parents=True)
    return root


@pytest.mark.parametrize("folders, dataset, message", [
    (("images",), "bone", r"expected Bone/ \(or train/ and validation/\), found images/"),
    (("Bone/training", "Bone/validation"), "bone", r"has no train/ folder"),
    (("Bone/train/AFF", "Bone/validation/AFF"), "bone", r"needs one folder per class \(at least two\), found AFF/"),
    (("Bone/train/AFF", "Bone/train/NFF", "Bone/validation/AFF", "Bone/validation/NFF"), "bone",
     r"no images .* in class folder .*AFF"),
    ((), "skin", r"expected Skin/ \(or train/ and validation/\), found no folders"),
])
def test_wrong_layout_names_expected_and_found_folders(tmp_path, folders, dataset, message):
    with pytest.raises(LabkitInputError, match=message):
        find_lab2_set(_make(tmp_path / "Lab2", *folders), dataset)


def test_validation_classes_must_match_training(tmp_path, lab2):
    shutil.copytree(lab2 / "Bone", tmp_path / "Bone")
    (tmp_path / "Bone" / "validation" / "NFF").rename(tmp_path / "Bone" / "validation" / "Normal")
    with pytest.raises(LabkitInputError, match=r"class folders differ .*\(AFF, NFF\) .*\(AFF, Normal\)"):
        find_lab2_set(tmp_path, "bone")


def test_expected_class_folder_missing_is_named(lab2):
    with pytest.raises(LabkitInputError, match=r"lacks class folder\(s\) Benign/: expected Mel/, Benign/"):
        list_class_folders(lab2 / "Skin" / "train", ("Mel", "Benign"))


# --- embedded data -----------------------------------------------------------------------------------------------


def test_embedded_sets_are_deterministic_and_in_the_course_layout(tmp_path, lab2):
    again = bone_skin_dataset(n_train=4, n_val=2, size=32, root=tmp_path)
    files = sorted(p.relative_to(lab2) for p in lab2.rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.png"))
    assert len(files) == 2 * 2 * (4 + 2)
    assert all((lab2 / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert cv2.imread(str(lab2 / files[0]), cv2.IMREAD_UNCHANGED).shape == (32, 32)  # Bone: grey
    skin = next(f for f in files if f.parts[0] == "Skin")
    assert cv2.imread(str(lab2 / skin), cv2.IMREAD_UNCHANGED).shape == (32, 32, 3)


def test_fracture_is_a_dark_transverse_line_across_the_shaft():
    """The same random draws with and without the fracture: the proximal fragment is untouched, and where the images
    start to differ, a dark line crosses the whole shaft (≈ 28 px wide here); below it the distal fragment is shifted
    and angled."""
    for seed in range(4):
        intact = bone_radiograph(np.random.default_rng(seed), fractured=False, size=128).astype(float)
        broken = bone_radiograph(np.random.default_rng(seed), fractured=True, size=128).astype(float)
        changed_rows = np.flatnonzero((np.abs(intact - broken) > 40).any(axis=1))
        first = changed_rows.min()
        assert first >= 16, seed  # rows above the fracture are the same bone
        darker_per_row = ((intact - broken) > 40).sum(axis=1)
        assert darker_per_row[first:first + 12].max() >= 18, seed  # the gap spans the shaft
        assert darker_per_row[:first].max() == 0


def lesion_colour_spread_and_roundness(image):
    """Colour standard deviation inside the lesion (its blurred rim eroded away) and 4π·area/perimeter²."""
    s = image.shape[0]
    yy, xx = np.mgrid[0:s, 0:s]
    radius = np.hypot(yy - s / 2, xx - s / 2)
    central = radius < 0.42 * s  # inside any dermoscope vignette
    skin_tone = np.median(image[central & (radius > 0.38 * s)], axis=0)
    lesion = ((np.abs(image.astype(float) - skin_tone).sum(axis=-1) > 60) & central).astype(np.uint8)
    lesion = cv2.morphologyEx(lesion, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # hairs out
    contours, _ = cv2.findContours(lesion, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    interior = cv2.erode(lesion, np.ones((9, 9), np.uint8)) > 0
    roundness = 4 * np.pi * cv2.contourArea(contour) / cv2.arcLength(contour, True) ** 2
    return image[interior].astype(float).std(axis=0).mean(), roundness


def test_melanoma_is_more_varied_in_colour_and_less_round_than_nevus():
    mel = np.array([lesion_colour_spread_and_roundness(skin_lesion(np.random.default_rng(i), True, 128))
                    for i in range(6)])
    nevi = np.array([lesion_colour_spread_and_roundness(skin_lesion(np.random.default_rng(i), False, 128))
                     for i in range(6)])
    assert mel[:, 0].min() > nevi[:, 0].max()  # every melanoma more multi-coloured than every nevus
    assert mel[:, 1].max() < nevi[:, 1].min()  # and less round


# --- end-to-end runs -------------------------------------------------------------------------------------------


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A private feature cache and embedded-data home, so runs never share state with the user's."""
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABKIT_DATA_HOME", str(tmp_path / "embedded"))
    return tmp_path


@pytest.mark.slow
def test_transfer_lab_writes_comparison_curves_and_run_files(lab2, isolated, lab_runner):
    out = isolated / "run"
    code, _, _ = lab_runner("lab4_transfer", ["--data-dir", lab2, "--dataset", "bone", "--weights", "none",
                                              "--img-size", "32", "--epochs", "2", "--n-base", "2", "--quiet",
                                              "--out", out])
    assert code == 0
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "comparison.csv", "comparison.md",
                 "curves_bone_bottleneck.png", "curves_bone_scratch.png", "comparison.png", "variants.csv",
                 "bone_bottleneck/model.keras", "bone_scratch/history.csv"):  # each model a child run folder
        assert (out / name).is_file(), name
    rows = read_csv(out / "comparison.csv")
    assert [(r["dataset"], r["method"]) for r in rows] == [
        ("bone", "VGG16 bottleneck + MLP, random weights"), ("bone", "VGG16 from scratch")]
    history = read_csv(out / "history.csv")
    for row in rows:
        epochs = [h for h in history if row["method"].startswith({"bottleneck": "VGG16 bottleneck",
                                                                  "scratch": "VGG16 from"}[h["method"]])]
        assert len(epochs) == row["epochs"] == 2
        assert row["best_val_accuracy"] == max(h["val_accuracy"] for h in epochs)
        assert row["final_val_loss"] == pytest.approx(epochs[-1]["val_loss"])
        assert row["train_seconds"] > 0
    assert rows[0]["parameters"] == (512 + 1) * 128 + (128 + 1) * 2  # MLP on 1×1×512 features at 32×32
    assert "| bone | VGG16 from scratch |" in (out / "comparison.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["weights"] == {"requested": "none", "used": "none", "note": None}
    assert metrics["epochs_run"] == 2 and metrics["best"]["epoch"] in (1, 2)
    assert metrics["train_seconds"] == pytest.approx(sum(r["train_seconds"] for r in rows), abs=0.02)
    best = keras.saving.load_model(out / "model.keras")  # a copy of the winner, loadable without custom objects
    assert best.name == {"bottleneck": "mlp_model", "scratch": "vgg16_model"}[metrics["model"]["file"].split("_")[1]]


@pytest.mark.slow
def test_transfer_demo_falls_back_to_random_weights_offline_and_says_so(isolated, monkeypatch, lab_runner):
    """The demo (no --data-dir, --weights not given) cannot fetch ImageNet weights here: it continues untrained and
    records it; an explicit --weights imagenet, or real data, stops with exit code 2 and the one-line error."""
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(isolated / "keras_home"))
    (isolated / "keras_home").mkdir()
    out = isolated / "demo"
    code, printed, _ = lab_runner("lab4_transfer", ["--dataset", "skin", "--method", "bottleneck", "--img-size",
                                                    "32", "--epochs", "1", "--quiet", "--out", out])
    assert code == 0
    assert "demo profile" in printed and "UNTRAINED VGG16" in printed
    config = json.loads((out / "config.json").read_text())["settings"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["weights"] == "none" and config["weights_requested"] == "imagenet"
    assert metrics["weights"]["used"] == "none" and "not transfer learning" in metrics["weights"]["note"]
    assert read_csv(out / "comparison.csv")[0]["method"] == "VGG16 bottleneck + MLP, random weights"

    for extra in (["--weights", "imagenet"], ["--data-dir", str(bone_skin_dataset(2, 1, 32, root=isolated))]):
        code, _, error = lab_runner("lab4_transfer", ["--dataset", "skin", "--method", "bottleneck", "--img-size",
                                                      "32", "--epochs", "1", "--quiet", "--out", isolated / "stop",
                                                      "--overwrite", *extra])
        assert code == 2
        error = error.strip()
        assert error.count("\n") == 0 and error.startswith("error: ImageNet weights for vgg16 could not be fetched")
        assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in error and "--weights none" in error
        assert str(isolated / "keras_home" / "models") in error


@pytest.mark.slow
def test_activation_map_lab_writes_heatmaps_of_each_class(lab2, isolated, lab_runner, adam_instances):
    out = isolated / "cam"
    code, _, _ = lab_runner("lab4_activation_map", ["--data-dir", lab2, "--img-size", "32", "--epochs", "2",
                                                    "--n-base", "2", "--maps-per-class", "2", "--lr-schedule", "cosine",
                                                    "--quiet", "--out", out])
    assert code == 0
    # --lr-schedule cosine: the warm-up and the decay span the run's 2 epochs of training batches
    schedule, batch = adam_instances[-1]._learning_rate, 8
    n_train = sum(row["split"] == "train" for row in read_csv(out / "split.csv"))
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay) and schedule.warmup_target == 1e-5
    assert schedule.warmup_steps + schedule.decay_steps == 2 * -(-n_train // batch)
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "activation_maps.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    explained = metrics["activation_maps"]["images"]
    assert [e["true"] for e in explained] == ["AFF", "AFF", "NFF", "NFF"]
    # Each explained image's class and probability: the best model's softmax on that file, read here with OpenCV
    # (32-px grey PNGs, so no resizing), arg-max and its value. Barely trained, the model says 0.50001–0.50002: the
    # tolerance is far below the spread between images.
    best = keras.saving.load_model(out / "model.keras")
    files = [lab2 / "Bone" / "validation" / e["true"] / e["file"] for e in explained]
    images = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])[..., None].astype(np.float32) / 255
    softmax = best.predict(images, verbose=0)
    assert [e["predicted"] for e in explained] == [("AFF", "NFF")[k] for k in softmax.argmax(axis=1)]
    assert [e["probability"] for e in explained] == pytest.approx(softmax.max(axis=1).tolist(), abs=1e-6)
    assert metrics["validation"]["images"] == 4
    figure = cv2.imread(str(out / "activation_maps.png"))
    assert figure.shape[0] > figure.shape[1]  # four rows of three panels
    config = json.loads((out / "config.json").read_text())["settings"]
    assert config["dense_layers"] == [64, 64, 64] and config["dropout"] == 0.4 and config["augment"] is True


def test_explained_images_are_the_first_of_each_class_with_their_predicted_class_and_its_probability():
    from conftest import load_lab

    probabilities = np.array([[0.2, 0.8], [0.9, 0.1], [0.35, 0.65], [0.6, 0.4], [0.45, 0.55]])
    chosen = load_lab("lab4_activation_map").explained_images(None, np.array([1, 0, 0, 1, 1]), probabilities,
                                                              ("AFF", "NFF"), per_class=2)
    assert [(c["index"], c["true"], c["predicted"]) for c in chosen] == [
        (1, "AFF", "AFF"), (2, "AFF", "NFF"), (0, "NFF", "NFF"), (3, "NFF", "AFF")]
    assert [c["probability"] for c in chosen] == pytest.approx([0.9, 0.65, 0.8, 0.6])


@pytest.mark.parametrize("name, argv, names", [
    ("lab4_activation_map", ["--dense-layers", "64,x"], "--dense-layers"),
    ("lab4_transfer", ["--dataset", "brain"], "brain"),
    ("lab4_transfer", ["--data-dir", "/nonexistent/Lab2", "--weights", "none"], "/nonexistent/Lab2"),
])
def test_bad_input_is_one_line_and_exit_code_2(lab_runner, isolated, name, argv, names):
    code, _, error = lab_runner(name, [*argv, "--out", isolated / "bad"])
    assert code == 2
    assert error.startswith("error: ") and error.strip().count("\n") == 0 and names in error


@pytest.mark.parametrize("name, defaults", [
    ("lab4_transfer", ["--lr LR learning rate of the optimizer (course default: 1e-05)", "(course default: 224)"]),
    ("lab4_activation_map", ["(course default: 128)", "(course Task 3: 64,64,64)", "(course Task 3: 0.4)"]),
])
def test_help_states_the_course_defaults(name, defaults, capsys):
    from conftest import load_lab

    with pytest.raises(SystemExit) as exit_:
        load_lab(name).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert exit_.value.code == 0 and all(d in text for d in defaults)
