"""Scores of a one-step-ahead forecast (Lab 6 Task 1), in the series' own units."""

import numpy as np


def forecast_scores(values, predicted, last_before):
    """MAE and RMSE of a forecast of `values`, and the MAE of repeating the previous day's value (persistence).

    Args:
        values: the true values ``(n,)`` of the predicted days, oldest first.
        predicted: the predicted values ``(n,)`` of the same days.
        last_before: the value of the day before the first one (persistence's forecast of it).

    Returns:
        ``{"days", "mae", "rmse", "persistence_mae"}``.

    Example:
        >>> forecast_scores([2.0, 4.0], [3.0, 4.0], 1.0)
        {'days': 2, 'mae': 0.5, 'rmse': 0.7071067811865476, 'persistence_mae': 1.5}
    """
    values, predicted = np.asarray(values, np.float64).ravel(), np.asarray(predicted, np.float64).ravel()
    previous = np.concatenate([[float(last_before)], values[:-1]])  # persistence: tomorrow = today
    errors = predicted - values
    return {"days": len(values), "mae": float(np.mean(np.abs(errors))), "rmse": float(np.sqrt(np.mean(errors**2))),
            "persistence_mae": float(np.mean(np.abs(previous - values)))}
