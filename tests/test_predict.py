"""labkit predict / TrainedRun.predict on tiny runs of the real lab scripts: masks at each image's own size that
equal the lab's own validation masks, probabilities equal to the model's output on an independently preprocessed
image, predictions.csv, 3D volumes that keep their geometry, and one-line refusals of bad input."""

import json
import shutil

import cv2
import h5py
import keras
import nibabel
import numpy as np
import pytest
import tensorflow as tf
from trained_runs import (activation_map_run, labkit_command, lab5_run, lenet_run, series_run, streamline_run, train,
                          unet3d_run, unet_run)

import labkit
from labkit.data import segmentation_dataset
from labkit.data.layouts.volume_cases import zscore
from labkit.data.patches import sliding_window_inference
from labkit.data.synthetic import ct_dataset, xray_dataset
from labkit.data.synthetic.atrium import atrium_dataset
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.data.synthetic.lab1 import lab1_dataset
from labkit.data.synthetic.stock import stock_dataset
from labkit.data.synthetic.tracts import tract_dataset
from labkit.inference import collect_predictions
from labkit.run_folder import read_csv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny finished run per lab family (trained once for the module) and their data folders."""
    root = tmp_path_factory.mktemp("trained")
    xray = xray_dataset(n_images=12, size=32, root=root / "xray")
    ct = ct_dataset(n_patients=3, n_slices=4, size=32, root=root / "ct")
    skin = bone_skin_dataset(n_train=4, n_val=3, size=40, root=root / "lab2")
    atrium = atrium_dataset(n_volumes=4, n_test=2, shape=(40, 36, 20), root=root / "atrium")
    return {"unet": unet_run(xray, root / "unet"), "xray": xray, "lab5": lab5_run(ct, root / "lab5"), "ct": ct,
            "lenet": lenet_run(skin, root / "lenet"), "skin": skin,
            "unet3d": unet3d_run(atrium, root / "unet3d"), "atrium": atrium}


def grey_at(path, size):
    """An 8-bit PNG as float32 grey (1, size, size, 1) in [0, 1], read with TensorFlow alone (colour files through
    the luminance labkit documents, `tf.image.rgb_to_grayscale`)."""
    image = tf.cast(tf.io.decode_png(tf.io.read_file(str(path))), tf.float32) / 255.0  # the file's own channels
    image = tf.image.rgb_to_grayscale(image[..., :3]) if image.shape[-1] >= 3 else image[..., :1]
    return tf.image.resize(image, (size, size), method="bilinear")[None].numpy()


def resized_copies(files, folder, sizes):
    """Copies of image files at other sizes ``(height, width)``, named img0.png, img1.png, …; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, (path, (height, width)) in enumerate(zip(files, sizes)):
        target = folder / f"img{index}.png"
        cv2.imwrite(str(target), cv2.resize(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), (width, height)))
        copies.append(target)
    return copies


def validation_images(run, data_dir):
    return [data_dir / "Image" / row["item"] for row in read_csv(run / "split.csv") if row["split"] == "val"]


