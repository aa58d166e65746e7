"""ResNet50 seven-class skin lesion classification (HAM10000 / ISIC 2018 Task 3): cross-entropy vs focal loss.

A ResNet50 backbone (ImageNet weights by default), global average pooling, dropout and a dense softmax head learn
the seven ISIC 2018 Task 3 classes MEL NV BCC AKIEC BKL DF VASC. NV is two thirds of HAM10000, so the lab compares
plain categorical cross-entropy with Keras's categorical focal loss and their sum (--loss ce|focal|ce+focal), offers
balanced class weights (--class-weights balanced) and scores the test split with balanced accuracy (mean per-class
recall, the official ISIC 2018 Task 3 score) next to accuracy and macro AUC.

Data (--data-dir): either HAM10000 (HAM10000_metadata.csv + HAM10000_images_part_1/ and/or _part_2/) or ISIC 2018
Task 3 (ISIC2018_Task3_{Training,Validation,Test}_Input/ + ..._GroundTruth/*.csv); or give any split's images and
CSV with --train-images/--train-csv, --val-images/--val-csv, --test-images/--test-csv. Splits that are not given
are carved out of the training data, stratified by class and grouped by lesion (HAM10000's lesion_id, ISIC's
LesionGroupings.csv), so no lesion is in two splits and every split holds every class. Without a data folder the lab
trains on an embedded synthetic seven-class set (HAM10000's imbalance, ISIC 2018 Task 3 layout) with a demo-sized
profile.

Weights: --weights imagenet (default) takes ResNet50's ImageNet file from Keras's cache, downloading it once when
there is network; when that fails the lab stops with one line naming the file and the folder. The demo (no data
folder, no --weights flag) never downloads: it uses the cached ImageNet file when there is one and otherwise trains
from random initialisation (--weights none), saying so on screen and in config.json and metrics.json (the rule of
every lab: labkit.models.transfer.decide_weights).

The run folder gets config.json, history.csv, model.keras (best epoch by validation macro F1), report.txt and
report.csv (scikit-learn's classification report on the test split), predictions.csv (each test image's true and
predicted class and probabilities), metrics.json (accuracy, balanced accuracy, macro AUC, per-class scores,
best/final epoch), confusion_matrix.png, roc.png, curves.png (loss, accuracy, macro F1) and gradcam.png. With
--compare it trains CE and CE+focal one after the other, each into its own subfolder (ce/, ce_focal/) with all of
the above, and writes comparison.csv / comparison.md with the overall and per-class numbers side by side; the top
level then holds both histories, both losses' numbers, a copy of the model with the better validation macro F1, and
(as every --sweep, of which --compare is a preset) comparison.png and variants.csv/.md.

example:
  python labs/resnet50_classification.py
  python labs/resnet50_classification.py --data-dir /data/HAM10000 --compare --augment
  python labs/resnet50_classification.py --data-dir /data/ISIC2018 --loss focal --focal-gamma 2 --class-weights balanced
"""

from pathlib import Path

from labkit import cli, compare
from labkit.data.augment import dermoscopy_augmentation
from labkit.data.layouts import check_readable
from labkit.data.layouts.isic2018 import CLASSES, skin_lesion_splits
from labkit.data.pipeline import classification_dataset, decode_image, even_replica_batches
from labkit.data.split import grouped_stratified_split
from labkit.data.synthetic.skin_lesions7 import isic2018_task3_dataset
from labkit.errors import require
from labkit.evaluation.classification import (classification_report_rows, classification_report_text,
                                              classification_scores)
from labkit.gradcam import find_layer, grad_cam
from labkit.history import summarize
from labkit.losses import get_loss
from labkit.models.classifiers import resnet50_classifier, resnet50_gradcam_layer
from labkit.models.transfer import resolve_weights, weights_text
from labkit.plots import class_gradcam_figure, confusion_matrix_figure, plot_history, roc_figure
from labkit.runtime import distribute
from labkit.training import compile_model, fit

import keras  # after labkit, which quiets TensorFlow's start-up logging
import numpy as np
import tensorflow as tf

