"""A run whose network has died (constant predictions, flat loss) stops with exit code 1 and says so."""

import json

import keras
import numpy as np
import pytest

from labkit import dice_coef, get_unet
from labkit.callbacks import DeadRunWatch
from labkit.data import array_dataset
from labkit.run_folder import RunFolder, read_csv
from labkit.training import TrainingDied, compile_model, fit


def tiny_data(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((n, size, size, 1)).astype(np.float32)
    return images, (images > 0.5).astype(np.float32)


def killed_unet(kill_after_epoch=None):
    """A tiny Dice-loss U-Net; its output layer is saturated at 0 (kernel 0, bias -60) once `kill_after_epoch` ends:
    the sigmoid's gradient underflows, so nothing brings it back, as in a real dead run."""
    keras.utils.set_random_seed(0)
    model = compile_model(get_unet((16, 16, 1), base=2), 1e-3, "dice", metrics=[dice_coef])

    def kill():
        head = model.get_layer("mask")
        kernel, bias = head.get_weights()
        head.set_weights([np.zeros_like(kernel), np.full_like(bias, -60.0)])

    if kill_after_epoch is None:
        return model, []
    killer = keras.callbacks.LambdaCallback(  # as the next epoch begins, after epoch k was recorded
        on_epoch_begin=lambda epoch, logs: kill() if epoch == kill_after_epoch else None)
    return model, [killer]


def test_a_dead_network_stops_after_five_epochs_and_keeps_the_best_model(tmp_path):
    images, masks = tiny_data()
    model, callbacks = killed_unet(kill_after_epoch=1)
    run = RunFolder.create(tmp_path)
    with pytest.raises(TrainingDied, match=r"died: constant predictions .* for 5 epochs \(2–6\).*epoch 1"):
        fit(model, array_dataset(images, masks, 4), array_dataset(images, masks, 4), 20, run=run,
            monitor="val_dice_coef", verbose=0, callbacks=callbacks)
    rows = read_csv(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]  # stopped, not 20 epochs
    assert all(r["loss"] == pytest.approx(1.0, abs=1e-6) for r in rows[1:])  # the Dice loss at its ceiling
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stopped"]["reason"] == "dead" and metrics["epochs_run"] == 6
    assert metrics["best"]["epoch"] == 1  # the model before it died
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert np.ptp(reloaded.predict(images, verbose=0)) > 1e-3  # model.keras is the live epoch-1 model


def test_stop_dead_off_trains_every_epoch(tmp_path):
    images, masks = tiny_data()
    model, callbacks = killed_unet(kill_after_epoch=1)
    history = fit(model, array_dataset(images, masks, 4), array_dataset(images, masks, 4), 8,
                  run=RunFolder.create(tmp_path), monitor="val_dice_coef", verbose=0, callbacks=callbacks,
                  stop_dead=False)
    assert history["epoch"] == list(range(1, 9))
    assert history["loss"][-1] == pytest.approx(1.0, abs=1e-6)  # dead all along, yet it went on as asked
    assert not (tmp_path / "metrics.json").exists()


def test_a_learning_network_is_never_stopped(tmp_path):
    images, masks = tiny_data()
    model, _ = killed_unet()
    history = fit(model, array_dataset(images, masks, 4), array_dataset(images, masks, 4), 7, monitor="val_dice_coef",
                  verbose=0)
    assert history["epoch"] == list(range(1, 8))


@pytest.mark.parametrize(
    "outputs, losses, expected_dead",
    [
        (np.zeros((4, 8, 8, 1)), [1.0] * 5, True),                       # constant output, loss at its ceiling
        (np.full((4, 8, 8, 1), 0.3), [0.61, 0.61, 0.61, 0.61, 0.61], True),  # constant prior, flat BCE
        (np.ones((4, 8, 8, 1)), [0.640, 0.642, 0.638, 0.641, 0.639], True),  # all foreground; reshuffled batches
        (np.zeros((4, 8, 8, 1)), [0.9, 0.7, 0.5, 0.4, 0.3], False),      # empty probe predicted empty, still learning
        (np.linspace(0, 1, 256).reshape(4, 8, 8, 1), [1.0] * 5, False),  # predictions vary with the input
        (np.tile(np.eye(3)[[0]], (4, 1)), [1.1] * 5, True),              # a classifier that always says class 0
        (np.eye(3)[[0, 1, 2, 0]], [1.1] * 5, False),                     # a classifier that tells images apart
        # The 64-px demo that died at epoch 7: sigmoid outputs between 1e-9 and 5e-3, varying with the input (range
        # 5e-3, above `spread`) but all in the sigmoid's flat tail, and a Dice loss at 1.0.
        (np.geomspace(1e-9, 5e-3, 256).reshape(4, 8, 8, 1), [1.0] * 5, True),
        (1 - np.geomspace(1e-9, 5e-3, 256).reshape(4, 8, 8, 1), [0.64] * 5, True),  # saturated at all-foreground
        (np.tile([[0.996, 0.002, 0.002]], (64, 1)) + np.linspace(0, 2e-3, 64)[:, None] * [-1, 1, 0],
         [1.1] * 5, True),                                               # softmax saturated on class 0
        (np.linspace(0.40, 0.45, 256).reshape(4, 8, 8, 1), [0.69] * 5, False),  # one decision, yet not saturated
        (np.linspace(-3.0, -1.0, 256).reshape(4, 8, 8, 1), [1.0] * 5, False),   # a linear (hinge) score: not probabilities
        # A trained classifier, rightly sure that every probe image (all one class) is class 0: saturated and flat,
        # but its loss fell from 0.69 to 0.02, so it learnt; stopping it would lose a good run.
        (np.geomspace(1e-6, 5e-3, 8).reshape(8, 1), [0.69, 0.3, 0.05, 0.02, 0.02, 0.02, 0.02, 0.02], False),
        (np.geomspace(1e-6, 5e-3, 8).reshape(8, 1), [0.69, 0.5, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0], True),  # learnt nothing
    ],
)
def test_dead_means_constant_or_saturated_predictions_and_a_flat_loss(outputs, losses, expected_dead):
    watch = DeadRunWatch(probe=None, patience=5)
    watch.set_model(keras.Sequential([keras.Input((1,))]))
    watch.probe_outputs = lambda: outputs.reshape(-1, outputs.shape[-1])
    for epoch, loss in enumerate(losses):
        watch.on_epoch_end(epoch, {"loss": loss})
    assert (watch.died is not None) is expected_dead


@pytest.mark.parametrize("first_batch_loss, expected_dead", [(0.69, True), (None, False)])
def test_the_starting_loss_is_the_first_batch_not_an_epoch_that_blew_up(first_batch_loss, expected_dead):
    # A learning rate of 1: the first epoch's loss blows up to 4.6e16 while every ReLU dies, then the constant output
    # sits at a flat 0.53. Measured from the untrained network's first batch (0.69) that is no progress; only a
    # watch that saw no batch falls back on the first epoch's mean and cannot tell.
    watch = DeadRunWatch(probe=None, patience=5)
    watch.set_model(keras.Sequential([keras.Input((1,))]))
    watch.probe_outputs = lambda: np.full((64, 1), 0.22)
    if first_batch_loss is not None:
        watch.on_train_batch_end(0, {"loss": first_batch_loss})
        watch.on_train_batch_end(1, {"loss": 2e16})  # later batches do not move the start
    for epoch, loss in enumerate([4.6e16, 0.5323, 0.5302, 0.5312, 0.5303, 0.5306]):
        watch.on_epoch_end(epoch, {"loss": loss})
    assert (watch.died is not None) is expected_dead


def test_probe_outputs_reads_the_probe_batch():
    images, _ = tiny_data(n=4)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Lambda(lambda x: x * 0.0 + 0.25)])
    watch = DeadRunWatch(images)
    watch.set_model(model)
    assert watch.probe_outputs().shape == (4 * 16 * 16, 1) and np.ptp(watch.probe_outputs()) == 0.0
    watch.set_model(keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Identity()]))
    np.testing.assert_array_equal(watch.probe_outputs()[:, 0], images.reshape(-1))


