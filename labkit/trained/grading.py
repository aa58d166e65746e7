"""Grade many runs on one hidden test folder: evaluate each, one table with a row per run.

Each row holds the run's name, the settings in which the runs differ (`labkit.multirun.tables.varying_settings`), its
training result (the best epoch and its monitored validation value) and its test result (the lab's headline metric
first, then the other scalar metrics). A run that cannot be evaluated (no model, a refused model, another lab's
run) gets its row with the reason in ``error``, so one broken submission does not stop a class's grading.
"""

from pathlib import Path

from labkit.errors import LabkitInputError, require
from labkit.multirun.tables import varying_settings
from labkit.run_folder import RunFolder, default_run_dir
from labkit.trained.run import load_run


def _scalar_metrics(test):
    """``{name: value}`` of a test result: numbers as they are, ``{mean, std}`` entries as their mean."""
    values = {}
    for key, value in test.items():
        if isinstance(value, dict) and "mean" in value:
            values[key] = value["mean"]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = value
    return values


def grade_row(run_dir, data_dir, batch_size=8, threshold=None, **overrides):
    """Evaluate one run (into ``<run>/evaluations/<test folder>/``) and give its table row and settings;
    `overrides` complete the settings of runs without ``config.json`` (see `labkit.trained.load_run`).

    Returns:
        ``(row, settings)``: the row ``{run, error, monitor, best_epoch, val_<metric>, test_<metric>, …}`` and the
        run's settings (for the columns of settings that differ).
    """
    row = {"run": Path(run_dir).name}
    try:
        run = load_run(run_dir, **overrides)
        result = run.evaluate(data_dir, batch_size=batch_size, threshold=threshold)
    except LabkitInputError as exc:
        return {**row, "error": str(exc)}, {}
    best = run.metrics.get("best") or {}
    monitor = run.metrics.get("monitor")
    test = _scalar_metrics(result["test"])
    headline = result["headline"]
    ordered = {headline: test.pop(headline, None), **test}
    row.update({"error": "", "monitor": monitor, "best_epoch": best.get("epoch"),
                "val_best": best.get(monitor) if monitor else None,
                **{f"test_{k}": v for k, v in ordered.items()}})
    return row, run.settings


def grade_runs(run_dirs, data_dir, out=None, batch_size=8, threshold=None, **overrides):
    """Evaluate every run on `data_dir` and write ``grades.csv`` / ``grades.md`` into `out` (default
    ``runs/evaluate-<timestamp>``); `overrides` as in `grade_row`. Returns the rows, in the order given."""
    require(Path(data_dir).is_dir(), f"--data-dir {data_dir}: folder not found")
    names = [Path(p).resolve().name for p in run_dirs]
    require(len(set(names)) == len(names), f"two runs share the folder name ({', '.join(names)}): names label the "
            "rows")
    graded = [grade_row(p, data_dir, batch_size, threshold, **overrides) for p in run_dirs]
    differing = varying_settings([{"settings": settings} for _, settings in graded if settings])
    rows = []
    for row, settings in graded:
        head = {"run": row["run"], **{k: settings.get(k) for k in differing}}
        rows.append({**head, **{k: v for k, v in row.items() if k != "run"}})
    columns = list(dict.fromkeys(k for row in rows for k in row))
    folder = RunFolder.create(out or default_run_dir("evaluate"), overwrite=True)
    folder.write_table("grades", [{k: row.get(k, "") for k in columns} for row in rows], columns)
    folder.write_json("metrics.json", {"data_dir": str(data_dir), "runs": [str(p) for p in run_dirs],
                                       "rows": rows})
    return rows, folder
