"""--lr-schedule: constant, or a warm-up then cosine decay that a resumed run continues where it stopped."""

import math

import keras
import pytest
from conftest import CrashAt

from labkit.optimizers import learning_rate_schedule
from labkit.training import steps_per_epoch


@pytest.mark.parametrize("step, expected", [(0, 0.0), (5, 0.5e-3), (10, 1e-3), (55, 0.5e-3), (100, 0.0)])
def test_cosine_warms_up_over_a_tenth_then_decays_to_zero(step, expected):
    schedule = learning_rate_schedule(1e-3, "cosine", total_steps=100)
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_cosine_follows_half_a_cosine_after_the_warm_up():
    schedule = learning_rate_schedule(2e-3, "cosine", total_steps=200)
    for step in (20, 65, 110, 155, 199):
        fraction = (step - 20) / 180
        assert float(schedule(step)) == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * fraction)), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("n_items, batch, steps", [(12, 4, 3), (13, 4, 4), (1, 8, 1), (42, 4, 11)])
def test_an_epoch_has_one_step_per_batch_the_last_one_partial(n_items, batch, steps):
    assert steps_per_epoch(n_items, batch) == steps


def test_constant_is_a_plain_number_and_bad_names_are_one_line():
    assert learning_rate_schedule(1e-4, "constant") == 1e-4
    with pytest.raises(ValueError, match="--lr-schedule 'step'.*constant, cosine"):
        learning_rate_schedule(1e-4, "step")
    with pytest.raises(ValueError, match="needs the run's steps"):
        learning_rate_schedule(1e-4, "cosine")


class LearningRateLog(keras.callbacks.Callback):
    """The optimizer's step and learning rate at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.rows.append((int(optimizer.iterations), float(optimizer.learning_rate)))


def test_a_resumed_run_continues_the_schedule_where_it_stopped(tmp_path):
    import numpy as np

    from labkit import dice_coef, get_unet
    from labkit.data import array_dataset
    from labkit.run_folder import RunFolder
    from labkit.training import compile_model, fit

    rng = np.random.default_rng(0)
    images = rng.random((8, 16, 16, 1)).astype(np.float32)
    masks = (images > 0.5).astype(np.float32)
    data = lambda: (array_dataset(images, masks, 4), array_dataset(images, masks, 4))  # noqa: E731
    schedule = learning_rate_schedule(1e-2, "cosine", total_steps=4 * 2)  # 4 epochs of 2 steps

    def model():
        keras.utils.set_random_seed(0)
        return compile_model(get_unet((16, 16, 1), base=2), schedule, "dice", metrics=[dice_coef])

    run = RunFolder.create(tmp_path)
    run.write_json("config.json", {"settings": {}})
    first = LearningRateLog()
    with pytest.raises(KeyboardInterrupt):
        fit(model(), *data(), 4, run=run, monitor="val_dice_coef", verbose=0, callbacks=[first, CrashAt(2)])
    resumed = LearningRateLog()
    fit(model(), *data(), 4, run=RunFolder.create(tmp_path, resume=True), monitor="val_dice_coef", verbose=0,
        callbacks=[resumed])
    expected = [(2 * e, float(schedule(2 * e))) for e in (1, 2, 3, 4)]
    flat = lambda rows: [value for row in rows for value in row]  # noqa: E731
    assert flat(first.rows) == pytest.approx(flat(expected[:2]))
    # epoch 2 was killed before its backup, so it runs again from epoch 1's step counter, then 3 and 4 follow on
    assert flat(resumed.rows) == pytest.approx(flat(expected[1:]))
    assert resumed.rows[-1][1] == 0.0


@pytest.mark.parametrize("name", ["lab1_mlp", "lab2_cnn", "lab3_cnn", "lab4_unet", "lab4_activation_map",
                                  "mobilenet_segmentation", "unet3d_segmentation", "resnet50_classification"])
def test_help_names_the_schedule_the_demo_really_uses(name, capsys):
    from conftest import load_lab

    lab = load_lab(name)
    with pytest.raises(SystemExit):
        lab.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"(course default: constant; demo: {lab.DEMO.get('lr_schedule', 'constant')})" in text
