"""The course's Lab 6 Task 1 layout: a daily price series in two CSV files, newest row first.

``<data>/train_data_stock.csv`` and ``<data>/val_data_stock.csv``, each with the header
``Date,Open,High,Low,Close,Volume`` and one trading day per row, the newest day first (the validation file holds the
days after the training file's). Columns are looked up by name, so their order does not matter.
"""

import csv
from pathlib import Path

import numpy as np

from labkit.errors import LabkitInputError, require

TRAIN_CSV, VAL_CSV = "train_data_stock.csv", "val_data_stock.csv"


def find_stock_csvs(data_dir):
    """The training and validation CSV files of the folder `data_dir`.

    Returns:
        ``(train_csv, val_csv)`` paths.

    Raises:
        LabkitInputError: the folder or one of the files is missing (named).
    """
    data_dir = Path(data_dir)
    require(data_dir.is_dir(), f"--data-dir {data_dir}: folder not found")
    paths = data_dir / TRAIN_CSV, data_dir / VAL_CSV
    for path in paths:
        require(path.is_file(), f"{path}: file not found (Lab 6 Task 1 reads {TRAIN_CSV} and {VAL_CSV})")
    return paths


def read_stock_csv(path, column="Open"):
    """One column of a course stock CSV, oldest day first (the file is newest first).

    Args:
        path: a CSV file with a header row naming `column` (and ``Date``, when present, for the dates).
        column: the column to read.

    Returns:
        ``(dates, values)``: a list of date strings (empty strings without a ``Date`` column) and a float64 array,
        both oldest first.

    Raises:
        LabkitInputError: the file is missing, empty, lacks `column`, or holds a value that is not a number (the
            row is named).
    """
    path = Path(path)
    require(path.is_file(), f"{path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        require(column in header, f"{path}: no {column!r} column (columns: {', '.join(header) or 'none'})")
        reader.fieldnames = header
        dates, values = [], []
        for row_number, row in enumerate(reader, start=2):
            try:
                values.append(float(str(row[column]).replace(",", "")))
            except (TypeError, ValueError):
                raise LabkitInputError(f"{path}: row {row_number}: {column} {row[column]!r} is not a number") from None
            dates.append(row.get("Date") or "")
    require(values, f"{path}: no data rows")
    return dates[::-1], np.asarray(values[::-1], np.float64)
