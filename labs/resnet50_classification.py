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
there is network (else one line names the file and the folder). The demo (no data folder, no --weights flag) never
downloads: without the cached file it trains from random initialisation (--weights none), saying so on screen and in
config.json and metrics.json (the rule of every lab: labkit.models.transfer.decide_weights).

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

from labkit import flags, lab
from labkit.data.augment import dermoscopy_augmentation
from labkit.data.layouts.isic2018 import CLASSES, SPLITS, describe_splits, lesion_splits
from labkit.data.pipeline import classification_dataset, even_replica_batches
from labkit.data.synthetic.skin_lesions7 import isic2018_task3_dataset
from labkit.errors import require
from labkit.gradcam import find_layer
from labkit.losses import get_loss
from labkit.models.classifiers import resnet50_classifier, resnet50_gradcam_layer
from labkit.models.summary import parameter_counts
from labkit.models.transfer import resolve_weights, weights_text
from labkit.multirun.tables import side_by_side, write_preset_report
from labkit.multirun.variants import Preset
from labkit.optimizers import learning_rate_schedule
from labkit.reports import evaluate_classifier
from labkit.runtime import distribute
from labkit.training import balanced_class_weight, compile_model, fit, steps_per_epoch

import keras  # after labkit, which quiets TensorFlow's start-up logging
import tensorflow as tf

COURSE = {"loss": "ce", "focal_gamma": 2.0, "focal_alpha": 0.25, "class_weights": "none", "weights": "imagenet",
          "dropout": 0.5, "batch_size": 32, "lr": 1e-3, "img_size": 224, "val_split": 0.15, "test_split": 0.15,
          "gradcam_per_class": 2, "lr_schedule": "constant", "seed": 42}
#: Course epochs depend on the loss: 15 for cross-entropy, 10 for focal (and CE+focal).
COURSE_EPOCHS = {"ce": 15, "focal": 10, "ce+focal": 10}
#: 24 images at least of each class (HAM10000 proportions otherwise) and a fifth for validation put 5-7 images of every
#: class in the validation split, so one image moves the monitored macro F1 by a few hundredths, not by a seventh.
DEMO = {"img_size": 64, "epochs": 12, "batch_size": 32, "n_images": 640, "min_per_class": 24, "val_split": 0.2,
        "image_px": 96, "lr_schedule": "cosine", "precise_bn": True}
FULL_COURSE_COMMAND = ("python labs/resnet50_classification.py --data-dir /path/to/HAM10000 --compare "
                       "(224×224, batch 32, Adam 1e-3, 15 epochs CE / 10 epochs CE+focal, ImageNet weights)")
#: `--precision auto` trains this lab in float32 where it would pick mixed_bfloat16 (see `labkit.lab.Lab`).
AUTO_AVOIDS = {"mixed_bfloat16": "at a constant rate with Keras's moving BatchNorm averages, as the course trains, "
               "its old demo lost quality under it (validation macro F1 0.40 ± 0.03 against 0.53 ± 0.08 in float32); "
               "the demo now (cosine, precise statistics) does not (0.90 ± 0.10 against 0.91 ± 0.06), but course runs "
               "train the old way (three seeds each, BENCHMARKS.md); --precision mixed_bfloat16 still uses it"}
COMPARED = ("ce", "ce+focal")
#: The test scores metrics.json also holds at its top level.
HEADLINE = ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1")
MONITOR = "val_f1_macro"


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, {**COURSE, "epochs": "15 for ce, 10 for focal and ce+focal"})
    add = parser.add_argument
    add("--loss", choices=COURSE_EPOCHS, help="ce: categorical cross-entropy; focal: Keras's categorical focal "
        "cross-entropy; ce+focal: their sum (course default: ce)")
    add("--focal-gamma", type=flags.nonnegative_float, help="focusing parameter of the focal term (default: 2.0)")
    add("--focal-alpha", type=flags.positive_float, help="weight of the focal term (default: 0.25, Keras's)")
    add("--class-weights", choices=("none", "balanced"), help="balanced: weight each training image by "
        "n / (7 · images of its class) (scikit-learn's 'balanced') (default: none)")
    add("--augment", action="store_true", help="augment training images: flips, rotation, random crop, colour "
        "jitter")
    flags.add_weights_argument(parser)
    flags.add_lr_schedule_argument(parser, DEMO)
    add("--freeze-backbone", action="store_true", help="train the head only (the backbone keeps its weights and "
        "BatchNorm statistics)")
    add("--dropout", type=flags.dropout_rate, help="dropout before the dense head (default: 0.5)")
    add("--bn-momentum", type=flags.fraction, help="momentum of the backbone's BatchNorm moving averages "
        "(default: Keras's 0.99 with pretrained weights, 0.9 from random initialisation, where short runs otherwise "
        "leave the averages far behind)")
    add("--compare", action="store_true", help="train CE and CE+focal in one run and write comparison.csv/.md")
    add("--skip-missing", action="store_true", help="leave out images listed in a CSV but missing on disk, with a "
        "warning (default: stop with an error naming the first)")
    add("--val-split", type=flags.fraction, help="validation fraction carved from training when no validation "
        "CSV is given (default: 0.15)")
    add("--test-split", type=flags.fraction, help="test fraction carved from training when no test CSV is given "
        "(default: 0.15)")
    add("--gradcam-per-class", type=flags.positive_int, help="test images per class in gradcam.png (default: 2)")
    add("--gradcam-layer", help="layer Grad-CAM explains (default: conv5_block3_out, the last block, when its map "
        "is at least 7×7, i.e. from 224 px; at smaller sizes the deepest stage output that is)")
    for split, name in (("train", "training"), ("val", "validation"), ("test", "test")):
        add(f"--{split}-images", type=Path, help=f"folder of the {name} images (ISIC_<id>.jpg)")
        add(f"--{split}-csv", type=Path, help=f"ISIC 2018 Task 3 ground-truth CSV of the {name} images")
    return parser.parse_args(argv)


