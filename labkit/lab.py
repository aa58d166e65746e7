"""The run lifecycle every lab shares: settings, the run folder, ``config.json``, and the exit codes of a lab script.

Every lab flag defaults to None in the parser, so `resolve_settings` can tell a flag the user gave from one left
alone: explicit flags always win, then (on the embedded data) the lab's demo profile, then the course default.

A lab script uses these pieces in one order: `labkit.flags.lab_parser` (plus its own flags) in ``parse_args``;
`begin` as the first lines of ``main`` (flags, --sweep/--folds, run folder, seed, precision, demo notice);
`readable_files`, `labkit.runtime.distribute` and `save_config` (with that distribution) once its data is found;
`fit_options` for `labkit.training.fit`; `best_model` and `finish_run` at the end; `run_lab` under
``if __name__ == "__main__"``:

    LAB = lab.Lab("lab4_unet", parse_args, COURSE, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)

    def main(argv=None):
        settings, run = lab.begin(main, argv, LAB)
        if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold
            return
        ...

    if __name__ == "__main__":
        lab.run_lab(main)
"""

import argparse
import errno
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy
import tensorflow

from labkit import progress, resume, run_folder, run_manifest, runtime
from labkit.data.layouts import check_readable, forget_skipped, skipped_files
from labkit.errors import LabkitInputError, RunWriteError
from labkit.multirun import engine, variants
from labkit.training import TrainingDiverged, TrainingStopped
from labkit.version import __version__


@dataclass(frozen=True)
class Lab:
    """What a lab script tells labkit about itself, once: `begin` takes it.

    Attributes:
        name: names the default run folder (``runs/<name>-<timestamp>``).
        parse_args: the lab's ``parse_args(argv)``, built on `labkit.flags.lab_parser`.
        course: the course defaults: a dict, or a function of the parsed flags giving it (defaults that follow from
            a flag, e.g. the loss; it may also check the flags before any folder is made).
        demo: the demo profile: a dict, or a function of the parsed flags giving it or None (no demo profile for
            this run, e.g. when data was given another way than ``--data-dir``).
        demo_text: what the demo run is (data, size, epochs, ...), one sentence: a `str.format` template of the
            settings (``"{epochs} epochs at {img_size} px."``) or a function of the settings giving the text.
        course_command: the command line of a run with the course's settings on real data, shown after it.
        preset: the lab's preset function, see `run_many`.
        multirun: another multi-run mechanism of the lab, called as ``multirun(main, args, argv)`` after `run_many`
            and returning True when it ran (e.g. `labkit.autocontext.run_steps`).
        auto_avoids: ``{policy: reason}``, the precision policies ``--precision auto`` must not pick for this lab
            (measured to cost it quality); auto then trains in float32 and says why.

    Example:
        >>> LAB = lab.Lab("lab4_unet", parse_args, COURSE, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)
    """

    name: str
    parse_args: Callable
    course: object
    demo: object
    demo_text: object = None
    course_command: str = None
    preset: Callable = None
    multirun: Callable = None
    auto_avoids: dict = None


def begin(main, argv, description):
    """The opening of every lab's ``main``: parse the flags, hand several runs to `labkit.multirun`, or start this run.

    With ``--sweep``, ``--folds`` or a preset (a lab's ``--compare``), `labkit.multirun` calls `main` once per variant
    and fold, each into a child run folder, compares them, and this returns ``(None, None)``: ``main`` stops there.
    Otherwise it resolves the settings and opens the run folder (`start_run`) and, when the demo profile applies,
    prints ``demo profile: `` followed by the demo text and the command of a course-sized run.

    Args:
        main: the lab's ``main(argv)``.
        argv: the lab's arguments (None: the command line).
        description: the lab's `Lab`.

    Returns:
        ``(settings, run)`` as `start_run` gives them, or ``(None, None)``. ``settings.flags`` holds the parsed
        flags (None where not given), for choices that depend on whether a flag was typed (e.g. ``--weights``).
    """
    args = description.parse_args(argv)
    multirun = description.multirun
    if run_many(main, args, argv, preset=description.preset) or (multirun is not None and multirun(main, args, argv)):
        return None, None
    pick = lambda value: value(args) if callable(value) else value  # noqa: E731
    course, profile = pick(description.course), pick(description.demo)
    settings, run = start_run(description.name, args, course, profile or {}, description.auto_avoids)
    settings.demo = settings.demo and profile is not None
    demo_text, course_command = description.demo_text, description.course_command
    if settings.demo and demo_text:
        course_run = f" Course settings on real data: {course_command}" if course_command else ""
        text = demo_text(settings) if callable(demo_text) else demo_text.format(**vars(settings))
        print(f"demo profile: {text}{course_run}")
    return settings, run