@pytest.mark.slow
def test_unet_masks_equal_the_labs_validation_masks_and_follow_each_images_size(runs, tmp_path, capsys):
    run = labkit.load_run(runs["unet"])
    assert (run.kind, run.image_size, run.channels, run.threshold) == ("segmentation", (32, 32), 1, 0.5)
    # The validation images at the training size: the lab's own pipeline gives the same masks, pixel for pixel.
    val = validation_images(runs["unet"], runs["xray"])
    results = run.predict(val, out=tmp_path / "val")
    pairs = [(path, runs["xray"] / "Mask" / path.name) for path in val]
    _, _, probabilities = collect_predictions(run.model, segmentation_dataset(pairs, 32, 4))
    for result, probability in zip(results, probabilities):
        assert np.array_equal(cv2.imread(str(tmp_path / "val" / f"{result['name']}_mask.png"), 0) > 0,
                              probability[..., 0] > 0.5)
    assert 0 < np.mean([r["foreground"] for r in results]) < 1

    # Other sizes: a mask at each image's own size; the 16-bit probability map is the model's output on the image
    # read and resized by TensorFlow here, resized back to the image's size.
    sizes = [(45, 37), (64, 64), (20, 50)]
    inputs = resized_copies(val[:1] * 3, tmp_path / "sizes", sizes)
    code, out, err = labkit_command(["predict", runs["unet"], tmp_path / "sizes", "--out", tmp_path / "pred",
                                     "--probabilities", "png", "--batch-size", "2"], capsys)
    assert code == 0, err
    model = keras.saving.load_model(runs["unet"] / "model.keras")
    for path, (height, width) in zip(inputs, sizes):
        mask = cv2.imread(str(tmp_path / "pred" / f"{path.stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        stored = cv2.imread(str(tmp_path / "pred" / f"{path.stem}_prob.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == stored.shape == (height, width) and stored.dtype == np.uint16
        expected = tf.image.resize(model.predict_on_batch(grey_at(path, 32))[0].astype(np.float32), (height, width))
        assert np.abs(stored / 65535.0 - expected.numpy()[..., 0]).max() < 2e-3
        assert np.array_equal(mask > 0, stored / 65535.0 > 0.5) or np.mean((mask > 0) != (stored > 32767)) < 0.01
    assert (tmp_path / "pred" / "overlay.png").is_file()

    # --threshold and .npy probabilities through the Python API: the mask is the map above the threshold.
    result = run.predict(inputs[0], out=tmp_path / "npy", probabilities="npy", threshold=0.3)[0]
    stored = np.load(tmp_path / "npy" / "img0_prob.npy")
    assert stored.shape == (45, 37, 1) and np.array_equal(result["mask"] > 0, stored[..., 0] > 0.3)


@pytest.mark.slow
def test_lab5_left_right_labels_are_the_argmax_in_the_course_grey_levels(runs, tmp_path):
    run = labkit.load_run(runs["lab5"])
    assert run.family == "lab5" and run.structures == ["left", "right"] and run.n_outputs == 3
    images = sorted((runs["ct"] / "Image").iterdir())[:3]
    results = run.predict(images, out=tmp_path)
    for path, result in zip(images, results):
        labels = cv2.imread(str(tmp_path / f"{path.stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (32, 32) and set(np.unique(labels)) <= {0, 156, 250}
        outputs = run.model.predict_on_batch(labkit.load_image(path, 32, 32)[None])[0]
        assert np.array_equal(labels, np.array([0, 250, 156], np.uint8)[np.asarray(outputs).argmax(-1)])
    # evaluate on the run's validation slices gives the Dice of each lung the lab reported, exactly
    for sub in ("Image", "Mask"):
        (tmp_path / "val" / sub).mkdir(parents=True)
        for row in read_csv(runs["lab5"] / "split.csv"):
            if row["split"] == "val":
                shutil.copy(runs["ct"] / sub / row["item"], tmp_path / "val" / sub / row["item"])
    tested = run.evaluate(tmp_path / "val", out=tmp_path / "evaluation")["test"]
    validation = json.loads((runs["lab5"] / "metrics.json").read_text())["validation"]
    for key in ("dice_left", "dice_right", "dice_mean"):
        assert tested[key]["mean"] == pytest.approx(validation[key]["mean"], abs=1e-12), key


@pytest.mark.slow
def test_classifier_predictions_csv_matches_the_model_and_gradcam_maps(runs, tmp_path, capsys):
    # the validation folder of class folders: predict looks inside them, and each row names its folder
    files = sorted((runs["skin"] / "Skin" / "validation").rglob("*.png"))
    code, _, err = labkit_command(["predict", runs["lenet"], runs["skin"] / "Skin" / "validation", "--out", tmp_path,
                                   "--gradcam"], capsys)
    assert code == 0, err
    rows = read_csv(tmp_path / "predictions.csv")
    assert [r["file"] for r in rows] == [f.name for f in files]
    assert list(rows[0]) == ["file", "folder", "predicted", "Mel", "Nevi"]
    assert [r["folder"] for r in rows] == [f.parent.name for f in files] == ["Mel"] * 3 + ["Nevi"] * 3
    model = keras.saving.load_model(runs["lenet"] / "model.keras")
    for path, row in zip(files, rows):
        nevi = float(model.predict_on_batch(grey_at(path, 32))[0, 0])  # one sigmoid unit: P(class 1)
        assert row["Mel"] + row["Nevi"] == pytest.approx(1.0)
        assert row["Nevi"] == pytest.approx(nevi, abs=1e-6)
        assert row["predicted"] == ("Nevi" if nevi > 0.5 else "Mel")
        heat = cv2.imread(str(tmp_path / f"{path.stem}_gradcam.png"))
        assert heat.shape == (40, 40, 3)


@pytest.mark.slow
def test_lab1_mlp_on_flat_names_predicts_and_evaluates_as_its_own_validation(tmp_path, capsys):
    # Lab 1's flat layout (class in the file name), 40 px files, a model trained at 32 px
    data = lab1_dataset(n_train=4, n_test=3, size=40, root=tmp_path / "lab1")
    run = train("lab1_mlp", ["--data-dir", data, "--img-size", "32", "--base", "8", "--epochs", "1", "--batch-size",
                             "4", "--quiet"], tmp_path / "mlp")
    recorded = {row["image"]: row for row in read_csv(run / "predictions.csv")}  # the lab's validation images
    code, _, err = labkit_command(["predict", run, data / "Skin" / "test", "--out", tmp_path / "pred"], capsys)
    assert code == 0, err
    predicted = read_csv(tmp_path / "pred" / "predictions.csv")
    assert sorted(row["file"] for row in predicted) == sorted(recorded) and len(predicted) == 6
    for row in predicted:
        assert row["predicted"] == recorded[row["file"]]["predicted"]
        assert row["Nevi"] == pytest.approx(recorded[row["file"]]["Nevi"], abs=2e-6)  # the lab rounds to 6 places
    code, _, err = labkit_command(["evaluate", run, "--data-dir", data, "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    tested = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    validation = json.loads((run / "metrics.json").read_text())["validation"]
    for key in ("images", "accuracy", "balanced_accuracy", "macro_auc"):
        assert tested[key] == pytest.approx(validation[key], abs=1e-12), key


@pytest.mark.slow
def test_volumes_keep_their_nifti_affine_and_hdf5_layout(runs, tmp_path, capsys):
    case = sorted(runs["atrium"].rglob("mri_norm2.h5"))[0]
    with h5py.File(case) as handle:
        image = handle["image"][()].astype(np.float32)
    affine = np.array([[0.7, 0, 0, -12.5], [0, 0.8, 0, 4.0], [0, 0, 1.5, 30.0], [0, 0, 0, 1]])
    nibabel.save(nibabel.Nifti1Image(image * 40 + 300, affine), str(tmp_path / "scan.nii.gz"))
    code, _, err = labkit_command(["predict", runs["unet3d"], tmp_path / "scan.nii.gz", case, "--out",
                                   tmp_path / "out", "--probabilities", "npy"], capsys)
    assert code == 0, err
    written = nibabel.load(str(tmp_path / "out" / "scan_mask.nii.gz"))
    assert np.allclose(written.affine, affine) and written.shape == image.shape
    model = keras.saving.load_model(runs["unet3d"] / "model.keras")
    expected = sliding_window_inference(zscore(image * 40 + 300), model, (16, 16, 8), 0.5, "gaussian")[..., 0]
    assert np.mean(np.asarray(written.dataobj).astype(bool) != (expected > 0.5)) < 1e-3
    assert nibabel.load(str(tmp_path / "out" / "scan_prob.nii.gz")).shape == image.shape
    with h5py.File(tmp_path / "out" / "synLA000_mask.h5") as handle:  # name: the case folder (every file is mri_norm2)
        assert handle["label"].shape == image.shape and handle["probability"].dtype == np.float32


def test_a_model_with_a_lambda_layer_is_refused_with_one_line(tmp_path, capsys):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    (tmp_path / "student").mkdir()
    model.save(tmp_path / "student" / "model.keras")
    with pytest.raises(labkit.LabkitInputError, match="student.*unsafe deserialization"):
        labkit.load_run(tmp_path / "student")
    code, _, err = labkit_command(["predict", tmp_path / "student", tmp_path, "--out", tmp_path / "o"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Lambda" in err
    assert not (tmp_path / "o").exists()


def test_bad_run_folders_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    for folder, message in ((tmp_path / "missing", "run folder not found"),
                            (tmp_path / "unfinished", "holds no model.keras")):
        code, _, err = labkit_command(["predict", folder, tmp_path, "--out", tmp_path / "o"], capsys)
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_bad_inputs_are_one_line_errors_or_skipped(runs, tmp_path, capsys):
    good = sorted((runs["xray"] / "Image").iterdir())[0]
    (tmp_path / "in").mkdir()
    shutil.copy(good, tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "empty").mkdir()
    for argv, message in (([tmp_path / "in"], "bad.png"), ([tmp_path / "empty"], "no image files"),
                          ([tmp_path / "nothing.png"], "input not found")):
        code, _, err = labkit_command(["predict", runs["unet"], *argv, "--out", tmp_path / "o"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    code, out, err = labkit_command(["predict", runs["unet"], tmp_path / "in", "--out", tmp_path / "o",
                                     "--skip-bad-files"], capsys)
    assert code == 0 and "skipped" in out and "bad.png" in out
    assert sorted(p.name for p in (tmp_path / "o").glob("*_mask.png")) == ["good_mask.png"]


@pytest.mark.slow
def test_a_run_whose_config_lacks_a_setting_gets_one_line_naming_it(runs, tmp_path, capsys):
    old = shutil.copytree(runs["unet3d"], tmp_path / "old-run")
    config = json.loads((old / "config.json").read_text())
    del config["settings"]["overlap"]
    (old / "config.json").write_text(json.dumps(config))
    volume = sorted(runs["atrium"].rglob("mri_norm2.h5"))[0]
    code, _, err = labkit_command(["predict", old, volume, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'overlap'" in err and "--overlap" in err and err.count("\n") == 1
    code, _, err = labkit_command(["predict", old, volume, "--out", tmp_path / "o", "--overlap", "0.5"], capsys)
    assert code == 0, err
    config["settings"]["overlap"] = "__import__('os')"  # a config.json value is data, never code
    (old / "config.json").write_text(json.dumps(config))
    code, _, err = labkit_command(["predict", old, volume, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "not a number" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["model.keras", "unet.h5"])
def test_a_model_saved_by_plain_course_code_predicts_without_config(tmp_path, capsys, name):
    model = labkit.get_unet((32, 32, 1), base=2)
    model.save(tmp_path / name)
    image = (np.random.default_rng(0).random((40, 24)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "scan.png"), image)
    code, _, err = labkit_command(["predict", tmp_path / name, tmp_path / "scan.png", "--out", tmp_path / "o",
                                   "--probabilities", "npy"], capsys)
    assert code == 0, err
    stored = np.load(tmp_path / "o" / "scan_prob.npy")
    expected = tf.image.resize(model.predict_on_batch(grey_at(tmp_path / "scan.png", 32))[0], (40, 24)).numpy()
    assert stored.shape == (40, 24, 1) and np.abs(stored - expected).max() < 1e-5


def test_a_plain_course_classifier_takes_its_class_names_and_layout_from_flags(tmp_path, capsys):
    # a LeNet saved by course code (model.save of an .h5, no config.json): --dataset names the course set, so
    # evaluate reads its validation folders and labels the classes as the course does
    skin = bone_skin_dataset(n_train=2, n_val=3, size=40, root=tmp_path / "lab2")
    model = labkit.lenet_model(32, 32, 1, 4)
    (tmp_path / "student").mkdir()
    model.save(tmp_path / "student" / "lenet.h5")
    code, _, err = labkit_command(["evaluate", tmp_path / "student" / "lenet.h5", "--data-dir", skin, "--dataset",
                                   "skin", "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    rows = read_csv(tmp_path / "eval" / "per_item.csv")
    files = {f.name: f for f in (skin / "Skin" / "validation").rglob("*.png")}
    assert sorted(r["image"] for r in rows) == sorted(files) and len(files) == 6
    # by hand: the model on the images read by TensorFlow here, in one batch as evaluate's batch of 8 holds them
    batch = np.concatenate([grey_at(files[r["image"]], 32) for r in rows])
    nevi = dict(zip([r["image"] for r in rows], model.predict_on_batch(batch)[:, 0].astype(float)))
    truth = {name: int(path.parent.name == "Nevi") for name, path in files.items()}
    assert all(r["Nevi"] == pytest.approx(nevi[r["image"]], abs=1e-6) for r in rows)  # rounded to 6 decimals
    assert all(r["true"] == ("Nevi" if truth[r["image"]] else "Mel") for r in rows)
    accuracy = np.mean([(nevi[name] > 0.5) == truth[name] for name in nevi])
    test = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    assert test["accuracy"] == pytest.approx(accuracy, abs=1e-12) and test["images"] == 6

    # predict: --classes names the outputs; a list that does not fit the model is one line
    image = files[rows[0]["image"]]
    code, _, err = labkit_command(["predict", tmp_path / "student" / "lenet.h5", image, "--out", tmp_path / "p",
                                   "--classes", "benign,malignant"], capsys)
    assert code == 0, err
    row = read_csv(tmp_path / "p" / "predictions.csv")[0]
    assert list(row) == ["file", "predicted", "benign", "malignant"]
    assert row["malignant"] == pytest.approx(float(model.predict_on_batch(grey_at(image, 32))[0, 0]), abs=1e-6)
    code, _, err = labkit_command(["predict", tmp_path / "student" / "lenet.h5", image, "--out", tmp_path / "p",
                                   "--classes", "a,b,c"], capsys)
    assert code == 2 and "--classes names 3 classes; the model has 2" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:  # refused by the parser, before any model is loaded
        labkit_command(["predict", tmp_path / "student" / "lenet.h5", image, "--out", tmp_path / "p", "--classes",
                        "a,a"], capsys)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--classes: 'a,a' is not two or more distinct names" in err


def test_a_plain_course_lab5_segmenter_writes_the_course_grey_levels_with_task(tmp_path, capsys):
    ct = ct_dataset(n_patients=1, n_slices=2, size=32, root=tmp_path / "ct")
    model = labkit.get_unet((32, 32, 1), base=2, n_class=3)  # softmax: background, left lung, right lung
    model.save(tmp_path / "unet.h5")
    image = sorted((ct / "Image").iterdir())[0]
    code, _, err = labkit_command(["predict", tmp_path / "unet.h5", image, "--out", tmp_path / "o", "--task",
                                   "ct-lr"], capsys)
    assert code == 0, err
    labels = cv2.imread(str(tmp_path / "o" / f"{image.stem}_mask.png"), cv2.IMREAD_UNCHANGED)
    outputs = model.predict_on_batch(labkit.load_image(image, 32, 32)[None])[0]
    assert np.array_equal(labels, np.array([0, 250, 156], np.uint8)[np.asarray(outputs).argmax(-1)])


def test_precision_flag_recomputes_a_mixed_precision_model_in_float32(tmp_path):
    from labkit.inference import predict_arrays, set_model_precision

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    trained = labkit.get_unet((16, 16, 1), base=2)
    keras.mixed_precision.set_global_policy("float32")
    trained.save(tmp_path / "model.keras")
    run = labkit.load_run(tmp_path)
    images = np.random.default_rng(1).random((3, 16, 16, 1)).astype(np.float32)
    as_trained = predict_arrays(run.model, images)
    reference = keras.Model.from_config(run.model.get_config())  # float32 policy everywhere, same weights
    for layer in reference._flatten_layers():
        layer.dtype_policy = "float32"
    reference = keras.Model.from_config(reference.get_config())
    reference.set_weights(run.model.get_weights())
    assert set_model_precision(run.model, "float32") == "float32"
    in_float32 = predict_arrays(run.model, images)
    assert np.abs(in_float32 - predict_arrays(reference, images)).max() < 1e-6
    assert np.abs(in_float32 - as_trained).max() > 1e-5  # bfloat16 arithmetic did differ


def test_a_lesion_segmenter_with_logits_gives_sigmoid_probabilities_of_rgb_images(tmp_path):
    # the MobileNet lab's runs output logits from RGB input (its decoder setting names the family)
    inputs = keras.Input((16, 16, 3))
    logits = keras.layers.Conv2D(1, 3, padding="same")(inputs)  # a linear last layer: logits
    model = keras.Model(inputs, logits)
    model.save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps({"settings": {"decoder": "unet", "channels": 3}}))
    colour = (np.random.default_rng(2).random((20, 28, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "lesion.png"), colour)
    run = labkit.load_run(tmp_path)
    assert run.family == "mobilenet" and run.from_logits and run.channels == 3
    result = run.predict(tmp_path / "lesion.png")[0]
    rgb = tf.image.resize(colour[..., ::-1].astype(np.float32) / 255.0, (16, 16))[None]  # OpenCV wrote BGR
    expected = tf.image.resize(tf.sigmoid(model.predict_on_batch(rgb)[0]), (20, 28)).numpy()
    assert result["probabilities"].shape == (20, 28, 1)
    assert np.abs(result["probabilities"] - expected).max() < 1e-5
    assert np.array_equal(result["mask"] > 0, result["probabilities"][..., 0] > 0.5)


# --- Lab 6: series and streamlines -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab6(tmp_path_factory):
    """A tiny Lab 6 forecaster (window 10) and streamline classifier, trained once for the module, and their data."""
    root = tmp_path_factory.mktemp("lab6")
    stock = stock_dataset(n_train=60, n_val=15, root=root / "stock")
    tracts = tract_dataset(n_streamlines=4, root=root / "tracts")
    return {"stock": stock, "series": series_run(stock, root / "series"), "tracts": tracts,
            "streamlines": streamline_run(tracts, root / "streamlines")}


def course_csv(path, values):
    """A course stock CSV of `values` (oldest first), written newest first as the course's files are."""
    rows = [f"2020-01-{i + 1:02d},{v},{v + 1},{v - 1},{v},1000" for i, v in enumerate(values)]
    path.write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows[::-1]) + "\n")
    return path


@pytest.mark.slow
def test_series_predictions_are_the_models_output_on_hand_made_windows_in_the_series_units(lab6, tmp_path, capsys):
    with open(lab6["stock"] / "train_data_stock.csv") as file:  # the training series, read without labkit
        train = np.array([float(line.split(",")[1]) for line in file.read().splitlines()[1:]])
    metrics = json.loads((lab6["series"] / "metrics.json").read_text())
    assert metrics["scaling"] == {"min": pytest.approx(train.min()), "max": pytest.approx(train.max())}
    values = 250.0 + 30.0 * np.sin(np.arange(25) / 3.0)  # 25 days, another length than the lab's files
    code, out, err = labkit_command(["predict", lab6["series"], course_csv(tmp_path / "prices.csv", values),
                                     "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    rows = read_csv(tmp_path / "out" / "prices_predictions.csv")
    assert len(rows) == 25 - 10 + 1 and rows[-1]["date"] == "next"
    assert [r["value"] for r in rows[:-1]] == pytest.approx(values[10:])
    low, high = train.min(), train.max()
    scaled = (values - low) / (high - low)
    windows = np.stack([scaled[i:i + 10] for i in range(25 - 10 + 1)])[..., None]
    model = keras.saving.load_model(lab6["series"] / "model.keras")
    expected = model.predict(windows, verbose=0)[:, 0] * (high - low) + low
    np.testing.assert_allclose([r["predicted"] for r in rows], expected, rtol=1e-5)


@pytest.mark.slow
def test_streamline_predictions_are_the_models_output_on_each_standardised_streamline_alone(lab6, tmp_path, capsys):
    trk = lab6["tracts"] / "601127" / "CST_right.trk"
    code, out, err = labkit_command(["predict", lab6["streamlines"], trk, "--out", tmp_path], capsys)
    assert code == 0 and "4 streamline(s) predicted" in out, err
    rows = read_csv(tmp_path / "predictions.csv")
    stats = json.loads((lab6["streamlines"] / "metrics.json").read_text())["standardization"]
    model = keras.saving.load_model(lab6["streamlines"] / "model.keras")
    lines = list(nibabel.streamlines.load(str(trk)).streamlines)
    assert [r["points"] for r in rows] == [len(s) for s in lines]
    for row, line in zip(rows, lines):  # batch of one: no padding at all
        right = float(model(((line - stats["mean"]) / np.array(stats["std"]))[None], training=False)[0, 0])
        assert row["CST_right"] == pytest.approx(right, abs=1e-5) and row["CST_left"] == pytest.approx(1 - right)
        assert row["predicted"] == ("CST_right" if right > 0.5 else "CST_left")
    code, _, err = labkit_command(["predict", lab6["streamlines"], tmp_path / "predictions.csv", "--out", tmp_path],
                                  capsys)
    assert code == 2 and "not a readable TrackVis file" in err and err.count("\n") == 1


# --- Lab 4: the activation-map lab's VGG16-style classifier, refused bottleneck models -------------------------------


@pytest.fixture(scope="module")
def cam(tmp_path_factory):
    """A tiny run of the activation-map lab on the Bone set (grey images), trained once for the module."""
    root = tmp_path_factory.mktemp("cam")
    lab2 = bone_skin_dataset(n_train=4, n_val=3, size=40, root=root / "lab2")
    return {"lab2": lab2, "run": activation_map_run(lab2, root / "cam")}


@pytest.mark.slow
def test_activation_map_run_classifies_images_of_another_size_with_gradcam_maps(cam, tmp_path, capsys):
    files = sorted((cam["lab2"] / "Bone" / "validation").rglob("*.png"))
    inputs = resized_copies(files[:2], tmp_path / "in", [(50, 36), (24, 24)])
    code, _, err = labkit_command(["predict", cam["run"], *inputs, "--out", tmp_path / "out", "--gradcam"], capsys)
    assert code == 0, err
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == ["file", "predicted", "AFF", "NFF"]
    model = keras.saving.load_model(cam["run"] / "model.keras")
    for path, row, shape in zip(inputs, rows, [(50, 36, 3), (24, 24, 3)]):
        softmax = np.asarray(model.predict_on_batch(grey_at(path, 32))[0], np.float32)  # two softmax units
        assert [row["AFF"], row["NFF"]] == pytest.approx(softmax.tolist(), abs=1e-3)
        assert row["predicted"] == ["AFF", "NFF"][int(softmax.argmax())]
        heat = cv2.imread(str(tmp_path / "out" / f"{path.stem}_gradcam.png"))
        assert heat.shape == shape and heat.std() > 0
    # evaluate on the lab's own folder reproduces the accuracy and the explained images' classes the lab computed
    tested = labkit.load_run(cam["run"]).evaluate(cam["lab2"] / "Bone", out=tmp_path / "eval")["test"]
    metrics = json.loads((cam["run"] / "metrics.json").read_text())
    assert (tested["images"], tested["accuracy"]) == (6, metrics["validation"]["accuracy"])
    rows = {r["image"]: r for r in read_csv(tmp_path / "eval" / "per_item.csv")}
    for explained in metrics["activation_maps"]["images"]:
        row = rows[explained["file"]]
        assert (row["true"], row["predicted"]) == (explained["true"], explained["predicted"])
        assert row[row["predicted"]] == pytest.approx(explained["probability"], abs=1e-6)


def test_a_model_that_takes_features_not_images_is_refused_with_one_line(tmp_path, capsys):
    # the top folder of a Lab 4 transfer run keeps a copy of its best model, which may be the bottleneck MLP
    inputs = keras.Input((1, 1, 512))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))).save(
        tmp_path / "model.keras")
    code, _, err = labkit_command(["predict", tmp_path, tmp_path, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "512-channel inputs" in err and err.count("\n") == 1
