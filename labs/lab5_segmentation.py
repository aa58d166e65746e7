"""Lab 5 (CM2003): CT lung and MRI brain-tumour segmentation with the course U-Net.

Tasks (``--task``), each with the course's settings as defaults:

* ``ct`` (1a/1b): both lungs as one foreground (the masks' two grey levels binarised); Dice loss; Dice, precision
  and recall every epoch. ``--augment`` for 1b.
* ``ct-lr`` (2): left and right lung as two classes: a softmax U-Net (background, left, right) with ``--loss dice``
  (mean of the classes' Dice) or ``ce`` (categorical cross-entropy), or two sigmoid heads (``--heads sigmoid``,
  ``--loss dice`` or ``bce``); Dice of each lung every epoch.
* ``mri`` (bonus): brain tumours in 240×240 slices; the course compares against Dice ≈ 0.96.

``--folds 3`` trains one model per fold (patients never split between folds when the slices are named
``Im<patient>_<slice>``) and reports mean ± std. Without --data-dir it trains on embedded synthetic CT or MRI slices
with a demo-sized profile. The run folder gets config.json, split.csv, history.csv, metrics.json, curves.png,
samples.png, per_image.csv and model.keras (the best epoch by validation Dice).

The course's 2022 options, on any task: ``--weight-maps`` (a): pixels within 2 of a mask edge weigh 1 +
``--weight-strength`` (1.5) in the loss, computed per batch (labkit.data.weight_maps); adds weight_map.png.
``--autocontext S`` (b): S steps, step s on the slice plus step s−1's probability maps, out-of-fold on training
slices (labkit.autocontext); step-<s>/ child runs, autocontext.csv/.md and autocontext.png (validation Dice per step).

example:
  python labs/lab5_segmentation.py --task ct --augment
  python labs/lab5_segmentation.py --task ct-lr --heads sigmoid --folds 3
  python labs/lab5_segmentation.py --task mri --data-dir /DL_course_data/Lab5/MRI
  python labs/lab5_segmentation.py --task ct --weight-maps --weight-strength 1.5
  python labs/lab5_segmentation.py --task ct --autocontext 3 --autocontext-folds 3
"""

import argparse

from labkit import autocontext, flags, get_unet, lab
from labkit.data import COURSE_AUGMENT, array_dataset, check_readable, synthetic
from labkit.data.layouts.ct_mri import (BINARY_LEVELS, BRATS_MODALITIES, CT_LEVELS, brats_as_course_layout,
                                        find_lab5_pairs, is_brats_folder, load_class_slices, patient_of)
from labkit.data.split import train_val_split
from labkit.data.weight_maps import COURSE_STRENGTH, weight_map, with_weight_maps
from labkit.errors import require
from labkit.evaluation import mean_std
from labkit.history import summarize
from labkit.losses import get_loss
from labkit.metrics import class_dice_metrics, dice_coef
from labkit.models.heads import with_sigmoid_heads
from labkit.plots import class_samples, plot_history, segmentation_samples, weight_map_figure
from labkit.reports import evaluate_segmenter
from labkit.runtime import distribute
from labkit.training import compile_model, fit

import keras  # after labkit, which quiets TensorFlow's start-up logging

TASKS = ("ct", "ct-lr", "mri")
COURSE = {"task": "ct", "loss": "dice", "heads": "softmax", "base": 8, "batchnorm": True, "dropout": 0.2,
          "augment": False, "modality": "flair", "keep_empty": False, "epochs": 50, "batch_size": 8, "lr": 1e-4,
          "img_size": 256, "val_split": 0.2, "seed": 42,
          "weight_maps": False, "weight_strength": COURSE_STRENGTH}