COURSE = {"loss": "ce", "focal_gamma": 2.0, "focal_alpha": 0.25, "class_weights": "none", "weights": "imagenet",
          "dropout": 0.5, "batch_size": 32, "lr": 1e-3, "img_size": 224, "val_split": 0.15, "test_split": 0.15,
          "gradcam_per_class": 2, "seed": 42}
#: Course epochs depend on the loss: 15 for cross-entropy, 10 for focal (and CE+focal).
COURSE_EPOCHS = {"ce": 15, "focal": 10, "ce+focal": 10}
DEMO = {"img_size": 64, "epochs": 6, "batch_size": 16, "n_images": 320, "image_px": 96}
FULL_COURSE_COMMAND = ("python labs/resnet50_classification.py --data-dir /path/to/HAM10000 --compare "
                       "(224×224, batch 32, Adam 1e-3, 15 epochs CE / 10 epochs CE+focal, ImageNet weights)")
COMPARED = ("ce", "ce+focal")
MONITOR = "val_f1_macro"


def parse_args(argv=None):
    parser = cli.lab_parser(__doc__, {**COURSE, "epochs": "15 for ce, 10 for focal and ce+focal"})
    add = parser.add_argument
    add("--loss", choices=COURSE_EPOCHS, help="ce: categorical cross-entropy; focal: Keras's categorical focal "
        "cross-entropy; ce+focal: their sum (course default: ce)")
    add("--focal-gamma", type=cli.nonnegative_float, help="focusing parameter of the focal term (default: 2.0)")
    add("--focal-alpha", type=cli.positive_float, help="weight of the focal term (default: 0.25, Keras's)")
    add("--class-weights", choices=("none", "balanced"), help="balanced: weight each training image by "
        "n / (7 · images of its class) (scikit-learn's 'balanced') (default: none)")
    add("--augment", action="store_true", help="augment training images: flips, rotation, random crop, colour "
        "jitter")
    cli.add_weights_argument(parser)
    add("--freeze-backbone", action="store_true", help="train the head only (the backbone keeps its weights and "
        "BatchNorm statistics)")
    add("--dropout", type=cli.dropout_rate, help="dropout before the dense head (default: 0.5)")
    add("--bn-momentum", type=cli.open_fraction, help="momentum of the backbone's BatchNorm moving averages "
        "(default: Keras's 0.99 with pretrained weights, 0.9 from random initialisation, where short runs otherwise "
        "leave the averages far behind)")
    add("--compare", action="store_true", help="train CE and CE+focal in one run and write comparison.csv/.md")
    add("--skip-missing", action="store_true", help="leave out images listed in a CSV but missing on disk, with a "
        "warning (default: stop with an error naming the first)")
    add("--val-split", type=cli.open_fraction, help="validation fraction carved from training when no validation "
        "CSV is given (default: 0.15)")
    add("--test-split", type=cli.open_fraction, help="test fraction carved from training when no test CSV is given "
        "(default: 0.15)")
    add("--gradcam-per-class", type=cli.positive_int, help="test images per class in gradcam.png (default: 2)")
    add("--gradcam-layer", help="layer Grad-CAM explains (default: conv5_block3_out, the last block, when its map "
        "is at least 7×7, i.e. from 224 px; at smaller sizes the deepest stage output that is)")
    for split, name in (("train", "training"), ("val", "validation"), ("test", "test")):
        add(f"--{split}-images", type=Path, help=f"folder of the {name} images (ISIC_<id>.jpg)")
        add(f"--{split}-csv", type=Path, help=f"ISIC 2018 Task 3 ground-truth CSV of the {name} images")
    return parser.parse_args(argv)


def explicit_inputs(args):
    """``{split: (images, csv)}`` from the --<split>-images / --<split>-csv flags (both or neither per split)."""
    inputs = {}
    for split in ("train", "val", "test"):
        images, csv_path = getattr(args, f"{split}_images"), getattr(args, f"{split}_csv")
        require((images is None) == (csv_path is None), f"--{split}-images and --{split}-csv go together")
        if images is not None:
            inputs[split] = (images, csv_path)
    return inputs


