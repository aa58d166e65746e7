"""Run folders (atomic files, refusing to clobber) and the shared fit path (history, best model, resume, NaN)."""

import errno
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import CrashAt

from labkit import LabkitInputError, dice_coef, get_unet, loss_dice_plot, train_unet
from labkit.data import array_dataset
from labkit.history import summarize
from labkit.run_folder import RunFolder, atomic_write, read_csv, write_json
from labkit.run_manifest import MANIFEST, record_folder, record_written
from labkit.runtime import resolve_precision
from labkit.training import TrainingDiverged, balanced_class_weight, compile_model, fit


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"ok": 1})

    def half_then_crash(tmp):
        with open(tmp, "w") as handle:
            handle.write('{"trunc')
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_crash)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_write_json_keeps_non_finite_numbers_readable(tmp_path):
    write_json(tmp_path / "m.json", {"hd95": float("inf"), "x": np.float32(0.5)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"hd95": "inf", "x": 0.5}


def test_run_folder_refuses_to_clobber(tmp_path):
    run = RunFolder.create(tmp_path / "run")
    run.write_json("config.json", {})
    with pytest.raises(LabkitInputError, match="unfinished run"):
        RunFolder.create(tmp_path / "run")
    run.write_json("metrics.json", {})
    with pytest.raises(LabkitInputError, match="finished run.*--overwrite or --resume"):
        RunFolder.create(tmp_path / "run")
    assert RunFolder.create(tmp_path / "run", resume=True).finished
    fresh = RunFolder.create(tmp_path / "run", overwrite=True)
    assert [p.name for p in fresh.path.iterdir()] == [MANIFEST]
    with pytest.raises(LabkitInputError, match="no run to resume"):
        RunFolder.create(tmp_path / "other", resume=True)


def finished_run(path):
    """A finished run as labs leave it: run files, a figure, a checkpoint, TensorBoard's event files, a temporary a
    killed write left, a child run, and a sub-folder whose files the run recorded."""
    run = RunFolder.create(path)
    for name in ("config.json", "metrics.json"):
        run.write_json(name, {"settings": {}})
    run.write_text("curves.png", "png")
    run.write_text("backup/state.json", "{}")
    events = run.file("tensorboard") / "train" / "events.out.tfevents.1"
    events.parent.mkdir(parents=True)
    events.write_text("e")
    record_folder(run.file("tensorboard"))
    run.file(".model.keras.tmp").write_text("killed mid-write")  # the temporary of a file labkit writes
    record_written(run.file("model.keras"))
    child = RunFolder.create(run.file("lr=0.1"))
    child.write_json("metrics.json", {})
    linked = run.file("frozen") / "model.keras"
    linked.parent.mkdir()
    linked.write_text("a hard link in a lab")
    record_written(linked)
    return run


#: Files a student keeps beside a run (names that look like labkit's included) and files inside labkit's folders,
#: with what the refusal names: the file, or the folder holding it when labkit never wrote into that folder.
FOREIGN = [("report.docx", "report.docx"), ("summary.xlsx", "summary.xlsx"), ("comparison.pptx", "comparison.pptx"),
           ("curves_mine.png", "curves_mine.png"), ("history.csv", "history.csv"),
           ("backup/thesis.tex", "backup/thesis.tex"), ("tensorboard/my_notes.txt", "tensorboard/my_notes.txt"),
           ("lr=0.1/raw.png", "lr=0.1/raw.png"), ("frozen/data.csv", "frozen/data.csv"), ("models/x.nii", "models/x.nii"),
           (".model.keras.abc1.tmp", ".model.keras.abc1.tmp"), ("notes/", "notes")]


@pytest.mark.parametrize("foreign, named", FOREIGN)
def test_overwrite_refuses_a_folder_holding_any_file_labkit_did_not_write(tmp_path, foreign, named):
    run = finished_run(tmp_path / "run")
    target = run.path / foreign
    if foreign.endswith("/"):
        target.mkdir()
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("the user's")
    before = {p.relative_to(run.path): p.read_bytes() if p.is_file() else None for p in run.path.rglob("*")}
    with pytest.raises(LabkitInputError) as error:
        RunFolder.create(run.path, overwrite=True)
    message = str(error.value)
    assert "\n" not in message and str(run.path) in message
    assert f"holds {named}, which labkit did not write" in message  # the first foreign file is named
    after = {p.relative_to(run.path): p.read_bytes() if p.is_file() else None for p in run.path.rglob("*")}
    assert after == before  # nothing deleted, nothing changed


def test_overwrite_removes_exactly_what_labkit_wrote(tmp_path):
    run = finished_run(tmp_path / "run")
    fresh = RunFolder.create(run.path, overwrite=True)
    assert [p.name for p in fresh.path.iterdir()] == [MANIFEST] and not fresh.finished
    assert json.loads(run.file(MANIFEST).read_text())["files"] == []


def test_overwrite_refuses_a_data_folder_without_a_run(tmp_path):
    (tmp_path / "data" / "Image").mkdir(parents=True)
    (tmp_path / "data" / "Image" / "a.png").write_text("x")
    with pytest.raises(LabkitInputError, match=r"--overwrite: .*data holds Image/a.png, which labkit did not write"):
        RunFolder.create(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "Image" / "a.png").read_text() == "x"


def test_a_run_folder_without_a_manifest_is_never_overwritten_whatever_its_file_names(tmp_path):
    legacy = tmp_path / "old"
    (legacy / "fold-1").mkdir(parents=True)
    write_json(legacy / "config.json", {"settings": {"epochs": 2}})
    for name in ("metrics.json", "history.csv", "samples.png", "fold-1/per_case.csv"):
        (legacy / name).write_text("x")
    with pytest.raises(LabkitInputError, match="kept no list of its files: delete it yourself"):
        RunFolder.create(legacy, overwrite=True)
    assert sorted(p.name for p in legacy.iterdir()) == ["config.json", "fold-1", "history.csv", "metrics.json",
                                                       "samples.png"]


@pytest.mark.parametrize("make_obstacle, named", [
    (lambda out: out.write_text("a file"), "it is a file"),
    (lambda out: (out.parent.mkdir(), (out.parent / "sub").write_text("x")), "sub is a file"),
])
def test_an_out_that_cannot_be_a_folder_is_refused_before_anything_is_written(tmp_path, make_obstacle, named):
    out = tmp_path / "runs" / "sub" / "run" if "sub" in named else tmp_path / "run"
    if "sub" in named:
        (tmp_path / "runs").mkdir()
        (tmp_path / "runs" / "sub").write_text("x")
    else:
        make_obstacle(out)
    with pytest.raises(LabkitInputError, match=rf"--out {re.escape(str(out))} cannot be a run folder.*{named}"):
        RunFolder.create(out)


def test_an_out_that_cannot_be_written_is_refused_with_the_reason(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(LabkitInputError, match=r"--out .*run: cannot write there \(.*Read-only file system"):
        RunFolder.create(tmp_path / "run")


def test_write_table_writes_csv_and_markdown(tmp_path):
    run = RunFolder.create(tmp_path)
    run.write_table("comparison", [{"method": "mlp", "acc": 0.91234}, {"method": "vgg", "acc": 0.5}])
    assert read_csv(tmp_path / "comparison.csv") == [{"method": "mlp", "acc": 0.91234}, {"method": "vgg", "acc": 0.5}]
    assert (tmp_path / "comparison.md").read_text().splitlines()[2] == "| mlp | 0.9123 |"


def tiny_data(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size, 1)).astype(np.float32)
    return images, (images > 0.5).astype(np.float32)


def make_model():
    keras.utils.set_random_seed(0)
    return compile_model(get_unet((16, 16, 1), base=2), 1e-2, "dice", metrics=[dice_coef])


def test_fit_records_history_and_best_model(tmp_path):
    run = RunFolder.create(tmp_path)
    images, masks = tiny_data()
    history = fit(make_model(), array_dataset(images, masks, 4), array_dataset(images, masks, 4), 3, run=run,
                  monitor="val_dice_coef", verbose=0)
    rows = read_csv(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] == history["epoch"]
    assert {"loss", "dice_coef", "val_loss", "val_dice_coef", "seconds"} <= set(rows[0])
    best = int(np.argmax(history["val_dice_coef"]))
    reloaded = compile_model(keras.saving.load_model(tmp_path / "model.keras"), 1e-2, "dice", metrics=[dice_coef])
    val_dice = reloaded.evaluate(images, masks, batch_size=4, verbose=0, return_dict=True)["dice_coef"]
    assert val_dice == pytest.approx(history["val_dice_coef"][best], abs=1e-4)  # model.keras is the best epoch
    summary = summarize(history, "val_dice_coef")
    assert summary["best"]["epoch"] == best + 1 and summary["epochs_run"] == 3
    assert summary["final"]["epoch"] == 3
    assert summary["train_seconds"] == pytest.approx(sum(history["seconds"]), abs=0.01)


def history_without_time(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_a_run_killed_mid_epoch_resumes_to_the_history_and_weights_of_an_uninterrupted_run(tmp_path):
    """Shuffled, augmented batches and dropout: the resumed epochs see the batches, weights, optimizer state and
    dropout masks of the uninterrupted run, so both end equal (exactly: one thread, the same ops in the same order)."""
    images, masks = tiny_data()
    data = lambda: (array_dataset(images, masks, 4, augment=True, shuffle=True, seed=5),  # noqa: E731
                    array_dataset(images, masks, 4))

    def model():
        keras.utils.set_random_seed(0)
        return compile_model(get_unet((16, 16, 1), base=2, dropout=0.3), 1e-2, "dice", metrics=[dice_coef])

    whole = model()
    expected = fit(whole, *data(), 4, run=RunFolder.create(tmp_path / "whole"), monitor="val_dice_coef", verbose=0)

    run = RunFolder.create(tmp_path / "killed")
    run.write_json("config.json", {"settings": {}})
    with pytest.raises(KeyboardInterrupt):  # the kill comes before epoch 2 is committed: epoch 1 is what it keeps
        fit(model(), *data(), 4, run=run, monitor="val_dice_coef", verbose=0, callbacks=[CrashAt(2)])
    kept = run.file("history.csv").read_bytes()
    assert [r["epoch"] for r in read_csv(run.file("history.csv"))] == [1]

    resumed_model = model()
    history = fit(resumed_model, *data(), 4, run=RunFolder.create(run.path, resume=True), monitor="val_dice_coef",
                  verbose=0)
    rows = read_csv(run.file("history.csv"))
    assert run.file("history.csv").read_bytes().startswith(kept)  # epoch 1's row byte for byte
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] == history["epoch"]
    assert history_without_time(rows) == history_without_time(read_csv(tmp_path / "whole" / "history.csv"))
    assert history["loss"] == expected["loss"]
    for mine, theirs in zip(resumed_model.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    best = [keras.saving.load_model(p / "model.keras").get_weights() for p in (run.path, tmp_path / "whole")]
    for mine, theirs in zip(*best):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("damage, message", [
    ("none", r"no checkpoint in .*: starting from epoch 1"),
    ("state", r"the checkpoint .*state.json cannot be read \(JSONDecodeError\): starting from epoch 1"),
    ("newest", r"the checkpoint of epoch 2 cannot be read .*; resuming after epoch 1 instead"),
])
def test_a_missing_or_damaged_checkpoint_is_one_line_and_a_safe_choice(tmp_path, capsys, damage, message):
    images, masks = tiny_data()
    run = RunFolder.create(tmp_path)
    run.write_json("config.json", {"settings": {}})
    fit(make_model(), array_dataset(images, masks, 4), None, 2, run=run, monitor="loss", verbose=0)
    backup = run.file("backup")
    if damage == "none":
        for path in backup.iterdir():
            path.unlink()
    elif damage == "state":
        (backup / "state.json").write_text('{"checkpoints": [{"epo')
    else:
        (backup / "epoch-2.weights.h5").write_bytes((backup / "epoch-2.weights.h5").read_bytes()[:200])
    capsys.readouterr()
    history = fit(make_model(), array_dataset(images, masks, 4), None, 3, run=RunFolder.create(tmp_path, resume=True),
                  monitor="loss", verbose=0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert history["epoch"] == [1, 2, 3]
    assert [r["epoch"] for r in read_csv(run.file("history.csv"))] == [1, 2, 3]


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    images, masks = tiny_data()
    masks[5] = np.nan  # a corrupt target in batch 2 of epoch 1
    run = RunFolder.create(tmp_path)
    model = compile_model(get_unet((16, 16, 1), base=2), 1e-3, "binary_crossentropy")
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 2"):
        fit(model, array_dataset(images, masks, 4), None, 2, run=run, monitor="loss", verbose=0)


class PoisonAt(keras.callbacks.Callback):
    """At the start of `epoch` (1-based), note the bytes of the run's model.keras, then make every weight NaN."""

    def __init__(self, run, epoch):
        super().__init__()
        self.run, self.epoch, self.saved = run, epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.saved = self.run.file("model.keras").read_bytes()
            self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])


def test_a_nan_loss_keeps_the_last_good_model_byte_for_byte_and_exits_1(tmp_path, capsys):
    """The README's promise: a NaN loss stops training, the last good model.keras stays as it was, exit code 1."""
    from labkit.lab import run_lab

    images, masks = tiny_data()
    run = RunFolder.create(tmp_path)
    poison = PoisonAt(run, epoch=3)

    def main(argv=None):
        model = make_model()
        fit(model, array_dataset(images, masks, 4), array_dataset(images, masks, 4), 4, run=run,
            monitor="val_loss", verbose=0, callbacks=[poison], stop_dead=False)

    with pytest.raises(SystemExit) as exit_info:
        run_lab(main, [])
    assert exit_info.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(r"training diverged: loss became nan at epoch 3, step 1; last good model "
                                          r"kept in .*model.keras", errors[0]), errors
    assert poison.saved and run.file("model.keras").read_bytes() == poison.saved  # byte for byte
    assert [row["epoch"] for row in read_csv(run.file("history.csv"))] == [1, 2]  # no NaN row
    reloaded = keras.saving.load_model(run.file("model.keras"))
    assert all(np.isfinite(w).all() for w in reloaded.get_weights())


@pytest.mark.parametrize("bf16, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_precision_follows_the_cpu(monkeypatch, bf16, expected):
    monkeypatch.setattr("labkit.runtime.cpu_has_bf16", lambda: bf16)
    assert resolve_precision("auto") == expected
    assert resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8")


def test_train_unet_course_api_learns_and_plots():
    images, masks = tiny_data(n=16, seed=1)
    keras.utils.set_random_seed(0)
    model, history = train_unet(get_unet((16, 16, 1), base=4), images[:12], masks[:12], images[12:], masks[12:],
                                batch_size=4, epochs=6, learning_rate=1e-2, metrics=[dice_coef], verbose=0,
                                loss="dice")
    assert len(history.history["loss"]) == 6 == len(history.epoch)
    assert history.history["loss"][-1] < history.history["loss"][0]  # it learns
    figure = loss_dice_plot(history, "tiny")
    assert [axis.get_ylabel() for axis in figure.axes] == ["loss", "dice_coef"]


def test_balanced_class_weights_are_n_over_classes_times_class_count():
    # 4 labels, 2 classes present: class 0 (3 images) 4 / (2·3), class 2 (1 image) 4 / (2·1); class 1 absent
    assert balanced_class_weight([0, 0, 2, 0]) == pytest.approx({0: 4 / 6, 2: 2.0})