#: What each task changes in the course settings (Task 2: 80 epochs, lr 1e-5, augmentation; MRI: 240×240 slices).
TASK_COURSE = {"ct": {}, "ct-lr": {"epochs": 80, "lr": 1e-5, "augment": True}, "mri": {"img_size": 240}}
DEMO = {"img_size": 64, "epochs": 20, "lr": 1e-3, "n_patients": 16, "n_slices": 12}
#: The course's reference tumour Dice for the MRI bonus task.
MRI_REFERENCE_DICE = 0.96
CLASSES = list(CT_LEVELS)  # ["left", "right"]: the lungs at grey levels ≈ 0.98 and ≈ 0.61


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    parser.add_argument("--task", choices=TASKS, help="ct: both lungs (Task 1); ct-lr: left/right lung (Task 2); "
                        "mri: brain tumours (bonus) (default: ct)")
    parser.add_argument("--loss", choices=("dice", "ce", "bce", "bce+dice"), help="dice: 1 − Dice (multi-class: "
                        "mean of the channels' Dice); ce: categorical cross-entropy (softmax); bce: binary "
                        "cross-entropy (course default: dice)")
    parser.add_argument("--heads", choices=("softmax", "sigmoid"), help="ct-lr output: softmax over background, "
                        "left, right, or two independent sigmoid heads (default: softmax)")
    parser.add_argument("--base", type=flags.positive_int, help="filters of the first level (course default: 8)")
    parser.add_argument("--dropout", type=flags.dropout_rate, help="dropout after pooling and concatenation (course "
                        "default: 0.2)")
    parser.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, help="batch normalisation after "
                        "every convolution (course default: on)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, help="rotation 10°, shift 0.1, zoom "
                        "0.2 and (not for ct-lr) horizontal flip on training data (course default: off for ct and "
                        "mri, on for ct-lr)")
    parser.add_argument("--modality", choices=BRATS_MODALITIES, help="mri on a BraTS folder (case folders of NIfTI "
                        "volumes, sliced once into PNGs): the image volume to use (default: flair)")
    parser.add_argument("--keep-empty", action="store_true", help="mri on a BraTS folder: keep slices without "
                        "tumour (default: dropped)")
    parser.add_argument("--val-split", type=flags.fraction, help="validation fraction (course default: 0.2)")
    parser.add_argument("--weight-maps", action="store_true", help="boundary weight maps (2022 option a): pixels "
                        "within 2 of a mask edge weigh 1 + --weight-strength in the loss")
    parser.add_argument("--weight-strength", type=flags.nonnegative_float, help="extra loss weight of boundary pixels "
                        f"with --weight-maps (course: {COURSE_STRENGTH})")
    autocontext.add_arguments(parser)  # --autocontext S (2022 option b), --autocontext-folds K
    return parser.parse_args(argv)


def check_choices(settings):
    """Loss and heads that fit the task, else one clear error."""
    two_class = settings.task == "ct-lr"
    require(settings.loss != "ce" or (two_class and settings.heads == "softmax"),
            "--loss ce needs --task ct-lr with --heads softmax (use dice or bce)")
    require(not (two_class and settings.heads == "softmax" and settings.loss in ("bce", "bce+dice")),
            f"--loss {settings.loss} needs sigmoid outputs: use --heads sigmoid, or --loss ce or dice")


def embedded_data(settings):
    """The embedded synthetic set of the task (CT or MRI slices in the course layout)."""
    make = synthetic.mri_dataset if settings.task == "mri" else synthetic.ct_dataset
    return make(n_patients=settings.n_patients, n_slices=settings.n_slices, size=128)


def load_split(settings):
    """Training and validation arrays ``(images, masks)`` and the validation pairs, split by patient when the names
    carry one. Masks: ``(n, s, s, 1)`` for ct and mri; ct-lr: one-hot (background, left, right) for a softmax, or
    (left, right) for sigmoid heads."""
    data_dir = settings.data_dir or embedded_data(settings)
    if settings.task == "mri" and is_brats_folder(data_dir):
        data_dir = brats_as_course_layout(data_dir, settings.modality, settings.keep_empty)
    pairs = find_lab5_pairs(data_dir, modality="MRI" if settings.task == "mri" else "CT")
    pairs = check_readable(pairs, skip_bad=settings.skip_bad_files)
    train_pairs, val_pairs = train_val_split(pairs, settings.val_split, settings.seed, kfold=settings.kfold,
                                             group_of=lambda pair: patient_of(pair[0]))
    levels = BINARY_LEVELS if settings.task == "mri" else CT_LEVELS
    two_class = settings.task == "ct-lr"

    def arrays(part):
        images, masks = load_class_slices(part, settings.img_size, levels, one_hot=two_class)
        return images, (masks[..., 1:] if two_class and settings.heads == "sigmoid" else masks)

    return data_dir, pairs, train_pairs, val_pairs, arrays(train_pairs), arrays(val_pairs)


