"""Auto-context (Lab 5, the course's 2022 option b): S steps of a segmenter, each seeing the previous step's output.

Step 1 trains the lab's model on the images alone. Step s > 1 trains the same model on the image plus step s−1's
predicted probability map (every output channel: one for a binary task, one per class otherwise) as extra input
channels. Where the maps come from decides whether the steps' numbers are honest:

* **training images** get an *out-of-fold* map: the training slices are cut into K folds (``--autocontext-folds``,
  by patient when the names carry one) and a step-(s−1) model trained without fold i predicts fold i. A step
  therefore never learns from a map its predecessor made of an image it had trained on (such maps are nearly
  perfect, and a step would learn to copy them). The folds are the same at every step, so a map made at step s
  comes from a chain of models none of which trained on that image.
* **validation images** get the map of the *full* step-(s−1) model, trained on every training slice: the model a
  user would keep. Its maps are a little better than the out-of-fold ones a step trains on (it saw 1/K more data),
  the usual price of stacking.

Every model is a complete run of the lab (`labkit.multirun`'s child runs: finished children are kept, an interrupted
one resumes) in ``<out>/``:

* ``step-<s>/``: the step's full model; its ``maps.npz`` holds its probability maps of the validation slices;
* ``step-<s>-fold-<i>/`` (steps before the last): trained without fold i; ``maps.npz`` holds fold i's maps;
* ``context-<s>.npz``: the maps step s reads (out-of-fold for training slices, full model for validation slices);
* ``autocontext.csv``/``.md`` (one row per step: its validation Dice per image, mean ± std, its best epoch and
  monitored value), ``autocontext.png`` (validation Dice per step) and ``metrics.json`` (the last step's summary,
  every step's row, and the training seconds of all models).

A lab wires it in four places: `add_arguments` in its parser, `run_steps` at the top of ``main``, `step_parts` on
its loaded arrays, `save_maps` after training. The child runs get internal flags: ``--autocontext-step S`` (write
``maps.npz``), ``--context-maps FILE`` (extra input channels, by image name) and ``--context-fold I/K`` (train
without inner fold I of K and predict it).
"""

import argparse
import io
import json
import sys
from pathlib import Path

import keras
import numpy as np

from labkit.data.split import kfold_indices
from labkit.errors import require
from labkit.flags import positive_int
from labkit.multirun.engine import run_child
from labkit.multirun.tables import child_metrics
from labkit.multirun.variants import jsonable, without_flags
from labkit.plots import autocontext_curve
from labkit.run_folder import RunFolder, atomic_write, default_run_dir

MAPS_FILE = "maps.npz"
#: Flags a child run does not inherit from the auto-context parent.
PARENT_FLAGS = ("autocontext", "autocontext_folds", "autocontext_step", "context_maps", "context_fold", "out", "resume",
                "overwrite")


def _fold_spec(text):
    """``"2/3"`` → ``(2, 3)``."""
    try:
        fold, k = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/K (e.g. 2/3)") from None
    if not 1 <= fold <= k:
        raise argparse.ArgumentTypeError(f"{text}: fold {fold} is not in 1..{k}")
    return fold, k


def add_arguments(parser):
    """``--autocontext S`` and ``--autocontext-folds K``, plus the internal flags of the child runs."""
    parser.add_argument("--autocontext", type=positive_int, metavar="S", help="auto-context: S steps, step s trains "
                        "on the image plus step s−1's probability map (out-of-fold on training slices), each a "
                        "child run; autocontext.csv/.md/.png give the validation Dice per step")
    parser.add_argument("--autocontext-folds", type=positive_int, metavar="K", help="folds over the training slices "
                        "for the out-of-fold maps (default: 3; each step before the last trains K more models)")
    # set by run_steps for its children: the step, the maps of the previous step, the inner fold left out
    parser.add_argument("--autocontext-step", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--context-maps", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--context-fold", type=_fold_spec, help=argparse.SUPPRESS)


# --- the parent: one child run per model ------------------------------------------------------------------------


