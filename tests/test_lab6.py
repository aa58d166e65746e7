"""Lab 6 (recurrent networks): windows and scaling worked out by hand, LSTM parameter counts by formula, padded and
masked batches against batch size 1, the course's readers on small real-format files, both lab scripts end to end,
a sweep, and one-line errors for bad input."""

import csv
import datetime
import json

import keras
import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from labkit.data.layouts.stock import read_stock_csv
from labkit.data.layouts.tractography import load_streamlines, read_streamlines
from labkit.data.sequences import MyBatchGenerator, pad_streamlines, series_windows
from labkit.data.synthetic import stock_dataset, tract_dataset
from labkit.errors import LabkitInputError
from labkit.models.lstm import lstm_regressor, streamline_classifier
from labkit.run_folder import read_csv

# --- Task 1: windows, scaling, the CSV reader -------------------------------------------------------------------


def test_windows_and_scaling_worked_out_by_hand():
    # training 10..50: the scaler maps v to (v − 10) / 40, so 0, .25, .5, .75, 1; validation 60 → 1.25, 30 → .5
    windows = series_windows([10, 20, 30, 40, 50], [60, 30], window=3)
    np.testing.assert_allclose(windows.x_train[..., 0], [[0, .25, .5], [.25, .5, .75]])
    np.testing.assert_allclose(windows.y_train[:, 0], [.75, 1])
    # the validation windows start in the training tail (30, 40, 50) and every validation day is a target
    np.testing.assert_allclose(windows.x_val[..., 0], [[.5, .75, 1], [.75, 1, 1.25]])
    np.testing.assert_allclose(windows.y_val[:, 0], [1.25, .5])
    np.testing.assert_allclose(windows.unscale([[0.5], [1.25]]), [[30], [60]])
    assert windows.x_train.shape == (2, 3, 1) and windows.x_train.dtype == np.float32


def test_the_scaler_never_sees_the_validation_series():
    # a validation series far outside the training range leaves the training scaling unchanged
    low, high = series_windows([1, 2, 3, 4, 5], [6], 2), series_windows([1, 2, 3, 4, 5], [1000], 2)
    np.testing.assert_array_equal(low.x_train, high.x_train)
    assert high.y_val[0, 0] == pytest.approx((1000 - 1) / 4)


@pytest.mark.parametrize("n_train, window, message", [(60, 60, "60 values, fewer than the window of 60"),
                                                      (10, 60, "10 values")])
def test_a_series_no_longer_than_the_window_is_refused(n_train, window, message):
    with pytest.raises(LabkitInputError, match=message):
        series_windows(np.arange(n_train), [1.0], window, names=("train.csv", "val.csv"))


def write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def test_the_csv_reader_reverses_the_newest_first_rows_and_finds_the_column_by_name(tmp_path):
    path = write_csv(tmp_path / "train_data_stock.csv", ["Close", "Date", "Open", "Volume"],
                     [[9, "1/5/2017", "1,003.5", 7], [9, "1/4/2017", 1002, 7], [9, "1/3/2017", 1001.25, 7]])
    dates, values = read_stock_csv(path)
    assert dates == ["1/3/2017", "1/4/2017", "1/5/2017"]
    np.testing.assert_array_equal(values, [1001.25, 1002, 1003.5])


def test_the_embedded_series_is_in_the_course_layout(tmp_path):
    folder = stock_dataset(n_train=80, n_val=12, root=tmp_path)
    with open(folder / "train_data_stock.csv") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["Date", "Open", "High", "Low", "Close", "Volume"] and len(rows) == 81
    _, train = read_stock_csv(folder / "train_data_stock.csv")
    dates, val = read_stock_csv(folder / "val_data_stock.csv")
    assert float(rows[1][1]) == train[-1] and float(rows[-1][1]) == train[0]  # newest row first in the file
    day = lambda text: datetime.datetime.strptime(text, "%m/%d/%Y").date()  # noqa: E731
    assert len(val) == 12 and 1 <= (day(dates[0]) - day(rows[1][0])).days <= 3  # the validation days come next


# --- models --------------------------------------------------------------------------------------------------------


