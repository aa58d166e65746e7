"""Lab 3 (CM2003): VGG16 on Skin and Bone, the nine-class X-ray set, regularisation and augmentation.

Tasks 1–2, VGG16 (`labkit.vgg16_model`: 13 3×3 convolutions of base … 8·base in five blocks, dense 64 → 64 → one
sigmoid unit) from scratch on grey 128×128 images: 100 epochs, batch 8, base 8, Adam (the defaults); the learning
rate search --sweep lr=1e-4,1e-5,1e-6; base 16 (--sweep base=8,16) with and without dropout 0.2 in the dense layers
(--sweep dropout=none,0.2); against AlexNet (--sweep model=vgg16,alexnet, 150 epochs); on Bone with --dataset bone.
Task 4, the nine organ classes of Lab 1's X-ray set (--dataset xray9: ``X_ray/{train,test}/C1_…``–``C9_…``, class
from the file-name prefix) with LeNet and AlexNet softmax heads and categorical cross-entropy
(--sweep model=lenet,alexnet); confusion_matrix.png and report.csv/.txt give the per-class numbers.
Tasks 5–6, regularisation (AlexNet, base 8, dense 64 → 64): --dropout 0.4, --batchnorm (before each ReLU),
--spatial-dropout 0.1 (after each convolution's ReLU), longer training (--epochs 150, 250).
Tasks 8–9, AlexNet and VGG16 with batch norm, dropout 0.4 and --augment (training images only: rotation 10°, shifts
0.1, horizontal flip). Task 7's augmentation preview is its own script, ``labs/lab3_augmentation.py``.

Data (--data-dir): Lab 2's class folders (``Skin/{train,validation}/{Mel,Nevi}/``, ``Bone/…/{AFF,NFF}/``) or Lab 1's
flat folders (``Skin/{train,test}/Mel_…``, ``X_ray/{train,test}/C1_…``), given as the folder holding the set or the
set folder itself. Without --data-dir it trains on the embedded synthetic sets with a demo-sized profile (printed).

The run folder gets config.json, history.csv, model.keras (best epoch by validation accuracy), metrics.json,
curves.png (loss and accuracy, best epoch marked), confusion_matrix.png, samples.png (validation images with true
and predicted class), report.txt / report.csv (per-class precision, recall, F1) and predictions.csv; a --sweep adds
comparison.csv/.md/.png on top.

example:
  python labs/lab3_cnn.py
  python labs/lab3_cnn.py --dataset xray9 --sweep model=lenet,alexnet
  python labs/lab3_cnn.py --data-dir /DL_course_data/Lab2 --model alexnet --batchnorm --dropout 0.4 --augment
"""

from labkit import classification_lab as classify
from labkit import flags, lab
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.data.synthetic.lab1 import lab1_dataset
from labkit.training import fit

COURSE = {"dataset": "skin", "model": "vgg16", "base": 8, "optimizer": "adam", "loss": "bce", "dropout": None,
          "batchnorm": False, "spatial_dropout": None, "augment": False, "epochs": 100, "batch_size": 8, "lr": 1e-5,
          "img_size": 128, "lr_schedule": "constant", "seed": 42}
#: The hidden dense layers of VGG16 and AlexNet in Lab 3 (LeNet's single one is 2·base wide).
DENSE = (64, 64)
#: The demo: 64×64 images, a larger learning rate and batch normalisation (which Tasks 1–4 do not have: a plain VGG16
#: from scratch sits at chance level for longer than a demo lasts; --no-batchnorm turns it off). The rate decays
#: along the cosine and each validation uses BatchNorm statistics of the current weights (--precise-bn): at a
#: constant rate with Keras's lagging moving averages, 3 of 6 runs ended more than 0.02 below their best epoch
#: (BENCHMARKS.md). 50 validation images per class, so that one image moves the accuracy by 0.01.
DEMO = {"img_size": 64, "epochs": 15, "lr": 3e-4, "lr_schedule": "cosine", "precise_bn": True, "batchnorm": True,
        "n_train": 60, "n_val": 50}
FULL_COURSE_COMMAND = "python labs/lab3_cnn.py --data-dir /path/to/Lab2 (--dataset xray9: --data-dir /path/to/Lab1)"


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    classify.add_arguments(parser, COURSE, ("dataset", "model", "base", "optimizer", "dropout", "batchnorm",
                                            "spatial_dropout", "augment"),
                           choices={"model": ("vgg16", "alexnet", "lenet")})
    flags.add_lr_schedule_argument(parser, DEMO)
    return parser.parse_args(argv)


def demo_text(settings):
    """What the demo run is, for the screen."""
    return (f"embedded synthetic {settings.dataset} set ({settings.n_train} training and {settings.n_val} validation "
            f"images per class), {settings.img_size}×{settings.img_size} grey, {settings.epochs} epochs, lr "
            f"{settings.lr:g} ({settings.lr_schedule} schedule)"
            f"{', batch normalisation (Tasks 1–4 have none)' if settings.batchnorm else ''}"
            f"{lab.precise_bn_text(settings, settings.batchnorm)}.")


def embedded_data(settings):
    """The embedded set: Lab 2's class folders for Skin and Bone, Lab 1's flat X_ray folder for the nine classes."""
    size = max(32, settings.img_size)
    if settings.dataset == "xray9":
        return lab1_dataset(settings.n_train, settings.n_val, size=size)
    return bone_skin_dataset(settings.n_train, settings.n_val, size=size)


LAB = lab.Lab("lab3_cnn", parse_args, COURSE, DEMO, demo_text, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return

    # Data: the set's training and validation images (with --folds, fold i of both pooled); augmentation on
    # training batches only.
    data_dir = settings.data_dir or embedded_data(settings)
    data = classify.prepare_data(settings, run, data_dir, augment=settings.augment or None)
    # softmax and categorical cross-entropy for the nine classes; --batch-size per replica, --scale-lr scales the lr
    n_class, head, distribution = data.n_class, data.head, data.distribution

    # Model: the course's network with the regularisation asked for.
    with distribution.strategy.scope():
        model = classify.build_classifier(settings.model, settings.img_size, 1, n_class, head, settings.base,
                                          dropout=settings.dropout, batchnorm=settings.batchnorm,
                                          spatial_dropout=settings.spatial_dropout, dense=DENSE)
        classify.compile_classifier(model, head, settings.optimizer, distribution.learning_rate,
                                    settings.lr_schedule, settings.epochs * data.steps_per_epoch)
    extras = [name for name, on in (("batch norm", settings.batchnorm), (f"dropout {settings.dropout}",
              settings.dropout), (f"spatial dropout {settings.spatial_dropout}", settings.spatial_dropout),
              ("augmentation", settings.augment)) if on]
    print(f"model: {settings.model}, base {settings.base}{''.join(', ' + e for e in extras)}, "
          f"{model.count_params():,} parameters; {n_class} classes, loss {head.loss}, {settings.optimizer} lr "
          f"{distribution.learning_rate:g}, batch {settings.batch_size}, {settings.epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation accuracy.
    history = fit(model, data.train_data, data.val_data, settings.epochs, run=run, monitor=classify.MONITOR,
                  **lab.fit_options(settings))

    # Evaluation and figures (metrics.json last: its presence marks a finished run).
    title = f"{settings.model} on {settings.dataset}: base {settings.base}, lr {settings.lr:g}" + \
        "".join(f", {e}" for e in extras)
    classify.evaluate_and_report(run, history, run.file("model.keras"), data.val, data.val_data, head, title)


if __name__ == "__main__":
    lab.run_lab(main)
