"""Runs of many models: variants (``--sweep``), folds (``--folds``), child run folders, comparison tables and figures.

A lab trains one model per call of its ``main(argv)``. This module calls it once per variant, each time with the
variant's flags and ``--out <parent>/<variant>``, so every variant is a complete run folder of its own, named
readably (``lr=1e-05,batch_size=4``, ``fold-2``). With ``--folds K`` each variant folder holds ``fold-1`` …
``fold-K`` and the mean ± std over them. The parent folder then gets:

* ``comparison.csv`` / ``comparison.md``: one row per variant: its settings, best epoch, best and final monitored
  value, training seconds and parameters (with folds: means, and ``*_std`` columns; ``mean ± std`` in the Markdown);
* ``comparison.png``: every variant's training (solid) and validation (dashed) curves, one panel per metric, the
  best epoch of each marked;
* ``folds.csv`` (with ``--folds``): one row per fold run;
* ``metrics.json``: the winner (best monitored value, on validation data) and each variant's summary.

A child with ``metrics.json`` is finished; ``--resume --out PARENT`` keeps those, resumes the interrupted one from its
last completed epoch and runs the rest, always with the plan stored in the parent's ``config.json``. A lab states
its named comparisons as `Preset` objects (e.g. ``--compare`` = frozen vs fine-tuned); it never builds child
folders itself. ``labkit compare RUN_DIR... [--out DIR]`` builds the same table and figure from separate runs.
"""

import argparse
import itertools
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.errors import LabkitInputError, require
from labkit.history import monitor_mode
from labkit.runs import RunFolder, atomic_write, default_run_dir, markdown_table, read_csv

#: Flags a sweep may not vary: where runs go, how they start, and the multi-run flags themselves.
NOT_SWEPT = ("out", "resume", "overwrite", "config", "sweep", "folds", "fold", "help", "quiet")
#: Settings that are not choices of the run (or follow from another setting), left out of comparison columns.
NOT_COMPARED = ("out", "resume", "overwrite", "config", "sweep", "quiet", "command", "demo", "learning_rate",
                "global_batch_size", "replicas", "lr_scale", "kfold")
ON, OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


@dataclass
class Preset:
    """A named comparison a lab offers (e.g. its ``--compare``): fixed variants plus the lab's own report.

    Attributes:
        name: shown on screen and stored in the parent's ``config.json``.
        variants: ``[(child folder name, {flag dest: value})]``; values as the flag parses them (None: left out).
        report: optional ``report(run, children) -> dict``, called with the parent `RunFolder` and
            ``{name: child path}`` once every child is finished (and only when no ``--sweep``/``--folds`` was added):
            it writes the lab's documented files and returns entries to add to the parent's ``metrics.json``.
        table: file stem of the generic one-row-per-variant table (``comparison``; a preset whose lab documents
            another ``comparison.csv`` moves it aside, e.g. to ``variants``).
    """

    name: str
    variants: list
    report: object = None
    table: str = "comparison"


# --- the multi-run flags ---------------------------------------------------------------------------------------


def add_arguments(parser):
    """``--sweep``, ``--folds`` and ``--fold`` (every lab parser gets them from `labkit.cli.lab_parser`)."""
    from labkit.cli import positive_int

    parser.add_argument("--sweep", action="append", metavar="KEY=V1,V2", help="train one model per value (repeat "
                        "for a grid over several keys; a key is any of this lab's flags, e.g. lr=1e-4,1e-5, "
                        "dropout=none,0.4, augment=off,on), each into <out>/<key>=<value>/, then compare them")
    parser.add_argument("--folds", type=positive_int, metavar="K", help="K-fold cross-validation: one run per fold "
                        "into <out>/fold-<i>/ (stratified by class, grouped by patient/lesion where known), "
                        "mean ± std in comparison.md; combines with --sweep")
    parser.add_argument("--fold", type=positive_int, metavar="I", help="with --folds K: train only fold I (1..K), "
                        "as a single run")


def is_multirun(args):
    """True when `args` ask for several runs: ``--sweep``, ``--folds`` without ``--fold``, or ``--resume`` of a
    folder that holds a multi-run."""
    if getattr(args, "sweep", None) or (getattr(args, "folds", None) and not getattr(args, "fold", None)):
        return True
    config = Path(args.out) / "config.json" if getattr(args, "resume", None) and args.out else None
    return bool(config and config.is_file() and "multirun" in json.loads(config.read_text()))


def check_fold_flags(args):
    """``--fold`` needs ``--folds``, in range, and at least 2 folds."""
    folds, fold = getattr(args, "folds", None), getattr(args, "fold", None)
    require(folds is None or folds >= 2, f"--folds {folds}: cross-validation needs at least 2 folds")
    require(fold is None or folds is not None, "--fold goes with --folds K")
    require(fold is None or fold <= folds, f"--fold {fold} is not in 1..{folds}")


