"""Which runs a multi-run makes: ``--sweep`` values parsed as the lab's own flags parse them, and the plan.

`plan` turns a lab's preset (`Preset`) and every ``--sweep KEY=V1,V2`` into the grid of variants, each with a
readable child folder name (``lr=1e-05,batch_size=4``) and the flags that make it, validated before anything trains.
"""

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabkitInputError, require

#: Flags a sweep may not vary: where runs go, how they start, and the multi-run flags themselves.
NOT_SWEPT = ("out", "resume", "overwrite", "config", "sweep", "folds", "fold", "help", "quiet")
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
