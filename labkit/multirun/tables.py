"""What a multi-run reports: summaries of finished run folders, the comparison tables and figure, the winner, and
the pieces a lab's preset report is made of (`child_metrics`, `side_by_side`, `keep_file`, ...).
"""

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from labkit.errors import require
from labkit.history import monitor_mode
from labkit.plots import comparison_curves
from labkit.run_folder import atomic_write, markdown_table, read_csv

#: Settings that are not choices of the run (or follow from another setting), left out of comparison columns.
NOT_COMPARED = ("out", "resume", "overwrite", "config", "sweep", "quiet", "command", "demo", "learning_rate",
                "global_batch_size", "replicas", "lr_scale", "kfold")


def _parameters(path, metrics):
    value = metrics.get("parameters")
    if isinstance(value, dict):
        value = value.get("model", value).get("total")
    if value is None and (path / "model.keras").is_file():
        value = keras.saving.load_model(path / "model.keras", compile=False).count_params()
        keras.backend.clear_session()
    return int(value) if value is not None else None


def summarize_run(path):
    """What a comparison needs of one finished run folder (a single run or a fold parent).

    Returns:
        ``{name, path, settings, monitor, best, final, epochs_run, train_seconds, parameters, history, std}``;
        ``std`` (None for a single run) holds the standard deviations over folds of the same entries.

    Raises:
        LabkitInputError: the folder holds no finished run (no ``metrics.json``).
    """
    path = Path(path)
    require((path / "metrics.json").is_file(), f"{path} holds no finished run (no metrics.json)")
    metrics = json.loads((path / "metrics.json").read_text())
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    settings = config.get("settings")
    if "multirun" in config and (path / "fold-1" / "config.json").is_file():  # a fold parent: its folds' settings
        settings = {**json.loads((path / "fold-1" / "config.json").read_text())["settings"], "fold": None}
    history = read_csv(path / "history.csv") if (path / "history.csv").is_file() else []
    return {"name": path.name, "path": str(path), "settings": settings or {}, "monitor": metrics["monitor"],
            "best": metrics["best"], "final": metrics["final"], "epochs_run": metrics.get("epochs_run"),
            "train_seconds": metrics.get("train_seconds"), "parameters": _parameters(path, metrics),
            "history": {k: [r.get(k) for r in history] for k in (history[0] if history else {})},
            "std": metrics.get("std")}


def _mean_std(values):
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return (float(np.mean(values)), float(np.std(values))) if values else (None, None)


def fold_summary(folds):
    """Mean and std over folds of every best and final value, the epochs, training seconds and parameters."""
    mean, std = {"best": {}, "final": {}}, {"best": {}, "final": {}}
    for part in ("best", "final"):
        for key in folds[0][part]:
            mean[part][key], std[part][key] = _mean_std([f[part].get(key) for f in folds])
    for key in ("epochs_run", "train_seconds", "parameters"):
        mean[key], std[key] = _mean_std([f[key] for f in folds])
    return {"monitor": folds[0]["monitor"], "folds": len(folds), **mean, "std": std}


def mean_history(histories):
    """Per-epoch mean over folds (epochs that only some folds reached average those)."""
    rows = []
    for epoch in range(max(len(h.get("epoch", [])) for h in histories)):
        present = [h for h in histories if epoch < len(h.get("epoch", []))]
        rows.append({k: _mean_std([h[k][epoch] for h in present if k in h])[0] for k in present[0]})
        rows[-1]["epoch"] = epoch + 1
    return rows


def monitor_is_max(monitor):
    return monitor_mode(monitor) == "max"


def comparison_rows(summaries, keys):
    """One row per run: its name, the `keys` settings, best epoch, best and final monitored value, training seconds
    and parameters; runs with folds add a ``*_std`` column for each number."""
    rows = []
    for s in summaries:
        m = s["monitor"]
        numbers = {"best_epoch": ("best", "epoch"), f"best_{m}": ("best", m), f"final_{m}": ("final", m),
                   "train_seconds": ("train_seconds",), "parameters": ("parameters",)}
        row = {"variant": s["name"], **{k: s["settings"].get(k) for k in keys}}
        for column, where in numbers.items():
            row[column] = s[where[0]][where[1]] if len(where) == 2 else s[where[0]]
        if s["std"]:
            for column, where in numbers.items():
                row[f"{column}_std"] = s["std"][where[0]].get(where[1]) if len(where) == 2 else s["std"].get(where[0])
        rows.append(row)
    return rows


