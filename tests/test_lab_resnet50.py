"""labs/resnet50_classification.py as a user runs it: a tiny run's files and numbers, the comparison table, the
demo's honest weights, the data splits, and one-line errors for bad input."""

import csv
import json
import shutil
import urllib.error

import cv2
import keras
import pytest
from conftest import load_lab, run_lab_inprocess, watch_optimizer
from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report
from trained_runs import labkit_command

import labkit
from labkit.data.layouts.isic2018 import CLASSES, lesion_splits
from labkit.data.pipeline import decode_image
from labkit.data.synthetic.skin_lesions7 import isic2018_task3_dataset
from labkit.run_folder import read_csv

TINY = ["--img-size", "32", "--epochs", "1", "--batch-size", "8", "--weights", "none", "--quiet"]
RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras", "report.txt", "report.csv",
             "predictions.csv", "confusion_matrix.png", "roc.png", "curves.png", "gradcam.png")


@pytest.fixture(scope="module")
def lab():
    return load_lab("resnet50_classification")


@pytest.fixture(scope="module")
def lesions(tmp_path_factory):
    """56 synthetic images at 32 px, at least 6 lesions of every class (so every split holds every class)."""
    return isic2018_task3_dataset(n_images=56, size=32, min_per_class=6, root=tmp_path_factory.mktemp("isic"))


def groupings(root):
    with open(root / "ISIC2018_Task3_Training_LesionGroupings.csv", newline="") as handle:
        return {row["image"]: row["lesion_id"] for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def tiny_run(lab, lesions, tmp_path_factory):
    """One tiny run (focal loss, balanced weights, augmentation, cosine schedule) on a CPU where auto would pick
    mixed_bfloat16, trained once for the module: ``(run folder, stdout, the Adams made)``."""
    out = tmp_path_factory.mktemp("resnet50") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("labkit.runtime.cpu_has_bf16", lambda: True)
        adams = watch_optimizer(patch, "Adam")
        code, stdout, stderr = run_lab_inprocess(lab, [
            "--data-dir", lesions, "--out", out, *TINY, "--loss", "ce+focal", "--class-weights", "balanced",
            "--augment", "--lr-schedule", "cosine"])
    assert code == 0, stderr
    keras.backend.clear_session()
    return out, stdout, adams


@pytest.mark.slow
def test_tiny_run_writes_every_file_and_its_numbers_agree(tiny_run, lesions):
    out, stdout, adam_instances = tiny_run
    # the lab avoids mixed_bfloat16 (measured to cost it quality): auto trains in float32 and says why
    assert ("precision policy: float32 (auto would pick mixed_bfloat16 here, which this lab avoids: at a constant "
            "rate with Keras's moving BatchNorm averages") in stdout
    assert json.loads((out / "config.json").read_text())["settings"]["precision"] == "float32"
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    # --lr-schedule cosine: the warm-up and the decay span the run's one epoch of training batches (batch 8)
    schedule, n_train = adam_instances[-1]._learning_rate, metrics["data"]["splits"]["train"]["images"]
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay) and schedule.warmup_target == 1e-3
    assert schedule.warmup_steps + schedule.decay_steps == -(-n_train // 8)
    assert metrics["epochs_run"] == 1 and metrics["final"]["epoch"] == 1 and metrics["train_seconds"] > 0
    assert metrics["loss"] == "ce+focal" and metrics["weights"]["used"] == "none"
    config = json.loads((out / "config.json").read_text())["settings"]
    assert config["demo"] is False and config["img_size"] == 32 and config["bn_momentum_used"] == 0.9

    # Every split holds every class, and the splits partition the 56 images.
    splits = metrics["data"]["splits"]
    assert sum(s["images"] for s in splits.values()) == 56
    assert all(min(splits[s]["per_class"].values()) >= 1 for s in ("train", "val", "test"))

    # report.csv and metrics.json equal scikit-learn on predictions.csv.
    predictions = read_csv(out / "predictions.csv")
    truth = [CLASSES.index(row["true"]) for row in predictions]
    predicted = [CLASSES.index(row["predicted"]) for row in predictions]
    assert len(predictions) == splits["test"]["images"] == metrics["test"]["images"]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, predicted))
    reference = classification_report(truth, predicted, labels=range(7), target_names=CLASSES, output_dict=True,
                                      zero_division=0)
    report = {row["class"]: row for row in read_csv(out / "report.csv")}
    for name in (*CLASSES, "macro avg", "weighted avg"):
        assert report[name]["recall"] == pytest.approx(reference[name]["recall"])
        assert report[name]["f1"] == pytest.approx(reference[name]["f1-score"])
    assert all(name in (out / "report.txt").read_text() for name in (*CLASSES, "accuracy", "weighted avg"))

    # The saved model reloads with plain Keras and reproduces the recorded probabilities.
    model = keras.saving.load_model(out / "model.keras")
    row = predictions[0]
    image = decode_image(str(lesions / "ISIC2018_Task3_Training_Input" / f"{row['image']}.jpg"), 32, 3).numpy()
    recorded = [row[c] for c in CLASSES]
    assert model.predict(image[None], verbose=0)[0] == pytest.approx(recorded, abs=1e-4)

    # The recorded lesion count of the test split is that of its images.
    lesion_of = groupings(lesions)
    assert len({lesion_of[r["image"]] for r in predictions}) == splits["test"]["lesions"]


