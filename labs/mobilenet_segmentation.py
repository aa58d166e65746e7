"""MobileNetV2 lesion segmentation on ISIC 2016 Part 1: frozen ("off-the-shelf") vs fine-tuned encoder.

An ImageNet MobileNetV2 without its top encodes 128×128 dermoscopy images to 4×4×1280 features; a decoder turns them
into one channel of lesion logits. --decoder transpose is the course's: five ConvTranspose(kernel 4, stride 2) + BN +
ReLU + Dropout(0.5) stages 1280 → 512 → 256 → 128 → 64 → 32, then a 1×1 conv. --decoder unet adds skip connections
from MobileNetV2's activations at 1/16, 1/8, 1/4 and 1/2 resolution. --strategy frozen keeps the encoder's weights
fixed (its BatchNorm in inference mode) and trains the decoder only; --strategy finetune trains both, with their own
learning rates (--encoder-lr, --decoder-lr; Adam; an encoder lr of 0 freezes it). Loss on logits: --loss bce (the
course's BCEWithLogits), dice or bce+dice; pixel accuracy, IoU and Dice at 0.5 every epoch.

--compare trains two models in one run, by default frozen vs finetune with the course's learning rates (--compare
decoder: transpose vs unet), and writes the course report's tables and figures.

Data: ISIC 2016 Part 1 in the official layout (ISBI2016_ISIC_Part1_Training_Data/ISIC_<id>.jpg with
ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_<id>_Segmentation.png, and the Test pair) or the Kaggle copy (train/,
train_masks/, test/, test_masks/), paired by ISIC id, resized to --img-size. --val-split of the training images
validates; the best epoch (validation Dice) is evaluated on the test split. Without --data-dir the lab trains on an
embedded synthetic dermoscopy set in the official layout, with a demo-sized profile (64×64, 8 epochs, and the U-Net
decoder, which localises lesions from a 2×2 bottleneck where the course's transpose decoder cannot in so short a run).

Weights: --weights imagenet (default) needs MobileNetV2's ImageNet file in Keras's cache; without network the lab
stops with one line naming the file and the folder. Only the demo (embedded data, --weights not given) continues,
with a randomly initialised encoder (--weights none), and says so on screen and in config.json / metrics.json: a
frozen random encoder is a baseline, not transfer learning. A random encoder (demo fallback or --weights none) first
gets its BatchNorm statistics from 64 training images: with the initial 0/1 statistics MobileNetV2's features vanish
(~1e-12) at inference and the model could only predict background.

The run folder gets config.json, history.csv, metrics.json (best/final epoch, test Dice/IoU, parameter counts),
per_image.csv, curves.png, samples.png and model.keras; with --compare, one subfolder per model with its
history.csv, metrics.json and model.keras, and comparison.csv/.md (epoch rows, then a parameter-count row),
summary.csv/.md (the course report's table), curves.png (both models' loss, IoU, Dice), samples.png (image, true
mask, then each model's probability and mask at 0.5) and per_image.csv with both models' scores.

example:
  python labs/mobilenet_segmentation.py --compare
  python labs/mobilenet_segmentation.py --data-dir /data/ISIC2016 --compare --epochs 25
  python labs/mobilenet_segmentation.py --data-dir /data/ISIC2016 --strategy finetune --encoder-lr 1e-4 --decoder-lr 1e-3
  python labs/mobilenet_segmentation.py --data-dir /data/ISIC2016 --decoder unet --augment --loss bce+dice
"""

import hashlib
import os
import shutil
from pathlib import Path

from labkit import cli
from labkit.data import check_readable, segmentation_dataset
from labkit.data.augment import LesionAugment
from labkit.data.layouts.isic2016 import find_isic2016_pairs, isic2016_layout
from labkit.data.split import train_val_split
from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
from labkit.errors import require
from labkit.evaluation import mean_std, per_image_scores
from labkit.losses import get_loss
from labkit.metrics import logit_segmentation_metrics
from labkit.models.mobilenet_seg import (
    DECODERS, calibrate_batchnorm, encoder_decoder_optimizer, mobilenet_segmenter, parameter_split)
