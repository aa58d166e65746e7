"""MobileNetV2 lesion segmentation on ISIC 2016 Part 1: frozen ("off-the-shelf") vs fine-tuned encoder.

An ImageNet MobileNetV2 without its top encodes 128×128 dermoscopy images to 4×4×1280 features; a decoder turns them
into one channel of lesion logits. --decoder transpose is the course's: five ConvTranspose(kernel 4, stride 2) + BN +
ReLU + Dropout(0.5) stages 1280 → 512 → 256 → 128 → 64 → 32, then a 1×1 conv. --decoder unet adds skip connections
from MobileNetV2's activations at 1/16, 1/8, 1/4 and 1/2 resolution. --strategy frozen keeps the encoder's weights
fixed (its BatchNorm in inference mode) and trains the decoder only; --strategy finetune trains both, with their own
learning rates (--encoder-lr, --decoder-lr; Adam; an encoder lr of 0 freezes it). Loss on logits: --loss bce (the
course's BCEWithLogits), dice or bce+dice; pixel accuracy, IoU and Dice at 0.5 every epoch.

Data: ISIC 2016 Part 1 in the official layout (ISBI2016_ISIC_Part1_Training_Data/ISIC_<id>.jpg with
ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_<id>_Segmentation.png, and the Test pair) or the Kaggle copy (train/,
train_masks/, test/, test_masks/), paired by ISIC id, resized to --img-size. --val-split of the training images
validates; the best epoch (validation Dice) is evaluated on the test split. Without --data-dir the lab trains on an
embedded synthetic dermoscopy set in the official layout, with a demo-sized profile (64×64, 12 epochs, and the U-Net
decoder, which localises lesions from a 2×2 bottleneck where the course's transpose decoder cannot in so short a run).

Weights: --weights imagenet (default) needs MobileNetV2's ImageNet file in Keras's cache (or the network), else one
line names the file and the folder. The demo (--weights not given) never downloads: without the cached file it uses
a random encoder (--weights none), saying so on screen and in config.json / metrics.json (a frozen random encoder is a
baseline, not transfer learning). A random encoder first gets its BatchNorm statistics from 64 training images: with
the initial 0/1 statistics its features vanish (~1e-12) at inference and the model could only predict background.

The run folder gets config.json, history.csv, metrics.json (best/final epoch, test Dice/IoU, parameter counts),
per_image.csv, curves.png, samples.png (and samples.npz, their arrays) and model.keras. --compare (a preset of
labkit.multirun) trains frozen/ and finetune/ (--compare decoder: transpose/ and unet/), each a run folder as above,
then writes comparison.csv/.md (epoch rows, then a parameter-count row), summary.csv/.md (the course report's table),
curves.png (both models' loss, IoU, Dice), samples.png (image, true mask, then each model's probability and mask at
0.5), per_image.csv and history.csv with both models' rows, model.keras (the better validation Dice) and, as every
--sweep, comparison.png and variants.csv/.md.

example:
  python labs/mobilenet_segmentation.py --compare
  python labs/mobilenet_segmentation.py --data-dir /data/ISIC2016 --compare --epochs 25
  python labs/mobilenet_segmentation.py --data-dir /data/ISIC2016 --strategy finetune --encoder-lr 1e-4 --decoder-lr 1e-3
  python labs/mobilenet_segmentation.py --data-dir /data/ISIC2016 --decoder unet --augment --loss bce+dice
"""

from dataclasses import dataclass
from pathlib import Path

from labkit import flags, lab
from labkit.callbacks import SegmentationImages
from labkit.data import segmentation_dataset
from labkit.data.augment import LesionAugment
from labkit.data.layouts.isic2016 import isic2016_splits
from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
from labkit.errors import require
from labkit.evaluation import mean_std
from labkit.history import summarize
from labkit.models.mobilenet_seg import DECODERS, compiled_segmenter, encoder_fingerprint, parameter_split
from labkit.models.transfer import resolve_weights
from labkit.multirun.tables import child_histories, epoch_table, side_by_side, write_preset_report
from labkit.multirun.variants import Preset
from labkit.plots import comparison_curves
from labkit.reports import evaluate_segmenter, samples_figure, write_samples
from labkit.run_folder import read_csv
from labkit.runtime import distribute
from labkit.training import fit, steps_per_epoch


COURSE = {"decoder": "transpose", "strategy": "finetune", "loss": "bce", "weights": "imagenet", "epochs": 25,
          "batch_size": 32, "lr": 1e-3, "encoder_lr": 1e-4, "img_size": 128, "channels": 3, "dropout": 0.5,
          "val_split": 0.2, "augment": False, "lr_schedule": "constant", "seed": 42}