@pytest.mark.slow
def test_lab_exits_1_and_says_the_network_died(lab_runner, tmp_path, monkeypatch):
    from labkit.data.synthetic import xray_dataset
    from labkit.callbacks import DeadRunWatch as Watch

    # Kill the network after epoch 1 the same way in the lab: its output layer saturates.
    original = Watch.on_epoch_end

    def kill_then_watch(self, epoch, logs=None):
        if epoch == 0:
            head = self.model.get_layer("mask")
            kernel, bias = head.get_weights()
            head.set_weights([np.zeros_like(kernel), np.full_like(bias, -60.0)])
        return original(self, epoch, logs)

    monkeypatch.setattr(Watch, "on_epoch_end", kill_then_watch)
    data = xray_dataset(n_images=8, size=32, root=tmp_path / "data")
    out = tmp_path / "run"
    argv = ["--data-dir", data, "--out", out, "--img-size", "16", "--base", "2", "--batch-size", "4", "--epochs",
            "12", "--loss", "dice", "--quiet"]
    code, stdout, stderr = lab_runner("lab4_unet", argv)
    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith("error: training stopped: the network died")
    assert json.loads((out / "metrics.json").read_text())["stopped"]["reason"] == "dead"
    assert len(read_csv(out / "history.csv")) == 6