from labkit.models.transfer import WeightsUnavailableError, weights_label
from labkit.plots import comparison_curves, comparison_samples
from labkit.runs import RunFolder, atomic_write, read_csv
from labkit.tensorboard import SegmentationImages
from labkit.training import (
    collect_predictions, compile_model, distribute, fit, set_seed, summarize)

import keras  # after labkit, which quiets TensorFlow's start-up logging
import numpy as np
from scipy.special import expit

COURSE = {"decoder": "transpose", "strategy": "finetune", "loss": "bce", "weights": "imagenet", "epochs": 25,
          "batch_size": 32, "lr": 1e-3, "encoder_lr": 1e-4, "img_size": 128, "channels": 3, "dropout": 0.5,
          "val_split": 0.2, "augment": False, "seed": 42}
# The demo trains the U-Net decoder: at 64×64 the transpose decoder starts from a 2×2 feature map and, with the random
# encoder the demo falls back to offline, learns little more than a central blob in a few minutes.
DEMO = {"img_size": 64, "epochs": 8, "batch_size": 16, "n_images": 96, "decoder": "unet"}
FULL_COURSE_COMMAND = ("python labs/mobilenet_segmentation.py --data-dir /path/to/ISIC2016 --compare --decoder transpose "
                       "--img-size 128 --epochs 25")
MONITOR = "val_dice"
STRATEGIES = ("frozen", "finetune")
N_SAMPLES = 4
CALIBRATION_IMAGES = 64  # BatchNorm statistics of a random encoder come from this many training images