# The demo trains the U-Net decoder: at 64×64 the transpose decoder starts from a 2×2 feature map and, with a random
# encoder, learns little more than a central blob in a few minutes. Its validation Dice settles at the last epoch
# with the cosine schedule, BatchNorm statistics of the current weights (--precise-bn: Keras's moving averages lag
# the weights, and the decoder's dropout sits before BatchNorm) and 32 validation images (BENCHMARKS.md).
DEMO = {"img_size": 64, "epochs": 12, "batch_size": 16, "n_images": 160, "decoder": "unet", "lr_schedule": "cosine",
        "precise_bn": True}
FULL_COURSE_COMMAND = ("python labs/mobilenet_segmentation.py --data-dir /path/to/ISIC2016 --compare --decoder transpose "
                       "--img-size 128 --epochs 25")
MONITOR = "val_dice"
STRATEGIES = ("frozen", "finetune")
N_SAMPLES = 4
CALIBRATION_IMAGES = 64  # BatchNorm statistics of a random encoder come from this many training images


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    add = parser.add_argument
    add("--decoder", choices=DECODERS, help="transpose: 5 × ConvTranspose(k4, s2) + BN + ReLU + Dropout, 1280 → 32, "
        "then 1×1 conv (the course's); unet: with MobileNetV2 skip connections (default: transpose)")
    add("--strategy", choices=STRATEGIES, help="frozen: train the decoder only (encoder weights and BatchNorm "
        "statistics fixed); finetune: train both (default: finetune)")
    add("--encoder-lr", type=flags.nonnegative_float, help="encoder learning rate with --strategy finetune; 0 freezes "
        "the encoder (course default: 1e-4)")
    add("--decoder-lr", type=flags.positive_float, help="decoder learning rate (default: --lr, course 1e-3)")
    add("--compare", nargs="?", const="strategy", choices=("strategy", "decoder"), help="train two models in one run "
        "and compare them: strategy (default) = frozen vs finetune; decoder = transpose vs unet with --strategy")
    add("--loss", choices=("bce", "dice", "bce+dice"), help="loss on logits: bce (BCEWithLogits), dice (1 − soft "
        "Dice of sigmoid) or their sum (default: bce)")
    add("--dropout", type=flags.dropout_rate, help="decoder dropout (course: 0.5)")
    add("--channels", type=int, choices=(1, 3), help="read images as RGB (3) or grey (1, fed to MobileNetV2 through "
        "the grey-to-RGB adapter) (default: 3)")
    add("--augment", action="store_true", help="training augmentation: random resized crop, horizontal and vertical "
        "flips, rotation (image and mask alike), colour jitter (image only)")
    add("--val-split", type=flags.fraction, help="validation fraction of the training images (default: 0.2)")
    add("--n-images", type=flags.positive_int, help="training images of the embedded synthetic set (test: a quarter as "
        "many); ignored with --data-dir (demo: 160)")
    flags.add_lr_schedule_argument(parser, DEMO)
    flags.add_weights_argument(parser)
    return parser.parse_args(argv)


def demo_text(settings):
    """What the demo run is, for the screen."""
    return (f"embedded synthetic dermoscopy set ({settings.n_images} training images), {settings.img_size}×"
            f"{settings.img_size}, {settings.epochs} epochs, batch {settings.batch_size}, {settings.decoder} decoder, "
            f"{settings.lr_schedule} schedule{lab.precise_bn_text(settings)}.")


def comparison_preset(args):
    """``--compare``: two child runs, frozen/ and finetune/ (or transpose/ and unet/), then `report_models`."""
    if not args.compare:
        return None
    if args.compare == "decoder":
        return Preset("transpose vs unet decoder", [(d, {"decoder": d}) for d in DECODERS],
                      report=report_models, table="variants")
    require(args.encoder_lr != 0, "--compare strategy with --encoder-lr 0 would compare frozen with frozen: give "
            "--encoder-lr > 0")
    return Preset("frozen vs finetune", [("frozen", {"strategy": "frozen", "encoder_lr": None}),
                                         ("finetune", {"strategy": "finetune", "encoder_lr": args.encoder_lr})],
                  report=report_models, table="variants")


def model_variant(settings, lr_factor=1.0):
    """``{strategy, decoder, encoder_lr, decoder_lr}`` of this run's model; an encoder lr of 0 is the frozen strategy.
    Both rates are multiplied by `lr_factor` (``--scale-lr`` with several replicas)."""
    encoder_lr_given = settings.flags.encoder_lr is not None
    require(not (settings.strategy == "frozen" and encoder_lr_given and settings.encoder_lr > 0),
            f"--encoder-lr {settings.encoder_lr} contradicts --strategy frozen (the encoder does not train)")
    strategy = "frozen" if settings.encoder_lr == 0 else settings.strategy
    if strategy != settings.strategy:
        print("note: --encoder-lr 0 freezes the encoder: this is the frozen strategy")
    return {"strategy": strategy, "decoder": settings.decoder, "decoder_lr": (settings.decoder_lr or settings.lr) *
            lr_factor, "encoder_lr": settings.encoder_lr * lr_factor if strategy == "finetune" else 0.0}


