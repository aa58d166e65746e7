"""3D U-Net left-atrium segmentation (LA 2018 style) with surface-distance evaluation.

Trains a 3D U-Net (`labkit.get_unet3d`: Conv3D blocks, MaxPool3D, Conv3DTranspose, skip connections) on random
patches of MRI volumes — the course's 112×112×80, a share of them centred on the atrium — and evaluates the best
model on whole test volumes by sliding-window inference (windows overlapping by --overlap, Gaussian blending), so any
volume size works. Each test case gets Dice, Jaccard, ASD (pred → ref) and 95HD (both directions pooled), the
definitions of medpy 0.5 used in the LA 2018 / UA-MT tables, in voxels and, when the voxel size is known, in mm.
The lab compares binary cross-entropy with Dice loss (--loss) and rotation/flip augmentation (--augment).

Data (--data-dir): the UA-MT preprocessing of LA 2018 (``<case>/mri_norm2.h5`` with datasets ``image`` and
``label`` plus ``train.list`` / ``test.list``), or NIfTI image/label pairs (e.g. ``imagesTr`` / ``labelsTr``; the
test cases are then a --test-split share). A --val-split share of the training cases picks the best epoch.
Without --data-dir it trains on embedded synthetic volumes with a demo-sized profile that finishes in minutes on a
CPU. The run folder gets config.json, history.csv, per_case.csv, metrics.json (best/final epoch and the test
summary, mean ± std), curves.png, slices.png, surface.png and model.keras (the best epoch by validation Dice).

example:
  python labs/unet3d_segmentation.py --loss dice --augment
  python labs/unet3d_segmentation.py --data-dir "data/2018LA_Seg_Training Set" --loss bce --augment
"""

import argparse
from pathlib import Path

from labkit import dice_coef, flags, get_unet3d, lab, loss_dice_plot
from labkit.callbacks import SegmentationImages
from labkit.data.layouts.volume_cases import find_train_test_cases, load_cases, volume_layout
from labkit.data.patches import BLENDS, centre_crop, patch_dataset, validation_patches
from labkit.data.pipeline import even_replica_batches
from labkit.data.split import train_val_split
from labkit.data.synthetic.atrium import atrium_dataset
from labkit.errors import require
from labkit.evaluation import evaluate_volumes
from labkit.history import summarize
from labkit.inference import predict_case
from labkit.optimizers import learning_rate_schedule
from labkit.plots import surface_view, volume_slices
from labkit.reports import volume_summary
from labkit.runtime import distribute
from labkit.training import compile_model, fit, steps_per_epoch

import tensorflow as tf

#: Course settings shared by both losses; the optimiser settings depend on the loss (`LOSS_COURSE`).
COURSE = {"loss": "bce", "patch": [112, 112, 80], "base": 16, "depth": 4, "batchnorm": True, "dropout": None,
          "augment": False, "overlap": 0.5, "blend": "gaussian", "inference": "sliding", "val_split": 0.2,
          "test_split": 0.2, "patches_per_volume": 1, "foreground_prob": 0.5, "spacing": None,
          "lr_schedule": "constant", "seed": 42}
LOSS_COURSE = {"bce": {"lr": 1e-3, "batch_size": 4, "epochs": 50},
               "dice": {"lr": 1e-5, "batch_size": 2, "epochs": 75},
               "bce+dice": {"lr": 1e-3, "batch_size": 4, "epochs": 50}}
HELP_COURSE = {"lr": "1e-3 with bce, 1e-5 with dice", "batch_size": "4 with bce, 2 with dice",
               "epochs": "50 with bce, 75 with dice"}
#: The demo validates with BatchNorm statistics of the current weights (--precise-bn): with Keras's moving averages
#: (momentum 0.99 over batches of 4 patches) its validation Dice fell from 0.66 to 0.04 and back within an epoch
#: or two, and the last epoch landed wherever the lag left it (BENCHMARKS.md).
DEMO = {"patch": [32, 32, 16], "base": 8, "depth": 3, "epochs": 20, "lr": 1e-3, "batch_size": 4,
        "patches_per_volume": 6, "n_volumes": 12, "n_test": 3, "volume_shape": [64, 64, 32], "precise_bn": True}
FULL_COURSE_COMMAND = ('python labs/unet3d_segmentation.py --data-dir "/path/to/2018LA_Seg_Training Set" '
                       "--loss bce   (or --loss dice: Adam 1e-5, batch 2, 75 epochs)")
