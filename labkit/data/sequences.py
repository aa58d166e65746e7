"""Sequences for the recurrent networks of Lab 6: windows of a scaled series, padded streamlines.

Task 1 (`series_windows`) follows the course: the training series is scaled to [0, 1] with a `MinMaxScaler` fitted
on it alone, and the validation series with that same scaler; a window is the `window` values before its target.
The first validation windows reach back into the training series' tail, so every validation day is a target.

Task 2 (`pad_streamlines`, `MyBatchGenerator`) pads variable-length streamlines after their last point with
`PAD_VALUE`; the streamline classifier's `Masking` layer skips those steps, so a padded batch
gives every streamline the output it gets alone (the course trained with batch size 1 to avoid padding).
"""

from dataclasses import dataclass

import keras
import numpy as np

from labkit.errors import require

#: The value of the padded time steps of a batch of streamlines (`pad_streamlines`), which the streamline
#: classifier's `Masking` layer skips (`labkit.models.lstm.streamline_classifier`).
PAD_VALUE = 0.0


@dataclass
class SeriesWindows:
    """Inputs ``(n, window, 1)`` and targets ``(n, 1)`` of both splits, scaled, and the scaler (fitted on training)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    scaler: object

    def unscale(self, values):
        """Scaled values (any shape) back in the series' original units."""
        values = np.asarray(values, np.float64)
        return self.scaler.inverse_transform(values.reshape(-1, 1)).reshape(values.shape)


def minmax_scaler(minimum, maximum):
    """The `sklearn.preprocessing.MinMaxScaler` to [0, 1] that a series with this minimum and maximum fits: the one
    a Lab 6 run trained with, rebuilt from the ``scaling`` its ``metrics.json`` records."""
    from sklearn.preprocessing import MinMaxScaler

    require(float(maximum) > float(minimum), f"series scaling: maximum {maximum} is not above minimum {minimum}")
    return MinMaxScaler(feature_range=(0, 1)).fit(np.array([[float(minimum)], [float(maximum)]]))


def scaler_range(scaler):
    """``{"min", "max"}`` of a fitted `MinMaxScaler` (what `minmax_scaler` rebuilds it from)."""
    return {"min": float(scaler.data_min_[0]), "max": float(scaler.data_max_[0])}


def series_inputs(series, window, scaler):
    """Every window of `window` consecutive values of a series, scaled with `scaler`: ``(len(series) − window + 1,
    window, 1)`` float32; window ``i`` predicts value ``i + window`` (the last one the day after the series)."""
    series = np.asarray(series, np.float64).ravel()
    scaled = scaler.transform(series.reshape(-1, 1))[:, 0]
    return np.lib.stride_tricks.sliding_window_view(scaled, window)[..., None].astype(np.float32)


def series_windows(train, val, window, names=("training series", "validation series"), scaler=None):
    """Windows of `window` consecutive values and the value after each, from a training and a validation series.

    Training: ``x[i] = s[i : i + window]``, ``y[i] = s[i + window]`` for every ``i`` with a target in the training
    series (``len(train) − window`` windows). Validation: one window per validation value ``v[j]``, the `window`
    values before it in the joined series (training, then validation), so the first ones start in the training
    tail. ``s`` and ``v`` are the series scaled by a `sklearn.preprocessing.MinMaxScaler` fitted on `train` only:
    validation values may fall outside [0, 1].

    Args:
        train, val: 1-D series, oldest first (`labkit.data.layouts.stock.read_stock_csv`).
        window: values per window (the course's T = 60).
        names: how errors name the two series (e.g. their files).
        scaler: a fitted scaler to use instead (a trained run's, `minmax_scaler`); None: fit one on `train`.

    Returns:
        A `SeriesWindows`.

    Raises:
        LabkitInputError: the training series has no value after its first window, or the validation one is empty.

    Example:
        >>> w = series_windows(np.arange(10.0), np.arange(10.0, 13.0), window=4)
        >>> w.x_train.shape, w.x_val[0, :, 0]  # the first validation window: the training series' last 4 values
        ((6, 4, 1), array([0.66666667, 0.77777778, 0.88888889, 1.        ]))
    """
    from sklearn.preprocessing import MinMaxScaler

    train, val = np.asarray(train, np.float64).ravel(), np.asarray(val, np.float64).ravel()
    require(len(train) > window, f"{names[0]}: {len(train)} values, fewer than the window of {window} plus the value "
            f"to predict ({window + 1})")
    require(len(val) >= 1, f"{names[1]}: no values")
    scaler = scaler or MinMaxScaler(feature_range=(0, 1)).fit(train.reshape(-1, 1))
    scaled_train = scaler.transform(train.reshape(-1, 1))[:, 0]
    joined = np.concatenate([scaled_train[-window:], scaler.transform(val.reshape(-1, 1))[:, 0]])
    windows = lambda series: np.lib.stride_tricks.sliding_window_view(series[:-1], window)  # noqa: E731
    return SeriesWindows(
        x_train=windows(scaled_train)[..., None].astype(np.float32),
        y_train=scaled_train[window:, None].astype(np.float32),
        x_val=windows(joined)[..., None].astype(np.float32),
        y_val=joined[window:, None].astype(np.float32),
        scaler=scaler,
    )