def run_many(main, args, argv=None, preset=None):
    """Hand a lab's call to `labkit.multirun` when it asks for several runs (``--sweep``, ``--folds`` or a preset such
    as ``--compare``; ``--resume`` of such a run too). Returns True when it did, so the lab's ``main`` stops there.

    `preset` is a function of the parsed arguments giving the lab's `labkit.multirun.variants.Preset` for them (or
    None).

    Example:
        >>> if lab.run_many(main, args, argv, preset=comparison_preset):
        ...     return
    """
    variants.check_fold_flags(args)
    chosen = preset(args) if preset else None
    if not (chosen or variants.is_multirun(args)):
        return False
    engine.run_many(main, args.parser, args, argv, preset)
    return True



#: Defaults of the flags every lab shares, under the lab's own course defaults.
COMMON_DEFAULTS = {"seed": 42, "precision": "auto", "distribute": "none", "resume": False, "overwrite": False,
                   "deterministic": False, "tensorboard": False, "skip_bad_files": False, "quiet": False,
                   "scale_lr": False, "stop_dead": True, "precise_bn": False}



_NOT_REPEATED = ("out", "resume", "overwrite", "config", "demo")



def stored_settings(config_path):
    """The settings of an earlier run's ``config.json`` (without its output folder and resume flags)."""
    path = Path(config_path)
    if not path.is_file():
        raise LabkitInputError(f"--config {path}: file not found")
    try:
        settings = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError, TypeError) as exc:
        raise LabkitInputError(f"--config {path}: not a labkit config.json ({type(exc).__name__})") from None
    return {k: v for k, v in settings.items() if k not in _NOT_REPEATED}



def resolve_settings(args, course, demo):
    """Settings from explicit flags, then ``--config``, then the demo profile (only without a data folder), then
    the course defaults.

    Returns:
        ``(settings, is_demo)``: a dict with every key of `course` and `demo`, and whether the demo profile applied.
    """
    given = {k: v for k, v in vars(args).items() if v is not None}
    repeated = stored_settings(args.config) if getattr(args, "config", None) else {}
    is_demo = {**repeated, **given}.get("data_dir") is None
    settings = {**vars(args), **COMMON_DEFAULTS, **course, **(demo if is_demo else {}), **repeated, **given}
    return settings, is_demo


def versions():
    """Versions of Python, labkit, TensorFlow, Keras and NumPy, for ``config.json``."""
    return {
        "python": platform.python_version(),
        "labkit": __version__,
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }



#: OS errors that are faults of the machine or its set-up, not of labkit: one line and exit code 1.
FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)