N_FIGURE_CASES = 3


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, HELP_COURSE)
    add = parser.add_argument
    add("--loss", choices=("bce", "dice", "bce+dice"), help="bce: binary cross-entropy (course: Adam 1e-3, batch "
        "4, 50 epochs); dice: 1 − soft Dice (course: Adam 1e-5, batch 2, 75 epochs); bce+dice: their sum "
        "(default: bce)")
    add("--patch", nargs=3, type=flags.positive_int, metavar=("X", "Y", "Z"), help="training patch and inference "
        "window in voxels; each side a multiple of 2^--depth (course default: 112 112 80)")
    add("--overlap", type=flags.nonnegative_float, help="overlap of neighbouring inference windows, in [0, 1) "
        "(default: 0.5)")
    add("--blend", choices=BLENDS, help="weights of overlapping windows (default: gaussian)")
    add("--inference", choices=("sliding", "centre"), help="sliding: whole volumes by sliding windows; centre: "
        "score only the central --patch block of each test volume (default: sliding)")
    add("--augment", action="store_true", help="random rotation (±20° in the axial plane) and flips of training "
        "patches, identical for image and label")
    add("--base", type=flags.positive_int, help="filters of the first level (course default: 16)")
    add("--depth", type=flags.positive_int, help="pooling levels of the U-Net (course default: 4)")
    add("--dropout", type=flags.dropout_rate, help="dropout after each pooling and concatenation (default: none)")
    add("--batchnorm", action=argparse.BooleanOptionalAction, help="batch normalisation after every "
        "convolution (course default: on)")
    add("--val-split", type=flags.fraction, help="share of the training cases used to pick the best epoch "
        "(default: 0.2)")
    add("--test-split", type=flags.fraction, help="NIfTI data only (no case lists): share of the cases held "
        "out for testing (default: 0.2)")
    add("--patches-per-volume", type=flags.positive_int, help="random patches drawn per training volume and epoch "
        "(default: 1)")
    add("--foreground-prob", type=flags.nonnegative_float, help="share of training patches centred on a foreground "
        "voxel (default: 0.5)")
    add("--spacing", nargs=3, type=flags.positive_float, metavar=("SX", "SY", "SZ"), help="voxel size in mm for "
        "volumes whose files do not carry one (UA-MT h5 files carry none; LA 2018 is 0.625 mm isotropic); NIfTI "
        "headers are used otherwise")
    flags.add_lr_schedule_argument(parser, DEMO)
    return parser.parse_args(argv)


def resolve(args):
    """The course defaults for the chosen loss, and a check of the flags before any folder is created."""
    require(args.img_size is None, "--img-size does not apply to 3D volumes: use --patch X Y Z")
    if args.data_dir is not None:
        volume_layout(args.data_dir)  # a missing folder or unknown layout stops here, before the run folder exists
    course = {**COURSE, **LOSS_COURSE[args.loss or COURSE["loss"]]}
    settings, _ = lab.resolve_settings(args, course, DEMO)
    depth, patch = settings["depth"], settings["patch"]
    require(all(p % 2**depth == 0 for p in patch), f"--patch {' '.join(map(str, patch))} is not divisible by "
            f"2^{depth} = {2**depth} on every side: a U-Net with --depth {depth} halves each side {depth} times")
    require(settings["overlap"] < 1, f"--overlap must be in [0, 1), got {settings['overlap']}")
    require(settings["foreground_prob"] <= 1, f"--foreground-prob must be in [0, 1], got {settings['foreground_prob']}")
    return course


def demo_text(settings):
    """What the demo profile runs, shown on screen."""
    return (f"{settings.n_volumes} embedded synthetic volumes of about {'×'.join(map(str, settings.volume_shape))}, "
            f"patches {'×'.join(map(str, settings.patch))}, base {settings.base}, depth {settings.depth}, "
            f"{settings.epochs} epochs, lr {settings.lr} ({settings.lr_schedule} schedule)"
            f"{lab.precise_bn_text(settings, settings.batchnorm)}.")


