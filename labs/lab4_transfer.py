"""Lab 4 Tasks 1–2 (CM2003): transfer learning with VGG16 bottleneck features, against VGG16 trained from scratch.

Task 1: VGG16 without its top (ImageNet weights) turns every image into bottleneck features (7×7×512 at 224×224),
computed once and cached on disk; the course's small MLP (`MLP_model`: Flatten → Dense(128) → Dropout(0.5) → ReLU →
softmax) learns the classes from them. Task 2: the course's VGG16-style network (`vgg16_model`) learns the same task
from the raw images. Both run on both course sets of Lab 2, Bone (AFF/NFF) and Skin (Mel/Nevi), read from
``{train,validation}/<class>/`` folders (class names from the folder names), and the training time of each is
recorded.

The run folder gets config.json, history.csv (every model's epochs, with dataset and method columns), metrics.json
(best/final of the best model, then every model), comparison.csv and comparison.md (method, dataset, training
seconds, best and final validation accuracy and loss), one curves_<dataset>_<method>.png per model (best epoch by
validation accuracy marked), a subfolder per model with its own history.csv and model.keras, and model.keras (a copy
of the model with the best validation accuracy; for the bottleneck method that is the MLP, which takes features).

Weights: --weights imagenet (default) needs VGG16's ImageNet file in Keras's cache; without network the lab stops
with one line naming the file and the folder. Only the demo (embedded data, --weights not given) continues instead,
with an untrained VGG16 (--weights none), and says so on screen, in the method name and in config.json /
metrics.json: random-weight features are a baseline, not transfer learning. The number of epochs is this lab's
choice: the course text fixes lr, batch size and dropout, not the epochs.

Without --data-dir the demo profile trains on the embedded synthetic sets at 96×96 for 15 epochs with lr 1e-3, and
the from-scratch VGG16 (n_base 8) gets batch normalisation after each convolution, which the course network does not
have: without it the plain network stays at chance level for longer than a demo lasts (--no-batchnorm turns it off).

example:
  python labs/lab4_transfer.py
  python labs/lab4_transfer.py --data-dir /DL_course_data/Lab2 --dataset both --img-size 224 --epochs 100
  python labs/lab4_transfer.py --data-dir /DL_course_data/Lab2/Bone --dataset bone --weights ~/vgg16_notop.h5
"""

import argparse
import shutil
from pathlib import Path

from labkit import cli, loss_accuracy_plot
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.data.layouts.lab2 import find_lab2_set
from labkit.data.pipeline import array_dataset, classification_dataset
from labkit.data.split import refold_class_splits
from labkit.features import bottleneck_features
from labkit.models.classic import MLP_model, vgg16_model
from labkit.models.transfer import WeightsUnavailableError, weights_label
from labkit.runs import RunFolder, atomic_write, markdown_table, read_csv
from labkit.training import compile_model, distribute, fit, summarize

import numpy as np

COURSE = {"dataset": "both", "method": "both", "weights": "imagenet", "epochs": 100, "batch_size": 8, "lr": 1e-5,
          "img_size": 224, "dropout": 0.5, "mlp_base": 128, "n_base": 64, "batchnorm": False, "seed": 42}
#: The demo adds batch normalisation to the from-scratch VGG16: without it, it sits at chance level for longer than a
#: demo lasts.
DEMO = {"img_size": 96, "epochs": 15, "lr": 1e-3, "n_base": 8, "batchnorm": True, "n_train": 32, "n_val": 10}
FULL_COURSE_COMMAND = "python labs/lab4_transfer.py --data-dir /path/to/Lab2 --img-size 224 --epochs 100 --lr 1e-5"
#: Channels each set is read with: Bone radiographs are grey (fed to VGG16 through the channel-repeat adapter).
CHANNELS = {"bone": 1, "skin": 3}
METHODS = {"bottleneck": "VGG16 bottleneck + MLP", "scratch": "VGG16 from scratch"}
MONITOR = "val_accuracy"


def parse_args(argv=None):
    parser = cli.lab_parser(__doc__, COURSE)
    parser.add_argument("--dataset", choices=("bone", "skin", "both"), help="which Lab 2 set(s) to train on "
                        "(default: both)")
    parser.add_argument("--method", choices=("bottleneck", "scratch", "both"), help="bottleneck: VGG16 features "
                        "+ MLP (Task 1); scratch: VGG16 trained from the images (Task 2) (default: both)")
    cli.add_weights_argument(parser)
    parser.add_argument("--mlp-base", type=cli.positive_int, help="width of the MLP's hidden layer (course: 128)")
    parser.add_argument("--n-base", type=cli.positive_int, help="filters of the first block of the from-scratch "
                        "VGG16 (course: 64, VGG16 itself)")
    parser.add_argument("--dropout", type=cli.dropout_rate, help="dropout after the hidden dense layer(s) of both "
                        "models (course: 0.5)")
    parser.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                        help="batch normalisation after every convolution of the from-scratch VGG16 (course: off; "
                        "the demo turns it on so it learns within its few epochs)")
    return parser.parse_args(argv)