def official_test_folder(root, images, rows):
    """`images` with their true classes (from `rows` of predictions.csv) in the ISIC 2018 Task 3 test layout."""
    inputs = root / "ISIC2018_Task3_Test_Input"
    inputs.mkdir(parents=True)
    with open(root / "ISIC2018_Task3_Test_GroundTruth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", *CLASSES])
        for path, row in zip(images, rows):
            shutil.copy(path, inputs / path.name)
            writer.writerow([path.stem, *("1.0" if name == row["true"] else "0.0" for name in CLASSES)])
    return root


@pytest.mark.slow
def test_predict_and_evaluate_reproduce_the_runs_test_results(tiny_run, lesions, tmp_path, capsys):
    """``labkit predict`` on the run's test images gives the probabilities the lab recorded for them, and on copies
    at other sizes the model's output on the lab's own preprocessing; ``labkit evaluate`` on those images in the
    official test layout reproduces the run's test metrics exactly."""
    out = tiny_run[0]
    recorded = read_csv(out / "predictions.csv")
    images = [lesions / "ISIC2018_Task3_Training_Input" / f"{row['image']}.jpg" for row in recorded]
    code, _, err = labkit_command(["predict", out, *images, "--out", tmp_path / "pred", "--batch-size", "4"], capsys)
    assert code == 0, err
    predicted = read_csv(tmp_path / "pred" / "predictions.csv")
    assert [row["file"] for row in predicted] == [path.name for path in images]
    for mine, theirs in zip(predicted, recorded):
        assert mine["predicted"] == theirs["predicted"]
        assert [mine[c] for c in CLASSES] == pytest.approx([theirs[c] for c in CLASSES], abs=1e-6)

    # Other sizes than the 32 px it trained on: the lab's decoding resizes them to the model's input.
    model = keras.saving.load_model(out / "model.keras")
    resized = tmp_path / "sizes"
    resized.mkdir()
    for index, (height, width) in enumerate([(45, 37), (80, 64)]):
        image = cv2.imread(str(images[index]))
        cv2.imwrite(str(resized / f"img{index}.png"), cv2.resize(image, (width, height)))
    results = labkit.load_run(out).predict(resized, out=tmp_path / "sized")
    assert [r["file"] for r in results] == ["img0.png", "img1.png"]
    for index, result in enumerate(results):
        expected = model.predict(decode_image(str(resized / f"img{index}.png"), 32, 3).numpy()[None], verbose=0)[0]
        assert [result[c] for c in CLASSES] == pytest.approx(expected, abs=1e-6)

    held_out = official_test_folder(tmp_path / "held-out", images, recorded)
    code, _, err = labkit_command(["evaluate", out, "--data-dir", held_out, "--out", tmp_path / "eval"], capsys)
    assert code == 0, err
    tested = json.loads((tmp_path / "eval" / "metrics.json").read_text())["test"]
    trained = json.loads((out / "metrics.json").read_text())
    assert tested["images"] == trained["test"]["images"] == len(images)
    for key in ("accuracy", "balanced_accuracy"):
        assert tested[key] == pytest.approx(trained[key], abs=1e-12), key
    assert read_csv(tmp_path / "eval" / "report.csv") == read_csv(out / "report.csv")


