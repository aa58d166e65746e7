"""Lab 4 Task 4 (CM2003): U-Net lung segmentation on chest X-rays.

Trains the course's U-Net (`labkit.get_unet`) on image/mask pairs in the course layout
``X_ray/Image/<name>.png`` + ``X_ray/Mask/<name>.png`` and compares what the Task 4 variants change:
binary cross-entropy vs Dice loss (4a–b), dropout (4c), the base number of filters (4d), batch normalisation and
augmentation (4e: rotation 10°, shift 0.1, zoom 0.2, horizontal flip — training data only).

Without --data-dir it trains on the embedded synthetic chest X-rays with a demo-sized profile that finishes in
minutes on a laptop CPU. The run folder gets config.json, history.csv, metrics.json, curves.png, samples.png and
model.keras (the best epoch by validation Dice).

example:
  python labs/lab4_unet.py --loss dice --base 32 --dropout 0.2
  python labs/lab4_unet.py --data-dir /DL_course_data/Lab3/X_ray --img-size 256 --epochs 150 --augment
"""

from labkit import dice_coef, flags, get_unet, lab, loss_dice_plot
from labkit.callbacks import SegmentationImages
from labkit.data import check_readable, find_xray_pairs, segmentation_dataset, synthetic
from labkit.data.split import train_val_split
from labkit.evaluation import mean_std, per_image_scores
from labkit.history import summarize
from labkit.inference import collect_predictions
from labkit.optimizers import learning_rate_schedule
from labkit.plots import segmentation_samples
from labkit.runtime import distribute
from labkit.training import compile_model, fit, steps_per_epoch


COURSE = {"loss": "bce", "base": 8, "dropout": None, "batchnorm": False, "augment": False, "epochs": 150,
          "batch_size": 8, "lr": 1e-4, "lr_schedule": "constant", "img_size": 256, "val_split": 0.2, "seed": 42}
DEMO = {"img_size": 128, "epochs": 16, "lr": 3e-4, "lr_schedule": "cosine", "n_images": 240}
#: Where the README's demo command (--loss dice --base 32 --dropout 0.2) ends: validation Dice at the last epoch, the
#: range over the seeds and precisions benchmarks/quality.py measured (BENCHMARKS.md).
DEMO_EXPECTED = "0.90–0.97"
DEMO_TEXT = ("embedded synthetic chest X-rays ({n_images} images), {img_size}×{img_size}, {epochs} epochs, lr {lr} "
             "({lr_schedule} schedule). The README's demo command ends at validation Dice " + DEMO_EXPECTED +
             " at its last epoch, depending on the seed (BENCHMARKS.md).")
FULL_COURSE_COMMAND = "python labs/lab4_unet.py --data-dir /path/to/X_ray --img-size 256 --epochs 150 --lr 1e-4"


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    parser.add_argument("--loss", choices=("bce", "dice"), help="bce: binary cross-entropy; dice: 1 − soft Dice "
                        "(course default: bce)")
    parser.add_argument("--base", type=flags.positive_int, help="filters of the first level; Task 4d tries 8, 16 and 32 "
                        "(course default: 8)")
    parser.add_argument("--dropout", type=flags.dropout_rate, help="dropout after each pooling and concatenation "
                        "(course Task 4c: 0.2; default: none)")
    parser.add_argument("--batchnorm", action="store_true", help="batch normalisation after every convolution")
    parser.add_argument("--augment", action="store_true", help="Task 4e augmentation on training data: rotation "
                        "10°, shift 0.1, zoom 0.2, horizontal flip")
    flags.add_lr_schedule_argument(parser, DEMO)
    parser.add_argument("--val-split", type=flags.fraction, help="validation fraction (course default: 0.2)")
    parser.add_argument("--image-dir", default="Image", help="image subfolder of --data-dir (default: Image)")
    parser.add_argument("--mask-dir", default="Mask", help="mask subfolder of --data-dir (default: Mask)")
    return parser.parse_args(argv)


LAB = lab.Lab("lab4_unet", parse_args, COURSE, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return
    size = settings.img_size

    # Data: pairs matched by name, split once with the seed; augmentation on training batches only.
    data_dir = settings.data_dir or synthetic.xray_dataset(n_images=settings.n_images)
    pairs = find_xray_pairs(data_dir, settings.image_dir, settings.mask_dir)
    pairs = check_readable(pairs, skip_bad=settings.skip_bad_files)
    train_pairs, val_pairs = train_val_split(pairs, settings.val_split, settings.seed, kfold=settings.kfold)
    # --batch-size is per replica: the global batch grows with the replicas (the learning rate too with --scale-lr).
    distribution = distribute(settings)
    batch = distribution.global_batch_size
    lab.save_config(run, settings, data_dir, 2 * len(pairs), splits={"train": train_pairs, "val": val_pairs},
                    distribution=distribution)
    print(f"data: {len(train_pairs)} training and {len(val_pairs)} validation pairs from {data_dir}")
    # Decoded images stay in memory when they fit (cache="auto"), else they stream from disk every epoch.
    train = segmentation_dataset(train_pairs, size, batch, augment=settings.augment, shuffle=True,
                                 seed=settings.seed, cache="auto")
    val = segmentation_dataset(val_pairs, size, batch, cache="auto")

    # Model: the course's U-Net graph, built and compiled inside the distribution strategy's scope.
    with distribution.strategy.scope():
        model = get_unet((size, size, 1), base=settings.base, batchnorm=settings.batchnorm, dropout=settings.dropout)
        steps = settings.epochs * steps_per_epoch(len(train_pairs), batch)
        rate = learning_rate_schedule(distribution.learning_rate, settings.lr_schedule, total_steps=steps)
        compile_model(model, rate, settings.loss, metrics=[dice_coef])  # labkit.losses.get_loss
    print(f"model: U-Net base {settings.base}, {model.count_params():,} parameters, loss {settings.loss}")

    # Training: history.csv every epoch, model.keras at every new best validation Dice; with --tensorboard, epoch
    # scalars plus three validation images with their true and predicted masks (~10 snapshots over the run).
    callbacks = [SegmentationImages.from_dataset(run.file("tensorboard"), val, n_images=3,
                                                 names=[p[0].stem for p in val_pairs])] if settings.tensorboard else []
    history = fit(model, train, val, settings.epochs, run=run, monitor="val_dice_coef", callbacks=callbacks,
                  **lab.fit_options(settings))

    # Evaluation: the best model on every validation image, masks binarised at 0.5.
    best = lab.best_model(run)
    images, masks, probabilities = collect_predictions(best, val)
    scores = per_image_scores(probabilities > 0.5, masks, names=[p[0].name for p in val_pairs])
    run.write_csv("per_image.csv", scores)
    metrics = {**summarize(history, "val_dice_coef"), "validation": {"images": len(scores),
               **mean_std(scores, ("dice", "jaccard"))}}

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"U-Net base {settings.base}, {settings.loss} loss"
    dice = metrics["validation"]["dice"]
    lab.finish_run(run, metrics, {
        "curves.png": loss_dice_plot(history, title),
        "samples.png": segmentation_samples(images[:4], masks[:4], probabilities[:4],
                                            scores=[s["dice"] for s in scores[:4]], title=title),
    }, summary=f"best epoch {metrics['best']['epoch']}: val_dice_coef {metrics['best']['val_dice_coef']:.4f}; "
               f"validation Dice per image (threshold 0.5) {dice['mean']:.4f} ± {dice['std']:.4f}")


if __name__ == "__main__":
    lab.run_lab(main)