def lab2_sets(settings):
    """Training and validation images of each chosen set, from --data-dir or the embedded data."""
    names = ("bone", "skin") if settings.dataset == "both" else (settings.dataset,)
    root = settings.data_dir or bone_skin_dataset(settings.n_train, settings.n_val,
                                                            size=max(64, settings.img_size))
    return root, {name: refold_class_splits(*find_lab2_set(root, name), settings.kfold, settings.seed)
                  for name in names}


def features_of_every_set(sets, settings, weights_given):
    """Bottleneck features of each set; on the demo, an offline ImageNet failure falls back to random weights."""
    features, note = {}, None
    for name, (train, val) in sets.items():
        extract = lambda weights: bottleneck_features(  # noqa: E731
            train, val, settings.img_size, weights, channels=CHANNELS[name], batch_size=settings.batch_size,
            seed=settings.seed, quiet=False)
        try:
            features[name] = extract(settings.weights)
        except WeightsUnavailableError as exc:
            if weights_given or not settings.demo:
                raise
            note = ("ImageNet weights unavailable offline; the demo fell back to --weights none: the bottleneck "
                    "features come from an UNTRAINED VGG16, a random-feature baseline, not transfer learning")
            print(f"notice: {exc}\nnotice: {note} (recorded in config.json and metrics.json)")
            settings.weights = "none"
            features[name] = extract("none")
    return features, note


def train_model(run, key, build, train, val, settings, strategy):
    """Train one model in its own subfolder (history.csv, best model.keras); a finished one is reused on --resume."""
    sub = RunFolder(run.file(key))
    sub.path.mkdir(parents=True, exist_ok=True)
    if sub.file("summary.json").is_file():  # finished before an interruption
        rows = read_csv(sub.file("history.csv"))
        print(f"{key}: finished earlier, reusing {sub.path}")
        return {k: [r[k] for r in rows] for k in rows[0]}, sub.read_json("summary.json")["parameters"]
    with strategy.scope():
        model = build()
        compile_model(model, settings.learning_rate, "categorical_crossentropy", metrics=["accuracy"])
    parameters = int(model.count_params())
    print(f"{key}: {model.name}, {parameters:,} parameters")
    history = fit(model, train, val, settings.epochs, run=sub, monitor=MONITOR,
                  **cli.fit_options(settings))
    sub.write_json("summary.json", {**summarize(history, MONITOR), "parameters": parameters})
    return history, parameters


def weights_text(weights):
    """``ImageNet weights``, ``random weights`` or ``weights from <file>``, for method names and titles."""
    label = weights_label(weights)
    return {"imagenet": "ImageNet weights", "none": "random weights"}.get(label, f"weights from {Path(label).name}")


def comparison_row(dataset, method, history, parameters, settings, feature_seconds=None):
    best = int(np.argmax(history["val_accuracy"]))
    return {
        "dataset": dataset,
        "method": METHODS[method] + (f", {weights_text(settings.weights)}" if method == "bottleneck" else ""),
        "parameters": parameters,
        "epochs": len(history["epoch"]),
        "train_seconds": round(float(sum(history["seconds"])), 2),
        "feature_seconds": feature_seconds,
        "best_epoch": best + 1,
        "best_val_accuracy": float(np.max(history["val_accuracy"])),
        "best_val_loss": float(np.min(history["val_loss"])),
        "final_val_accuracy": float(history["val_accuracy"][-1]),
        "final_val_loss": float(history["val_loss"][-1]),
    }