@pytest.mark.slow
def test_the_demo_trains_its_profile_on_the_embedded_set(lab, lesions, tmp_path, monkeypatch, capsys, adam_instances):
    """No data folder: the embedded set is made with the demo's sizes, and the demo's schedule, precise BatchNorm
    statistics and validation split apply (here shortened to one epoch at 32 px on the small fixture set)."""
    made = []
    monkeypatch.setattr(lab, "isic2018_task3_dataset", lambda *args, **kwargs: made.append((args, kwargs)) or lesions)
    monkeypatch.setattr("labkit.models.transfer.keras_cache_dir", lambda: tmp_path)  # no cached ImageNet file
    code, out, err = run_lab_inprocess(lab, ["--out", str(tmp_path / "run"), "--img-size", "32", "--epochs", "1",
                                             "--quiet"], capsys)
    assert code == 0, err
    demo = lab.DEMO
    assert made == [((demo["n_images"], demo["image_px"]), {"min_per_class": demo["min_per_class"]})]
    assert (f"demo profile: embedded synthetic seven-class lesions ({demo['n_images']} images, at least "
            f"{demo['min_per_class']} of each class), 32×32, 1 epochs, batch {demo['batch_size']}, cosine schedule, "
            "precise BatchNorm statistics.") in out
    assert "UNTRAINED ResNet50" in out  # the demo never downloads
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert settings["demo"] and settings["precise_bn"] and settings["weights"] == "none"
    assert (settings["lr_schedule"], settings["val_split"]) == ("cosine", demo["val_split"])
    assert isinstance(adam_instances[-1]._learning_rate, keras.optimizers.schedules.CosineDecay)


def fake_metrics(scale):
    per_class = {c: {"precision": scale * 0.5, "recall": scale * 0.25, "f1": scale * 0.3, "support": 3,
                     "auc": scale * 0.8} for c in CLASSES}
    return {"accuracy": 0.6 * scale, "balanced_accuracy": 0.4 * scale, "macro_auc": 0.7 * scale,
            "macro_f1": 0.3 * scale, "epochs_run": 15 if scale == 1 else 10, "train_seconds": 100.0 * scale,
            "test": {"per_class": per_class}}


def test_comparison_table_puts_overall_and_per_class_numbers_side_by_side(lab):
    rows = lab.comparison_rows({"ce": fake_metrics(1.0), "ce+focal": fake_metrics(1.2)})
    table = {row["metric"]: row for row in rows}
    assert list(table)[:4] == ["accuracy", "balanced accuracy", "macro auc", "macro f1"]
    assert len(rows) == 4 + 4 * 7 + 2
    assert table["balanced accuracy"]["ce"] == pytest.approx(0.4)
    assert table["balanced accuracy"]["ce+focal − ce"] == pytest.approx(0.08)
    assert table["DF recall"]["ce+focal"] == pytest.approx(0.3) and table["VASC auc"]["ce"] == pytest.approx(0.8)
    assert table["epochs"]["ce"] == 15 and table["epochs"]["ce+focal"] == 10