@dataclass(frozen=True)
class LesionData:
    """The datasets of one run: (image, mask) batches of each split, with the names of the validation and test
    images, which split evaluates (``test``, or ``validation`` when the folder has no test pairs), the training images
    a random encoder takes its BatchNorm statistics from, the folder with its file count, and the steps of an epoch."""

    train: object
    val: object
    test: object
    val_names: list
    test_names: list
    evaluated_on: str
    calibration: object
    dir: object
    files: int
    steps_per_epoch: int


def lesion_data(settings, batch):
    """Image/mask pairs matched by ISIC id, a seeded validation split, and the datasets of each split (`LesionData`)."""
    data_dir = settings.data_dir or dermoscopy_dataset(settings.n_images, max(8, settings.n_images // 4))
    splits = isic2016_splits(data_dir, settings.val_split, settings.seed, settings.kfold, settings.skip_bad_files)
    train_pairs, val_pairs, test_pairs, evaluated_on = (splits[k] for k in ("train", "val", "test", "evaluated_on"))
    n_test = len(test_pairs) if evaluated_on == "test" else 0
    print(f"data: {splits['layout']} ISIC 2016 layout in {data_dir}: {len(train_pairs)} training, {len(val_pairs)} "
          f"validation and {n_test} test pairs")
    read = lambda p, **kw: segmentation_dataset(p, settings.img_size, batch, channels=settings.channels, **kw)  # noqa: E731
    augment = LesionAugment(seed=settings.seed) if settings.augment else None  # crop, flips, rotation jointly;
    train = read(train_pairs, shuffle=True, seed=settings.seed, cache=True, augment=augment)  # colour on images
    calibration = segmentation_dataset(train_pairs[:CALIBRATION_IMAGES], settings.img_size, CALIBRATION_IMAGES,
                                       channels=settings.channels)
    names = lambda pairs: [p[0].stem for p in pairs]  # noqa: E731
    n_files = 2 * (len(train_pairs) + len(val_pairs) + n_test)
    return LesionData(train, read(val_pairs, cache=True), read(test_pairs), names(val_pairs), names(test_pairs),
                      evaluated_on, next(iter(calibration))[0], data_dir, n_files,
                      steps_per_epoch(len(train_pairs), batch))


LAB = lab.Lab("mobilenet_segmentation", parse_args, COURSE, DEMO, demo_text, FULL_COURSE_COMMAND,
              preset=comparison_preset)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --compare, --sweep, --folds: labkit.multirun ran one child run per model, variant and fold
        return
    size = settings.img_size
    weights = resolve_weights(settings, settings.flags.weights, "mobilenet_v2", (size, size, 3))  # demo: no download
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales both rates
    variant = model_variant(settings, distribution.lr_scale)

    # Data: pairs matched by ISIC id; a seeded validation split of the training images; the test split evaluates.
    data = lesion_data(settings, distribution.global_batch_size)
    lab.save_config(run, settings, data.dir, data.files, distribution=distribution)

    # Model: MobileNetV2 encoder (frozen or with its own learning rate) + decoder, on logits, compiled inside the
    # strategy's scope; a random encoder first gets BatchNorm statistics from training images.
    with distribution.strategy.scope():
        model = compiled_segmenter((size, size, settings.channels), variant["decoder"], settings.weights,
                                   variant["encoder_lr"], variant["decoder_lr"], settings.loss, settings.dropout,
                                   calibration_images=data.calibration, lr_schedule=settings.lr_schedule,
                                   total_steps=settings.epochs * data.steps_per_epoch)
    counts = parameter_split(model)
    print(f"model: MobileNetV2 encoder ({settings.weights} weights, {variant['strategy']}, lr "
          f"{variant['encoder_lr']:g}) + {variant['decoder']} decoder (lr {variant['decoder_lr']:g}); trainable "
          f"{counts['model']['trainable']:,}, non-trainable {counts['model']['non_trainable']:,}")
    if not run.file("encoder.json").is_file():  # the encoder before training (a resumed run keeps the first)
        run.write_json("encoder.json", {"sha256_at_start": encoder_fingerprint(model)})

    # Training: history.csv every epoch, model.keras at every new best validation Dice; with --tensorboard, three
    # validation images with their true and predicted masks.
    callbacks = [SegmentationImages.from_dataset(run.file("tensorboard"), data.val, n_images=3, from_logits=True,
                                                 names=data.val_names)] if settings.tensorboard else []
    history = fit(model, data.train, data.val, settings.epochs, run=run, monitor=MONITOR, callbacks=callbacks,
                  **lab.fit_options(settings))

    # Evaluation: the best epoch on every test image, masks at probability 0.5.
    best = lab.best_model(run)
    unchanged = encoder_fingerprint(best) == run.read_json("encoder.json")["sha256_at_start"]
    print(f"{variant['strategy']}: encoder weights after training", "bit-identical to the start" if unchanged else "changed")
    result = evaluate_segmenter(best, data.test, data.test_names, from_logits=True)
    scores = [{"name": s["name"], "dice": s["dice"], "iou": s["jaccard"]} for s in result["scores"]]
    run.write_csv("per_image.csv", scores)
    metrics = {**summarize(history, MONITOR), "variant": variant, "parameters": counts, "encoder_unchanged": unchanged,
               "test": {"split": data.evaluated_on, "images": len(scores), **mean_std(scores, ("dice", "iou"))},
               "weights": weights.record()}
    print(f"best epoch {metrics['best']['epoch']} (val Dice {metrics['best'][MONITOR]:.4f}); {data.evaluated_on} "
          f"Dice {metrics['test']['dice']['mean']:.4f}, IoU {metrics['test']['iou']['mean']:.4f}")

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"MobileNetV2 {variant['strategy']}, {variant['decoder']} decoder"
    run.save_figure("curves.png", comparison_curves({variant["strategy"]: history}, ("loss", "iou", "dice"), title))
    write_samples(run, result, N_SAMPLES)  # samples.npz, which samples.png is drawn from
    lab.finish_run(run, metrics, {
        "samples.png": samples_figure({variant["strategy"]: run.path}, f"{data.evaluated_on} images")})


#: The rows of summary.md, the course report's table: {row name: its value in a model's metrics and history}.
SUMMARY_ROWS = {
    "final train loss": lambda r: r["final"]["loss"], "final validation loss": lambda r: r["final"]["val_loss"],
    "best validation IoU": lambda r: max(r["history"]["val_iou"]),
    "best validation Dice": lambda r: max(r["history"]["val_dice"]),
    "test IoU (mean per image)": lambda r: r["test"]["iou"]["mean"],
    "test Dice (mean per image)": lambda r: r["test"]["dice"]["mean"],
    "trainable parameters": lambda r: r["parameters"]["model"]["trainable"],
    "non-trainable parameters": lambda r: r["parameters"]["model"]["non_trainable"],
    "training seconds": lambda r: r["train_seconds"]}


def comparison_tables(models, histories):
    """``comparison`` (each model's losses, IoU and Dice per epoch, then a parameter-count row) and ``summary``
    (`SUMMARY_ROWS`, the models side by side)."""
    epochs = epoch_table(histories, {"loss": "train_loss", "val_loss": "val_loss", "val_iou": "val_iou",
                                     "val_dice": "val_dice"})
    params = {f"{n}_{kind}_params": m["parameters"]["model"][kind] for n, m in models.items()
              for kind in ("trainable", "non_trainable")}
    both = {n: {**m, "history": histories[n]} for n, m in models.items()}
    return {"comparison": epochs + [{"epoch": "parameters", **params}], "summary": side_by_side(both, SUMMARY_ROWS)}


def report_models(run, children):
    """The --compare files (see the module docstring); returns the entries it adds to the parent's metrics.json."""
    histories = child_histories(children)
    models, _, winner = write_preset_report(run, children, lambda models: comparison_tables(models, histories),
                                            lambda name, m: {"model": name}, lambda m: m["best"][MONITOR])
    names, first = list(models), next(iter(models.values()))
    per_image = {n: read_csv(Path(p) / "per_image.csv") for n, p in children.items()}
    run.write_csv("per_image.csv", [{"name": row["name"], **{f"{n}_{k}": per_image[n][i][k] for n in names
                                                             for k in ("dice", "iou")}}
                                    for i, row in enumerate(per_image[names[0]])])
    same_strategy = len({m["variant"]["strategy"] for m in models.values()}) == 1
    subject = first["variant"]["strategy"] if same_strategy else first["variant"]["decoder"] + " decoder"
    run.save_figure("curves.png", comparison_curves(histories, ("loss", "iou", "dice"), " vs ".join(names) +
                                                    f" ({subject})", monitor=MONITOR))
    run.save_figure("samples.png", samples_figure(children, f"{first['test']['split']} images"))
    return {"compare": names, "winner": winner, "monitor": MONITOR, "best": {"model": winner, **models[winner]["best"]},
            "final": {"model": winner, **models[winner]["final"]}, "epochs_run": models[winner]["epochs_run"],
            "train_seconds": round(sum(m["train_seconds"] for m in models.values()), 2),
            "test": {n: m["test"] for n, m in models.items()},
            "parameters": {n: m["parameters"] for n, m in models.items()}, "models": models, "weights": first["weights"]}


if __name__ == "__main__":
    lab.run_lab(main)