def augmentation(settings):
    """The course's augmentation, without the horizontal flip for ct-lr: a mirrored left lung lies where the right
    one does, with the left lung's label, which would make left and right impossible to tell apart."""
    if not settings.augment:
        return None
    return {**COURSE_AUGMENT, "horizontal_flip": False} if settings.task == "ct-lr" else COURSE_AUGMENT


def build_model(settings, channels):
    """The course U-Net: one sigmoid channel (ct, mri), a 3-class softmax or two sigmoid heads (ct-lr)."""
    size = settings.img_size
    n_class = 1 if settings.task != "ct-lr" else 3
    model = get_unet((size, size, channels), base=settings.base, batchnorm=settings.batchnorm,
                     dropout=settings.dropout, n_class=n_class)
    if settings.task == "ct-lr" and settings.heads == "sigmoid":
        model = with_sigmoid_heads(model, len(CLASSES))
    return model


def training_metrics(settings):
    """Keras metrics and the monitored key: Dice, precision and recall (binary) or the Dice of each lung (ct-lr)."""
    if settings.task == "ct-lr":
        return class_dice_metrics(CLASSES, first_channel=1 if settings.heads == "softmax" else 0), "val_dice_mean"
    return [dice_coef, keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")], "val_dice_coef"


def samples_figure(settings, result):
    """The first four validation slices with true and predicted masks (binary) or lung classes (ct-lr)."""
    images, scores = result["images"][:4, ..., :1], result["scores"][:4]  # the slice (auto-context adds maps)
    if settings.task != "ct-lr":
        return segmentation_samples(images, result["masks"][:4], result["probabilities"][:4],
                                    scores=[s["dice"] for s in scores])
    text = [" ".join(f"{c} {s[f'dice_{c}']:.2f}" for c in CLASSES) for s in scores]
    return class_samples(images, result["true_classes"][:4], result["pred_classes"][:4], CLASSES, scores=text)


def course_defaults(args):
    """The task's course settings; the loss and heads are checked against the task before any run folder exists."""
    course = {**COURSE, **TASK_COURSE[args.task or "ct"]}
    check_choices(argparse.Namespace(**lab.resolve_settings(args, course, DEMO)[0]))
    return course


def demo_text(settings):
    course = {**COURSE, **TASK_COURSE[settings.task]}
    scan = "MRI" if settings.task == "mri" else "CT"
    return (f"embedded synthetic {scan} slices ({settings.n_patients} patients × {settings.n_slices} slices), "
            f"{settings.img_size}×{settings.img_size}, {settings.epochs} epochs, lr {settings.lr}. Course settings on "
            f"real data: --data-dir <course {scan} folder> (--img-size {course['img_size']}, {course['epochs']} "
            f"epochs, lr {course['lr']})")


LAB = lab.Lab("lab5_segmentation", parse_args, course_defaults, DEMO, demo_text, multirun=autocontext.run_steps)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the task's course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds / --autocontext: this main ran once per variant, fold or step
        return

    # Data: pairs matched by name, split once with the seed (by patient when the names carry one), masks checked
    # against the task's grey levels; augmentation on training batches only.
    data_dir, pairs, train_pairs, val_pairs, (train_x, train_y), (val_x, val_y) = load_split(settings)
    # An auto-context step (labkit.autocontext) adds the previous step's maps as input channels; its fold models
    # leave one inner fold of the training slices out (by patient) and map it.
    parts = autocontext.step_parts(settings, {"train": (train_pairs, train_x, train_y),
                                              "val": (val_pairs, val_x, val_y)}, group_of=lambda p: patient_of(p[0]))
    (train_pairs, train_x, train_y), (val_pairs, val_x, val_y) = parts["train"], parts["val"]
    distribution = distribute(settings)
    batch = distribution.global_batch_size
    lab.save_config(run, settings, data_dir, 2 * len(pairs), splits={"train": train_pairs, "val": val_pairs},
                    distribution=distribution)
    print(f"data: {len(train_pairs)} training and {len(val_pairs)} validation slices from {data_dir}")
    train = array_dataset(train_x, train_y, batch, augment=augmentation(settings), shuffle=True, seed=settings.seed)
    val = array_dataset(val_x, val_y, batch)
    fit_val = val
    if settings.weight_maps:  # (image, mask, weight) batches: the loss weighs each pixel (labkit.data.weight_maps)
        train, fit_val = (with_weight_maps(data, settings.weight_strength) for data in (train, val))
        run.save_figure("weight_map.png", weight_map_figure(train_x[:3], train_y[:3], weight_map(
            train_y[:3], settings.weight_strength), title=f"boundary weight maps, strength {settings.weight_strength}"))

    # Model: the course U-Net, compiled inside the distribution strategy's scope; the loss name goes to get_loss.
    metrics, monitor = training_metrics(settings)
    with distribution.strategy.scope():
        model = build_model(settings, channels=train_x.shape[-1])
        compile_model(model, distribution.learning_rate, get_loss(settings.loss, channels=model.output_shape[-1],
                                                                     pixel_weights=settings.weight_maps),
                      metrics=metrics)
    print(f"model: U-Net base {settings.base}, {model.output_shape[-1]} output channel(s), "
          f"{model.count_params():,} parameters, loss {settings.loss}")

    # Training: history.csv every epoch, model.keras at every new best validation Dice.
    history = fit(model, train, fit_val, settings.epochs, run=run, monitor=monitor, **lab.fit_options(settings))

    # Evaluation: the best model on every validation slice (binarised at 0.5, or each pixel's most likely class).
    best = lab.best_model(run)
    two_class = settings.task == "ct-lr"
    result = evaluate_segmenter(best, val, [p[0].name for p in val_pairs], classes=CLASSES if two_class else None,
                                softmax=settings.heads == "softmax")
    scores, samples = result["scores"], samples_figure(settings, result)
    keys = [f"dice_{c}" for c in CLASSES] + ["dice_mean"] if two_class else ("dice", "jaccard")
    run.write_csv("per_image.csv", scores)
    autocontext.save_maps(run, best, parts, settings)  # an auto-context step's maps.npz (nothing otherwise)
    metrics_out = {**summarize(history, monitor), "validation": {"images": len(scores), **mean_std(scores, keys)}}
    if settings.task != "ct-lr":  # the same over the slices that show a lung or tumour
        present = [s for s in scores if s["true_pixels"]]
        metrics_out["validation_with_foreground"] = {"images": len(present), **mean_std(present, keys)}

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"Lab 5 {settings.task}: U-Net base {settings.base}, {settings.loss} loss"
    curves = ("dice_left", "dice_right") if settings.task == "ct-lr" else ("dice_coef", "precision", "recall")
    curves = plot_history(history, ("loss", *curves), title, monitor=monitor)  # best epoch by validation Dice
    samples.suptitle(title)
    summary = metrics_out["validation"][keys[0] if settings.task != "ct-lr" else "dice_mean"]
    present = metrics_out.get("validation_with_foreground", {}).get("dice")
    present = f", {present['mean']:.4f} on the slices with foreground" if present else ""
    reference = f" (course reference: Dice ≈ {MRI_REFERENCE_DICE})" if settings.task == "mri" else ""
    best_row = metrics_out["best"]
    lab.finish_run(run, metrics_out, {"curves.png": curves, "samples.png": samples},
                   summary=f"best epoch {best_row['epoch']}: {monitor} {best_row[monitor]:.4f}; validation Dice per "
                           f"image {summary['mean']:.4f} ± {summary['std']:.4f}{present}{reference}")


if __name__ == "__main__":
    lab.run_lab(main)
