"""The flags every lab shares: the parser, the number checks and the ``add_*_argument`` helpers.

Every lab flag defaults to None in the parser, so `labkit.lab.resolve_settings` can tell a flag the user gave from
one left alone. A lab's ``parse_args`` starts from `lab_parser` and adds its own flags with the helpers here.
"""

import argparse
from pathlib import Path

from labkit.errors import require
from labkit.optimizers import LR_SCHEDULES
from labkit.runtime import PRECISIONS, STRATEGIES


class LabArgumentParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line, ``error: …``, and exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        # The namespace knows its parser (a class attribute, so not among vars(args) and the settings): a sweep
        # parses its values with the flags' own types (labkit.multirun.variants).
        namespace = namespace or type("LabArguments", (argparse.Namespace,), {"parser": self})()
        return super().parse_known_args(args, namespace)

    def add_argument(self, *args, **kwargs):
        # An on/off flag left alone parses as None, so settings can tell it from an explicit --no-… (False).
        if kwargs.get("action") in ("store_true", argparse.BooleanOptionalAction) and "default" not in kwargs:
            kwargs["default"] = None
        return super().add_argument(*args, **kwargs)


def _number(kind, check, rule):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text} is not {rule}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_int = _number(int, lambda v: v > 0, "> 0")
positive_float = _number(float, lambda v: v > 0, "> 0")
nonnegative_float = _number(float, lambda v: v >= 0, ">= 0")
dropout_rate = _number(float, lambda v: 0 <= v < 1, "in [0, 1)")
fraction = _number(float, lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")


def lab_parser(description, course):
    """A parser with the flags every lab shares; `course` holds the course defaults shown in ``--help``."""
    parser = LabArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = lambda key: f" (course default: {course[key]})" if key in course else ""  # noqa: E731
    add = parser.add_argument
    add("--data-dir", type=Path, help="dataset folder in the lab's layout (absent: the embedded synthetic data, "
        "with a demo-sized profile)")
    add("--out", type=Path, help="run folder (default: runs/<lab>-<timestamp>)")
    add("--epochs", type=positive_int, help="training epochs" + default("epochs"))
    add("--batch-size", type=positive_int, help="images per batch" + default("batch_size"))
    add("--lr", type=positive_float, help="learning rate of the optimizer" + default("lr"))
    add("--img-size", type=positive_int, help="side of the square network input in pixels" + default("img_size"))
    add("--seed", type=int, help="seed of the split, augmentation and weight initialisation" + default("seed"))
    add("--precision", choices=PRECISIONS, help="Keras dtype policy; auto picks mixed_bfloat16 on CPUs/GPUs with "
        "native bf16, mixed_float16 on older GPUs, float32 otherwise (default: auto)")
    add("--distribute", choices=STRATEGIES, help="tf.distribute strategy: mirrored (all local GPUs) or multiworker "
        "(TF_CONFIG, or a SLURM job step); the global batch is --batch-size × replicas (default: none)")
    add("--scale-lr", action="store_true", help="multiply the learning rate(s) by the number of replicas (linear "
        "scaling rule for the larger global batch); default: unchanged")
    add("--config", type=Path, help="repeat a run: take every setting from its config.json (flags given here "
        "still win)")
    add("--resume", action="store_true", help="continue the interrupted run in --out from its last completed epoch")
    add("--overwrite", action="store_true", help="replace a run already in --out")
    add("--deterministic", action="store_true", help="enable TensorFlow op determinism: repeatable numbers, "
        "somewhat slower training")
    add("--tensorboard", action="store_true", help="also write TensorBoard logs to <out>/tensorboard")
    add("--skip-bad-files", action="store_true", help="skip unreadable images with a warning instead of stopping")
    add("--quiet", action="store_true", help="no progress bars, one line per epoch")
    add("--stop-dead", action=argparse.BooleanOptionalAction, help="stop (exit code 1, best model kept) when the "
        "network has died: constant predictions and a flat loss for 5 epochs; --no-stop-dead keeps training "
        "(default: stop)")
    add("--precise-bn", action=argparse.BooleanOptionalAction, help="before each validation, set the BatchNorm "
        "statistics from the current weights (the mean over up to 16 training batches, dropout off) instead of "
        "Keras's moving average, which lags the weights in short runs; --no-precise-bn: Keras's (default: Keras's; "
        "see the demo profile)")
    add_multirun_arguments(parser)  # --sweep, --folds, --fold: runs of many models (labkit.multirun)
    return parser


def add_multirun_arguments(parser):
    """``--sweep``, ``--folds`` and ``--fold`` (every lab parser gets them from `lab_parser`; `labkit.multirun` runs
    them)."""
    parser.add_argument("--sweep", action="append", metavar="KEY=V1,V2", help="train one model per value (repeat "
                        "for a grid over several keys; a key is any of this lab's flags, e.g. lr=1e-4,1e-5, "
                        "dropout=none,0.4, augment=off,on), each into <out>/<key>=<value>/, then compare them")
    parser.add_argument("--folds", type=positive_int, metavar="K", help="K-fold cross-validation: one run per fold "
                        "into <out>/fold-<i>/ (stratified by class, grouped by patient/lesion where known), "
                        "mean ± std in comparison.md; combines with --sweep")
    parser.add_argument("--fold", type=positive_int, metavar="I", help="with --folds K: train only fold I (1..K), "
                        "as a single run")


def add_lr_schedule_argument(parser, demo):
    """``--lr-schedule constant|cosine`` (`labkit.optimizers.learning_rate_schedule`); `demo` is the lab's demo
    profile, whose schedule (constant unless it names one) the help shows."""
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="constant, or cosine: warm up to the learning "
                        "rate over the first 10%% of the steps, then decay to 0 (course default: constant; demo: "
                        f"{demo.get('lr_schedule', 'constant')})")


def add_weights_argument(parser, default="imagenet"):
    """``--weights imagenet|none|PATH`` for labs with an ImageNet encoder."""
    # default None: settings then tell a typed --weights from the lab's course default / demo profile
    parser.add_argument("--weights", default=None, help="encoder weights: imagenet (Keras's cache; no network "
                        "needed once cached), none (random initialisation) or a path to a local .h5 file "
                        f"(default: {default})")


def refuse_unused(args, reasons, lab_name):
    """Refuse shared flags that mean nothing for a lab, before any folder is made.

    Args:
        args: the parsed flags.
        reasons: ``{dest: why the flag does not apply}``.
        lab_name: names the lab in the message.

    Raises:
        LabkitInputError: one line for the first such flag given (a value other than None, False or ``"none"``),
            e.g. ``--folds does not apply to lab6_timeseries: a series has one order: …``.
    """
    for dest, reason in reasons.items():
        require(getattr(args, dest, None) in (None, False, "none"),
                f"--{dest.replace('_', '-')} does not apply to {lab_name}: {reason}")