@pytest.mark.slow
def test_a_learning_rate_that_kills_the_network_stops_the_lab_unless_no_stop_dead(lab_runner, tmp_path):
    # A real death, nothing patched: at lr 1 the first steps blow the BCE loss up (~1e16) and silence every ReLU, so
    # the U-Net gives one constant for every pixel from then on and its loss sits flat near 0.53.
    from labkit.data.synthetic import xray_dataset

    data = xray_dataset(n_images=8, size=32, root=tmp_path / "data")
    argv = ["--data-dir", data, "--img-size", "16", "--base", "2", "--batch-size", "2", "--epochs", "10", "--loss",
            "bce", "--lr", "1", "--seed", "42", "--quiet"]
    code, _, stderr = lab_runner("lab4_unet", [*argv, "--out", tmp_path / "stop"])
    assert code == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: training stopped: the network died: constant predictions")
    stopped = read_csv(tmp_path / "stop" / "history.csv")
    metrics = json.loads((tmp_path / "stop" / "metrics.json").read_text())
    assert metrics["stopped"]["reason"] == "dead" and metrics["epochs_run"] == len(stopped) == 6

    code, _, stderr = lab_runner("lab4_unet", [*argv, "--out", tmp_path / "go", "--no-stop-dead"])
    assert code == 0, stderr
    config = json.loads((tmp_path / "go" / "config.json").read_text())
    assert config["settings"]["stop_dead"] is False
    went_on = read_csv(tmp_path / "go" / "history.csv")
    assert [row["epoch"] for row in went_on] == list(range(1, 11))  # every epoch, though it was the same dead run:
    assert [row["loss"] for row in went_on[:6]] == pytest.approx([row["loss"] for row in stopped], rel=1e-4)
    assert "stopped" not in json.loads((tmp_path / "go" / "metrics.json").read_text())


@pytest.mark.slow
def test_demo_profile_at_tiny_size_ends_at_its_best(lab_runner, tmp_path):
    # The demo's recipe (He-initialised U-Net, lr 3e-4 warmed up then decayed along a cosine, 240 embedded X-rays),
    # shrunk to 32 px and base 4: it learns, and its last epoch is within 0.02 of its best (no collapse).
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner("lab4_unet", ["--loss", "dice", "--dropout", "0.2", "--base", "4", "--img-size",
                                                    "32", "--epochs", "8", "--out", out, "--quiet"])
    assert code == 0, stderr
    assert "demo profile" in stdout and "(cosine schedule)" in stdout
    rows = read_csv(out / "history.csv")
    dice = [row["val_dice_coef"] for row in rows]
    assert len(dice) == 8 and max(dice) > 0.85
    assert dice[-1] >= max(dice) - 0.02