def _actions(parser, dest):
    return [a for a in parser._actions if a.dest == dest and a.option_strings]


def _is_switch(action):
    return action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction)


def parse_value(parser, key, text, spec=None):
    """A ``--sweep`` value as the flag itself parses it (its `type` and `choices`); ``none`` leaves the flag out."""
    actions = _actions(parser, key)
    if any(_is_switch(a) for a in actions):
        if text.lower() in ON + OFF:
            return text.lower() in ON
        if text.lower() == "none":
            return None
        raise LabkitInputError(f"--sweep {spec or f'{key}={text}'}: {key} is an on/off flag: use on or off")
    action = actions[0]
    try:
        parse = action.type or str
        tokens = text.split() if action.nargs not in (None, "?") else [text]
        values = [parse(token) for token in tokens]
        if action.choices is not None and any(v not in action.choices for v in values):
            raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from "
                                             f"{', '.join(map(str, action.choices))})")
        if isinstance(action.nargs, int) and len(values) != action.nargs:
            raise argparse.ArgumentTypeError(f"needs {action.nargs} numbers separated by spaces")
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        if text.lower() == "none":
            return None
        raise LabkitInputError(f"--sweep {spec or f'{key}={text}'}: {exc}") from None
    return values if action.nargs not in (None, "?") else values[0]


def parse_sweep(parser, specs):
    """``["lr=1e-4,1e-5", "batch_size=2,4"]`` → ``[("lr", [1e-4, 1e-5]), ("batch_size", [2, 4])]``.

    Raises:
        LabkitInputError: a spec without ``=``, a key that is not one of the lab's flags (or may not be swept), a
            key given twice, or a value its flag refuses; the message names it.
    """
    keys = {a.dest for a in parser._actions if a.option_strings} - set(NOT_SWEPT)
    sweep = []
    for spec in specs or ():
        key, sep, values = spec.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        require(sep and values.strip(), f"--sweep {spec}: expected KEY=V1,V2,… (e.g. lr=1e-4,1e-5)")
        require(key in keys, f"--sweep {spec}: {key} is not a flag of this lab that can be swept "
                f"(choose from {', '.join(sorted(keys))})")
        require(key not in dict(sweep), f"--sweep {key} is given twice: put all its values in one --sweep")
        texts = [v.strip() for v in values.split(",") if v.strip()]
        sweep.append((key, [parse_value(parser, key, text, spec) for text in texts]))
    return sweep