def resolve_model_settings(settings, given):
    """Decide the weights (`resolve_weights`: the demo never downloads), then the BatchNorm momentum and the Grad-CAM
    layer that follow from them; returns the weights choice."""
    weights = resolve_weights(settings, given, "resnet50", (settings.img_size, settings.img_size, 3))
    from_scratch = settings.weights == "none"
    settings.bn_momentum_used = settings.bn_momentum or (0.9 if from_scratch else None)
    settings.gradcam_layer_used = settings.gradcam_layer or resnet50_gradcam_layer(settings.img_size)
    if settings.freeze_backbone and from_scratch:
        print("warning: --freeze-backbone with random weights trains the head on fixed random features")
    return weights


def load_splits(settings, inputs):
    """Training, validation and test images: the given splits, the rest carved out by a grouped stratified split."""
    data_dir = settings.data_dir
    if data_dir is None and not inputs:
        data_dir = isic2018_task3_dataset(n_images=settings.n_images, size=settings.image_px)
    splits, layout = skin_lesion_splits(data_dir, inputs, skip_missing=settings.skip_missing)
    for split, images in splits.items():
        readable = set(check_readable(images.paths, skip_bad=settings.skip_bad_files))
        splits[split] = images.subset([i for i, p in enumerate(images.paths) if p in readable])
    given = set(splits)
    train = splits.pop("train")
    fractions = {"val": 0.0 if "val" in given else settings.val_split,
                 "test": 0.0 if "test" in given else settings.test_split}
    if (fractions["val"] or fractions["test"]) and all(g == p.stem for g, p in zip(train.groups, train.paths)):
        print("warning: no lesion IDs (HAM10000 metadata or ISIC2018_Task3_Training_LesionGroupings.csv in "
              "--data-dir), so images of one lesion may land in different splits and inflate the test numbers")
    train_idx, val_idx, test_idx = grouped_stratified_split(train.labels, train.groups, fractions["val"],
                                                            fractions["test"], settings.seed, CLASSES,
                                                            kfold=getattr(settings, "kfold", None))
    carved = {"val": val_idx, "test": test_idx}
    for split in ("val", "test"):
        if split not in splits:
            splits[split] = train.subset(carved[split], f"{split} part of {train.source}")
    splits["train"] = train.subset(train_idx)
    origin = {s: "given" if s in given else "carved from training, stratified by class, grouped by lesion"
              for s in ("train", "val", "test")}
    return data_dir, layout, splits, origin


def describe_splits(splits, origin):
    """Per-split image counts by class, for the console and metrics.json."""
    table = {}
    for split in ("train", "val", "test"):
        counts = splits[split].class_counts()
        table[split] = {"images": len(splits[split]), "lesions": len(set(splits[split].groups)),
                        "origin": origin[split], "per_class": dict(zip(CLASSES, counts.tolist()))}
        print(f"  {split:5s} {len(splits[split]):6d} images  " + "  ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)))
        missing = [c for c, n in zip(CLASSES, counts) if n == 0]
        if missing:
            print(f"warning: the {split} split has no {', '.join(missing)} images")
    return table


def class_weight(settings, labels):
    """``{class: weight}`` for Keras's ``class_weight``: scikit-learn's balanced weights, or None."""
    if settings.class_weights != "balanced":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(k): float(w) for k, w in zip(present, weights)}


def datasets(settings, splits, batch, replicas):
    """tf.data pipelines; decoded images are cached in memory when they fit in about a gigabyte.

    Under several replicas the training and validation batches leave none of them empty (`even_replica_batches`);
    the test set is predicted on one device."""
    size, n_class = settings.img_size, len(CLASSES)
    fits = lambda n: n * size * size * 3 * 4 < 1e9  # noqa: E731
    augment = dermoscopy_augmentation(size, seed=settings.seed) if settings.augment else None
    train = classification_dataset(splits["train"].paths, splits["train"].labels, size, batch, n_class,
                                   augment=augment, shuffle=True, seed=settings.seed,
                                   cache=fits(len(splits["train"])))
    val = classification_dataset(splits["val"].paths, splits["val"].labels, size, batch, n_class,
                                 cache=fits(len(splits["val"])))
    test = classification_dataset(splits["test"].paths, splits["test"].labels, size, batch, n_class)
    train, val = (even_replica_batches(dataset, len(splits[split]), batch, replicas)
                  for dataset, split in ((train, "train"), (val, "val")))
    return train, val, test


