"""``labkit predict`` and ``labkit evaluate``: the console commands of `labkit.trained`.

`add_commands` adds both to the ``labkit`` console script's subcommands and `run` carries one out; bad input is one
``error: …`` line and exit code 2.

    labkit predict RUN_DIR INPUT… --out DIR [--threshold T] [--probabilities png|npy] [--gradcam] [--batch-size B]
    labkit evaluate RUN_DIR… --data-dir TEST [--out DIR] [--batch-size B]

A model saved by plain course code (``model.save("unet.h5")``, no ``config.json``) takes what its file cannot say
from flags: ``--classes`` (a classifier's class names), ``--dataset`` (a course Lab 2/3 set: its layout and class
names) and ``--task`` (a Lab 5 CT/MRI segmenter: slices read and labelled as Lab 5 does). Image size and grey/RGB
always come from the model itself.
"""

import argparse
import sys
from pathlib import Path

from labkit.classification_lab import COURSE_SETS
from labkit.errors import LabkitInputError
from labkit.flags import fraction as open_fraction, nonnegative_float, positive_int
from labkit.inference import set_model_precision
from labkit.runtime import PRECISIONS
from labkit.trained.grading import grade_runs
from labkit.trained.run import LAB5_TASKS, load_run

COMMANDS = ("predict", "evaluate")


def _common(parser):

    add = parser.add_argument
    add("--batch-size", type=positive_int, default=8, help="images (3D: windows) per model call (default: 8)")
    add("--precision", choices=PRECISIONS, help="compute in this Keras dtype policy (default: as the run trained)")
    add("--threshold", type=open_fraction, help="foreground probability threshold (default: the run's, else 0.5)")
    add("--overlap", type=nonnegative_float, help="3D: sliding-window overlap in [0, 1) (default: the run's "
        "--overlap; needed for runs whose config.json lacks it)")
    course = parser.add_argument_group("models of plain course code (no config.json): what the file cannot say")
    course.add_argument("--classes", type=class_names, metavar="A,B,…", help="a classifier's class names, in the "
                        "order of its outputs (default: the run's, else class_0, class_1, …)")
    course.add_argument("--dataset", choices=tuple(COURSE_SETS), help="the course set a classifier was trained on "
                        "(its folder layout and class names)")
    course.add_argument("--task", choices=LAB5_TASKS, help="a Lab 5 segmenter: slices read and labelled as Lab 5 "
                        "does (ct-lr: left/right lung)")


def class_names(text):
    """``--classes Mel,Nevi`` → ``["Mel", "Nevi"]`` (at least two distinct names)."""
    names = [name.strip() for name in text.split(",")]
    if len(names) < 2 or "" in names or len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} is not two or more distinct names separated by commas")
    return names


#: The settings the course-model flags give (`load_run` overrides).
COURSE_MODEL_SETTINGS = ("classes", "dataset", "task")


def given_settings(args):
    """The course-model flags that were given, as `load_run` overrides (they replace the run's own settings)."""
    return {key: getattr(args, key) for key in COURSE_MODEL_SETTINGS if getattr(args, key) is not None}


def add_commands(subparsers, error=None):
    """Add ``predict`` and ``evaluate`` to the ``labkit`` console script's `subparsers`; `error` is the main
    parser's one-line error function."""
    predict = subparsers.add_parser("predict", help="apply a finished run's model to images, folders or volumes")
    predict.add_argument("run", type=Path, metavar="RUN_DIR", help="finished run folder (model.keras, config.json)")
    predict.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image or volume files, or folders")
    predict.add_argument("--out", type=Path, required=True, help="folder for masks / predictions.csv / volumes")
    predict.add_argument("--probabilities", choices=("png", "npy"), help="also write probability maps (16-bit PNG "
                         "or float32 .npy; 3D: in the volume's format)")
    predict.add_argument("--gradcam", action="store_true", help="classifiers: write each image's Grad-CAM map")
    predict.add_argument("--skip-bad-files", action="store_true", help="list and skip unreadable files")
    _common(predict)
    evaluate = subparsers.add_parser("evaluate", help="score finished runs on a held-out folder with the lab's "
                                     "metrics; several runs: one table, a row per run")
    evaluate.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run folders")
    evaluate.add_argument("--data-dir", type=Path, required=True, help="held-out folder in a layout the lab reads")
    evaluate.add_argument("--out", type=Path, help="one run: where its evaluation goes (default: "
                          "RUN_DIR/evaluations/<data folder>); several: where grades.csv/.md go (default: "
                          "runs/evaluate-<timestamp>)")
    _common(evaluate)
    if error is not None:
        predict.error = evaluate.error = error


def _predict(args):

    run = load_run(args.run, **given_settings(args))
    set_model_precision(run.model, args.precision)
    results = run.predict(args.inputs, out=args.out, threshold=args.threshold, probabilities=args.probabilities,
                          batch_size=args.batch_size, gradcam=args.gradcam, skip_bad_files=args.skip_bad_files,
                          overlap=args.overlap)
    items = "streamline(s)" if run.kind == "streamlines" else "file(s)"
    print(f"{len(results)} {items} predicted with {run.path} ({run.kind}); written to {args.out}")


def _evaluate(args):

    if len(args.runs) > 1:
        if args.precision:
            raise LabkitInputError("--precision applies to one run at a time; evaluate several runs without it")
        rows, folder = grade_runs(args.runs, args.data_dir, args.out, args.batch_size, args.threshold,
                                  **given_settings(args))
        print(folder.file("grades.md").read_text())
        print(f"{len(rows)} runs evaluated on {args.data_dir}; table in {folder.file('grades.csv')}")
        return
    run = load_run(args.runs[0], **given_settings(args))
    set_model_precision(run.model, args.precision)
    metrics = run.evaluate(args.data_dir, args.out, batch_size=args.batch_size, threshold=args.threshold,
                           overlap=args.overlap)
    headline = metrics["test"][metrics["headline"]]
    value = headline["mean"] if isinstance(headline, dict) else headline
    out = args.out or run.path / "evaluations" / args.data_dir.resolve().name
    print(f"{run.name} on {args.data_dir}: {metrics['headline']} {value:.4f}; written to {out}")


def run(args):
    """Carry out a parsed ``predict`` or ``evaluate`` command; returns the exit code (2: bad input, one line)."""
    try:
        (_predict if args.command == "predict" else _evaluate)(args)
    except LabkitInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