def run_steps(main, args, argv=None):
    """Run an auto-context multi-run when `args` ask for one (``--autocontext S``, or ``--resume`` of such a
    folder); returns True when it did, so the lab's ``main`` stops there.

    Args:
        main: the lab's ``main(argv)``; every child is ``main(argv + child flags + --out <child>)``.
        args: this call's parsed arguments (their parser parses the stored plan on ``--resume``).
        argv: this call's arguments (default ``sys.argv[1:]``).
    """
    config = Path(args.out) / "config.json" if args.resume and args.out else None
    resuming = bool(config and config.is_file() and "autocontext" in json.loads(config.read_text()))
    if not (args.autocontext or resuming):
        return False
    require(not (args.autocontext_step or args.context_maps or args.context_fold),
            "--autocontext makes its own steps: it does not take --autocontext-step, --context-maps or --context-fold")
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    lab = Path(main.__code__.co_filename).stem
    if resuming:
        run = RunFolder.create(args.out, resume=True)
        plan = run.read_json("config.json")["autocontext"]
        print(f"resuming the auto-context run in {run.path}: finished steps are kept")
    else:
        folds = args.autocontext_folds or 3
        require(folds >= 2, f"--autocontext-folds {folds}: out-of-fold maps need at least 2 folds")
        plan = {"steps": args.autocontext, "folds": folds,
                "argv": without_flags(args.parser, argv, PARENT_FLAGS)}
        run = RunFolder.create(args.out or default_run_dir(lab), overwrite=bool(args.overwrite))
        run.write_json("config.json", {"settings": {k: jsonable(v) for k, v in vars(args).items()},
                                       "autocontext": plan, "command": " ".join([lab, *argv])})
    report(run, train_steps(main, run, plan))
    print(run.file("autocontext.md").read_text())
    print(f"run folder: {run.path}")
    return True


def train_steps(main, run, plan):
    """Train every step (and, before the last, its fold models) as child runs; returns ``{step: child path}``."""
    steps, k, base = plan["steps"], plan["folds"], plan["argv"]
    children = {}
    for step in range(1, steps + 1):
        context = ["--autocontext-step", str(step)]
        context += ["--context-maps", str(run.file(f"context-{step}.npz"))] if step > 1 else []
        print(f"=== auto-context step {step}/{steps}" + (f" (input: image + step {step - 1} map)" if step > 1 else ""))
        children[step] = run.path / f"step-{step}"
        run_child(main, children[step], [*base, *context])
        if step == steps:
            break
        folds = []
        for i in range(1, k + 1):
            print(f"--- step {step}, fold model {i}/{k}: out-of-fold maps of training fold {i}")
            folds.append(run.path / f"step-{step}-fold-{i}")
            run_child(main, folds[-1], [*base, *context, "--context-fold", f"{i}/{k}"])
        write_maps(run.file(f"context-{step + 1}.npz"), merge_maps([children[step], *folds]))
    return children


def merge_maps(children):
    """``{image name: map}`` from the ``maps.npz`` of `children` (a full model, then its fold models).

    Raises:
        LabkitInputError: two children mapped the same image (a fold model predicted an image another covers).
    """
    merged = {}
    for child in children:
        with np.load(Path(child) / MAPS_FILE) as maps:
            for name in maps.files:
                require(name not in merged, f"{name} has an auto-context map from two models ({child})")
                merged[name] = maps[name]
    return merged


def report(run, children):
    """Write ``autocontext.csv``/``.md``, ``autocontext.png`` and ``metrics.json`` from the finished steps; returns
    the metrics."""
    metrics = child_metrics({f"step-{s}": path for s, path in children.items()})
    rows = [step_row(s, metrics[f"step-{s}"]) for s in children]
    run.write_table("autocontext", rows)
    run.save_figure("autocontext.png", autocontext_curve(rows, title=f"auto-context: {len(rows)} steps"))
    last = metrics[f"step-{len(rows)}"]
    seconds = sum(float(m.get("train_seconds") or 0) for m in _all_metrics(run))
    summary = {key: last[key] for key in ("monitor", "best", "final", "epochs_run") if key in last}
    result = {**summary, "train_seconds": round(seconds, 2), "steps": rows,
              "best_step": max(rows, key=lambda r: r["val_dice"])["step"]}
    run.write_json("metrics.json", result)
    return result


def _all_metrics(run):
    """The metrics of every child (steps and fold models)."""
    return [json.loads(p.read_text()) for p in sorted(run.path.glob("step-*/metrics.json"))]


def validation_dice(metrics):
    """The per-image validation Dice summary ``{mean, std}`` of a lab run's metrics (``dice``, or ``dice_mean`` for
    several classes)."""
    validation = metrics.get("validation", {})
    key = next((k for k in ("dice", "dice_mean") if k in validation), None)
    require(key is not None, "an auto-context step's metrics.json holds no validation Dice")
    return validation[key]


def step_row(step, metrics):
    """One row of ``autocontext.csv``: a step's inputs, best epoch and monitored value, and validation Dice."""
    monitor, dice = metrics["monitor"], validation_dice(metrics)
    return {"step": step, "input": "image" if step == 1 else f"image + step {step - 1} map",
            "best_epoch": metrics["best"]["epoch"], f"best_{monitor}": metrics["best"][monitor],
            "val_dice": dice["mean"], "val_dice_std": dice["std"], "train_seconds": metrics.get("train_seconds")}


# --- a child: its inputs and its maps ---------------------------------------------------------------------------


