"""Lab 4 Task 3 (CM2003): class activation maps (Grad-CAM) of a VGG16-style classifier.

Trains the course's VGG16-style network (`vgg16_model`, Task 3 settings: 128×128, n_base 8, dense layers
64-64-64 with dropout 0.4, lr 1e-5, batch 8, augmentation with rotation 10°, shift 0.1 and horizontal flip on the
training images) on a Lab 2 set — Bone (AFF/NFF) by default, or Skin (Mel/Nevi) — read from
``{train,validation}/<class>/`` folders, then explains its predictions with Grad-CAM on the last convolutional layer
(``Last_ConvLayer``): where in the image the evidence for the predicted class lies.

The run folder gets config.json, history.csv, metrics.json (best/final epoch, validation accuracy of the best model,
and the class of every explained image), curves.png, activation_maps.png (image, heatmap and overlay for a few
validation images of each class) and model.keras (the best epoch by validation accuracy). The number of epochs is
this lab's choice: the course text fixes the other settings.

Without --data-dir it trains on the embedded synthetic Bone set with a demo profile (15 epochs, lr 3e-3 and batch
normalisation after each convolution, which the course network does not have: without it the plain network stays at
chance level for longer than a demo lasts; --no-batchnorm turns it off).

example:
  python labs/lab4_activation_map.py
  python labs/lab4_activation_map.py --data-dir /DL_course_data/Lab2 --dataset bone --epochs 100
"""

import argparse
from pathlib import Path

from labkit import flags, lab, loss_accuracy_plot
from labkit.data.layouts.class_folders import find_lab2_set
from labkit.data.pipeline import classification_dataset
from labkit.data.split import refold_class_splits
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.gradcam import grad_cam
from labkit.history import summarize
from labkit.inference import collect_predictions
from labkit.models.classic import vgg16_model
from labkit.optimizers import learning_rate_schedule
from labkit.plots import activation_map_figure
from labkit.runtime import distribute
from labkit.training import compile_model, fit, steps_per_epoch

import numpy as np

COURSE = {"dataset": "bone", "img_size": 128, "n_base": 8, "dense_layers": (64, 64, 64), "dropout": 0.4,
          "lr": 1e-5, "batch_size": 8, "epochs": 100, "seed": 42, "augment": True, "batchnorm": False,
          "maps_per_class": 3, "lr_schedule": "constant"}
#: The demo adds batch normalisation: the plain course network sits at chance level for longer than a demo lasts.
#: Its lr is 3e-3: at 1e-3 (and at 3e-4, or 3e-3 decayed along a cosine) seed 3 stayed at chance level for all 15
#: epochs; at a constant 3e-3 seeds 1-3 ended at accuracy 1.0, after swings on the way (BENCHMARKS.md).
DEMO = {"epochs": 15, "lr": 3e-3, "batchnorm": True, "n_train": 32, "n_val": 25}
FULL_COURSE_COMMAND = "python labs/lab4_activation_map.py --data-dir /path/to/Lab2 --epochs 100 --lr 1e-5"
CHANNELS = {"bone": 1, "skin": 3}


