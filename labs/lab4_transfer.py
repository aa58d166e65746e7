"""Lab 4 Tasks 1–2 (CM2003): transfer learning with VGG16 bottleneck features, against VGG16 trained from scratch.

Task 1: VGG16 without its top (ImageNet weights) turns every image into bottleneck features (7×7×512 at 224×224),
computed once and cached on disk; the course's small MLP (`MLP_model`: Flatten → Dense(128) → Dropout(0.5) → ReLU →
softmax) learns the classes from them. Task 2: the course's VGG16-style network (`vgg16_model`) learns the same task
from the raw images. Both run on both course sets of Lab 2, Bone (AFF/NFF) and Skin (Mel/Nevi), read from
``{train,validation}/<class>/`` folders (class names from the folder names), and the training time of each is
recorded.

One model (one --dataset, one --method) trains into the run folder: config.json, history.csv, model.keras,
metrics.json, comparison.csv/.md (its row) and curves_<dataset>_<method>.png. Several (--dataset both and/or
--method both, the default) are a preset of labkit.multirun: each model is a child run folder (bone_bottleneck/,
bone_scratch/, skin_bottleneck/, skin_scratch/), and the top folder gets history.csv (every model's epochs, with
dataset and method columns), comparison.csv and comparison.md (method, dataset, training seconds, best and final
validation accuracy and loss), every curves_<dataset>_<method>.png (best epoch by validation accuracy marked),
metrics.json (best/final of the best model, then every model), model.keras (a copy of the model with the best
validation accuracy; for the bottleneck method that is the MLP, which takes features) and, as every --sweep,
comparison.png and variants.csv/.md.

Weights: --weights imagenet (default) needs VGG16's ImageNet file in Keras's cache (or the network); when it cannot
be fetched the lab stops with one line naming the file and the folder. The demo (embedded data, --weights not given)
never downloads: without the cached file it uses an untrained VGG16 (--weights none), and says so on screen, in the
method name and in config.json / metrics.json: random-weight features are a baseline, not transfer learning. The
number of epochs is this lab's choice: the course text fixes lr, batch size and dropout, not the epochs.

Without --data-dir the demo profile trains on the embedded synthetic sets at 96×96 for 15 epochs with lr 1e-3, and
the from-scratch VGG16 (n_base 8) gets batch normalisation after each convolution, which the course network does not
have: without it the plain network stays at chance level for longer than a demo lasts (--no-batchnorm turns it off).

example:
  python labs/lab4_transfer.py
  python labs/lab4_transfer.py --data-dir /DL_course_data/Lab2 --dataset both --img-size 224 --epochs 100
  python labs/lab4_transfer.py --data-dir /DL_course_data/Lab2/Bone --dataset bone --weights ~/vgg16_notop.h5
"""

import argparse

from labkit import flags, lab, loss_accuracy_plot
from labkit.data.layouts.class_folders import find_lab2_set
from labkit.data.pipeline import array_dataset, classification_dataset
from labkit.data.split import refold_class_splits
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.features import bottleneck_features
from labkit.history import summarize
from labkit.models.classic import MLP_model, vgg16_model
from labkit.models.transfer import resolve_weights, weights_text
from labkit.multirun.tables import keep_file, write_preset_report
from labkit.multirun.variants import Preset
from labkit.run_folder import markdown_table
from labkit.runtime import distribute
from labkit.training import compile_model, fit

import numpy as np

COURSE = {"dataset": "both", "method": "both", "weights": "imagenet", "epochs": 100, "batch_size": 8, "lr": 1e-5,
          "img_size": 224, "dropout": 0.5, "mlp_base": 128, "n_base": 64, "batchnorm": False, "seed": 42}