def explicit_inputs(args):
    """``{split: (images, csv)}`` from the --<split>-images / --<split>-csv flags (both or neither per split)."""
    inputs = {split: (getattr(args, f"{split}_images"), getattr(args, f"{split}_csv")) for split in SPLITS}
    for split, (images, csv_path) in inputs.items():
        require((images is None) == (csv_path is None), f"--{split}-images and --{split}-csv go together")
    return {split: pair for split, pair in inputs.items() if pair[0] is not None}


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


def datasets(settings, splits, batch, replicas):
    """tf.data pipelines, decoded images cached in memory when they fit (``cache="auto"``). Under several replicas the
    training and validation batches leave none of them empty (`even_replica_batches`); test runs on one device."""
    size = settings.img_size
    read = lambda split, **kw: classification_dataset(  # noqa: E731
        splits[split].paths, splits[split].labels, size, batch, len(CLASSES), **kw)
    augment = dermoscopy_augmentation(size, seed=settings.seed) if settings.augment else None
    train = read("train", augment=augment, shuffle=True, seed=settings.seed, cache="auto")
    return (even_replica_batches(train, len(splits["train"]), batch, replicas),
            even_replica_batches(read("val", cache="auto"), len(splits["val"]), batch, replicas), read("test"))


def demo_text(settings):
    """What the demo run is, for the screen."""
    return (f"embedded synthetic seven-class lesions ({settings.n_images} images, at least {settings.min_per_class} "
            f"of each class), {settings.img_size}×{settings.img_size}, {settings.epochs} epochs, batch "
            f"{settings.batch_size}, {settings.lr_schedule} schedule{lab.precise_bn_text(settings)}.")


def demo_profile(args):
    """The demo profile, unless images were given per split (--train-images …)."""
    return None if explicit_inputs(args) else DEMO