def main(argv=None):
    args = parse_args(argv)
    if cli.run_many(main, args, argv):  # --sweep / --folds: one child run per variant and fold (labkit.compare)
        return
    weights_given = args.weights is not None

    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = cli.start_run("lab4_transfer", args, COURSE, DEMO)
    if settings.demo:
        print(f"demo profile: embedded synthetic Bone and Skin sets ({settings.n_train} training and "
              f"{settings.n_val} validation images per class), {settings.img_size}×{settings.img_size}, "
              f"{settings.epochs} epochs, lr {settings.lr}, from-scratch VGG16 with n_base {settings.n_base}"
              f"{' and batch normalisation (the course network has none)' if settings.batchnorm else ''}. "
              f"Course settings on real data: {FULL_COURSE_COMMAND}")
    methods = ("bottleneck", "scratch") if settings.method == "both" else (settings.method,)
    settings.weights_requested = getattr(settings, "weights_requested", None) or settings.weights

    # Data: the Lab 2 class folders of each set, then (Task 1) VGG16 bottleneck features, cached on disk.
    data_root, sets = lab2_sets(settings)
    sets = {name: tuple(cli.readable(settings, split) for split in pair) for name, pair in sets.items()}
    for name, (train, val) in sets.items():
        print(f"data: {name}: {train.counts()} training and {val.counts()} validation images")
    features, note = features_of_every_set(sets, settings, weights_given) if "bottleneck" in methods else ({}, None)
    settings.weights_note = getattr(settings, "weights_note", None) or note
    strategy, batch, _ = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    cli.save_config(run, settings, data_root, sum(len(t) + len(v) for t, v in sets.values()))

    # Models and training: the MLP on the features, VGG16 from scratch on the images; one subfolder each.
    rows, histories = [], {}
    for name, (train, val) in sets.items():
        n_class = len(train.class_names)
        one_hot = lambda labels: np.eye(n_class, dtype=np.float32)[labels]  # noqa: E731
        if "bottleneck" in methods:
            f = features[name]
            train_data = array_dataset(f.train_features, one_hot(f.train_labels), batch, shuffle=True,
                                       seed=settings.seed)
            val_data = array_dataset(f.val_features, one_hot(f.val_labels), batch)
            build = lambda: MLP_model(settings.mlp_base, settings.dropout, n_class,  # noqa: E731
                                      input_shape=f.train_features.shape[1:])
            history, parameters = train_model(run, f"{name}_bottleneck", build, train_data, val_data, settings,
                                              strategy)
            histories[(name, "bottleneck")] = history
            rows.append(comparison_row(name, "bottleneck", history, parameters, settings, f.seconds))
        if "scratch" in methods:
            size, channels = settings.img_size, CHANNELS[name]
            train_data = classification_dataset(train.paths, train.labels, size, batch, n_class, channels,
                                                shuffle=True, seed=settings.seed, cache=True)
            val_data = classification_dataset(val.paths, val.labels, size, batch, n_class, channels, cache=True)
            build = lambda: vgg16_model(size, size, channels, settings.n_base, settings.dropout, n_class,  # noqa: E731
                                        batchnorm=settings.batchnorm)
            history, parameters = train_model(run, f"{name}_scratch", build, train_data, val_data, settings,
                                              strategy)
            histories[(name, "scratch")] = history
            rows.append(comparison_row(name, "scratch", history, parameters, settings))

    # Evaluation: the comparison table; the best model (by best validation accuracy, then loss) becomes model.keras.
    run.write_table("comparison", rows)
    run.write_csv("history.csv", [{"dataset": d, "method": m, **{k: h[k][i] for k in h}}
                                  for (d, m), h in histories.items() for i in range(len(h["epoch"]))])
    winner = max(rows, key=lambda r: (r["best_val_accuracy"], -r["best_val_loss"]))
    winner_key = (winner["dataset"], next(m for m in METHODS if winner["method"].startswith(METHODS[m])))
    source = run.file(f"{winner_key[0]}_{winner_key[1]}") / "model.keras"
    atomic_write(run.file("model.keras"), lambda tmp: shutil.copyfile(source, tmp))

    # Figures, then metrics.json last: its presence marks a finished run.
    for (dataset, method), history in histories.items():
        title = f"{dataset.capitalize()}: {METHODS[method]}" + (
            f", {weights_text(settings.weights)}" if method == "bottleneck" else "")
        run.save_figure(f"curves_{dataset}_{method}.png", loss_accuracy_plot(history, title, accuracy="accuracy"))
    metrics = {
        **summarize(histories[winner_key], MONITOR),
        "model": {"dataset": winner_key[0], "method": winner["method"], "file": f"{winner_key[0]}_{winner_key[1]}"},
        "train_seconds": round(sum(r["train_seconds"] for r in rows), 2),
        "weights": {"requested": settings.weights_requested, "note": settings.weights_note,
                    "used": weights_label(settings.weights) if "bottleneck" in methods else None},
        "comparison": rows,
    }
    run.write_json("metrics.json", metrics)
    print(markdown_table(rows, ["dataset", "method", "train_seconds", "best_val_accuracy", "best_val_loss",
                                "final_val_accuracy", "final_val_loss"]))
    print(f"run folder: {run.path}")


if __name__ == "__main__":
    cli.run_lab(main)