#: The demo adds batch normalisation to the from-scratch VGG16: without it, it sits at chance level for longer than a
#: demo lasts.
DEMO = {"img_size": 96, "epochs": 15, "lr": 1e-3, "n_base": 8, "batchnorm": True, "n_train": 32, "n_val": 25}
FULL_COURSE_COMMAND = "python labs/lab4_transfer.py --data-dir /path/to/Lab2 --img-size 224 --epochs 100 --lr 1e-5"
#: Channels each set is read with: Bone radiographs are grey (fed to VGG16 through the channel-repeat adapter).
CHANNELS = {"bone": 1, "skin": 3}
METHODS = {"bottleneck": "VGG16 bottleneck + MLP", "scratch": "VGG16 from scratch"}
MONITOR = "val_accuracy"


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    add = parser.add_argument
    add("--dataset", choices=("bone", "skin", "both"), help="which Lab 2 set(s) to train on (default: both)")
    add("--method", choices=("bottleneck", "scratch", "both"), help="bottleneck: VGG16 features + MLP (Task 1); "
        "scratch: VGG16 trained from the images (Task 2) (default: both)")
    flags.add_weights_argument(parser)
    add("--mlp-base", type=flags.positive_int, help="width of the MLP's hidden layer (course: 128)")
    add("--n-base", type=flags.positive_int, help="filters of the first block of the from-scratch VGG16 (course: 64, "
        "VGG16 itself)")
    add("--dropout", type=flags.dropout_rate, help="dropout after the hidden dense layer(s) of both models (course: "
        "0.5)")
    add("--batchnorm", action=argparse.BooleanOptionalAction, default=None, help="batch normalisation after every "
        "convolution of the from-scratch VGG16 (course: off; the demo turns it on so it learns within its few "
        "epochs)")
    return parser.parse_args(argv)


def comparison_preset(args):
    """Several sets or methods (the default: both of each): one child run per model, then `report_models`."""
    datasets = ("bone", "skin") if (args.dataset or "both") == "both" else (args.dataset,)
    methods = tuple(METHODS) if (args.method or "both") == "both" else (args.method,)
    if len(datasets) * len(methods) == 1:
        return None
    return Preset("bottleneck + MLP vs from scratch", [
        (f"{d}_{m}", {"dataset": d, "method": m}) for d in datasets for m in methods], report=report_models,
        table="variants")


def method_name(method, settings):
    """``VGG16 bottleneck + MLP, ImageNet weights`` or ``VGG16 from scratch``, for tables and titles."""
    return METHODS[method] + (f", {weights_text(settings.weights)}" if method == "bottleneck" else "")


def demo_text(settings):
    """What the demo profile runs, shown on screen."""
    return (f"embedded synthetic Bone and Skin sets ({settings.n_train} training and {settings.n_val} validation "
            f"images per class), {settings.img_size}×{settings.img_size}, {settings.epochs} epochs, lr {settings.lr}, "
            f"from-scratch VGG16 with n_base {settings.n_base}"
            f"{' and batch normalisation (the course network has none)' if settings.batchnorm else ''}.")