def format_value(value):
    """A value as it appears in a child folder name: ``1e-05``, ``4``, ``on``, ``none``, ``32x32x16``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    return str(value).replace("/", "_").replace(",", "_")


def flag_tokens(parser, key, value):
    """The command-line tokens that set flag `key` to `value` (none when `value` is None or the flag's default)."""
    if value is None:
        return []
    for action in _actions(parser, key):
        if isinstance(action, argparse.BooleanOptionalAction):
            positive = next(o for o in action.option_strings if not o.startswith("--no-"))
            return [positive if value else positive.replace("--", "--no-", 1)]
        if action.nargs == 0:
            if action.const == value:
                return [action.option_strings[-1]]
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        return [action.option_strings[-1], *(repr(v) if isinstance(v, float) else str(v) for v in values)]
    return []  # an on/off value no flag of the lab sets: the lab's default


def without_flags(parser, argv, dests):
    """`argv` without the flags whose dest is in `dests` (and their values)."""
    by_option = {o: a for a in parser._actions for o in a.option_strings}
    kept, tokens = [], list(argv)
    while tokens:
        token = tokens.pop(0)
        name = token.split("=", 1)[0]
        if token.startswith("--") and name not in by_option:
            matches = [o for o in by_option if o.startswith(name)]
            name = matches[0] if len(matches) == 1 else name
        action = by_option.get(name) if token.startswith("-") else None
        if action is None or action.dest not in dests:
            kept.append(token)
            continue
        if "=" in token or action.nargs == 0:
            continue
        count = action.nargs if isinstance(action.nargs, int) else 1
        if action.nargs in ("?", "*", "+"):
            count = 1 if action.nargs == "?" else len(tokens)
            count = next((i for i, t in enumerate(tokens[:count]) if t.startswith("-")), count)
        del tokens[:count]
    return kept


def jsonable(value):
    """`value` as JSON can store it: paths as strings, tuples as lists (recursively)."""
    return [jsonable(v) for v in value] if isinstance(value, (list, tuple)) else (
        str(value) if isinstance(value, Path) else value)


def plan(parser, args, argv, preset=None):
    """The variants of a multi-run: ``[{name, settings, argv}]``, the grid of the preset's variants and every
    ``--sweep`` key, validated before anything trains."""
    sweep = parse_sweep(parser, args.sweep)
    axes = [[(name, values) for name, values in preset.variants]] if preset else []
    axes += [[(f"{key}={format_value(v)}", {key: v}) for v in values] for key, values in sweep]
    variants = []
    for combination in itertools.product(*axes):
        settings = {k: v for _, values in combination for k, v in values.items()}
        tokens = [t for key, value in settings.items() for t in flag_tokens(parser, key, value)]
        variants.append({"name": ",".join(name for name, _ in combination) or "all",
                         "settings": jsonable(settings), "argv": tokens})
    names = [v["name"] for v in variants]
    require(len(set(names)) == len(names), f"--sweep gives two variants the same name: {', '.join(names)}")
    return variants


# --- running the children --------------------------------------------------------------------------------------


def run_many(main, parser, args, argv=None, preset=None):
    """Train every variant (and fold) of a multi-run with the lab's `main`, then compare them.

    Args:
        main: the lab's ``main(argv)``; each child is ``main(base argv + variant flags + --out <child>)``.
        parser: the lab's argument parser (flag types, choices and option strings).
        args: the parsed arguments of this call.
        argv: this call's arguments (default ``sys.argv[1:]``).
        preset: the lab's `Preset`, or a function of the parsed arguments that gives it (or None).

    Returns:
        The parent's ``metrics.json`` content.
    """
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    check_fold_flags(args)
    choose = preset if callable(preset) else (lambda _: preset)
    lab = Path(main.__code__.co_filename).stem
    if args.resume:  # the stored plan, whatever else is given now: no table mixes runs of different settings
        run = RunFolder.create(args.out, resume=True)
        spec = run.read_json("config.json")["multirun"]
        chosen = choose(parser.parse_args(spec["given"])) if spec["preset"] else None
        print(f"resuming the multi-run in {run.path}: finished children are kept")
    else:
        chosen = choose(args)
        variants = plan(parser, args, argv, chosen)
        swept = {k for v in variants for k in v["settings"]} | set(NOT_SWEPT) | ({"compare"} if chosen else set())
        alone = chosen is not None and not (args.sweep or args.folds)
        spec = {"lab": lab, "given": argv, "preset": chosen.name if chosen else None,
                "argv": without_flags(parser, argv, swept), "variants": variants, "folds": args.folds,
                "keys": list(dict.fromkeys(k for v in variants for k in v["settings"])),
                "table": chosen.table if alone else "comparison", "report": bool(alone and chosen.report)}
        run = RunFolder.create(args.out or default_run_dir(lab), overwrite=bool(args.overwrite))
        run.write_json("config.json", {"settings": {k: jsonable(v) for k, v in vars(args).items()},
                                       "multirun": spec, "command": " ".join([lab, *argv])})
    if spec["folds"] and [v["name"] for v in spec["variants"]] == ["all"]:
        return _run_folds(main, run, spec["argv"], spec["folds"])  # --folds alone: this folder is the fold parent
    children = {}
    for index, variant in enumerate(spec["variants"], 1):
        path = run.path / variant["name"]
        print(f"=== variant {index}/{len(spec['variants'])}: {variant['name']} ({path})")
        child_argv = [*spec["argv"], *variant["argv"]]
        if spec["folds"]:
            path.mkdir(exist_ok=True)
            _run_folds(main, RunFolder(path), child_argv, spec["folds"])
        else:
            run_child(main, path, child_argv, variant["settings"])
        children[variant["name"]] = path
    summaries = [summarize_run(p) for p in children.values()]
    _record_skipped(run)
    metrics = write_comparison(run, summaries, spec["keys"], table=spec["table"])
    if spec["report"]:
        metrics.update(chosen.report(run, children) or {})
    run.write_json("metrics.json", metrics)
    print(run.file(f"{spec['table']}.md").read_text())
    print(f"winner (best {metrics['monitor']} on validation data): {metrics['winner']}\nrun folder: {run.path}")
    return metrics


def _record_skipped(run):
    """The parent's ``config.json`` lists every file its children left out (``--skip-bad-files``), as a lab's does."""
    skipped = []
    for config in sorted(run.path.rglob("*/config.json")):
        skipped += json.loads(config.read_text()).get("data", {}).get("skipped_files", [])
    stored = run.read_json("config.json")
    run.write_json("config.json", {**stored, "data": {**stored.get("data", {}),
                                                      "skipped_files": list(dict.fromkeys(skipped))}})


def run_child(main, path, argv, expected=None):
    """One child run of `main` in `path` with `argv`: skipped when finished (``metrics.json``), resumed when started,
    else trained from the start; a started child whose settings differ from `expected` stops the run."""
    config = path / "config.json"
    if config.is_file():
        _check_settings(path, expected or {})
    if (path / "metrics.json").is_file():
        print(f"{path.name}: finished earlier, kept")
        return
    main([*argv, "--out", str(path), *(["--resume"] if config.is_file() else [])])
    import keras

    keras.backend.clear_session()  # the next child starts from a clean graph and frees this one's memory


def _check_settings(path, expected):
    """A kept or resumed child must have been made with its variant's settings: no table mixes others in."""
    settings = json.loads((path / "config.json").read_text()).get("settings", {})
    for key, value in expected.items():
        if value is not None and key in settings and jsonable(settings[key]) != value:
            raise LabkitInputError(f"{path} was made with {key}={settings[key]}, not {value}: move it away or "
                                   "start afresh with --overwrite")


def _run_folds(main, run, argv, k):
    """``fold-1`` … ``fold-k`` of one variant, then its fold table and mean ± std; returns its metrics."""
    if run.finished:
        return run.read_json("metrics.json")
    if not run.file("config.json").is_file():
        run.write_json("config.json", {"multirun": {"argv": argv, "folds": k, "keys": ["fold"], "variants": [
            {"name": f"fold-{i}", "settings": {"fold": i}, "argv": []} for i in range(1, k + 1)]}})
    for i in range(1, k + 1):
        print(f"--- fold {i}/{k} ({run.path / f'fold-{i}'})")
        run_child(main, run.path / f"fold-{i}", [*argv, "--folds", str(k), "--fold", str(i)], {"fold": i})
    folds = [summarize_run(run.path / f"fold-{i}") for i in range(1, k + 1)]
    metrics = write_comparison(run, folds, ["fold"])
    metrics.update(fold_summary(folds))
    metrics.pop("winner")  # folds are estimates of one setting, not rivals
    run.write_csv("folds.csv", comparison_rows(folds, ["fold"]))
    run.write_text("comparison.md", run.file("comparison.md").read_text() + "\n" + _fold_details([
        {"name": f"mean ± std over {k} folds", "std": metrics["std"], **metrics}]))
    run.write_csv("history.csv", mean_history([f["history"] for f in folds]))
    run.write_json("metrics.json", metrics)
    return metrics


# --- summaries and tables --------------------------------------------------------------------------------------


def _parameters(path, metrics):
    value = metrics.get("parameters")
    if isinstance(value, dict):
        value = value.get("model", value).get("total")
    if value is None and (path / "model.keras").is_file():
        import keras

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


def _fold_details(summaries):
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
    from labkit.plots import comparison_curves

    monitors = {s["monitor"] for s in summaries}
    require(len(monitors) == 1, f"these runs pick their best epoch by different metrics ({', '.join(monitors)}): "
            "they cannot share one table")
    monitor = monitors.pop()
    keys = varying_settings(summaries) if keys is None else list(keys)
    rows = comparison_rows(summaries, keys)
    run.write_csv(f"{table}.csv", rows)
    run.write_text(f"{table}.md", _markdown(rows) + ("\n" + _fold_details(summaries) if rows[0].get(
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


# --- pieces of a preset's report --------------------------------------------------------------------------------


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


# --- labkit compare RUN_DIR... ---------------------------------------------------------------------------------


def main(argv=None):
    """The ``labkit`` console script: ``labkit compare RUN_DIR... [--out DIR]``."""
    from labkit.cli import LabArgumentParser

    parser = LabArgumentParser(prog="labkit", description="labkit command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="one comparison table and figure of finished run folders")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run folders (each with "
                         "metrics.json), e.g. one per task of a lab")
    compare.add_argument("--out", type=Path, help="where comparison.csv/.md/.png and metrics.json go (default: "
                         "runs/compare-<timestamp>)")
    compare.error = parser.error
    from labkit.trained import commands as trained

    trained.add_commands(commands, parser.error)  # labkit predict / labkit evaluate
    args = parser.parse_args(argv)
    if args.command in trained.COMMANDS:
        return trained.run(args)
    try:
        summaries = [summarize_run(p) for p in args.runs]
        names = [s["name"] for s in summaries]
        require(len(set(names)) == len(names), f"two runs share the folder name {names}: names label the rows")
        run = RunFolder(args.out or default_run_dir("compare"))
        run.path.mkdir(parents=True, exist_ok=True)
        metrics = write_comparison(run, summaries)
        run.write_json("metrics.json", {**metrics, "runs": [str(p) for p in args.runs]})
    except LabkitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(run.file("comparison.md").read_text())
    print(f"winner (best {metrics['monitor']}): {metrics['winner']}\nwritten to {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