def lstm_weights(units, inputs):
    """An LSTM's weights by hand: four gates, each a recurrent kernel, an input kernel and a bias."""
    return 4 * (units * (units + inputs) + units)


@pytest.mark.parametrize("layers, units, expected", [
    (4, 20, lstm_weights(20, 1) + 3 * lstm_weights(20, 20) + 21),  # the course's model
    (2, 40, lstm_weights(40, 1) + lstm_weights(40, 40) + 41),
    (1, 3, lstm_weights(3, 1) + 4),
])
def test_regressor_parameter_counts(layers, units, expected):
    model = lstm_regressor(window=60, n_layers=layers, units=units)
    assert model.count_params() == expected
    assert model.output_shape == (None, 1)
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == layers


@pytest.mark.parametrize("layers, units, n_class, expected", [
    # the first LSTM is bidirectional (two LSTMs on the 3 coordinates), the next one reads both directions (2·units)
    (4, 5, 2, 2 * lstm_weights(5, 3) + lstm_weights(5, 10) + 2 * lstm_weights(5, 5) + 6),
    (2, 8, 2, 2 * lstm_weights(8, 3) + lstm_weights(8, 16) + 9),
    (1, 5, 3, 2 * lstm_weights(5, 3) + 3 * 11),
])
def test_streamline_classifier_parameter_counts(layers, units, n_class, expected):
    model = streamline_classifier(n_layers=layers, units=units, n_class=n_class)
    assert model.count_params() == expected
    assert model.output_shape == (None, 1 if n_class == 2 else n_class)


# --- Task 2: padding and masking against batch size 1 ------------------------------------------------------------


@pytest.fixture(scope="module")
def streamlines():
    rng = np.random.default_rng(3)
    return [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 9, 2, 7, 9)]


def test_a_padded_batch_gives_every_streamline_its_batch_size_1_output_loss_and_gradient(streamlines):
    keras.utils.set_random_seed(0)
    model = streamline_classifier(units=5)
    labels = np.array([[0], [1], [1], [0], [1]], np.float32)
    bce = keras.losses.BinaryCrossentropy()

    def loss_and_gradients(x, y):
        with tf.GradientTape() as tape:
            loss = bce(y, model(x, training=False))
        return float(loss), tape.gradient(loss, model.trainable_weights)

    # the course's way: one unpadded streamline per batch
    alone = np.concatenate([model(s[None], training=False) for s in streamlines])
    singles = [loss_and_gradients(s[None], y[None]) for s, y in zip(streamlines, labels)]
    # one padded batch: the same outputs, its loss and gradient the mean of the single ones
    padded = pad_streamlines(streamlines)
    np.testing.assert_allclose(model(padded, training=False), alone, atol=1e-6)
    loss, gradients = loss_and_gradients(padded, labels)
    assert loss == pytest.approx(np.mean([s[0] for s in singles]), abs=1e-6)
    for i, gradient in enumerate(gradients):
        np.testing.assert_allclose(gradient, np.mean([s[1][i] for s in singles], axis=0), atol=1e-6)
    # however far beyond the longest streamline the batch is padded
    np.testing.assert_allclose(model(pad_streamlines(streamlines, length=30), training=False), alone, atol=1e-6)
    # the mask is what makes it so: the same weights behind a mask that matches nothing change the short ones' outputs
    unmasked = streamline_classifier(units=5, mask_value=12345.0)
    unmasked.set_weights(model.get_weights())
    outputs = np.asarray(unmasked(pad_streamlines(streamlines), training=False))
    longest = [len(s) == 9 for s in streamlines]
    np.testing.assert_allclose(outputs[longest], alone[longest], atol=1e-6)
    assert np.abs(outputs[~np.array(longest)] - alone[~np.array(longest)]).min() > 1e-5  # 10× the tolerance above