def pad_streamlines(streamlines, value=PAD_VALUE, length=None):
    """Streamlines of different lengths as one array, padded after their last point (`keras.utils.pad_sequences`).

    Args:
        streamlines: arrays ``(points_i, 3)``.
        value: the value of padded steps (the classifier's `Masking` value).
        length: steps of the result (None: the longest streamline's); longer streamlines are cut at the end.

    Returns:
        float32 ``(n, length, 3)``.
    """
    require(len(streamlines) > 0, "no streamlines to pad")
    return keras.utils.pad_sequences([np.asarray(s, np.float32) for s in streamlines], maxlen=length, dtype="float32",
                                      padding="post", truncating="post", value=value)


def point_statistics(streamlines):
    """Mean and standard deviation of every coordinate over all points of `streamlines` (for `standardize`)."""
    points = np.concatenate([np.asarray(s, np.float64) for s in streamlines])
    return points.mean(axis=0), np.maximum(points.std(axis=0), 1e-6)


def standardize(streamlines, mean, std):
    """Every streamline's points as ``(p − mean) / std`` (per coordinate), float32."""
    return [((np.asarray(s, np.float64) - mean) / std).astype(np.float32) for s in streamlines]


class MyBatchGenerator(keras.utils.PyDataset):
    """The course's batch generator of streamlines, ``MyBatchGenerator(X, y, batch_size=1, shuffle=True)``.

    The handout's version repeated one streamline `batch_size` times in every batch ("naively use the same sample
    over and over again") and never used its shuffled order. This one keeps the name and the signature and gives
    `batch_size` different streamlines per batch, in a new order every epoch when `shuffle`, padded after their
    last point with `PAD_VALUE` to the batch's longest (the classifier's `Masking` skips the
    padding, so any batch size trains on the same outputs as batch size 1). As in the handout, an epoch has
    ``len(y) // batch_size`` batches.

    Args:
        X: streamlines, arrays ``(points_i, 3)``.
        y: labels (bundle indices).
        batch_size: streamlines per batch.
        shuffle: a new order every epoch.
        seed: seed of the order (None: NumPy's global generator, as the handout).

    Example:
        >>> model.fit(MyBatchGenerator(X_train, y_train, batch_size=8), epochs=50,
        ...           validation_data=MyBatchGenerator(X_val, y_val, batch_size=8, shuffle=False))
    """

    def __init__(self, X, y, batch_size=1, shuffle=True, seed=None, **kwargs):  # noqa: N803 (course name)
        super().__init__(**kwargs)
        require(len(X) == len(y), f"{len(X)} streamlines but {len(y)} labels")
        require(len(y) >= batch_size >= 1, f"batch size {batch_size} for {len(y)} streamlines")
        self.X, self.y = list(X), np.asarray(y, np.float32).reshape(-1, 1)
        self.batch_size, self.shuffle = int(batch_size), shuffle
        self.rng = np.random.default_rng(seed) if seed is not None else np.random
        self.on_epoch_end()

    def __len__(self):
        return len(self.y) // self.batch_size

    def __getitem__(self, index):
        chosen = self.indexes[index * self.batch_size:(index + 1) * self.batch_size]
        return pad_streamlines([self.X[i] for i in chosen]), self.y[chosen]

    def on_epoch_end(self):
        self.indexes = np.arange(len(self.y))
        if self.shuffle:
            self.rng.shuffle(self.indexes)
