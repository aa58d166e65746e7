"""Lab 1 Task 4 (CM2003): a multi-layer perceptron tells melanoma from nevus on grey skin images.

The course's Lab 1 MLP (`labkit.lab1_mlp_model`, the handout's ``model``): the 128×128 grey image flattened, three
ReLU dense layers of base, base/2 and base/4 units, one sigmoid unit; binary cross-entropy, SGD. Task 4 first trains
it with lr 1e-4, batch 16, 50 epochs, base 64 (the defaults here), then with lr 0.1, 150 epochs, base 256:

  python labs/lab1_mlp.py --data-dir /DL_course_data/Lab1 --lr 0.1 --epochs 150 --base 256

or both in one comparison: --sweep lr=1e-4,0.1 (a grid of flags: --sweep base=64,256 too).

Data (--data-dir): the course's Lab 1 flat folders, ``Skin/{train,test}/Mel_0001.jpg`` / ``Nev_…`` (the class comes
from the file name; ``test/`` is the validation split), given as the ``Lab1`` folder or its ``Skin`` folder;
--dataset bone reads ``Bone/`` (``AFF_``/``NFF_``). Without --data-dir it trains on the embedded synthetic Lab 1 set
with a demo-sized profile (see DEMO, printed when it runs).

The run folder gets config.json, history.csv, model.keras (best epoch by validation accuracy), metrics.json,
curves.png (loss and accuracy, best epoch marked), confusion_matrix.png, samples.png (validation images with true
and predicted class), report.txt / report.csv (per-class precision, recall, F1) and predictions.csv.

example:
  python labs/lab1_mlp.py
  python labs/lab1_mlp.py --data-dir /DL_course_data/Lab1 --sweep lr=1e-4,0.1
"""

from labkit import classification_lab as classify
from labkit import flags, lab
from labkit.data.synthetic.lab1 import lab1_dataset
from labkit.training import fit

COURSE = {"dataset": "skin", "model": "mlp", "base": 64, "optimizer": "sgd", "loss": "bce", "lr": 1e-4,
          "lr_schedule": "constant", "batch_size": 16, "epochs": 50, "img_size": 128, "seed": 42}
#: The demo: smaller images and a larger SGD step, so that the MLP learns within its few epochs.
DEMO = {"img_size": 64, "epochs": 40, "lr": 0.02, "lr_schedule": "cosine", "n_train": 100, "n_test": 25}
DEMO_TEXT = ("embedded synthetic Lab 1 set ({n_train} training and {n_test} test images per class), "
             "{img_size}×{img_size} grey, {epochs} epochs, SGD lr {lr:g} ({lr_schedule} schedule).")
FULL_COURSE_COMMAND = "python labs/lab1_mlp.py --data-dir /path/to/Lab1 (then --lr 0.1 --epochs 150 --base 256)"


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    classify.add_arguments(parser, COURSE, ("dataset", "base", "optimizer"), choices={"dataset": ("skin", "bone")})
    flags.add_lr_schedule_argument(parser, DEMO)
    return parser.parse_args(argv)


LAB = lab.Lab("lab1_mlp", parse_args, COURSE, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return

    # Data: the flat train/ and test/ folders, class from the file name (with --folds, fold i of both pooled).
    if settings.data_dir:
        data_dir = settings.data_dir
    else:
        data_dir = lab1_dataset(settings.n_train, settings.n_test, size=max(32, settings.img_size))
    data = classify.prepare_data(settings, run, data_dir)
    distribution = data.distribution  # --batch-size per replica; --scale-lr scales the learning rate

    # Model: Flatten → Dense(base) → Dense(base/2) → Dense(base/4) → one sigmoid unit.
    with distribution.strategy.scope():
        model = classify.build_classifier("mlp", settings.img_size, 1, data.n_class, data.head, settings.base)
        classify.compile_classifier(model, data.head, settings.optimizer, distribution.learning_rate,
                                    settings.lr_schedule, settings.epochs * data.steps_per_epoch)
    print(f"model: Lab 1 MLP, base {settings.base}, {model.count_params():,} parameters; {settings.optimizer} "
          f"lr {distribution.learning_rate:g}, batch {settings.batch_size}, {settings.epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation accuracy.
    history = fit(model, data.train_data, data.val_data, settings.epochs, run=run, monitor=classify.MONITOR,
                  **lab.fit_options(settings))

    # Evaluation and figures (metrics.json last: its presence marks a finished run).
    title = f"Lab 1 MLP on {settings.dataset}: base {settings.base}, lr {settings.lr:g}"
    classify.evaluate_and_report(run, history, run.file("model.keras"), data.val, data.val_data, data.head, title)


if __name__ == "__main__":
    lab.run_lab(main)