def test_the_course_batch_generator_pads_different_streamlines(streamlines):
    batches = MyBatchGenerator(streamlines, [0, 1, 1, 0, 1], batch_size=2, shuffle=True, seed=0)
    assert len(batches) == 2  # the handout's floor(len / batch_size)
    seen = []
    for i in range(len(batches)):
        x, y = batches[i]
        assert x.shape[0] == 2 and x.shape[2] == 3 and y.shape == (2, 1)
        for row in x:  # each row is one streamline followed by zero padding
            match = [k for k, s in enumerate(streamlines) if np.array_equal(row[:len(s)], s) and not row[len(s):].any()]
            seen += match[:1]
    assert len(set(seen)) == 4  # four different streamlines, not one repeated (the handout's bug)
    order = batches.indexes.copy()
    batches.on_epoch_end()
    assert sorted(batches.indexes) == sorted(order) and list(batches.indexes) != list(order)  # a new order
    # the handout's calling pattern: the generator straight into fit, for training and validation
    model = streamline_classifier(n_layers=1, units=2)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(batches, epochs=1, validation_data=MyBatchGenerator(streamlines, [0, 1, 1, 0, 1], 5), verbose=0)
    assert np.isfinite(history.history["val_loss"][0])


# --- Task 2: the .trk reader --------------------------------------------------------------------------------------


def write_trk(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.streamlines.save(nib.streamlines.Tractogram(lines, affine_to_rasmm=np.eye(4)), str(path))
    return path


def test_load_streamlines_reads_every_subject_and_bundle_in_both_path_conventions(tmp_path):
    lines = {(s, b): [np.full((n, 3), 10 * i + j + 0.5, np.float32) for j, n in enumerate((4, 6, 5))]
             for i, (s, b) in enumerate([("s1", "CST_left"), ("s1", "CST_right"), ("s2", "CST_left"),
                                         ("s2", "CST_right")])}
    for (subject, bundle), streamlines in lines.items():
        write_trk(tmp_path / "HCP_lab" / subject / f"{bundle}.trk", streamlines)
    expected = [s for key in [("s1", "CST_left"), ("s1", "CST_right"), ("s2", "CST_left"), ("s2", "CST_right")]
                for s in lines[key]]
    for data_path in (str(tmp_path / "HCP_lab") + "/", tmp_path / "HCP_lab"):  # the handout's 'HCP_lab/' and a Path
        X, y = load_streamlines(data_path, ["s1", "s2"], ["CST_left", "CST_right"], None)
        assert y == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]
        for got, want in zip(X, expected):
            np.testing.assert_allclose(got, want, atol=1e-5)
    X, y = load_streamlines(tmp_path / "HCP_lab", ["s2"], ["CST_right"], 2, seed=0)  # a draw without replacement
    assert len(X) == 2 and y == [0, 0] and len({float(x[0, 0]) for x in X}) == 2


def test_the_embedded_tracts_are_real_trk_files_in_the_course_layout(tmp_path):
    folder = tract_dataset(subjects=("a", "b"), n_streamlines=5, root=tmp_path)
    assert sorted(p.name for p in (folder / "b").iterdir()) == ["CST_left.trk", "CST_right.trk"]
    left, right = read_streamlines(folder / "a" / "CST_left.trk"), read_streamlines(folder / "a" / "CST_right.trk")
    assert len(left) == 5 and all(20 <= len(s) <= 60 and s.shape[1] == 3 for s in left)
    # the bundles bend to their own side: the top ends of the left tract lie left of the right tract's
    assert max(s[-1, 0] for s in left) < min(s[-1, 0] for s in right)


# --- the lab scripts ----------------------------------------------------------------------------------------------

SERIES = ["--window", "10", "--units", "4", "--layers", "2", "--batch-size", "8", "--quiet"]
TRACTS = ["--n-tracts", "4", "--units", "3", "--layers", "2", "--batch-size", "4", "--lr", "1e-2", "--quiet"]


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory):
    return stock_dataset(n_train=60, n_val=15, root=tmp_path_factory.mktemp("stock"))


@pytest.fixture(scope="module")
def tracts_dir(tmp_path_factory):
    return tract_dataset(n_streamlines=6, root=tmp_path_factory.mktemp("tracts"))