def test_compare_reuses_finished_losses_and_picks_the_model_on_validation(lab, tmp_path, capsys):
    from labkit.run_folder import RunFolder, write_csv, write_json

    run = RunFolder.create(tmp_path / "run")
    # Both losses already finished (as when --resume meets a completed --compare): no training happens.
    for name, folder, val_f1, scale in (("ce", "ce", 0.5, 1.2), ("ce+focal", "ce_focal", 0.7, 1.0)):
        sub = run.path / folder
        sub.mkdir()
        write_json(sub / "config.json", {"settings": {"loss": name}})
        write_json(sub / "metrics.json", {**fake_metrics(scale), "monitor": "val_f1_macro", "loss": name,
                                          "data": {"layout": "test"},
                                          "best": {"epoch": 2, "val_f1_macro": val_f1},
                                          "final": {"epoch": 3, "val_f1_macro": val_f1 - 0.1}})
        write_csv(sub / "history.csv", [{"epoch": e, "loss": 1.0 / e} for e in (1, 2, 3)])
        (sub / "model.keras").write_bytes(folder.encode())
    metrics = lab.report_losses(run, {"ce": run.path / "ce", "ce_focal": run.path / "ce_focal"})

    # The better validation F1 (ce+focal) wins even though ce has the better test numbers here.
    assert (run.path / "model.keras").read_bytes() == b"ce_focal"
    assert metrics["chosen_by_validation"] == "ce+focal" and metrics["best"] == {"epoch": 2, "val_f1_macro": 0.7}
    assert metrics["epochs_run"] == 15 and metrics["train_seconds"] == pytest.approx(220.0)  # chosen; both
    assert set(metrics["variants"]) == {"ce", "ce+focal"} and metrics["data"] == {"layout": "test"}
    history = read_csv(run.path / "history.csv")
    assert [(row["loss_function"], row["epoch"]) for row in history] == [("ce", 1), ("ce", 2), ("ce", 3), ("ce+focal", 1),
                                                                  ("ce+focal", 2), ("ce+focal", 3)]
    table = {row["metric"]: row for row in read_csv(run.path / "comparison.csv")}
    assert table["accuracy"]["ce"] == pytest.approx(0.72) and table["accuracy"]["ce+focal"] == pytest.approx(0.6)
    assert "| balanced accuracy | 0.4800 | 0.4000 | -0.0800 |" in (run.path / "comparison.md").read_text()



@pytest.mark.slow
def test_real_compare_trains_both_losses_and_reports_their_own_numbers(lab_runner, lesions, tmp_path):
    """--compare for real at the tiny size: ce/ and ce_focal/ are finished runs, and every number of the parent's
    files is read from their metrics.json and history.csv."""
    out = tmp_path / "run"
    code, _, stderr = lab_runner("resnet50_classification", ["--data-dir", lesions, "--out", out, *TINY, "--compare"])
    assert code == 0, stderr
    children = {"ce": out / "ce", "ce+focal": out / "ce_focal"}
    for child in children.values():
        for name in RUN_FILES:
            assert (child / name).is_file(), (child.name, name)
    for name in ("comparison.csv", "comparison.md", "history.csv", "metrics.json", "model.keras", "config.json",
                 "comparison.png", "variants.csv", "variants.md"):
        assert (out / name).is_file(), name
    child = {loss: json.loads((folder / "metrics.json").read_text()) for loss, folder in children.items()}
    assert {loss: m["loss"] for loss, m in child.items()} == {"ce": "ce", "ce+focal": "ce+focal"}
    metrics = json.loads((out / "metrics.json").read_text())

    chosen = max(child, key=lambda loss: child[loss]["best"]["val_f1_macro"])  # on validation, never on test
    assert metrics["chosen_by_validation"] == chosen and metrics["best"] == child[chosen]["best"]
    assert (out / "model.keras").read_bytes() == (children[chosen] / "model.keras").read_bytes()
    assert metrics["train_seconds"] == pytest.approx(sum(m["train_seconds"] for m in child.values()), abs=0.01)
    for loss in child:
        for key in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1"):
            assert metrics["variants"][loss][key] == child[loss][key], (loss, key)
    table = {row["metric"]: row for row in read_csv(out / "comparison.csv")}
    for loss in child:
        assert table["accuracy"][loss] == pytest.approx(child[loss]["accuracy"], abs=1e-4)
        assert table["macro auc"][loss] == pytest.approx(child[loss]["macro_auc"], abs=1e-4)
        assert table["MEL recall"][loss] == pytest.approx(child[loss]["test"]["per_class"]["MEL"]["recall"], abs=1e-4)
        assert table["epochs"][loss] == child[loss]["epochs_run"] == 1
    difference = child["ce+focal"]["accuracy"] - child["ce"]["accuracy"]
    assert table["accuracy"]["ce+focal − ce"] == pytest.approx(difference, abs=1e-4)
    history = read_csv(out / "history.csv")
    assert [(row["loss_function"], row["epoch"]) for row in history] == [("ce", 1), ("ce+focal", 1)]
    for row, loss in zip(history, child):
        assert row["val_f1_macro"] == pytest.approx(read_csv(children[loss] / "history.csv")[0]["val_f1_macro"])
    assert json.loads((out / "config.json").read_text())["settings"]["compare"] is True