def _markdown(rows):
    """``mean ± std`` cells for columns that have a ``_std`` twin."""
    shown = []
    for row in rows:
        cells = {}
        for key, value in row.items():
            if key.endswith("_std"):
                continue
            std = row.get(f"{key}_std")
            cells[key] = f"{value:.4g} ± {std:.2g}" if std is not None and value is not None else value
        shown.append(cells)
    return markdown_table(shown)


def fold_details(summaries):
    """Every best and final value of each run with folds, ``mean ± std``, one row per run."""
    rows = []
    for s in summaries:
        cells = {"variant": s["name"]}
        for part in ("best", "final"):
            for key, value in s[part].items():
                std = s["std"][part].get(key)
                if isinstance(value, (int, float)) and std is not None:
                    cells[f"{part} {key}"] = f"{value:.4g} ± {std:.2g}"
        rows.append(cells)
    return "Every best and final value, mean ± std over folds:\n\n" + markdown_table(rows)


def varying_settings(summaries):
    """Setting keys whose values differ between runs (what distinguishes them), in first-seen order."""
    keys = dict.fromkeys(k for s in summaries for k in s["settings"] if k not in NOT_COMPARED
                         and not k.endswith(("_used", "_record", "_note", "_requested")))
    return [k for k in keys if len({json.dumps(s["settings"].get(k), sort_keys=True, default=str)
                                    for s in summaries}) > 1]


def write_comparison(run, summaries, keys=None, table="comparison"):
    """Write ``<table>.csv``/``.md``, ``comparison.png`` and (with folds) ``folds.csv`` into `run`; returns the
    parent's ``metrics.json`` content (winner by the best monitored value; each run's summary)."""
    monitors = {s["monitor"] for s in summaries}
    require(len(monitors) == 1, f"these runs pick their best epoch by different metrics ({', '.join(monitors)}): "
            "they cannot share one table")
    monitor = monitors.pop()
    keys = varying_settings(summaries) if keys is None else list(keys)
    rows = comparison_rows(summaries, keys)
    run.write_csv(f"{table}.csv", rows)
    run.write_text(f"{table}.md", _markdown(rows) + ("\n" + fold_details(summaries) if rows[0].get(
        "best_epoch_std") is not None else ""))
    fold_rows = [{"variant": s["name"], **row} for s in summaries for row in _fold_rows(Path(s["path"]))]
    if fold_rows:
        run.write_csv("folds.csv", fold_rows)
    histories = {s["name"]: s["history"] for s in summaries if s["history"]}
    metrics = sorted({k for h in histories.values() for k in h if f"val_{k}" in h})
    metrics = (["loss"] if "loss" in metrics else []) + [k for k in metrics if k != "loss"]
    if not metrics and histories and all("loss" in h for h in histories.values()):
        metrics = ["loss"]  # runs without validation data (Lab 1's four logic-gate points): their training loss
    if histories and metrics:
        run.save_figure("comparison.png", comparison_curves(histories, metrics, monitor=monitor,
                                                            title=f"{len(histories)} runs (best {monitor} marked)"))
    sign = 1 if monitor_is_max(monitor) else -1
    winner = max(summaries, key=lambda s: sign * float(s["best"][monitor]))
    return {"monitor": monitor, "winner": winner["name"], "best": {"variant": winner["name"], **winner["best"]},
            "final": {"variant": winner["name"], **winner["final"]}, "epochs_run": winner["epochs_run"],
            "train_seconds": round(sum(float(s["train_seconds"] or 0) for s in summaries), 2),
            "table": table, "variants": {s["name"]: {k: v for k, v in s.items() if k not in ("history", "path")}
                                         for s in summaries}}


def _fold_rows(path):
    """Rows of a fold parent's ``folds.csv`` (none for a single run)."""
    if (path / "fold-1").is_dir() and (path / "fold-1" / "metrics.json").is_file():
        return comparison_rows([summarize_run(p) for p in sorted(path.glob("fold-*"),
                                                                 key=lambda p: int(p.name[5:]))], ["fold"])
    return []


def child_metrics(children):
    """``{child name: its metrics.json}`` of a preset's finished children (``{name: path}``), in order."""
    return {name: json.loads((Path(path) / "metrics.json").read_text()) for name, path in children.items()}


