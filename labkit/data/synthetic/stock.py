"""Embedded daily price series (Lab 6 Task 1) in the course layout: ``train_data_stock.csv``, ``val_data_stock.csv``."""

import csv
import datetime

import numpy as np

from labkit.data.layouts.stock import TRAIN_CSV, VAL_CSV
from labkit.data.synthetic.common import default_data_home, write_once

GENERATOR_VERSION = 1
FIRST_DAY = datetime.date(2012, 1, 3)


def price_series(rng, n_days, start=300.0, drift=3e-4, volatility=0.012, cycle=60, cycle_size=0.04):
    """Daily Open/High/Low/Close/Volume of a geometric Brownian motion with a trend and a slow cycle.

    The log price takes a step of `drift` plus Gaussian noise of `volatility` every day, and a sine of period
    `cycle` days and relative amplitude `cycle_size` rides on it (something the past 60 days tell about the next).

    Returns:
        A dict of float arrays ``(n_days,)``, oldest day first: ``Open``, ``High``, ``Low``, ``Close``, ``Volume``.
    """
    days = np.arange(n_days)
    log_price = np.log(start) + np.cumsum(drift + volatility * rng.standard_normal(n_days))
    close = np.exp(log_price) * (1 + cycle_size * np.sin(2 * np.pi * days / cycle + rng.uniform(0, 2 * np.pi)))
    opening = np.concatenate([[start], close[:-1]]) * (1 + 0.003 * rng.standard_normal(n_days))
    spread = np.abs(rng.normal(0.006, 0.003, n_days))
    return {"Open": opening, "High": np.maximum(opening, close) * (1 + spread),
            "Low": np.minimum(opening, close) * (1 - spread), "Close": close,
            "Volume": rng.integers(800_000, 3_000_000, n_days).astype(float)}


def trading_days(n_days, first=FIRST_DAY):
    """The first `n_days` weekdays from `first`, as ``M/D/YYYY`` strings (the course files' format)."""
    days, day = [], first
    while len(days) < n_days:
        if day.weekday() < 5:
            days.append(f"{day.month}/{day.day}/{day.year}")
        day += datetime.timedelta(days=1)
    return days


def write_stock_csv(path, dates, columns):
    """Write ``Date,Open,High,Low,Close,Volume`` rows, newest first as the course files are (inputs oldest first)."""
    names = ("Open", "High", "Low", "Close", "Volume")
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("Date", *names))
        for i in reversed(range(len(dates))):
            writer.writerow((dates[i], *(f"{columns[k][i]:.0f}" if k == "Volume" else f"{columns[k][i]:.2f}"
                                         for k in names)))


def stock_dataset(n_train=1000, n_val=120, seed=0, root=None):
    """The embedded Lab 6 Task 1 set: one synthetic series, its first `n_train` days in ``train_data_stock.csv`` and
    the next `n_val` in ``val_data_stock.csv``, each newest first.

    Args:
        n_train, n_val: trading days in each file.
        seed: generator seed; the same arguments always give the same files.
        root: where to write (default `default_data_home()`).

    Returns:
        Path of the folder holding both files (pass it as ``--data-dir``).

    Example:
        >>> folder = stock_dataset(n_train=300, n_val=40)
        >>> sorted(p.name for p in folder.iterdir())
        ['train_data_stock.csv', 'val_data_stock.csv']
    """
    def write(folder):
        folder.mkdir(parents=True)
        columns = price_series(np.random.default_rng(seed), n_train + n_val)
        dates = trading_days(n_train + n_val)
        write_stock_csv(folder / TRAIN_CSV, dates[:n_train], {k: v[:n_train] for k, v in columns.items()})
        write_stock_csv(folder / VAL_CSV, dates[n_train:], {k: v[n_train:] for k, v in columns.items()})

    name = f"stock_v{GENERATOR_VERSION}_{n_train}_{n_val}_s{seed}"
    return write_once(root or default_data_home(), name, write)
