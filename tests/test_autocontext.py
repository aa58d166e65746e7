"""Auto-context (labkit.autocontext): out-of-fold context maps, the step table, and the Lab 5 run at tiny size."""

import json
from pathlib import Path

import numpy as np
import pytest

from labkit import autocontext, flags, lab
from labkit.run_folder import read_csv

N_TRAIN, N_VAL, SIZE = 8, 2, 4
#: Step s's validation Dice in the fake lab, so the table can be checked against the children.
FAKE_DICE = {1: 0.61, 2: 0.74, 3: 0.7}


class Memoriser:
    """A fake model that knows which images it trained on: its map of an image is 1 where it trained on it, 0 where
    not, plus its identity / 10 (0 the full model, i the model without inner fold i)."""

    def __init__(self, trained_on, identity):
        self.trained_on, self.identity = set(trained_on), identity

    def predict(self, images, batch_size=None, verbose=0):
        ids = images[:, 0, 0, 0].round().astype(int)
        values = [float(i in self.trained_on) + self.identity / 10 for i in ids]
        return np.stack([np.full((SIZE, SIZE, 1), v, np.float32) for v in values])


def fake_lab(argv=None):
    """A lab with the four auto-context hooks; image i is constant i, the last two are the validation slices."""
    parser = flags.lab_parser("fake lab", {})
    autocontext.add_arguments(parser)
    args = parser.parse_args(argv)
    if autocontext.run_steps(fake_lab, args, argv):
        return
    settings, run = lab.start_run("fake_lab", args, {"epochs": 1}, {})
    pairs = [(Path(f"Im{i}_0.png"), Path(f"Im{i}_0_mask.png")) for i in range(N_TRAIN + N_VAL)]
    images = np.arange(N_TRAIN + N_VAL, dtype=np.float32)[:, None, None, None] * np.ones((1, SIZE, SIZE, 1), np.float32)
    masks = np.zeros_like(images)
    parts = autocontext.step_parts(settings, {"train": (pairs[:N_TRAIN], images[:N_TRAIN], masks[:N_TRAIN]),
                                              "val": (pairs[N_TRAIN:], images[N_TRAIN:], masks[N_TRAIN:])})
    run.write_json("inputs.json", {part: {p[0].name: x[..., 1:].mean() if x.shape[-1] > 1 else None
                                          for p, x in zip(pairs_, x_)} for part, (pairs_, x_, _) in parts.items()})
    fold = settings.context_fold
    model = Memoriser(parts["train"][1][:, 0, 0, 0].round().astype(int), fold[0] if fold else 0)
    autocontext.save_maps(run, model, parts, settings)
    step = settings.autocontext_step or 1
    best = {"epoch": 1, "val_dice_coef": FAKE_DICE[step] - 0.05}
    run.write_json("metrics.json", {"monitor": "val_dice_coef", "best": best, "final": best, "epochs_run": 1,
                                    "train_seconds": 2.0, "validation": {"dice": {"mean": FAKE_DICE[step],
                                                                                  "std": 0.01 * step}}})


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("autocontext") / "run"
    fake_lab(["--autocontext", "3", "--autocontext-folds", "2", "--out", str(out), "--quiet"])
    return out


def inner_folds():
    """Inner fold (1 or 2) of each training image, as the children split them."""
    pairs = [(Path(f"Im{i}_0.png"),) for i in range(N_TRAIN)]
    return {i: fold for fold in (1, 2) for i in autocontext.inner_fold(pairs, (fold, 2), seed=42)[1]}


def test_children_are_the_steps_and_their_fold_models(fake_run):
    children = sorted(p.name for p in fake_run.iterdir() if p.is_dir())
    assert children == ["step-1", "step-1-fold-1", "step-1-fold-2", "step-2", "step-2-fold-1", "step-2-fold-2",
                        "step-3"]
    assert all((fake_run / c / "metrics.json").is_file() for c in children)
    assert sorted(p.name for p in fake_run.glob("context-*.npz")) == ["context-2.npz", "context-3.npz"]
    assert (fake_run / "autocontext.png").stat().st_size > 1000