def run_lab(main, argv=None):
    """Run a lab's ``main(argv)`` and exit: 0 done, 2 bad input (one ``error:`` line), 1 diverged or dead training
    or a fault of the machine (a full disk, a folder that became unwritable: one ``error:`` line saying what the run
    folder keeps and how to continue)."""
    try:
        main(argv)
    except LabkitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TrainingStopped as exc:
        kind = "diverged" if isinstance(exc, TrainingDiverged) else "stopped"
        print(f"error: training {kind}: {exc}", file=sys.stderr)
        sys.exit(1)
    except RunWriteError as exc:
        remedy = "free space" if exc.disk_full else "make it writable"
        print(f"error: {exc}; {what_the_run_keeps(exc.path, remedy)}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in FAULTS:
            raise
        print(f"error: {exc.strerror}: {exc.filename or exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: rerun with --resume --out <run folder> to continue", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)



def what_the_run_keeps(path, remedy="free space"):
    """``<run> keeps epochs 1–k; free space and rerun with --resume`` for a file of a run that could not be
    written (k from the run's resume checkpoint)."""
    folder = run_manifest.run_folder_of(path)
    if folder is None:
        return f"{remedy} and run again"
    epochs = resume.completed_epochs(run_folder.RunFolder(folder))
    kept = {0: "keeps no completed epoch", 1: "keeps epoch 1"}.get(epochs, f"keeps epochs 1–{epochs}")
    return f"{folder} {kept}; {remedy} and rerun with --resume"



def start_run(lab_name, args, course, demo, auto_avoids=None):
    """Resolve the settings, open the run folder and set seed, precision and progress output.

    On ``--resume`` the settings stored in the run's ``config.json`` are used, so the run continues as it began.

    Returns:
        ``(settings, run)``: an `argparse.Namespace` of resolved settings (``settings.demo`` says whether the demo
        profile applied; ``settings.precision`` is the resolved policy; ``settings.flags`` is `args`, the flags as
        given) and the `labkit.run_folder.RunFolder`.
    """
    settings, is_demo = resolve_settings(args, course, demo)
    out = args.out or run_folder.default_run_dir(lab_name)
    out = runtime.worker_run_dir(out, settings["distribute"], args.resume)  # a private folder on non-chief workers
    run = run_folder.RunFolder.create(out, overwrite=args.overwrite, resume=args.resume)
    if args.resume:
        stored = run.read_json("config.json")["settings"]
        # settings added since the run began take their course default (the behaviour the run had)
        settings = {**COMMON_DEFAULTS, **course, **stored, "resume": True, "out": str(run.path),
                    "quiet": bool(args.quiet)}
        is_demo = stored.get("demo", is_demo)
        print(f"resuming {run.path} with the settings in its config.json")
    # The parsed flags ride along as a class attribute: not a setting, so not in vars(settings) nor config.json.
    settings = type("LabSettings", (argparse.Namespace,), {"flags": args})(**{**settings, "demo": is_demo,
                                                                              "out": str(run.path)})
    # --folds K --fold I: the lab's split validates on fold I (labkit.data.split.kfold_indices)
    fold, folds = getattr(settings, "fold", None), getattr(settings, "folds", None)
    settings.kfold = (fold, folds) if fold else None
    settings.data_dir = str(settings.data_dir) if settings.data_dir is not None else None
    progress.set_quiet(settings.quiet)
    forget_skipped()  # this run's config.json lists only the files this run skipped
    runtime.set_seed(settings.seed, deterministic=settings.deterministic)
    requested, avoided = settings.precision, auto_avoids or {}
    settings.precision = runtime.set_precision(requested, avoid=avoided)
    hardware_pick = runtime.resolve_precision(requested) if requested == "auto" and avoided else None  # for why
    why = (f" (auto would pick {hardware_pick} here, which this lab avoids: {avoided[hardware_pick]})"
           if hardware_pick in avoided else "")
    print(f"precision policy: {settings.precision}{why}")
    return settings, run



def fit_options(settings):
    """The keyword arguments of `labkit.training.fit` that come from the shared flags (--quiet, --tensorboard,
    --no-stop-dead, --precise-bn)."""
    return {"verbose": 2 if settings.quiet else 1, "tensorboard": settings.tensorboard,
            "stop_dead": settings.stop_dead, "precise_batchnorm": settings.precise_bn}



def readable_files(settings, files):
    """`labkit.data.check_readable` under the lab's ``--skip-bad-files``: bad files raise (one ``error:`` line
    naming the file) or, with the flag, are left out and listed in ``config.json`` (``data.skipped_files``).

    `files`: paths, tuples of paths (image/mask pairs) or a split object (``paths`` and ``labels``); the same kind
    comes back. Call it before `save_config`.
    """
    return check_readable(files, skip_bad=settings.skip_bad_files)



def save_config(run, settings, data_dir, n_files, splits=None, distribution=None):
    """Write ``config.json``: every resolved setting, the data folder with its file count and the files
    ``--skip-bad-files`` left out (``data.skipped_files``, from `labkit.data.check_readable`), and the versions.

    `splits` (``{"train": items, "val": items, ...}``, items paths or (image, mask) pairs) also writes
    ``split.csv``: which image is in which split (with ``--folds``, the fold's validation images).
    `distribution` (the `labkit.runtime.Distribution` of `labkit.runtime.distribute`) adds what the run trained with
    to the settings: ``replicas``, ``global_batch_size``, ``lr_scale`` and ``learning_rate``.
    """
    if splits:
        name = lambda item: Path(item[0] if isinstance(item, (tuple, list)) else item).name  # noqa: E731
        run.write_csv("split.csv", [{"item": name(i), "split": s} for s, items in splits.items() for i in items])
    run.write_json(
        "config.json",
        {
            "settings": {**vars(settings), **(distribution.record() if distribution else {})},
            "data": {"dir": str(data_dir), "files": int(n_files), "skipped_files": skipped_files()},
            "versions": versions(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        },
    )



def precise_bn_text(settings, batchnorm=True):
    """``", precise BatchNorm statistics"`` for a demo text when the run re-estimates them before each validation
    (``--precise-bn``) and its model has BatchNorm (`batchnorm`), else ``""``."""
    return ", precise BatchNorm statistics" if batchnorm and settings.precise_bn else ""


def best_model(run):
    """The model of the run's best epoch (``model.keras``, which `labkit.training.fit` keeps), loaded to evaluate it."""
    return keras.saving.load_model(run.file("model.keras"))


def finish_run(run, metrics, figures=None, summary=None):
    """The end of every lab's run: save `figures` (``{file name: matplotlib Figure}``, in order) as PNG, write
    ``metrics.json`` last (its presence marks a finished run: ``--resume`` and multi-runs keep it), print `summary`
    (the lab's result line, if any) and ``run folder: <path>``.

    Returns:
        `metrics`.
    """
    for name, figure in (figures or {}).items():
        run.save_figure(name, figure)
    run.write_json("metrics.json", metrics)
    if summary:
        print(summary)
    print(f"run folder: {run.path}")
    return metrics