def parse_args(argv=None):
    parser = cli.lab_parser(__doc__, COURSE)
    parser.add_argument("--decoder", choices=DECODERS, help="transpose: 5 × ConvTranspose(k4, s2) + BN + ReLU + "
                        "Dropout, 1280 → 32, then 1×1 conv (the course's); unet: with MobileNetV2 skip connections "
                        "(default: transpose)")
    parser.add_argument("--strategy", choices=STRATEGIES, help="frozen: train the decoder only (encoder weights and "
                        "BatchNorm statistics fixed); finetune: train both (default: finetune)")
    parser.add_argument("--encoder-lr", type=cli.nonnegative_float, help="encoder learning rate with --strategy "
                        "finetune; 0 freezes the encoder (course default: 1e-4)")
    parser.add_argument("--decoder-lr", type=cli.positive_float, help="decoder learning rate (default: --lr, course "
                        "1e-3)")
    parser.add_argument("--compare", nargs="?", const="strategy", choices=("strategy", "decoder"),
                        help="train two models in one run and compare them: strategy (default) = frozen vs "
                        "finetune; decoder = transpose vs unet with --strategy")
    parser.add_argument("--loss", choices=("bce", "dice", "bce+dice"), help="loss on logits: bce (BCEWithLogits), "
                        "dice (1 − soft Dice of sigmoid) or their sum (default: bce)")
    parser.add_argument("--dropout", type=cli.dropout_rate, help="decoder dropout (course: 0.5)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="read images as RGB (3) or grey (1, fed to "
                        "MobileNetV2 through the grey-to-RGB adapter) (default: 3)")
    parser.add_argument("--augment", action="store_true", help="training augmentation: random resized crop, "
                        "horizontal and vertical flips, rotation (image and mask alike), colour jitter (image only)")
    parser.add_argument("--val-split", type=cli.open_fraction, help="validation fraction of the training images "
                        "(default: 0.2)")
    parser.add_argument("--n-images", type=cli.positive_int, help="training images of the embedded synthetic set "
                        "(test: a quarter as many); ignored with --data-dir (demo: 96)")
    cli.add_weights_argument(parser)
    parser.set_defaults(weights=None)  # None = not given: the demo may then fall back to random weights
    return parser.parse_args(argv)


def model_variants(settings, encoder_lr_given, lr_factor=1.0):
    """The models this run trains: ``[{name, strategy, decoder, encoder_lr, decoder_lr}]``.

    An encoder learning rate of 0 is the frozen strategy (the encoder's BatchNorm then runs in inference mode too).
    Both learning rates are multiplied by `lr_factor` (``--scale-lr`` with several replicas).
    """
    decoder_lr = (settings.decoder_lr or settings.lr) * lr_factor
    require(not (settings.compare == "strategy" and settings.encoder_lr == 0),
            "--compare strategy with --encoder-lr 0 would compare frozen with frozen: give --encoder-lr > 0")
    require(not (settings.strategy == "frozen" and encoder_lr_given and settings.encoder_lr > 0
                 and settings.compare != "strategy"),
            f"--encoder-lr {settings.encoder_lr} contradicts --strategy frozen (the encoder does not train)")

    def variant(name, strategy, decoder):
        if strategy == "finetune" and settings.encoder_lr == 0:
            print("note: --encoder-lr 0 freezes the encoder: this is the frozen strategy")
            strategy = "frozen"
        return {"name": name, "strategy": strategy, "decoder": decoder, "decoder_lr": decoder_lr,
                "encoder_lr": settings.encoder_lr * lr_factor if strategy == "finetune" else 0.0}

    if settings.compare == "strategy":
        return [variant(s, s, settings.decoder) for s in STRATEGIES]
    if settings.compare == "decoder":
        return [variant(d, settings.strategy, d) for d in DECODERS]
    one = variant(settings.strategy, settings.strategy, settings.decoder)
    return [{**one, "name": one["strategy"]}]


def build_model(variant, settings, strategy, calibration_images):
    """The segmenter of one variant, compiled with its encoder/decoder learning rates inside the strategy scope.

    A randomly initialised encoder first gets BatchNorm statistics from `calibration_images` (see
    `calibrate_batchnorm`); pretrained encoders keep theirs.
    """
    set_seed(settings.seed)  # every model starts from the same initial weights
    with strategy.scope():
        model = mobilenet_segmenter((settings.img_size, settings.img_size, settings.channels), variant["decoder"],
                                    settings.weights, encoder_trainable=variant["encoder_lr"] > 0,
                                    dropout=settings.dropout)
        if weights_label(settings.weights) == "none":
            calibrate_batchnorm(model.get_layer("encoder"), calibration_images)
        optimizer = encoder_decoder_optimizer(model, variant["encoder_lr"], variant["decoder_lr"])
        compile_model(model, variant["decoder_lr"], get_loss(settings.loss, from_logits=True),
                      metrics=logit_segmentation_metrics(), optimizer=optimizer)
    return model


def build_first_model(variant, settings, strategy, calibration_images, weights_given):
    """`build_model`; on the demo, an offline ImageNet failure falls back to random weights (and says so)."""
    try:
        return build_model(variant, settings, strategy, calibration_images)
    except WeightsUnavailableError as exc:
        if weights_given or not settings.demo:
            raise
        settings.weights = "none"
        settings.weights_note = ("ImageNet weights unavailable offline; the demo fell back to --weights none: a "
                                 "randomly initialised MobileNetV2 (BatchNorm statistics set from training images), "
                                 "so 'frozen' trains the decoder on random features, not ImageNet ones")
        print(f"warning: {exc}\nwarning: {settings.weights_note}")
        return build_model(variant, settings, strategy, calibration_images)


def describe(model, variant):
    """Print and return the parameter counts of a model (encoder, decoder, whole)."""
    counts = parameter_split(model)
    frozen = "frozen" if variant["encoder_lr"] == 0 else f"lr {variant['encoder_lr']:g}"
    print(f"model {variant['name']}: MobileNetV2 encoder ({frozen}) + {variant['decoder']} decoder (lr "
          f"{variant['decoder_lr']:g}); trainable {counts['model']['trainable']:,}, non-trainable "
          f"{counts['model']['non_trainable']:,} (encoder {counts['encoder']['total']:,}, decoder trainable "
          f"{counts['decoder']['trainable']:,})")
    return counts


def encoder_fingerprint(model):
    """SHA-256 of every encoder weight (trainable and BatchNorm statistics): equal fingerprints, identical bits."""
    digest = hashlib.sha256()
    for weight in model.get_layer("encoder").weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def start_fingerprint(model, run):
    """The encoder's fingerprint before training, kept in ``encoder.json`` so a resumed run compares with the start."""
    if run.file("encoder.json").is_file():
        return run.read_json("encoder.json")["sha256_at_start"]
    fingerprint = encoder_fingerprint(model)
    run.write_json("encoder.json", {"sha256_at_start": fingerprint})
    return fingerprint


def train_variant(model, variant, data, settings, run):
    """Train one model into `run` (reusing a finished sub-run on --resume); returns its history dict."""
    if settings.resume and run.file("model.keras").is_file() and run.file("history.csv").is_file():
        rows = read_csv(run.file("history.csv"))
        if len(rows) >= settings.epochs:
            print(f"{variant['name']}: already trained ({len(rows)} epochs), reusing {run.path}")
            return {key: [row.get(key) for row in rows] for key in rows[0]}
    # With --tensorboard: three validation images with their true and predicted masks (~10 snapshots per run).
    callbacks = [SegmentationImages.from_dataset(run.file("tensorboard"), data["val"], n_images=3, from_logits=True,
                                                 names=data["val_names"])] if settings.tensorboard else []
    return fit(model, data["train"], data["val"], settings.epochs, run=run, monitor=MONITOR, callbacks=callbacks,
               **cli.fit_options(settings))


def evaluate(best, data):
    """The best epoch's model on every evaluation image: images, masks, probabilities and per-image scores."""
    images, masks, logits = collect_predictions(best, data["test"])
    probabilities = expit(logits.astype(np.float64)).astype(np.float32)
    scores = per_image_scores(probabilities > 0.5, masks, names=data["test_names"])
    scores = [{"name": s["name"], "dice": s["dice"], "iou": s["jaccard"]} for s in scores]
    return images, masks, probabilities, scores


def train_and_evaluate(model, variant, data, settings, run, own_folder):
    """Train one variant (in ``<run>/<name>/`` when `own_folder`), then evaluate its best epoch on the test images."""
    counts = describe(model, variant)
    if own_folder:
        run = RunFolder(run.path / variant["name"])
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_json("config.json", {"variant": variant, "parameters": counts})
    start = start_fingerprint(model, run)
    history = train_variant(model, variant, data, settings, run)

    # Evaluation: the best epoch (validation Dice) on every test image, masks at probability 0.5.
    best = keras.saving.load_model(run.file("model.keras"))
    unchanged = encoder_fingerprint(best) == start
    print(f"{variant['name']}: encoder weights after training {'bit-identical to the start' if unchanged else 'changed'}")
    images, masks, probabilities, scores = evaluate(best, data)
    metrics = {**summarize(history, MONITOR), "variant": variant, "parameters": counts, "encoder_unchanged": unchanged,
               "test": {"split": data["evaluated_on"], "images": len(scores), **mean_std(scores, ("dice", "iou"))}}
    if own_folder:
        run.write_csv("per_image.csv", scores)
        run.write_json("metrics.json", metrics)
    print(f"{variant['name']}: best epoch {metrics['best']['epoch']} (val Dice {metrics['best'][MONITOR]:.4f}); "
          f"{data['evaluated_on']} Dice {metrics['test']['dice']['mean']:.4f}, IoU {metrics['test']['iou']['mean']:.4f}")
    return {"history": history, "parameters": counts, "metrics": metrics, "images": images, "masks": masks,
            "probabilities": probabilities, "scores": scores}


def link_or_copy(source, target):
    """Make `target` the same file as `source`: a hard link (no extra disk space), else an atomic copy."""
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def comparison_rows(results):
    """The course report's epoch table: per epoch, each model's train/val loss and val IoU/Dice; then parameters."""
    names = list(results)
    rows = []
    for epoch in range(max(len(r["history"]["loss"]) for r in results.values())):
        row = {"epoch": epoch + 1}
        for name in names:
            history = results[name]["history"]
            for key, column in (("loss", "train_loss"), ("val_loss", "val_loss"), ("val_iou", "val_iou"),
                                ("val_dice", "val_dice")):
                values = history[key]
                row[f"{name}_{column}"] = float(values[epoch]) if epoch < len(values) else None
        rows.append(row)
    summary = {"epoch": "parameters"}
    for name in names:
        counts = results[name]["parameters"]["model"]
        summary[f"{name}_trainable_params"] = counts["trainable"]
        summary[f"{name}_non_trainable_params"] = counts["non_trainable"]
    return rows + [summary]


def summary_rows(results):
    """The course report's summary: one row per quantity, one column per model."""
    quantities = [
        ("final train loss", lambda r: r["metrics"]["final"]["loss"]),
        ("final validation loss", lambda r: r["metrics"]["final"]["val_loss"]),
        ("best validation IoU", lambda r: max(r["history"]["val_iou"])),
        ("best validation Dice", lambda r: max(r["history"]["val_dice"])),
        ("test IoU (mean per image)", lambda r: r["metrics"]["test"]["iou"]["mean"]),
        ("test Dice (mean per image)", lambda r: r["metrics"]["test"]["dice"]["mean"]),
        ("trainable parameters", lambda r: r["parameters"]["model"]["trainable"]),
        ("non-trainable parameters", lambda r: r["parameters"]["model"]["non_trainable"]),
        ("training seconds", lambda r: r["metrics"]["train_seconds"]),
    ]
    return [{"quantity": label, **{name: value(r) for name, r in results.items()}} for label, value in quantities]


def lesion_data(settings, batch):
    """Image/mask pairs matched by ISIC id, a seeded validation split, and the datasets of each split.

    Returns:
        A dict: ``train``/``val``/``test`` datasets, ``test_names``, ``evaluated_on`` (``test``, or ``validation``
        when the data have no test split), ``calibration`` (up to 64 training images), ``dir`` and ``files``.
    """
    data_dir = settings.data_dir or dermoscopy_dataset(settings.n_images, max(8, settings.n_images // 4))
    layout, folders = isic2016_layout(data_dir)
    pairs = check_readable(find_isic2016_pairs(data_dir, "train"), skip_bad=settings.skip_bad_files)
    train_pairs, val_pairs = train_val_split(pairs, settings.val_split, settings.seed, kfold=settings.kfold)
    if "test" in folders:
        test_pairs, evaluated_on = check_readable(find_isic2016_pairs(data_dir, "test"), settings.skip_bad_files), "test"
    else:
        test_pairs, evaluated_on = val_pairs, "validation"
        print(f"note: {data_dir} has no test split; the best model is evaluated on the validation images")
    n_test = len(test_pairs) if evaluated_on == "test" else 0
    print(f"data: {layout} ISIC 2016 layout in {data_dir}: {len(train_pairs)} training, {len(val_pairs)} validation "
          f"and {n_test} test pairs")
    read = lambda p, **kw: segmentation_dataset(p, settings.img_size, batch, channels=settings.channels, **kw)  # noqa: E731
    train = read(train_pairs, shuffle=True, seed=settings.seed, cache=True)
    if settings.augment:  # training batches only: crop, flips, rotation jointly; colour jitter on images
        train = train.map(LesionAugment(seed=settings.seed))
    calibration = segmentation_dataset(train_pairs[:CALIBRATION_IMAGES], settings.img_size, CALIBRATION_IMAGES,
                                       channels=settings.channels)
    return {"train": train, "val": read(val_pairs, cache=True), "test": read(test_pairs),
            "val_names": [p[0].stem for p in val_pairs], "test_names": [p[0].stem for p in test_pairs],
            "evaluated_on": evaluated_on,
            "calibration": next(iter(calibration))[0], "dir": data_dir, "files": 2 * (len(pairs) + n_test)}


def write_figures(run, results, data, title):
    """``curves.png`` (every model's loss, IoU and Dice) and ``samples.png`` (a few evaluation images)."""
    run.save_figure("curves.png", comparison_curves({n: r["history"] for n, r in results.items()},
                                                    ("loss", "iou", "dice"), title=title))
    first = next(iter(results.values()))
    run.save_figure("samples.png", comparison_samples(
        first["images"][:N_SAMPLES], first["masks"][:N_SAMPLES],
        {n: r["probabilities"][:N_SAMPLES] for n, r in results.items()}, names=data["test_names"][:N_SAMPLES],
        scores={n: [s["dice"] for s in r["scores"]] for n, r in results.items()},
        title=f"{data['evaluated_on']} images"))


def write_comparison(run, results, weights):
    """The comparison files of a --compare run; returns its ``metrics.json`` content."""
    names = list(results)
    run.write_table("comparison", comparison_rows(results))
    run.write_table("summary", summary_rows(results))
    run.write_csv("per_image.csv", [{"name": s["name"], **{f"{n}_{k}": results[n]["scores"][i][k]
                                                           for n in names for k in ("dice", "iou")}}
                                    for i, s in enumerate(results[names[0]]["scores"])])
    run.write_csv("history.csv", [{"model": n, **dict(zip(r["history"], row))} for n, r in results.items()
                                  for row in zip(*r["history"].values())])
    winner = max(names, key=lambda n: results[n]["metrics"]["best"][MONITOR])
    link_or_copy(run.path / winner / "model.keras", run.file("model.keras"))
    core = results[winner]["metrics"]
    return {"compare": names, "winner": winner, "monitor": MONITOR, "best": {"model": winner, **core["best"]},
            "final": {"model": winner, **core["final"]}, "epochs_run": core["epochs_run"],
            "train_seconds": round(sum(r["metrics"]["train_seconds"] for r in results.values()), 2),
            "test": {n: r["metrics"]["test"] for n, r in results.items()},
            "parameters": {n: r["parameters"] for n, r in results.items()},
            "models": {n: r["metrics"] for n, r in results.items()}, "weights": weights}


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    args = parse_args(argv)
    if cli.run_many(main, args, argv):  # --sweep / --folds: one child run per variant and fold (labkit.compare)
        return
    weights_given, encoder_lr_given = args.weights is not None, args.encoder_lr is not None
    settings, run = cli.start_run("mobilenet_segmentation", args, COURSE, DEMO)
    settings.weights_requested = getattr(settings, "weights_requested", None) or settings.weights
    settings.weights_note = getattr(settings, "weights_note", None)
    if settings.demo:
        print(f"demo profile: embedded synthetic dermoscopy set ({settings.n_images} training images), "
              f"{settings.img_size}×{settings.img_size}, {settings.epochs} epochs, batch {settings.batch_size}, "
              f"{settings.decoder} decoder. Course settings on real data: {FULL_COURSE_COMMAND}")
    strategy, batch, lr_factor = distribute(settings)  # --batch-size per replica; --scale-lr scales both rates
    variants = model_variants(settings, encoder_lr_given, lr_factor)

    # Data: pairs matched by ISIC id; a seeded validation split of the training images; the test split evaluates.
    data = lesion_data(settings, batch)

    # Models, training and evaluation: one segmenter, or two with --compare (each in its own subfolder).
    results = {}
    for index, variant in enumerate(variants):
        if index == 0:  # the first build settles the weights (the demo may fall back to random ones)
            model = build_first_model(variant, settings, strategy, data["calibration"], weights_given)
            cli.save_config(run, settings, data["dir"], data["files"])
            random = weights_label(settings.weights) == "none"
            print(f"encoder weights: {weights_label(settings.weights)}" + (
                f" (random initialisation; BatchNorm statistics set from {len(data['calibration'])} training images)"
                if random else ""))
        else:
            model = build_model(variant, settings, strategy, data["calibration"])
        results[variant["name"]] = train_and_evaluate(model, variant, data, settings, run, len(variants) > 1)
        keras.backend.clear_session()

    # Figures and tables, then metrics.json last: its presence marks a finished run.
    subject = variants[0]["decoder"] + " decoder" if settings.compare != "decoder" else variants[0]["strategy"]
    write_figures(run, results, data, " vs ".join(results) + f" ({subject})")
    weights = {"requested": weights_label(settings.weights_requested), "used": weights_label(settings.weights),
               "note": settings.weights_note}
    if len(results) == 1:
        only = next(iter(results.values()))
        run.write_csv("per_image.csv", only["scores"])
        metrics = {**only["metrics"], "weights": weights}
    else:
        metrics = write_comparison(run, results, weights)
    run.write_json("metrics.json", metrics)
    print(f"run folder: {run.path}")


if __name__ == "__main__":
    cli.run_lab(main)
