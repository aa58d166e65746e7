"""Lab 6's runs applied and scored: a series forecaster (Task 1) and a streamline classifier (Task 2).

Both read their inputs with the lab's own readers (`labkit.data.layouts.stock`, `labkit.data.layouts.tractography`)
and preprocess them with the lab's own functions (`labkit.data.sequences`) and the statistics of the run's training
data, which its ``metrics.json`` records: ``scaling`` (the training series' min and max) and ``standardization``
(the training points' mean and standard deviation).

* Series: ``labkit predict RUN prices.csv`` writes ``<name>_predictions.csv``: for every day after the first window,
  its value and the value the model predicted from the `window` days before it, in the series' own units, oldest
  first, then a last row ``next``, the forecast of the day after the file. ``labkit evaluate RUN --data-dir PAIR``
  scores a ``train_data_stock.csv`` / ``val_data_stock.csv`` pair as the lab scores its validation days (MAE and
  RMSE in the series' units, and the MAE of repeating the previous day).
* Streamlines: ``labkit predict RUN bundle.trk…`` writes one ``predictions.csv`` row per streamline (file, index,
  points, predicted bundle, each bundle's probability). ``labkit evaluate RUN --data-dir SUBJECTS`` scores every
  streamline of every bundle file of every subject folder (accuracy, balanced accuracy, AUC, F1).
"""

from pathlib import Path

import numpy as np

from labkit.data.layouts import subfolders
from labkit.data.layouts.stock import find_stock_csvs, read_stock_csv
from labkit.data.layouts.tractography import load_streamlines, read_streamlines
from labkit.data.sequences import minmax_scaler, pad_streamlines, series_inputs, series_windows, standardize
from labkit.errors import LabkitInputError, require
from labkit.evaluation.classification import (classification_report_rows, classification_report_text,
                                              classification_scores, prediction_rows)
from labkit.evaluation.series import forecast_scores
from labkit.inference import predict_arrays
from labkit.plots import confusion_matrix_figure, series_prediction_figure
from labkit.run_folder import write_csv
from labkit.trained.inputs import readable_inputs

#: The families of Lab 6's runs (`labkit.trained.run.lab_family`) and the files each one's `predict` takes.
SUFFIXES = {"series": ".csv", "streamlines": ".trk"}


def list_files(inputs, suffix):
    """The files to predict: every file given, and the `suffix` files of every folder given (and its subfolders).

    Raises:
        LabkitInputError: a path that does not exist, or no such file at all.
    """
    files = []
    for item in [inputs] if isinstance(inputs, (str, Path)) else list(inputs):
        item = Path(item)
        require(item.exists(), f"input not found: {item}")
        files += [item] if item.is_file() else sorted(p for p in item.rglob(f"*{suffix}") if p.is_file())
    require(files, f"no {suffix} files to predict in {', '.join(map(str, inputs))}")
    return files


def series_scaler(run):
    """The `MinMaxScaler` the run trained with, from ``scaling`` in its ``metrics.json``."""
    scaling = run.metrics.get("scaling")
    require(isinstance(scaling, dict) and {"min", "max"} <= set(scaling), f"{run.path}/metrics.json has no "
            "'scaling' (the training series' min and max): a Lab 6 run of an older labkit; train it again")
    try:
        return minmax_scaler(scaling["min"], scaling["max"])
    except (TypeError, ValueError):
        raise LabkitInputError(f"{run.path}/metrics.json: 'scaling' is {scaling!r}, not two numbers") from None


def forecast(run, scaled_windows, scaler, batch_size=8):
    """The model's predictions of scaled windows ``(n, window, 1)``, in the series' own units ``(n,)``."""
    outputs = predict_arrays(run.model, scaled_windows, batch_size)[:, 0]
    return scaler.inverse_transform(outputs.reshape(-1, 1).astype(np.float64))[:, 0]


def predict_series(run, inputs, out=None, batch_size=8, skip_bad_files=False):
    """One-step-ahead predictions of every day of course-format CSV files (see the module docstring).

    Returns:
        One dict per file: ``{"file", "name", "dates", "values", "predicted"}``, ``predicted[i]`` the forecast of
        day ``window + i`` (the last one: the day after the file).
    """
    window, column = int(run.number("window")), str(run.setting("column"))
    scaler = series_scaler(run)

    def read(path):
        dates, values = read_stock_csv(path, column)
        require(len(values) >= window, f"{path}: {len(values)} days, fewer than the run's window of {window}")
        return dates, values

    results = []
    for path, (dates, values) in readable_inputs(list_files(inputs, ".csv"), skip_bad_files, read):
        predicted = forecast(run, series_inputs(values, window, scaler), scaler, batch_size)
        name = path.stem
        if out is not None:
            rows = [{"date": d, "value": float(v), "predicted": float(p)}
                    for d, v, p in zip(dates[window:], values[window:], predicted)]
            write_csv(Path(out) / f"{name}_predictions.csv", rows + [{"date": "next", "value": "",
                                                                       "predicted": float(predicted[-1])}])
        results.append({"file": str(path), "name": name, "dates": dates, "values": values, "predicted": predicted})
    return results