LAB = lab.Lab("unet3d_segmentation", parse_args, resolve, DEMO, demo_text, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults for the loss.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return
    patch = tuple(settings.patch)

    # Data: case lists (or a seeded split), a validation share of the training cases, volumes held in memory.
    data_dir = Path(settings.data_dir) if settings.data_dir else atrium_dataset(
        settings.n_volumes, settings.n_test, tuple(settings.volume_shape))
    train_entries, test_entries, layout = find_train_test_cases(data_dir, settings.test_split, settings.seed)
    train_entries, val_entries = train_val_split(train_entries, settings.val_split, settings.seed, kfold=settings.kfold)
    # --batch-size is per replica: the global batch grows with the replicas (the learning rate too with --scale-lr).
    distribution = distribute(settings)
    batch = distribution.global_batch_size
    train_cases, val_cases, test_cases = (load_cases(e, skip_bad=settings.skip_bad_files)
                                          for e in (train_entries, val_entries, test_entries))
    lab.save_config(run, settings, data_dir, sum(len(e) - 1 for e in train_entries + val_entries + test_entries),
                    distribution=distribution)
    for case in train_cases + val_cases + test_cases:
        if case.spacing is None and settings.spacing:
            case.spacing = tuple(settings.spacing)
    print(f"data ({layout}): {len(train_cases)} training, {len(val_cases)} validation and {len(test_cases)} test "
          f"volumes from {data_dir}")
    steps = max(1, steps_per_epoch(len(train_cases) * settings.patches_per_volume, batch))
    train = patch_dataset(train_cases, patch, batch, seed=settings.seed, foreground_prob=settings.foreground_prob,
                          augment=settings.augment, steps_per_epoch=steps)
    val = tf.data.Dataset.from_tensor_slices(validation_patches(val_cases, patch)).batch(batch)

    # Model: the 3D U-Net, built and compiled inside the distribution strategy's scope.
    with distribution.strategy.scope():
        model = get_unet3d((*patch, 1), base=settings.base, depth=settings.depth, batchnorm=settings.batchnorm,
                           dropout=settings.dropout)
        rate = learning_rate_schedule(distribution.learning_rate, settings.lr_schedule, settings.epochs * steps)
        compile_model(model, rate, settings.loss, metrics=[dice_coef])
    print(f"model: 3D U-Net base {settings.base}, depth {settings.depth}, {model.count_params():,} parameters, "
          f"loss {settings.loss}; {steps} steps of {batch} patches per epoch")

    # Training: history.csv every epoch, model.keras at every new best validation Dice (object-centred patches);
    # with --tensorboard also the middle slice of three validation patches with their true and predicted masks.
    callbacks = [SegmentationImages.from_dataset(run.file("tensorboard"), val, n_images=3,
                                                 names=[case.name for case in val_cases])] if settings.tensorboard else []
    # No replica left without a patch (a lone validation patch goes to every replica): Dice as on one device.
    val_batches = even_replica_batches(val, len(val_cases), batch, distribution.replicas)
    history = fit(model, train, val_batches, settings.epochs, run=run, monitor="val_dice_coef",
                  steps_per_epoch=steps, callbacks=callbacks, **lab.fit_options(settings))

    # Evaluation: the best model on every test volume, masks binarised at 0.5, surface distances in voxels and mm.
    best = lab.best_model(run)
    probabilities, references = zip(*(predict_case(best, case, patch, settings.overlap, settings.blend,
                                                    settings.batch_size, settings.inference == "centre")
                                       for case in test_cases))
    predictions = [p > 0.5 for p in probabilities]
    names = [case.name for case in test_cases]
    rows, summary = evaluate_volumes(predictions, references, [c.spacing for c in test_cases], names)
    run.write_csv("per_case.csv", rows)
    metrics = {**summarize(history, "val_dice_coef"),
               "test": {"cases": len(rows), "inference": settings.inference, "patch": list(patch),
                        "overlap": settings.overlap, "blend": settings.blend, **summary}}

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"3D U-Net base {settings.base}, {settings.loss} loss{', augmented' if settings.augment else ''}"
    shown = slice(0, N_FIGURE_CASES)
    images = [centre_crop(c.image, patch) if settings.inference == "centre" else c.image for c in test_cases]
    lab.finish_run(run, metrics, {
        "curves.png": loss_dice_plot(history, title),
        "slices.png": volume_slices(images[shown], references[shown], predictions[shown], names[shown],
                                    scores=[r["dice"] for r in rows[shown]], title=title),
        "surface.png": surface_view(references[0], predictions[0], test_cases[0].spacing,
                                    title=f"{names[0]}: Dice {rows[0]['dice']:.3f}"),
    }, summary=volume_summary(metrics, summary, "val_dice_coef"))


if __name__ == "__main__":
    lab.run_lab(main)