LAB = lab.Lab("lab4_transfer", parse_args, COURSE, DEMO, demo_text, FULL_COURSE_COMMAND, preset=comparison_preset)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # several sets or methods, --sweep, --folds: labkit.multirun ran one child run each
        return
    dataset, method, size = settings.dataset, settings.method, settings.img_size
    channels = CHANNELS[dataset]
    weights = resolve_weights(settings, settings.flags.weights, "vgg16", (size, size, channels)) if method == "bottleneck" \
        else None

    # Data: the Lab 2 class folders of the set (with --folds, fold i of both pooled).
    root = settings.data_dir or bone_skin_dataset(settings.n_train, settings.n_val, size=max(64, size))
    train, val = refold_class_splits(*find_lab2_set(root, dataset), settings.kfold, settings.seed)
    train, val = lab.readable_files(settings, train), lab.readable_files(settings, val)
    print(f"data: {dataset}: {train.counts()} training and {val.counts()} validation images")
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    batch = distribution.global_batch_size
    n_class = len(train.class_names)
    one_hot = lambda labels: np.eye(n_class, dtype=np.float32)[labels]  # noqa: E731

    # Model: Task 1, the course's MLP on VGG16 bottleneck features (computed once, cached on disk); Task 2, the
    # course's VGG16-style network on the images.
    feature_seconds = None
    if method == "bottleneck":
        f = bottleneck_features(train, val, size, settings.weights, channels=channels, batch_size=settings.batch_size,
                                seed=settings.seed, quiet=False)
        feature_seconds = f.seconds
        train_data = array_dataset(f.train_features, one_hot(f.train_labels), batch, shuffle=True, seed=settings.seed)
        val_data = array_dataset(f.val_features, one_hot(f.val_labels), batch)
        build = lambda: MLP_model(settings.mlp_base, settings.dropout, n_class,  # noqa: E731
                                  input_shape=f.train_features.shape[1:])
    else:
        train_data = classification_dataset(train.paths, train.labels, size, batch, n_class, channels, shuffle=True,
                                            seed=settings.seed, cache=True)
        val_data = classification_dataset(val.paths, val.labels, size, batch, n_class, channels, cache=True)
        build = lambda: vgg16_model(size, size, channels, settings.n_base, settings.dropout, n_class,  # noqa: E731
                                    batchnorm=settings.batchnorm)
    lab.save_config(run, settings, root, len(train) + len(val), distribution=distribution)
    with distribution.strategy.scope():
        model = build()
        compile_model(model, distribution.learning_rate, "categorical_crossentropy", metrics=["accuracy"])
    print(f"{dataset}_{method}: {model.name}, {model.count_params():,} parameters")

    # Training: history.csv every epoch, model.keras at every new best validation accuracy.
    history = fit(model, train_data, val_data, settings.epochs, run=run, monitor=MONITOR, **lab.fit_options(settings))

    # Evaluation: this model's row of the comparison table.
    row = {"dataset": dataset, "method": method_name(method, settings), "parameters": int(model.count_params()),
           "epochs": len(history["epoch"]), "train_seconds": round(float(sum(history["seconds"])), 2),
           "feature_seconds": feature_seconds, "best_epoch": int(np.argmax(history["val_accuracy"])) + 1,
           "best_val_accuracy": float(np.max(history["val_accuracy"])),
           "best_val_loss": float(np.min(history["val_loss"])),
           "final_val_accuracy": float(history["val_accuracy"][-1]), "final_val_loss": float(history["val_loss"][-1])}
    run.write_table("comparison", [row])

    # Figures, then metrics.json last: its presence marks a finished run.
    curves = f"curves_{dataset}_{method}.png"
    lab.finish_run(run, {
        **summarize(history, MONITOR), "dataset": dataset, "method": method, "curves": curves,
        "model": {"dataset": dataset, "method": row["method"], "file": f"{dataset}_{method}"},
        "parameters": row["parameters"], "train_seconds": row["train_seconds"], "comparison": [row],
        "weights": weights.record() if weights else None,
    }, {curves: loss_accuracy_plot(history, f"{dataset.capitalize()}: {row['method']}", "accuracy")},
        summary=markdown_table([row], ["dataset", "method", "train_seconds", "best_val_accuracy", "best_val_loss",
                                       "final_val_accuracy", "final_val_loss"]))


def report_models(run, children):
    """The top folder's files (see the module docstring); returns the entries it adds to its metrics.json. The best
    model: the best validation accuracy, ties broken by the lower validation loss."""
    models, tables, winner = write_preset_report(
        run, children, lambda models: {"comparison": [row for m in models.values() for row in m["comparison"]]},
        lambda name, m: {"dataset": m["dataset"], "method": m["method"]},
        lambda m: (m["best"][MONITOR], -m["comparison"][0]["best_val_loss"]))
    rows = tables["comparison"]
    for name, m in models.items():
        keep_file(run, children[name] / m["curves"], m["curves"])
    print(markdown_table(rows, ["dataset", "method", "train_seconds", "best_val_accuracy", "best_val_loss",
                                "final_val_accuracy", "final_val_loss"]))
    return {**{k: models[winner][k] for k in ("monitor", "best", "final", "epochs_run", "model")}, "winner": winner,
            "train_seconds": round(sum(r["train_seconds"] for r in rows), 2), "comparison": rows,
            "weights": next((m["weights"] for m in models.values() if m["weights"]), None)}


if __name__ == "__main__":
    lab.run_lab(main)