def comparison_rows(results):
    """Overall and per-class test numbers of each loss side by side, with the difference of the last two."""
    scores = {key.replace("_", " "): (lambda m, key=key: m[key])
              for key in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1")}
    scores.update({f"{name} {key}": (lambda m, name=name, key=key: m["test"]["per_class"][name][key])
                   for name in CLASSES for key in ("precision", "recall", "f1", "auc")})
    costs = {"epochs": lambda m: m["epochs_run"], "train seconds": lambda m: m["train_seconds"]}
    return (side_by_side(results, scores, label="metric", difference=True)
            + side_by_side(results, costs, label="metric"))


def comparison_preset(args):
    """``--compare``: CE and CE+focal, each a child run (``ce/``, ``ce_focal/``), then `report_losses`."""
    if not args.compare:
        return None
    return Preset("ce vs ce+focal", [(name.replace("+", "_"), {"loss": name}) for name in COMPARED],
                  report=report_losses, table="variants")


def report_losses(run, children):
    """The --compare files: comparison.csv/.md (overall and per-class test numbers side by side), history.csv (both
    losses' epochs, with a ``loss_function`` column), model.keras (the model with the better best validation macro
    F1, chosen on validation data, never on test data); returns the entries it adds to metrics.json (that model's
    best/final epoch, both losses' numbers, the table and the total training time)."""
    by_child, tables, winner = write_preset_report(
        run, children, lambda models: {"comparison": comparison_rows({m["loss"]: m for m in models.values()})},
        lambda name, m: {"loss_function": m["loss"]}, lambda m: m["best"][MONITOR])
    results, rows, chosen = {m["loss"]: m for m in by_child.values()}, tables["comparison"], by_child[winner]["loss"]
    first = next(iter(results.values()))
    return {**{k: results[chosen][k] for k in ("monitor", "best", "final", "epochs_run")},
            "chosen_by_validation": chosen, "compare": rows, "variants": results, "weights": first.get("weights"),
            "train_seconds": round(sum(m["train_seconds"] for m in results.values()), 2), "data": first.get("data")}


LAB = lab.Lab("resnet50_classification", parse_args, COURSE, demo_profile, demo_text, FULL_COURSE_COMMAND,
              preset=comparison_preset, auto_avoids=AUTO_AVOIDS)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --compare, --sweep, --folds: labkit.multirun ran one child run per variant and fold
        return
    inputs = explicit_inputs(settings.flags)
    weights = resolve_model_settings(settings, settings.flags.weights)
    epochs, size = settings.epochs or COURSE_EPOCHS[settings.loss], settings.img_size

    # Data: labels matched by image ID; missing splits carved out grouped by lesion, stratified by class.
    data_dir = settings.data_dir or (None if inputs else isic2018_task3_dataset(
        settings.n_images, settings.image_px, min_per_class=settings.min_per_class))
    splits, layout, origin = lesion_splits(data_dir, inputs, settings.val_split, settings.test_split, settings.seed,
                                           settings.kfold, settings.skip_missing, settings.skip_bad_files)
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    lab.save_config(run, settings, data_dir or "given per split", sum(len(s) for s in splits.values()),
                    distribution=distribution)
    print(f"data: {layout} from {data_dir or 'the given folders'}")
    split_table = describe_splits(splits, origin)
    train, val, test = datasets(settings, splits, distribution.global_batch_size, distribution.replicas)

    # Model: ResNet50 → global average pooling → dropout → dense softmax, compiled inside the strategy's scope.
    with distribution.strategy.scope():
        model = resnet50_classifier((size, size, 3), len(CLASSES), settings.weights, dropout=settings.dropout,
                                    freeze_backbone=settings.freeze_backbone, bn_momentum=settings.bn_momentum_used)
        loss = get_loss(settings.loss, gamma=settings.focal_gamma, alpha=settings.focal_alpha)
        steps = epochs * steps_per_epoch(len(splits["train"]), distribution.global_batch_size)
        rate = learning_rate_schedule(distribution.learning_rate, settings.lr_schedule, total_steps=steps)
        compile_model(model, rate, loss,
                      metrics=["accuracy", keras.metrics.F1Score(average="macro", name="f1_macro")])
        if not tf.config.list_physical_devices("GPU"):
            model.jit_compile = False  # XLA slows ResNet50 training on CPU (BENCHMARKS.md)
    find_layer(model, settings.gradcam_layer_used)  # a wrong --gradcam-layer stops now, not after training
    print(f"model: ResNet50 ({weights_text(settings.weights)}{', backbone frozen' if settings.freeze_backbone else ''}"
          f"), {model.count_params():,} parameters ({parameter_counts(model)['trainable']:,} trainable); loss "
          f"{settings.loss}, {epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation macro F1.
    class_weight = balanced_class_weight(splits["train"].labels) if settings.class_weights == "balanced" else None
    history = fit(model, train, val, epochs, run=run, monitor=MONITOR, class_weight=class_weight,
                  **lab.fit_options(settings))

    # Evaluation: the best model on the test split; figures, then metrics.json last: its presence marks a finished run.
    title = f"ResNet50, {settings.loss} loss ({weights_text(settings.weights)})"
    entries = lambda scores: {"loss": settings.loss, **{k: scores[k] for k in HEADLINE}, "test": scores,  # noqa: E731
                              "data": {"layout": layout, "splits": split_table}, "weights": weights.record()}
    gradcam = {"layer": settings.gradcam_layer_used, "per_class": settings.gradcam_per_class, "img_size": size,
               "seed": settings.seed}
    evaluate_classifier(run, history, lab.best_model(run), splits["test"], test, None, title, MONITOR, "test",
                        names=[Path(p).stem for p in splits["test"].paths], curves=("loss", "accuracy", "f1_macro"),
                        n_samples=0, roc=True, gradcam=gradcam, entries=entries, summary=test_summary)


def test_summary(metrics, scores):
    """The result line of a run: the test split's accuracy, balanced accuracy and macro AUC."""
    return (f"test ({scores['images']} images, best epoch {metrics['best']['epoch']}): accuracy "
            f"{scores['accuracy']:.4f}, balanced accuracy {scores['balanced_accuracy']:.4f}, macro AUC "
            f"{scores['macro_auc']:.4f}")


if __name__ == "__main__":
    lab.run_lab(main)