def gradcam_samples(settings, model, test, predicted):
    """A few test images of each class (seeded choice), with the Grad-CAM map of the predicted class."""
    rng = np.random.default_rng(settings.seed)
    chosen = [i for k in range(len(CLASSES))
              for i in rng.permutation(np.flatnonzero(test.labels == k))[: settings.gradcam_per_class]]
    images = [decode_image(str(test.paths[i]), settings.img_size, 3).numpy() for i in chosen]
    heatmaps = [grad_cam(model, image, layer_name=settings.gradcam_layer_used) for image in images]
    return images, heatmaps, test.labels[chosen], predicted[chosen]


def train_and_evaluate(settings, loss_name, run, splits, distribution, extra):
    """Build, train and evaluate one model into `run`; returns its metrics.json content (with `extra` added)."""
    epochs = settings.epochs or COURSE_EPOCHS[loss_name]
    train, val, test = datasets(settings, splits, distribution.global_batch_size, distribution.replicas)

    # Model: ResNet50 → global average pooling → dropout → dense softmax, compiled inside the strategy's scope.
    with distribution.strategy.scope():
        model = resnet50_classifier((settings.img_size, settings.img_size, 3), len(CLASSES), settings.weights,
                                    dropout=settings.dropout, freeze_backbone=settings.freeze_backbone,
                                    bn_momentum=settings.bn_momentum_used)
        loss = get_loss(loss_name, gamma=settings.focal_gamma, alpha=settings.focal_alpha)
        compile_model(model, distribution.learning_rate, loss,
                      metrics=["accuracy", keras.metrics.F1Score(average="macro", name="f1_macro")])
        if not tf.config.list_physical_devices("GPU"):
            model.jit_compile = False  # XLA made ResNet50 training ~2× slower per epoch on CPU (measured)
    find_layer(model, settings.gradcam_layer_used)  # a wrong --gradcam-layer stops now, not after training
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"model: ResNet50 ({weights_text(settings.weights)}"
          f"{', backbone frozen' if settings.freeze_backbone else ''}), {model.count_params():,} parameters "
          f"({trainable:,} trainable); loss {loss_name}, {epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation macro F1.
    history = fit(model, train, val, epochs, run=run, monitor=MONITOR,
                  class_weight=class_weight(settings, splits["train"].labels), **cli.fit_options(settings))

    # Evaluation: the best model on the test split.
    best = keras.saving.load_model(run.file("model.keras"))
    probabilities = best.predict(test, verbose=0)
    truth = splits["test"].labels
    scores = classification_scores(truth, probabilities, CLASSES)
    run.write_text("report.txt", classification_report_text(truth, probabilities, CLASSES))
    run.write_csv("report.csv", classification_report_rows(truth, probabilities, CLASSES))
    run.write_csv("predictions.csv", [
        {"image": Path(path).stem, "true": CLASSES[t], "predicted": CLASSES[p.argmax()],
         **{c: round(float(v), 6) for c, v in zip(CLASSES, p)}}
        for path, t, p in zip(splits["test"].paths, truth, probabilities)])

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"ResNet50, {loss_name} loss ({weights_text(settings.weights)})"
    run.save_figure("curves.png", plot_history(history, ("loss", "accuracy", "f1_macro"), title, monitor=MONITOR))
    run.save_figure("confusion_matrix.png", confusion_matrix_figure(truth, probabilities, CLASSES, title=title))
    run.save_figure("roc.png", roc_figure(truth, probabilities, CLASSES, title=f"{title}: one-vs-rest ROC"))
    images, heatmaps, true_k, pred_k = gradcam_samples(settings, best, splits["test"], probabilities.argmax(axis=1))
    run.save_figure("gradcam.png", class_gradcam_figure(images, heatmaps, true_k, pred_k, CLASSES,
                                                        title=f"{title}: Grad-CAM of {settings.gradcam_layer_used}"))
    metrics = {**summarize(history, MONITOR), "loss": loss_name,
               **{k: scores[k] for k in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1")},
               "test": scores, **extra}
    run.write_json("metrics.json", metrics)
    print(f"test ({scores['images']} images, best epoch {metrics['best']['epoch']}): accuracy "
          f"{scores['accuracy']:.4f}, balanced accuracy {scores['balanced_accuracy']:.4f}, macro AUC "
          f"{scores['macro_auc']:.4f}")
    return metrics


def comparison_rows(results):
    """Overall and per-class test numbers of each loss side by side, with the difference of the last two."""
    scores = {key.replace("_", " "): (lambda m, key=key: m[key])
              for key in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1")}
    scores.update({f"{name} {key}": (lambda m, name=name, key=key: m["test"]["per_class"][name][key])
                   for name in CLASSES for key in ("precision", "recall", "f1", "auc")})
    costs = {"epochs": lambda m: m["epochs_run"], "train seconds": lambda m: m["train_seconds"]}
    return (compare.side_by_side(results, scores, label="metric", difference=True)
            + compare.side_by_side(results, costs, label="metric"))


def comparison_preset(args):
    """``--compare``: CE and CE+focal, each a child run (``ce/``, ``ce_focal/``), then `report_losses`."""
    if not args.compare:
        return None
    return compare.Preset("ce vs ce+focal", [(name.replace("+", "_"), {"loss": name}) for name in COMPARED],
                          report=report_losses, table="variants")


def report_losses(run, children):
    """The --compare files: comparison.csv/.md (overall and per-class test numbers side by side), history.csv (both
    losses' epochs, with a ``loss_function`` column), model.keras (the model with the better best validation macro
    F1, chosen on validation data, never on test data); returns the entries it adds to metrics.json (that model's
    best/final epoch, both losses' numbers, the table and the total training time)."""
    by_child = compare.child_metrics(children)
    results = {m["loss"]: m for m in by_child.values()}
    rows = comparison_rows(results)
    run.write_table("comparison", rows)
    run.write_csv("history.csv", compare.stacked_history(children, {n: {"loss_function": m["loss"]}
                                                                    for n, m in by_child.items()}))
    chosen = max(results, key=lambda name: results[name]["best"][MONITOR])
    compare.keep_file(run, Path(children[chosen.replace("+", "_")]) / "model.keras")
    first = next(iter(results.values()))
    return {**{k: results[chosen][k] for k in ("monitor", "best", "final", "epochs_run")},
            "chosen_by_validation": chosen, "compare": rows, "variants": results, "weights": first.get("weights"),
            "train_seconds": round(sum(m["train_seconds"] for m in results.values()), 2), "data": first.get("data")}


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    args = parse_args(argv)
    # --compare, --sweep, --folds: one child run per variant and fold, then their comparison (labkit.compare).
    if cli.run_many(main, args, argv, preset=comparison_preset):
        return
    inputs = explicit_inputs(args)
    settings, run = cli.start_run("resnet50_classification", args, COURSE, {} if inputs else DEMO)
    settings.demo = settings.demo and not inputs
    if settings.demo:
        print(f"demo profile: embedded synthetic seven-class lesions ({settings.n_images} images), "
              f"{settings.img_size}×{settings.img_size}, {settings.epochs} epochs, batch {settings.batch_size}. "
              f"Course settings on real data: {FULL_COURSE_COMMAND}")
    weights = resolve_model_settings(settings, args.weights)

    # Data: labels matched by image ID; missing splits carved out grouped by lesion, stratified by class.
    data_dir, layout, splits, origin = load_splits(settings, inputs)
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    cli.save_config(run, settings, data_dir or "given per split", sum(len(s) for s in splits.values()),
                    distribution=distribution)
    print(f"data: {layout} from {data_dir or 'the given folders'}")
    split_table = describe_splits(splits, origin)
    data = {"data": {"layout": layout, "splits": split_table}, "weights": weights.record()}

    train_and_evaluate(settings, settings.loss, run, splits, distribution, data)
    print(f"run folder: {run.path}")


if __name__ == "__main__":
    cli.run_lab(main)