def test_second_channel_is_the_previous_steps_out_of_fold_prediction(fake_run):
    folds = inner_folds()
    assert set(folds.values()) == {1, 2}
    for step in (2, 3):
        inputs = json.loads((fake_run / f"step-{step}" / "inputs.json").read_text())
        for i in range(N_TRAIN):
            # out of fold: made by the model that left image i's fold out (identity = fold, did not train on it);
            # an in-fold map of the full model would be 1.0
            assert inputs["train"][f"Im{i}_0.png"] == pytest.approx(folds[i] / 10, abs=1e-3)
        for i in range(N_TRAIN, N_TRAIN + N_VAL):  # validation: the full previous model (identity 0), not trained on it
            assert inputs["val"][f"Im{i}_0.png"] == pytest.approx(0.0, abs=1e-3)
    first = json.loads((fake_run / "step-1" / "inputs.json").read_text())
    assert set(first["train"].values()) == {None}  # step 1: the image alone
    held = json.loads((fake_run / "step-2-fold-1" / "inputs.json").read_text())
    assert sorted(held["predict"]) == sorted(f"Im{i}_0.png" for i, f in folds.items() if f == 1)
    assert not set(held["train"]) & set(held["predict"])


def test_table_rows_are_the_childrens_metrics(fake_run):
    rows = read_csv(fake_run / "autocontext.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for row in rows:
        child = json.loads((fake_run / f"step-{row['step']}" / "metrics.json").read_text())
        assert float(row["val_dice"]) == child["validation"]["dice"]["mean"]
        assert float(row["val_dice_std"]) == child["validation"]["dice"]["std"]
        assert float(row["best_val_dice_coef"]) == child["best"]["val_dice_coef"]
    metrics = json.loads((fake_run / "metrics.json").read_text())
    assert metrics["best_step"] == 2 and metrics["train_seconds"] == 7 * 2.0
    assert metrics["best"] == json.loads((fake_run / "step-3" / "metrics.json").read_text())["best"]
    assert "| 2 | image + step 1 map |" in (fake_run / "autocontext.md").read_text()


def test_resume_keeps_every_finished_child(fake_run, capsys):
    before = (fake_run / "step-2" / "inputs.json").stat().st_mtime_ns
    fake_lab(["--resume", "--out", str(fake_run), "--quiet"])
    assert capsys.readouterr().out.count("finished earlier, kept") == 7
    assert (fake_run / "step-2" / "inputs.json").stat().st_mtime_ns == before


def test_bad_flags():
    from labkit.errors import LabkitInputError

    with pytest.raises(LabkitInputError, match="at least 2 folds"):
        fake_lab(["--autocontext", "2", "--autocontext-folds", "1"])
    pairs = [(Path(f"Im{i}_0.png"),) for i in range(3)]
    with pytest.raises(LabkitInputError, match="--autocontext-folds 4"):
        autocontext.inner_fold(pairs, (1, 4), seed=1)
    with pytest.raises(LabkitInputError, match="holds no map of b.png"):
        path = Path(autocontext.write_maps(Path(pytest.importorskip("tempfile").mkdtemp()) / "m.npz",
                                           {"a.png": np.zeros((2, 2, 1))}))
        autocontext.read_maps(path, ["a.png", "b.png"])


# --- Lab 5 end to end ------------------------------------------------------------------------------------------


LAB_FILES = ("config.json", "split.csv", "history.csv", "metrics.json", "curves.png", "samples.png", "per_image.csv",
             "model.keras")


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    """``--autocontext 2`` with 2 folds on 12 tiny CT slices of 4 patients: 4 models of 1 epoch."""
    from conftest import load_lab
    from labkit.data.synthetic import ct_dataset

    import keras

    ct_dir = ct_dataset(n_patients=4, n_slices=3, size=32, root=tmp_path_factory.mktemp("ct"))
    out = tmp_path_factory.mktemp("lab5") / "autocontext"
    load_lab("lab5_segmentation").main(["--task", "ct", "--data-dir", str(ct_dir), "--out", str(out), "--autocontext",
                                        "2", "--autocontext-folds", "2", "--img-size", "32", "--epochs", "1",
                                        "--base", "4", "--batch-size", "4", "--quiet"])
    keras.mixed_precision.set_global_policy("float32")
    return ct_dir, out


@pytest.mark.slow
def test_lab5_autocontext_writes_the_table_the_curve_and_two_steps(lab_run):
    import keras

    _, out = lab_run
    for name in ("autocontext.csv", "autocontext.md", "autocontext.png", "metrics.json", "context-2.npz"):
        assert (out / name).is_file(), name
    for step in ("step-1", "step-2"):
        assert all((out / step / name).is_file() for name in LAB_FILES), step
    rows = read_csv(out / "autocontext.csv")
    assert [r["input"] for r in rows] == ["image", "image + step 1 map"]
    assert float(rows[1]["val_dice"]) == json.loads((out / "step-2" / "metrics.json").read_text())[
        "validation"]["dice"]["mean"]
    channels = [keras.saving.load_model(out / s / "model.keras").input_shape[-1] for s in ("step-1", "step-2")]
    assert channels == [1, 2]
    keras.backend.clear_session()


@pytest.mark.slow
def test_lab5_training_maps_come_from_the_model_that_left_them_out(lab_run):
    """Step 2's map of a training slice is the step-1 fold model's prediction (it never trained on the slice), not
    the full step-1 model's (it did); validation slices get the full model's map."""
    import keras
    from labkit.data.layouts.ct_mri import CT_LEVELS, load_class_slices

    ct_dir, out = lab_run
    split = {r["item"]: r["split"] for r in read_csv(out / "step-1-fold-1" / "split.csv")}
    step1 = {r["item"]: r["split"] for r in read_csv(out / "step-1" / "split.csv")}
    held_out = sorted(name for name, s in step1.items() if s == "train" and name not in split)
    val = sorted(name for name, s in step1.items() if s == "val")
    assert held_out and val
    with np.load(out / "context-2.npz") as context:
        assert sorted(context.files) == sorted(step1)  # every slice has exactly one map
        maps = {name: context[name].astype(np.float32) for name in held_out + val}
    pairs = [(ct_dir / "Image" / name, ct_dir / "Mask" / name) for name in held_out + val]
    images, _ = load_class_slices(pairs, 32, CT_LEVELS, one_hot=False)
    fold_model = keras.saving.load_model(out / "step-1-fold-1" / "model.keras")
    full_model = keras.saving.load_model(out / "step-1" / "model.keras")
    out_of_fold, in_fold = (m.predict(images, verbose=0) for m in (fold_model, full_model))
    n = len(held_out)
    given = np.stack([maps[name] for name in held_out + val])
    np.testing.assert_allclose(given[:n], out_of_fold[:n], atol=2e-3)  # float16 storage
    assert np.abs(given[:n] - in_fold[:n]).max() > 1e-2  # the in-fold map would have been another one
    np.testing.assert_allclose(given[n:], in_fold[n:], atol=2e-3)
    keras.backend.clear_session()


def test_lab5_autocontext_bad_flag_is_one_error_line(lab_runner, tmp_path):
    code, _, stderr = lab_runner("lab5_segmentation", ["--autocontext", "2", "--autocontext-folds", "1",
                                                       "--out", tmp_path / "x", "--quiet"])
    assert code == 2 and stderr.strip() == "error: --autocontext-folds 1: out-of-fold maps need at least 2 folds"


@pytest.mark.slow
def test_predict_and_evaluate_run_the_steps_in_order_and_reproduce_the_last_steps_validation(lab_run, tmp_path):
    import shutil

    import keras

    import labkit

    ct_dir, out = lab_run
    val = [r["item"] for r in read_csv(out / "step-1" / "split.csv") if r["split"] == "val"]
    for sub in ("Image", "Mask"):
        (tmp_path / "val" / sub).mkdir(parents=True)
        for name in val:
            shutil.copy(ct_dir / sub / name, tmp_path / "val" / sub / name)
    run = labkit.load_run(out)
    assert (run.family, run.channels, run.image_size) == ("lab5", 1, (32, 32))
    # by hand: step 1 on the slice, step 2 on the slice and step 1's map (stored as float16, as training stored it)
    images = np.stack([labkit.load_image(tmp_path / "val" / "Image" / name, 32, 32) for name in val])
    step1, step2 = (keras.saving.load_model(out / s / "model.keras") for s in ("step-1", "step-2"))
    maps = np.asarray(step1.predict(images, verbose=0)).astype(np.float16).astype(np.float32)
    expected = np.asarray(step2.predict(np.concatenate([images, maps], axis=-1), verbose=0), np.float32)
    results = run.predict([tmp_path / "val" / "Image" / name for name in val])
    np.testing.assert_allclose(np.stack([r["probabilities"] for r in results]), expected, atol=1e-5)
    tested = run.evaluate(tmp_path / "val", out=tmp_path / "evaluation")["test"]
    validation = json.loads((out / "step-2" / "metrics.json").read_text())["validation"]
    assert tested["dice"]["mean"] == pytest.approx(validation["dice"]["mean"], abs=1e-9)
    with pytest.raises(labkit.LabkitInputError, match="auto-context step"):
        labkit.load_run(out / "step-2")
    keras.backend.clear_session()