@pytest.mark.slow
def test_timeseries_run_writes_its_outputs_and_the_model_reproduces_its_predictions(lab_runner, tmp_path, series_dir):
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner("lab6_timeseries", ["--data-dir", series_dir, "--out", out, "--epochs", "2",
                                                          *SERIES])
    assert code == 0, stderr
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "prediction.png",
                 "predictions.csv"):
        assert (out / name).is_file(), name
    assert [row["epoch"] for row in read_csv(out / "history.csv")] == [1, 2]
    columns = set(read_csv(out / "history.csv")[0])
    assert {"loss", "mean_absolute_error", "val_loss", "val_mean_absolute_error"} <= columns
    rows, metrics = read_csv(out / "predictions.csv"), json.loads((out / "metrics.json").read_text())
    _, val = read_stock_csv(series_dir / "val_data_stock.csv")
    assert len(rows) == 15 and [r["value"] for r in rows] == pytest.approx(val)
    errors = [abs(r["predicted"] - r["value"]) for r in rows]
    assert metrics["validation"]["mae"] == pytest.approx(np.mean(errors))
    # the saved model, fed the lab's windows, predicts what predictions.csv holds (in the series' units)
    _, train = read_stock_csv(series_dir / "train_data_stock.csv")
    windows = series_windows(train, val, 10)
    model = keras.saving.load_model(out / "model.keras")
    np.testing.assert_allclose(windows.unscale(model.predict(windows.x_val, verbose=0)[:, 0]),
                               [r["predicted"] for r in rows], rtol=1e-4)


@pytest.mark.slow
def test_streamline_run_writes_its_outputs_and_scores_every_validation_streamline(lab_runner, tmp_path, tracts_dir):
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner("lab6_streamlines", ["--data-dir", tracts_dir, "--out", out, "--epochs", "2",
                                                           *TRACTS])
    assert code == 0, stderr
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion_matrix.png",
                 "streamlines.png", "predictions.csv", "report.txt"):
        assert (out / name).is_file(), name
    rows, metrics = read_csv(out / "predictions.csv"), json.loads((out / "metrics.json").read_text())
    assert len(rows) == 8  # 4 streamlines × 2 bundles of the one validation subject
    assert {r["image"].split("/")[0] for r in rows} == {"601127"}  # the validation subject's streamlines
    correct = np.mean([r["true"] == r["predicted"] for r in rows])
    assert metrics["validation"]["accuracy"] == pytest.approx(correct)
    assert "24 training and 8 validation streamlines" in stdout