def test_explicit_splits_are_used_and_the_missing_one_is_carved_by_lesion(lesions, tmp_path):
    rows = list(csv.reader(open(lesions / "ISIC2018_Task3_Training_GroundTruth" /
                                "ISIC2018_Task3_Training_GroundTruth.csv", newline="")))
    test_csv = tmp_path / "test.csv"
    with open(test_csv, "w", newline="") as handle:
        csv.writer(handle).writerows(rows[:1] + rows[1:15])  # the first 14 images as a given test split
    inputs = {"train": (lesions / "ISIC2018_Task3_Training_Input",
                        lesions / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"),
              "test": (lesions / "ISIC2018_Task3_Training_Input", test_csv)}
    splits, layout, origin = lesion_splits(None, inputs, val_split=0.15, test_split=0.15, seed=42)
    assert layout == "ISIC 2018 Task 3"
    assert origin["test"] == "given" and origin["val"].startswith("carved")
    assert [p.stem for p in splits["test"].paths] == [r[0] for r in rows[1:15]]
    assert len(splits["train"]) + len(splits["val"]) == 56
    lesion_of = groupings(lesions)  # found one folder above the training CSV, as in the official layout
    assert splits["train"].groups == [lesion_of[p.stem] for p in splits["train"].paths]
    train_lesions = {lesion_of[p.stem] for p in splits["train"].paths}
    assert not train_lesions & {lesion_of[p.stem] for p in splits["val"].paths}
    assert set(splits["val"].labels) == set(range(7))


@pytest.mark.parametrize("argv, message", [
    (["--train-images", "x"], "--train-images and --train-csv go together"),
    (["--loss", "dice"], "argument --loss: invalid choice"),
    (["--val-split", "1.5"], "1.5 is not between 0 and 1"),
])
def test_usage_errors_are_one_line_with_exit_code_2(lab_runner, argv, message, tmp_path):
    code, _, stderr = lab_runner("resnet50_classification", [*argv, "--out", tmp_path / "run"])
    assert code == 2 and message in stderr and "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ")


def test_missing_image_stops_with_its_name(lab_runner, lesions, tmp_path):
    data = tmp_path / "isic"
    (data / "ISIC2018_Task3_Training_Input").mkdir(parents=True)
    for path in sorted((lesions / "ISIC2018_Task3_Training_Input").iterdir())[1:]:  # drop the first image
        (data / "ISIC2018_Task3_Training_Input" / path.name).symlink_to(path)
    (data / "ISIC2018_Task3_Training_GroundTruth").symlink_to(lesions / "ISIC2018_Task3_Training_GroundTruth")
    first = sorted((lesions / "ISIC2018_Task3_Training_Input").iterdir())[0].stem
    code, _, stderr = lab_runner("resnet50_classification", ["--data-dir", data, "--out", tmp_path / "run", *TINY])
    assert code == 2 and stderr.startswith(f"error: image {first} listed in ") and "--skip-missing" in stderr
    assert "Traceback" not in stderr


def test_unreachable_imagenet_weights_stop_with_the_file_to_place(lab_runner, lesions, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    argv = ["--data-dir", lesions, "--out", tmp_path / "run", *TINY[:-3], "--weights", "imagenet", "--quiet"]
    code, _, stderr = lab_runner("resnet50_classification", argv)
    assert code == 2, stderr
    assert "ImageNet weights for resnet50 could not be fetched" in stderr
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in stderr and "--weights none" in stderr


def test_help_lists_the_lab_flags_with_course_defaults(lab, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lab.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for flag in ("--loss", "--focal-gamma", "--focal-alpha", "--class-weights", "--augment", "--weights",
                 "--freeze-backbone", "--compare", "--skip-missing", "--test-csv", "--bn-momentum"):
        assert flag in text
    assert "course default: 15 for ce, 10 for focal and ce+focal" in text and "course default: 0.001" in text

