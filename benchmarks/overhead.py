"""Benchmark: what labkit's training machinery costs per epoch against a plain ``model.fit``.

For each lab (the Lab 4 U-Net and the Lab 2 LeNet at the course's image size, batch and width), one model is built
and compiled once, on one labkit ``tf.data`` pipeline of the embedded synthetic data. Then, round after round and in
alternating order, the same model trains a few epochs

* with plain Keras: ``model.fit(train, validation_data=val)``, no callbacks, silent;
* with `labkit.training.fit` as a lab calls it: the run recorder (``history.csv``, the best ``model.keras``, the
  resume checkpoint of every epoch), the dead-run watch, the Keras progress bar (to a null stream) and, for a
  network with BatchNorm, precise BatchNorm statistics;
* and with labkit's pieces added one at a time, so each one's cost shows: no run folder and no watch, + the run
  recorder and checkpoints, + the dead-run watch, + the progress bar.

An epoch is timed from the start of one epoch to the start of the next (so every callback's end-of-epoch work, the
validation and the checkpoint write are inside it); the first epoch of every call (graph tracing, the watch's probe
function, iterators) is left out, as a run of the course's 50–150 epochs amortises it. The table gives the median
seconds per epoch of each variant and its ratio to plain Keras from the same run.

usage:
  python benchmarks/overhead.py [--labs unet lenet] [--images 64] [--epochs 4] [--rounds 3] [--size SIZE]
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)

import keras  # noqa: E402

from machine import load_warning, machine_summary  # noqa: E402

#: The course's settings of each lab: image side, batch, first-level width, the loss and the monitored metric.
LABS = {
    "unet": {"size": 256, "batch": 8, "base": 8, "monitor": "val_dice_coef"},  # Lab 4 Task 4
    "lenet": {"size": 128, "batch": 8, "base": 32, "monitor": "val_accuracy"},  # Lab 2 Task 5
}
#: The variants, in the order of the table: (name, keyword arguments of `labkit.training.fit`, or None: plain Keras).
VARIANTS = [
    ("plain model.fit", None),
    ("labkit fit, nothing on", {"run": False, "stop_dead": False, "verbose": 0}),
    ("+ run recorder, checkpoints", {"run": True, "stop_dead": False, "verbose": 0}),
    ("+ dead-run watch", {"run": True, "stop_dead": True, "verbose": 0}),
    ("+ progress bar (= a lab)", {"run": True, "stop_dead": True, "verbose": 1}),
]


class EpochStarts(keras.callbacks.Callback):
    """The wall-clock time at which each epoch starts, and when the training ended."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.times.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.times.append(time.perf_counter())


def lab_data(lab, size, n_images, batch, root):
    """The lab's training and validation datasets (labkit's pipeline, decoded once and cached) and its model."""
    from labkit import classification_lab as classify
    from labkit import get_unet
    from labkit.data import segmentation_dataset
    from labkit.data.layouts.xray import find_xray_pairs
    from labkit.data.synthetic import xray_dataset
    from labkit.data.synthetic.bone_skin import bone_skin_dataset
    from labkit.metrics import dice_coef
    from labkit.training import compile_model

    settings = LABS[lab]
    n_val = max(batch, n_images // 4)
    if lab == "unet":
        pairs = find_xray_pairs(xray_dataset(n_images=n_images + n_val, size=size, root=root / "xray"))
        train = segmentation_dataset(pairs[:n_images], size, batch, shuffle=True, seed=1, cache=True)
        val = segmentation_dataset(pairs[n_images:], size, batch, cache=True)
        model = compile_model(get_unet((size, size, 1), base=settings["base"]), 1e-4, "binary_crossentropy",
                              metrics=[dice_coef])
    else:  # the Lab 2 classifier as labs/lab2_cnn.py builds it: its splits, head, datasets and compile
        train_split, val_split, _ = classify.find_labelled_set(
            bone_skin_dataset(n_train=n_images // 2, n_val=n_val // 2, size=size, root=root / "lab2"), "skin")
        head = classify.head_for("bce", 2)
        train, val = classify.datasets(train_split, val_split, size, batch, head)
        model = classify.build_classifier("lenet", size, 1, 2, head, settings["base"])
        classify.compile_classifier(model, head, "adam", 1e-5)
    return train, val, model


def train_epochs(variant, model, train, val, epochs, monitor, root):
    """Seconds of each epoch after the first of `epochs` epochs of one variant (start of epoch to start of next)."""
    from labkit.run_folder import RunFolder
    from labkit.training import fit

    starts = EpochStarts()
    if variant is None:
        model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[starts], shuffle=False)
    else:
        options = dict(variant)
        run = RunFolder.create(Path(tempfile.mkdtemp(dir=root)) / "run") if options.pop("run") else None
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            fit(model, train, val, epochs, run=run, monitor=monitor, callbacks=[starts], **options)
    return [later - earlier for earlier, later in zip(starts.times[1:-1], starts.times[2:])]


def measure(lab, size, n_images, epochs, rounds, root):
    """``{variant name: [seconds per epoch, …]}`` over `rounds` rounds (variants in alternating order)."""
    settings = LABS[lab]
    train, val, model = lab_data(lab, size, n_images, settings["batch"], root)
    train_epochs(None, model, train, val, 2, settings["monitor"], root)  # trace the graphs before anything is timed
    seconds = {name: [] for name, _ in VARIANTS}
    for round_index in range(rounds):
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for name, variant in order:
            seconds[name] += train_epochs(variant, model, train, val, epochs, settings["monitor"], root)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labs", nargs="+", choices=tuple(LABS), default=list(LABS))
    parser.add_argument("--images", type=int, default=64, help="training images per epoch (a quarter as many, at "
                        "least one batch, validate)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per call; the first of each is not timed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the variants, in alternating order")
    parser.add_argument("--size", type=int, help="image side for every lab (default: each lab's course size)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch of every call is not timed")
    started = time.perf_counter()
    print(machine_summary())
    keras.mixed_precision.set_global_policy("float32")
    with tempfile.TemporaryDirectory() as tmp:
        for lab in args.labs:
            settings = LABS[lab]
            size = args.size or settings["size"]
            print(f"\n{lab}: {size}×{size}, batch {settings['batch']}, base {settings['base']}, float32; "
                  f"{args.images} training images; {args.rounds} rounds × {args.epochs - 1} timed epochs per variant")
            seconds = measure(lab, size, args.images, args.epochs, args.rounds, Path(tmp))
            plain = statistics.median(seconds[VARIANTS[0][0]])
            print(f"{'variant':30s} {'s/epoch':>8s} {'× plain':>8s}")
            for name, _ in VARIANTS:
                median = statistics.median(seconds[name])
                print(f"{name:30s} {median:8.3f} {median / plain:7.3f}×")
            keras.backend.clear_session()
    print("\ns/epoch: median over the timed epochs (start of an epoch to the start of the next: training, "
          "validation and every end-of-epoch callback)")
    print(load_warning())
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