def child_histories(children):
    """``{child name: {history key: [value per epoch]}}`` from each child's ``history.csv``."""
    histories = {}
    for name, path in children.items():
        rows = read_csv(Path(path) / "history.csv")
        histories[name] = {key: [row.get(key) for row in rows] for key in (rows[0] if rows else {})}
    return histories


def side_by_side(results, quantities, label="quantity", difference=False):
    """One row per quantity, one column per run: ``[{label: name, run: value, ...}]``.

    Args:
        results: ``{run name: what the quantities read}`` (e.g. each child's metrics).
        quantities: ``{row name: function(result) -> value}``.
        label: header of the first column.
        difference: add a ``<last run> − <first run>`` column.
    """
    names = list(results)
    rows = []
    for quantity, value in quantities.items():
        row = {label: quantity, **{name: value(results[name]) for name in names}}
        if difference:
            row[f"{names[-1]} − {names[0]}"] = row[names[-1]] - row[names[0]]
        rows.append(row)
    return rows


def epoch_table(histories, columns):
    """One row per epoch: each run's value of every history key in `columns` (``{key: column suffix}``), as
    ``<run>_<suffix>``; None past a run's last epoch."""
    rows = []
    for epoch in range(max(len(h.get("epoch", [])) for h in histories.values())):
        row = {"epoch": epoch + 1}
        for name, history in histories.items():
            for key, suffix in columns.items():
                values = history.get(key, [])
                row[f"{name}_{suffix}"] = float(values[epoch]) if epoch < len(values) else None
        rows.append(row)
    return rows


def stacked_history(children, labels):
    """Every child's ``history.csv`` rows in one table, each row led by its child's `labels` columns.

    Args:
        children: ``{name: child path}``.
        labels: ``{name: {column: value}}`` (e.g. ``{"ce_focal": {"loss_function": "ce+focal"}}``).
    """
    return [{**labels[name], **row} for name, path in children.items() for row in read_csv(Path(path) / "history.csv")]


def keep_file(run, source, name="model.keras"):
    """Make ``<run>/<name>`` the file `source` (e.g. the winner's model): a hard link (no extra disk space), else a
    copy; written atomically and recorded as labkit's, so ``--overwrite`` may remove it."""
    def place(tmp):
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)

    return atomic_write(run.file(name), place)


def keep_winner(run, children, models, score):
    """The winner of a preset's report, and its model kept: the child whose `score` (a function of its
    ``metrics.json``; validation numbers, never test numbers) is highest, first in order on a tie. Its
    ``model.keras`` becomes the parent's (`keep_file`).

    Args:
        run: the parent `RunFolder`.
        children: ``{name: child path}``.
        models: ``{name: metrics.json content}`` of the same children (`child_metrics`).
        score: ``score(metrics) -> number or tuple``.

    Returns:
        The winner's name.
    """
    winner = max(models, key=lambda name: score(models[name]))
    keep_file(run, Path(children[winner]) / "model.keras")
    return winner


def write_preset_report(run, children, tables, labels, score):
    """The files every preset's report writes in the parent run: its tables, the children's epochs, the winner's model.

    Writes each table as ``<name>.csv`` / ``<name>.md`` (`RunFolder.write_table`), ``history.csv`` (every child's
    epochs, `stacked_history`, each row led by its child's `labels` columns) and ``model.keras`` (the winner's,
    `keep_winner`).

    Args:
        run: the parent `RunFolder`.
        children: ``{name: child path}``, the preset's finished children in order.
        tables: ``tables(models) -> {table name: rows}``, from ``models`` (`child_metrics` of the children).
        labels: ``labels(name, metrics) -> {column: value}`` that lead the child's rows of ``history.csv``.
        score: as `keep_winner` takes it (validation numbers, never test numbers).

    Returns:
        ``(models, written, winner)``: the children's metrics, ``{table name: rows}`` as written, the winner's name.

    Example:
        >>> models, written, winner = write_preset_report(run, children, lambda models: {"comparison": rows(models)},
        ...                                               lambda name, m: {"model": name}, lambda m: m["best"]["val_dice"])
    """
    models = child_metrics(children)
    written = tables(models)
    for name, rows in written.items():
        run.write_table(name, rows)
    run.write_csv("history.csv", stacked_history(children, {name: labels(name, m) for name, m in models.items()}))
    return models, written, keep_winner(run, children, models, score)