def write_maps(path, maps):
    """Write ``{image name: float16 map}`` to `path` (``.npz``) whole."""
    def save(tmp):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{name: np.asarray(m, np.float16) for name, m in maps.items()})
        Path(tmp).write_bytes(buffer.getvalue())

    return atomic_write(Path(path), save)


def read_maps(path, names):
    """The maps of `names` from a ``.npz`` written by `write_maps`, stacked ``(n, h, w, c)`` float32."""
    require(Path(path).is_file(), f"--context-maps {path}: file not found")
    with np.load(path) as maps:
        missing = [n for n in names if n not in maps.files]
        require(not missing, f"--context-maps {path} holds no map of {', '.join(missing[:3])}"
                + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
        return np.stack([maps[n] for n in names]).astype(np.float32)


def step_folder(run_dir, step):
    """The child run folder of step `step` (1, 2, …) of the auto-context run in `run_dir`."""
    return Path(run_dir) / f"step-{int(step)}"


def chained_model(steps):
    """One Keras model of an auto-context run's step models, in order: step 1 sees the image, step s > 1 the image
    and step s−1's probability maps, rounded to float16 as `write_maps` stores them for training. Takes the
    image ``(h, w, 1)``; gives the last step's output.

    Example:
        >>> model = chained_model([keras.saving.load_model(step_folder(run_dir, s) / "model.keras") for s in (1, 2)])
    """
    image = keras.Input(steps[0].input_shape[1:], name="image")
    output = None
    for index, step in enumerate(steps, start=1):
        step = keras.Model(step.input, step.output, name=f"step_{index}")  # unique names for one model
        if output is not None:
            stored = keras.layers.Identity(dtype="float16", name=f"maps_{index - 1}")(output)
            output = keras.layers.Concatenate(dtype="float32", name=f"input_{index}")([image, stored])
        output = step(image if output is None else output)
    return keras.Model(image, output, name=f"autocontext_{len(steps)}_steps")


def _name(pair):
    return Path(pair[0] if isinstance(pair, (tuple, list)) else pair).name


def inner_fold(pairs, fold, seed, group_of=None):
    """Indices ``(kept, held_out)`` of inner fold ``fold = (i, k)`` of the training `pairs`, by group (patient) when
    `group_of` gives every pair one (`labkit.data.split.kfold_indices`)."""
    i, k = (int(v) for v in fold)
    groups = [group_of(p) for p in pairs] if group_of else None
    groups = None if groups is None or None in groups else groups
    require(len(pairs) >= k and (groups is None or len(set(groups)) >= k),
            f"--autocontext-folds {k}: the training set has {len(pairs)} slices"
            + (f" of {len(set(groups))} patients" if groups else "") + f", fewer than {k}")
    return kfold_indices(len(pairs), (i, k), seed, groups=groups)


def step_parts(settings, parts, group_of=None):
    """A child's data: the previous step's maps added as input channels, and (for a fold model) one inner fold of
    the training slices held out to be predicted. Outside auto-context, `parts` come back as they are.

    Args:
        settings: the run's settings (``context_maps``, ``context_fold``, ``seed``).
        parts: ``{"train": (pairs, images, masks), "val": (pairs, images, masks)}``, images ``(n, h, w, c)``.
        group_of: optional ``pair → group`` (e.g. the patient of a slice), so a patient stays in one inner fold.

    Returns:
        ``{"train", "val", "predict"}``, each ``(pairs, images, masks)``: ``predict`` is what `save_maps` maps
        (the held-out fold for a fold model, else the validation slices).
    """
    maps = getattr(settings, "context_maps", None)
    parts = {part: (pairs, _with_maps(images, maps, pairs), masks) for part, (pairs, images, masks) in parts.items()}
    fold = getattr(settings, "context_fold", None)
    if fold:
        pairs, images, masks = parts["train"]
        kept, held = inner_fold(pairs, fold, settings.seed, group_of)
        take = lambda index: ([pairs[i] for i in index], images[index], masks[index])  # noqa: E731
        parts["train"], parts["predict"] = take(kept), take(held)
    return {**parts, "predict": parts.get("predict", parts["val"])}


def _with_maps(images, maps, pairs):
    if not maps:
        return images
    return np.concatenate([images, read_maps(maps, [_name(p) for p in pairs])], axis=-1)


def save_maps(run, model, parts, settings, batch_size=8):
    """In a step of an auto-context run, write ``<run>/maps.npz``: `model`'s probability maps of ``parts["predict"]``, by
    image name (nothing outside auto-context)."""
    if not getattr(settings, "autocontext_step", None):
        return None
    pairs, images, _ = parts["predict"]
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    return write_maps(run.file(MAPS_FILE), {_name(p): m for p, m in zip(pairs, probabilities)})