def evaluate_series(run, data_dir, folder, batch_size=8):
    """The lab's validation scores on a held-out CSV pair, with the run's scaling; writes per_item.csv and
    prediction.png."""
    window, column = int(run.number("window")), str(run.setting("column"))
    train_csv, val_csv = find_stock_csvs(data_dir)
    _, train = read_stock_csv(train_csv, column)
    dates, values = read_stock_csv(val_csv, column)
    windows = series_windows(train, values, window, names=(train_csv, val_csv), scaler=series_scaler(run))
    predicted = forecast(run, windows.x_val, windows.scaler, batch_size)
    folder.write_csv("per_item.csv", [{"date": d, "value": float(v), "predicted": float(p)}
                                      for d, v, p in zip(dates, values, predicted)])
    folder.save_figure("prediction.png", series_prediction_figure(values, predicted, train[-3 * window:], dates,
                                                                  title=f"{run.name} on {Path(data_dir).name}"))
    return forecast_scores(values, predicted, train[-1]), "mae"


# --- Task 2: streamlines ---------------------------------------------------------------------------------------------


def standardization(run):
    """``(mean, std)`` of the training points, from ``standardization`` in the run's ``metrics.json``."""
    stats = run.metrics.get("standardization")
    require(isinstance(stats, dict) and {"mean", "std"} <= set(stats), f"{run.path}/metrics.json has no "
            "'standardization' (the training points' mean and std): not a finished Lab 6 streamline run")
    try:
        mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
    except (TypeError, ValueError):
        mean = std = np.zeros(0)
    require(mean.shape == std.shape == (3,) and np.all(std > 0), f"{run.path}/metrics.json: 'standardization' is "
            "not a mean and a positive std of 3 coordinates")
    return mean, std


def bundle_names(run):
    """The bundles the run tells apart, in output order (its ``--bundles``)."""
    names = [str(b) for b in run.setting("bundles")]
    require(len(names) == max(2, run.n_outputs), f"{run.path}/config.json: {len(names)} bundles for a model with "
            f"{run.n_outputs} output(s)")
    return names


def streamline_probabilities(run, streamlines, batch_size=8):
    """Each bundle's probability ``(n, bundles)`` of streamlines ``(points_i, 3)`` (in millimetres), standardised with
    the run's statistics and padded as the lab pads them."""
    mean, std = standardization(run)
    outputs = predict_arrays(run.model, pad_streamlines(standardize(streamlines, mean, std)), batch_size)
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[1] == 1 else outputs


def predict_streamlines(run, inputs, out=None, batch_size=8, skip_bad_files=False):
    """The bundle of every streamline of TrackVis files; with `out`, ``predictions.csv`` (see the module docstring).
    Returns the rows."""
    bundles = bundle_names(run)
    rows = []
    for path, streamlines in readable_inputs(list_files(inputs, ".trk"), skip_bad_files, read_streamlines):
        for index, (line, prob) in enumerate(zip(streamlines, streamline_probabilities(run, streamlines,
                                                                                      batch_size))):
            rows.append({"file": path.name, "streamline": index, "points": len(line),
                         "predicted": bundles[int(prob.argmax())], **{b: float(p) for b, p in zip(bundles, prob)}})
    if out is not None:
        write_csv(Path(out) / "predictions.csv", rows)
    return rows


def evaluate_streamlines(run, data_dir, folder, batch_size=8):
    """Accuracy, balanced accuracy, AUC and F1 over every streamline of every subject folder of `data_dir` (each
    with one ``<bundle>.trk`` per bundle of the run); writes per_item.csv, report.txt/.csv and
    confusion_matrix.png."""
    bundles = bundle_names(run)
    subjects = subfolders(data_dir)
    require(subjects, f"--data-dir {data_dir}: no subject folders (Lab 6 Task 2 reads <subject>/<bundle>.trk)")
    streamlines, truth, names = [], [], []
    for subject in subjects:  # every streamline of each bundle file, named subject/bundle/index
        lines, labels = load_streamlines(data_dir, [subject], bundles, None)
        streamlines += lines
        truth += labels
        first = {label: labels.index(label) for label in set(labels)}  # a bundle's streamlines come together
        names += [f"{subject}/{bundles[label]}/{i - first[label]}" for i, label in enumerate(labels)]
    truth = np.asarray(truth)
    probabilities = streamline_probabilities(run, streamlines, batch_size)
    folder.write_csv("per_item.csv", prediction_rows(names, truth, probabilities, bundles))
    folder.write_text("report.txt", classification_report_text(truth, probabilities, bundles))
    folder.write_csv("report.csv", classification_report_rows(truth, probabilities, bundles))
    folder.save_figure("confusion_matrix.png", confusion_matrix_figure(truth, probabilities, bundles,
                                                                       title=f"{run.name} on {Path(data_dir).name}"))
    return classification_scores(truth, probabilities, bundles), "balanced_accuracy"
