"""Lab 2 Tasks 5–6 (CM2003): LeNet and AlexNet tell melanoma from nevus (or AFF from NFF) on grey 128×128 images.

Task 5, LeNet (`labkit.lenet_model`: conv base → pool → conv 2·base → pool → dense 2·base → sigmoid): 20 epochs,
batch 8, base 32, Adam lr 1e-5 (the defaults with --model lenet); then 200 epochs; then lr 1e-4.
Task 6, AlexNet (`labkit.alexnet_model`: convolutions base, 2b, 4b, 4b, 2b, pooling after the 1st, 2nd and 5th,
dense 128 → 64 → 1): batch 8, 50 epochs, base 32, Adam lr 1e-4 (the defaults with --model alexnet); then base 16
and 8, dropout 0.4, 150 and 350 epochs at lr 1e-5, batch 2/4/8, Adam vs SGD vs RMSprop, and the hinge loss on
labels {−1, 1} (--loss hinge: one linear score unit; the accuracy is the fraction of scores with the label's sign).
Every task is one command (README, "Labs 1–3"), e.g.

  python labs/lab2_cnn.py --data-dir /DL_course_data/Lab2 --model lenet --sweep epochs=20,200
  python labs/lab2_cnn.py --data-dir /DL_course_data/Lab2 --model alexnet --sweep optimizer=adam,sgd,rmsprop

Data (--data-dir): the course's Lab 2 class folders ``Skin/{train,validation}/{Mel,Nevi}/`` (--dataset skin) or
``Bone/{train,validation}/{AFF,NFF}/`` (--dataset bone), given as the ``Lab2`` folder or the set folder; Lab 1's
flat folders (``Skin/{train,test}/Mel_…``) work too. Without --data-dir it trains on the embedded synthetic sets
with a demo-sized profile (printed when it runs).

The run folder gets config.json, history.csv, model.keras (best epoch by validation accuracy), metrics.json,
curves.png (loss and accuracy, best epoch marked), confusion_matrix.png, samples.png (validation images with true
and predicted class), report.txt / report.csv and predictions.csv; a --sweep adds comparison.csv/.md/.png on top.

example:
  python labs/lab2_cnn.py
  python labs/lab2_cnn.py --model alexnet --loss hinge
"""

from labkit import classification_lab as classify
from labkit import flags, lab
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.training import fit

COURSE = {"dataset": "skin", "model": "lenet", "base": 32, "optimizer": "adam", "loss": "bce", "dropout": None,
          "batch_size": 8, "img_size": 128, "lr_schedule": "constant", "seed": 42}
#: Task 5 (LeNet) and Task 6 (AlexNet) differ in epochs and learning rate.
COURSE_BY_MODEL = {"lenet": {"epochs": 20, "lr": 1e-5}, "alexnet": {"epochs": 50, "lr": 1e-4}}
#: AlexNet's hidden dense layers in Lab 2 (LeNet's single one is 2·base wide).
DENSE = (128, 64)
#: The demo: 64×64 images, base 16 and a larger learning rate, so that the networks learn within its few epochs; 50
#: validation images per class, so that one image moves the accuracy by 0.01.
DEMO = {"img_size": 64, "base": 16, "epochs": 15, "lr": 3e-4, "lr_schedule": "cosine", "n_train": 60, "n_val": 50}
DEMO_TEXT = ("embedded synthetic {dataset} set ({n_train} training and {n_val} validation images per class), "
             "{img_size}×{img_size} grey, base {base}, {epochs} epochs, lr {lr:g} ({lr_schedule} schedule).")
FULL_COURSE_COMMAND = "python labs/lab2_cnn.py --data-dir /path/to/Lab2 --model lenet (or --model alexnet)"


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, {**COURSE, "epochs": "20 lenet, 50 alexnet", "lr": "1e-5 lenet, 1e-4 alexnet"})
    classify.add_arguments(parser, COURSE, ("dataset", "model", "base", "optimizer", "loss", "dropout"),
                           choices={"dataset": ("skin", "bone"), "model": tuple(COURSE_BY_MODEL)})
    flags.add_lr_schedule_argument(parser, DEMO)
    return parser.parse_args(argv)


def course_defaults(args):
    """The course settings of the task the chosen model belongs to (Task 5 LeNet, Task 6 AlexNet)."""
    return {**COURSE, **COURSE_BY_MODEL[args.model or COURSE["model"]]}


LAB = lab.Lab("lab2_cnn", parse_args, course_defaults, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults of the model.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return

    # Data: the set's train/ and validation/ class folders (with --folds, fold i of both pooled).
    data_dir = settings.data_dir or bone_skin_dataset(settings.n_train, settings.n_val, size=max(32, settings.img_size))
    data = classify.prepare_data(settings, run, data_dir)
    distribution, head = data.distribution, data.head  # --batch-size per replica; --scale-lr scales the lr

    # Model: the course's LeNet or AlexNet on grey images, with the output the loss needs.
    with distribution.strategy.scope():
        model = classify.build_classifier(settings.model, settings.img_size, 1, data.n_class, head,
                                          settings.base, dropout=settings.dropout, dense=DENSE)
        classify.compile_classifier(model, head, settings.optimizer, distribution.learning_rate,
                                    settings.lr_schedule, settings.epochs * data.steps_per_epoch)
    print(f"model: {settings.model}, base {settings.base}, {model.count_params():,} parameters; loss {head.loss}, "
          f"{settings.optimizer} lr {distribution.learning_rate:g}, batch {settings.batch_size}, "
          f"{settings.epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation accuracy.
    history = fit(model, data.train_data, data.val_data, settings.epochs, run=run, monitor=classify.MONITOR,
                  **lab.fit_options(settings))

    # Evaluation and figures (metrics.json last: its presence marks a finished run).
    title = (f"{settings.model} on {settings.dataset}: base {settings.base}, {settings.optimizer} lr "
             f"{settings.lr:g}, {head.loss} loss")
    classify.evaluate_and_report(run, history, run.file("model.keras"), data.val, data.val_data, head, title)


if __name__ == "__main__":
    lab.run_lab(main)
