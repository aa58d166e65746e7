"""Lab 6 Task 1 (CM2003): stacked LSTMs predict the next value of a daily series from the previous T = 60 values.

The course's data: ``train_data_stock.csv`` and ``val_data_stock.csv`` (columns ``Date,Open,High,Low,Close,Volume``,
newest row first). The ``Open`` column of each is reversed to oldest first and scaled to [0, 1] with a
`MinMaxScaler` fitted on the training series only; every window of T values predicts the value after it, and the
validation windows start in the training series' tail, so every validation day is predicted
(`labkit.data.sequences.series_windows`). The model (`labkit.models.lstm.lstm_regressor`): 4 LSTM layers of 20
units, each followed by dropout 0.2, then Dense(1); MSE loss, MAE metric, Adam 1e-3, batch 16, 100 epochs. The task
then varies the units (20, 40, 60) and the window, e.g.

  python labs/lab6_timeseries.py --data-dir /DL_course_data/Lab5 --sweep units=20,40,60
  python labs/lab6_timeseries.py --data-dir /DL_course_data/Lab5 --sweep window=30,60,90

Without --data-dir it trains on an embedded synthetic series (a geometric Brownian motion with a trend and a slow
cycle, written as the two course CSVs) with a demo-sized profile (printed when it runs).

The run folder gets config.json, history.csv, model.keras (best epoch by validation loss), metrics.json (MSE and MAE
on the scaled validation series; MAE and RMSE in the series' units, against repeating the previous day's value; the
training series' min and max, ``scaling``, with which ``labkit predict`` applies the model to other series),
predictions.csv (each validation day's value and prediction), curves.png (loss and MAE) and prediction.png (the
validation series and its prediction, in the series' units).

example:
  python labs/lab6_timeseries.py
  python labs/lab6_timeseries.py --units 40 --window 30
"""


from labkit import flags, lab
from labkit.data.layouts.stock import find_stock_csvs, read_stock_csv
from labkit.data.pipeline import array_dataset
from labkit.data.sequences import scaler_range, series_windows
from labkit.data.synthetic.stock import stock_dataset
from labkit.evaluation.series import forecast_scores
from labkit.history import summarize
from labkit.models.lstm import lstm_regressor
from labkit.plots import plot_history, series_prediction_figure
from labkit.runtime import distribute
from labkit.training import compile_model, fit

COURSE = {"window": 60, "units": 20, "layers": 4, "dropout": 0.2, "column": "Open", "epochs": 100, "batch_size": 16,
          "lr": 1e-3, "seed": 42}
#: The demo: a shorter synthetic series and a few epochs.
DEMO = {"epochs": 8, "n_train": 600, "n_val": 100}
DEMO_TEXT = ("embedded synthetic series ({n_train} training and {n_val} validation days), window {window}, "
             "{layers} LSTM layers of {units} units, {epochs} epochs.")
FULL_COURSE_COMMAND = "python labs/lab6_timeseries.py --data-dir /path/to/Lab5 (100 epochs)"
MONITOR = "val_loss"
#: Shared lab flags that mean nothing for a series, with the reason given when one is passed.
NOT_USED = {"img_size": "the inputs are windows of a series (see --window)",
            "folds": "a series has one order: its validation days are the ones after its training days",
            "fold": "a series has one order: its validation days are the ones after its training days"}


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    parser.add_argument("--window", type=flags.positive_int, help="past values per prediction, T (course default: 60)")
    parser.add_argument("--units", type=flags.positive_int, help="units of every LSTM layer; the task tries 20, 40, 60 "
                        "(course default: 20)")
    parser.add_argument("--layers", type=flags.positive_int, help="stacked LSTM layers (course default: 4)")
    parser.add_argument("--dropout", type=flags.dropout_rate, help="dropout after every LSTM (course default: 0.2)")
    parser.add_argument("--column", help="the CSV column to predict (course default: Open)")
    args = parser.parse_args(argv)
    flags.refuse_unused(args, NOT_USED, "lab6_timeseries")
    return args


LAB = lab.Lab("lab6_timeseries", parse_args, COURSE, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return

    # Data: both CSVs oldest first, scaled with the training series' min and max, cut into windows.
    data_dir = settings.data_dir or stock_dataset(settings.n_train, settings.n_val)
    train_csv, val_csv = find_stock_csvs(data_dir)
    _, train_series = read_stock_csv(train_csv, settings.column)
    val_dates, val_series = read_stock_csv(val_csv, settings.column)
    windows = series_windows(train_series, val_series, settings.window, names=(train_csv, val_csv))
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    lab.save_config(run, settings, data_dir, 2, distribution=distribution)
    print(f"data: {len(train_series)} training and {len(val_series)} validation days of {settings.column!r} from "
          f"{data_dir}: {len(windows.x_train)} training and {len(windows.x_val)} validation windows of "
          f"{settings.window}")
    batch = distribution.global_batch_size
    train = array_dataset(windows.x_train, windows.y_train, batch, shuffle=True, seed=settings.seed)
    val = array_dataset(windows.x_val, windows.y_val, batch)

    # Model: stacked LSTMs and a linear output; MSE loss, MAE metric.
    with distribution.strategy.scope():
        model = lstm_regressor(settings.window, 1, settings.layers, settings.units, settings.dropout)
        compile_model(model, distribution.learning_rate, "mean_squared_error", metrics=["mean_absolute_error"])
    print(f"model: {settings.layers} LSTM layers of {settings.units} units, dropout {settings.dropout}, "
          f"{model.count_params():,} parameters; Adam lr {distribution.learning_rate:g}, batch {settings.batch_size}, "
          f"{settings.epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation loss.
    history = fit(model, train, val, settings.epochs, run=run, monitor=MONITOR, **lab.fit_options(settings))

    # Evaluation: the best model predicts every validation day; errors in the series' own units.
    best = lab.best_model(run)
    predicted = windows.unscale(best.predict(windows.x_val, batch_size=batch, verbose=0)[:, 0])
    run.write_csv("predictions.csv", [{"date": d, "value": float(v), "predicted": float(p)}
                                      for d, v, p in zip(val_dates, val_series, predicted)])
    validation = forecast_scores(val_series, predicted, train_series[-1])
    # The scaling (the training series' min and max) is what `labkit predict` needs to apply the model elsewhere.
    metrics = {**summarize(history, MONITOR), "validation": validation, "scaling": scaler_range(windows.scaler)}

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"{settings.layers}×LSTM({settings.units}), window {settings.window}"
    tail = train_series[-3 * settings.window:]  # the training days before, for context
    figures = {"curves.png": plot_history(history, ("loss", "mean_absolute_error"), title, monitor=MONITOR),
               "prediction.png": series_prediction_figure(val_series, predicted, tail, val_dates,
                                                          title=f"{title}: validation {settings.column}")}
    lab.finish_run(run, metrics, figures, f"best epoch {metrics['best']['epoch']}: val_loss "
                   f"{metrics['best'][MONITOR]:.5f}; validation MAE {validation['mae']:.3f} (repeating the previous "
                   f"day: {validation['persistence_mae']:.3f}), RMSE {validation['rmse']:.3f}")

if __name__ == "__main__":
    lab.run_lab(main)
