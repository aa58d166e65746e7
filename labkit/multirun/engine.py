"""Running a multi-run: every variant and fold is one call of the lab's ``main`` into its own child run folder.

A child with ``metrics.json`` is finished and kept; a started one resumes; ``--resume`` of the parent always follows
the plan stored in its ``config.json`` (`labkit.multirun.variants.plan`), and the parent gets its tables from
`labkit.multirun.tables`.
"""

import json
import sys
from pathlib import Path

import keras

from labkit.errors import LabkitInputError
from labkit.multirun.tables import (comparison_rows, fold_details, fold_summary, mean_history, summarize_run,
                                    write_comparison)
from labkit.multirun.variants import NOT_SWEPT, check_fold_flags, jsonable, plan, without_flags
from labkit.run_folder import RunFolder, default_run_dir

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
    run.write_text("comparison.md", run.file("comparison.md").read_text() + "\n" + fold_details([
        {"name": f"mean ± std over {k} folds", "std": metrics["std"], **metrics}]))
    run.write_csv("history.csv", mean_history([f["history"] for f in folds]))
    run.write_json("metrics.json", metrics)
    return metrics