@pytest.mark.slow
def test_a_sweep_over_the_units_trains_and_compares_two_variants(lab_runner, tmp_path, series_dir):
    out = tmp_path / "sweep"
    code, _, stderr = lab_runner("lab6_timeseries", ["--data-dir", series_dir, "--out", out, "--epochs", "1",
                                                     *SERIES, "--sweep", "units=2,3"])
    assert code == 0, stderr
    rows = read_csv(out / "comparison.csv")
    assert sorted(r["units"] for r in rows) == [2, 3]
    for units in (2, 3):
        child = json.loads((out / f"units={units}" / "config.json").read_text())["settings"]
        assert child["units"] == units and (out / f"units={units}" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_killed_and_resumed_streamline_run_ends_as_the_uninterrupted_one(tmp_path, capsys, tracts_dir):
    # shuffled padded batches, dropout behind a mask, a bidirectional layer: killed at the end of epoch 2 (before
    # its record: the run keeps epoch 1), resumed
    from conftest import CrashAt, load_lab, run_lab_inprocess

    lab = load_lab("lab6_streamlines")
    argv = ["--data-dir", str(tracts_dir), *TRACTS, "--layers", "1", "--epochs", "2", "--deterministic", "--precision",
            "float32"]
    assert run_lab_inprocess(lab, [*argv, "--out", str(tmp_path / "whole")], capsys)[0] == 0
    fit = lab.fit
    lab.fit = lambda *args, **options: fit(*args, **{**options, "callbacks": [CrashAt(2)]})
    assert run_lab_inprocess(lab, [*argv, "--out", str(tmp_path / "killed")], capsys)[0] == 130
    lab.fit = fit
    assert [row["epoch"] for row in read_csv(tmp_path / "killed" / "history.csv")] == [1]
    assert run_lab_inprocess(lab, [*argv, "--out", str(tmp_path / "killed"), "--resume"], capsys)[0] == 0
    drop_seconds = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert drop_seconds(read_csv(tmp_path / "killed" / "history.csv")) == \
        drop_seconds(read_csv(tmp_path / "whole" / "history.csv"))
    assert (tmp_path / "killed" / "predictions.csv").read_text() == (tmp_path / "whole" / "predictions.csv").read_text()


# --- bad input: one line naming the file, exit code 2 --------------------------------------------------------------


def bad_series(tmp_path, series_dir, case):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train_data_stock.csv", "val_data_stock.csv"):
        (data / name).write_text((series_dir / name).read_text())
    if case == "missing csv":
        (data / "val_data_stock.csv").unlink()
        return data, r"val_data_stock\.csv: file not found"
    if case == "no Open column":
        write_csv(data / "train_data_stock.csv", ["Date", "Close"], [["1/3/2017", 5]])
        return data, r"train_data_stock\.csv: no 'Open' column \(columns: Date, Close\)"
    if case == "shorter than the window":
        lines = (data / "train_data_stock.csv").read_text().splitlines()
        (data / "train_data_stock.csv").write_text("\n".join(lines[:9]) + "\n")
        return data, r"train_data_stock\.csv: 8 values, fewer than the window of 10"
    (data / "train_data_stock.csv").write_text("Date,Open\n1/3/2017,high\n")
    return data, r"train_data_stock\.csv: row 2: Open 'high' is not a number"


def assert_one_error_line(code, stderr, pattern):
    import re

    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert re.search(pattern, errors[0]), errors[0]


@pytest.mark.parametrize("lab", ["lab6_timeseries", "lab6_streamlines"])
@pytest.mark.parametrize("flags, pattern", [(["--folds", "3"], r"--folds does not apply to lab6_\w+: "),
                                            (["--img-size", "64"], r"--img-size does not apply to lab6_\w+: ")])
def test_flags_without_a_meaning_here_are_refused(lab_runner, tmp_path, lab, flags, pattern):
    code, _, stderr = lab_runner(lab, [*flags, "--out", tmp_path / "run"])
    assert_one_error_line(code, stderr, pattern)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["missing csv", "no Open column", "shorter than the window", "not a number"])
def test_bad_series_input_is_one_line_naming_the_file(lab_runner, tmp_path, series_dir, case):
    data, pattern = bad_series(tmp_path, series_dir, case)
    code, _, stderr = lab_runner("lab6_timeseries", ["--data-dir", data, "--out", tmp_path / "run", *SERIES])
    assert_one_error_line(code, stderr, pattern)


@pytest.mark.parametrize("case", ["missing subject", "missing bundle", "no streamlines", "not a trk file",
                                  "too few streamlines"])
def test_bad_tract_input_is_one_line_naming_the_file(lab_runner, tmp_path, tracts_dir, case):
    data = tmp_path / "data"
    for subject in ("613538", "599671", "599469", "601127"):
        (data / subject).mkdir(parents=True)
        for bundle in ("CST_left", "CST_right"):
            (data / subject / f"{bundle}.trk").write_bytes((tracts_dir / subject / f"{bundle}.trk").read_bytes())
    bad = data / "599671" / "CST_right.trk"
    if case == "missing subject":
        for path in (data / "601127").iterdir():
            path.unlink()
        (data / "601127").rmdir()
        pattern = r"601127: subject folder not found \(subjects in .*: 599469, 599671, 613538\)"
    elif case == "missing bundle":
        bad.unlink()
        pattern = r"599671/CST_right\.trk: bundle file not found \(bundles of 599671: CST_left\)"
    elif case == "no streamlines":
        write_trk(bad, [])
        pattern = r"599671/CST_right\.trk: no streamlines in the file"
    elif case == "not a trk file":
        bad.write_text("not a tractogram")
        pattern = r"599671/CST_right\.trk: not a readable TrackVis file"
    else:
        pattern = r"613538/CST_left\.trk: 6 streamlines, fewer than the 7 asked for"
    argv = ["--data-dir", data, "--out", tmp_path / "run", *TRACTS]
    extra = ["--n-tracts", "7"] if case == "too few streamlines" else []
    code, _, stderr = lab_runner("lab6_streamlines", argv + extra)
    assert_one_error_line(code, stderr, pattern)
