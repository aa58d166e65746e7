"""Recurrent networks of Lab 6 (CM2003): stacked LSTMs for a time series and for streamlines.

Both builders chain the same block, an `keras.layers.LSTM` followed by dropout; every LSTM but the last returns its
whole sequence, so the next one reads it step by step. An LSTM of ``u`` units on ``d`` input features has
``4·(u·(u + d) + u)`` weights (four gates, each a recurrent kernel ``u×u``, an input kernel ``d×u`` and a bias);
a bidirectional one twice that.
"""

import keras
from keras import layers

from labkit.data.sequences import PAD_VALUE


def lstm_block(x, units, dropout=None, return_sequences=True, bidirectional=False, name=None):
    """An LSTM of `units` (both directions concatenated when `bidirectional`), then `Dropout(dropout)` if given.

    A mask on `x` (from `keras.layers.Masking`) passes through: padded steps leave the state unchanged.
    """
    lstm = layers.LSTM(units, return_sequences=return_sequences, name=None if bidirectional else name)
    x = layers.Bidirectional(lstm, name=name)(x) if bidirectional else lstm(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout" if name else None)(x)
    return x


def lstm_regressor(window=60, n_features=1, n_layers=4, units=20, dropout=0.2):
    """Lab 6 Task 1: stacked LSTMs that read `window` past values and predict the next one.

    ``Input(window, n_features) → n_layers × [LSTM(units) → Dropout(dropout)] → Dense(1)``; the last LSTM returns
    only its final state. The course: 4 layers of 20 units, dropout 0.2, trained with MSE and Adam 1e-3.

    Args:
        window: time steps per input (the course's T = 60); None accepts any length.
        n_features: values per time step (1: the ``Open`` column).
        n_layers: stacked LSTM layers (at least 1).
        units: units of every LSTM.
        dropout: dropout rate after every LSTM (None or 0: none).

    Returns:
        An uncompiled `keras.Model` from ``(batch, window, n_features)`` to ``(batch, 1)`` (linear output).

    Example:
        >>> model = lstm_regressor(window=60, units=20)
        >>> model.count_params()  # 4·(20·(20+1)+20) + 3 · 4·(20·(20+20)+20) + 21
        11621
    """
    inputs = keras.Input((window, n_features), name="series")
    x = inputs
    for i in range(1, n_layers + 1):
        x = lstm_block(x, units, dropout, return_sequences=i < n_layers, name=f"lstm{i}")
    outputs = layers.Dense(1, name="next_value", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"lstm_{n_layers}x{units}")


def streamline_classifier(n_features=3, n_layers=4, units=5, dropout=0.2, n_class=2, mask_value=PAD_VALUE):
    """Lab 6 Task 2: a bidirectional LSTM then LSTMs that classify a variable-length sequence of 3D points.

    ``Input(None, n_features) → Masking(mask_value) → Bidirectional(LSTM(units)) → Dropout → (n_layers − 1) ×
    [LSTM(units) → Dropout] → Dense``: one sigmoid unit for two bundles, a softmax over `n_class` for more. The
    mask makes a batch of sequences padded with `mask_value` (after their last point) give each sequence the
    output it gets alone, so training in batches needs no batch size 1. The course: 5 units, dropout 0.2,
    Adam 1e-4.

    Args:
        n_features: coordinates per point (3).
        n_layers: LSTM layers in all, the first bidirectional (at least 1).
        units: units of every LSTM (of each direction of the first).
        dropout: dropout rate after every LSTM (None or 0: none).
        n_class: number of bundles.
        mask_value: the value of padded steps (a step is padded when all its coordinates equal it).

    Returns:
        An uncompiled `keras.Model` from ``(batch, steps, n_features)`` to ``(batch, 1)`` sigmoid probabilities
        (two bundles) or ``(batch, n_class)`` softmax ones.

    Example:
        >>> model = streamline_classifier(units=5)
        >>> model.count_params()  # 2·4·(5·(5+3)+5) + 4·(5·(5+10)+5) + 2·4·(5·(5+5)+5) + 6
        1126
    """
    inputs = keras.Input((None, n_features), name="points")
    x = layers.Masking(mask_value, name="padding_mask")(inputs)
    for i in range(1, n_layers + 1):
        x = lstm_block(x, units, dropout, return_sequences=i < n_layers, bidirectional=i == 1, name=f"lstm{i}")
    if n_class == 2:
        outputs = layers.Dense(1, activation="sigmoid", name="bundle", dtype="float32")(x)
    else:
        outputs = layers.Dense(n_class, activation="softmax", name="bundle", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"bilstm_{n_layers}x{units}")