def widths(text):
    """``"64,64,64"`` → ``(64, 64, 64)``: the hidden dense layers."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} needs at least one width, each >= 1")
    return values


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    parser.add_argument("--dataset", choices=("bone", "skin"), help="which Lab 2 set (default: bone)")
    parser.add_argument("--n-base", type=flags.positive_int, help="filters of the first block (course Task 3: 8)")
    parser.add_argument("--dense-layers", type=widths, help="hidden dense widths, comma-separated "
                        "(course Task 3: 64,64,64)")
    parser.add_argument("--dropout", type=flags.dropout_rate, help="dropout after each hidden dense layer "
                        "(course Task 3: 0.4)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help="no augmentation (course Task 3 augments: rotation 10°, shift 0.1, horizontal flip)")
    parser.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=None,
                        help="batch normalisation after every convolution (course: off; the demo turns it on so "
                        "the from-scratch network learns within its few epochs)")
    parser.add_argument("--maps-per-class", type=flags.positive_int, help="validation images explained per class "
                        "(default: 3)")
    flags.add_lr_schedule_argument(parser, DEMO)
    return parser.parse_args(argv)


def explained_images(images, labels, probabilities, class_names, per_class):
    """The first `per_class` validation images of each class, with their true and predicted classes."""
    chosen = []
    for index, name in enumerate(class_names):
        for i in np.flatnonzero(labels == index)[:per_class]:
            predicted = int(np.argmax(probabilities[i]))
            chosen.append({"index": int(i), "true": name, "predicted": class_names[predicted],
                           "probability": float(probabilities[i][predicted])})
    return chosen


def demo_text(settings):
    """What the demo profile runs, shown on screen."""
    return (f"embedded synthetic {settings.dataset.capitalize()} set ({settings.n_train} training and "
            f"{settings.n_val} validation images per class), {settings.img_size}×{settings.img_size}, "
            f"{settings.epochs} epochs, lr {settings.lr} ({settings.lr_schedule} schedule)"
            f"{', batch normalisation on (the course network has none)' if settings.batchnorm else ''}.")


LAB = lab.Lab("lab4_activation_map", parse_args, COURSE, DEMO, demo_text, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return
    size, channels = settings.img_size, CHANNELS[settings.dataset]

    # Data: the class folders of one Lab 2 set; augmentation on training batches only.
    data_dir = settings.data_dir or bone_skin_dataset(settings.n_train, settings.n_val, size=max(64, size))
    train, val = refold_class_splits(*find_lab2_set(data_dir, settings.dataset), settings.kfold, settings.seed)
    train, val = lab.readable_files(settings, train), lab.readable_files(settings, val)  # --skip-bad-files
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    batch = distribution.global_batch_size
    lab.save_config(run, settings, data_dir, len(train) + len(val), splits={"train": train.paths, "val": val.paths},
                    distribution=distribution)
    print(f"data: {train.counts()} training and {val.counts()} validation images from {data_dir}")
    n_class = len(train.class_names)
    # augment=True: the course's classification set (rotation 10°, shifts 0.1, horizontal flip).
    train_data = classification_dataset(train.paths, train.labels, size, batch, n_class, channels,
                                        augment=settings.augment, shuffle=True, seed=settings.seed, cache=True)
    val_data = classification_dataset(val.paths, val.labels, size, batch, n_class, channels, cache=True)

    # Model: the course's VGG16-style classifier; Grad-CAM explains its layer "Last_ConvLayer".
    with distribution.strategy.scope():
        model = vgg16_model(size, size, channels, settings.n_base, settings.dropout, n_class,
                            tuple(settings.dense_layers), batchnorm=settings.batchnorm)
        steps = settings.epochs * steps_per_epoch(len(train), batch)
        rate = learning_rate_schedule(distribution.learning_rate, settings.lr_schedule, total_steps=steps)
        compile_model(model, rate, "categorical_crossentropy", metrics=["accuracy"])
    print(f"model: VGG16-style, n_base {settings.n_base}, dense {tuple(settings.dense_layers)}, batch norm "
          f"{'on' if settings.batchnorm else 'off'}, {model.count_params():,} parameters")

    # Training: history.csv every epoch, model.keras at every new best validation accuracy.
    history = fit(model, train_data, val_data, settings.epochs, run=run, monitor="val_accuracy",
                  **lab.fit_options(settings))

    # Evaluation: the best model on every validation image, then Grad-CAM of a few images of each class.
    best = lab.best_model(run)
    images, targets, probabilities = collect_predictions(best, val_data)
    labels = np.argmax(targets, axis=-1)
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == labels))
    chosen = explained_images(images, labels, probabilities, train.class_names, settings.maps_per_class)
    heatmaps = [grad_cam(best, images[c["index"]]) for c in chosen]
    for c in chosen:
        c["file"] = Path(val.paths[c["index"]]).name

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"VGG16-style n_base {settings.n_base} on {settings.dataset.capitalize()}"
    captions = [f"{c['true']} → pred. {c['predicted']} ({c['probability']:.2f})" for c in chosen]
    metrics = {**summarize(history, "val_accuracy"),
               "validation": {"images": int(len(labels)), "accuracy": accuracy},
               "activation_maps": {"layer": "Last_ConvLayer", "class": "predicted", "images": chosen}}
    lab.finish_run(run, metrics, {
        "curves.png": loss_accuracy_plot(history, title, accuracy="accuracy"),
        "activation_maps.png": activation_map_figure(
            [images[c["index"]] for c in chosen], heatmaps, captions,
            title=f"Grad-CAM on Last_ConvLayer, predicted class ({settings.dataset.capitalize()})"),
    }, summary=f"best epoch {metrics['best']['epoch']}: val_accuracy {metrics['best']['val_accuracy']:.4f}; "
               f"best model on {len(labels)} validation images: accuracy {accuracy:.4f}")


if __name__ == "__main__":
    lab.run_lab(main)
