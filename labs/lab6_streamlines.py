"""Lab 6 Task 2 (CM2003): a bidirectional LSTM tells white-matter tracts apart from their streamlines.

The course's data: TrackVis files ``<data>/<subject>/<bundle>.trk`` of the HCP subjects 613538, 599671 and 599469
(training) and 601127 (validation), bundles ``CST_left`` and ``CST_right``; 20 streamlines drawn from each bundle of
each subject (`labkit.data.layouts.tractography.load_streamlines`, read with nibabel). A streamline is a sequence of
3D points of its own length. The coordinates are standardised with the training points' mean and standard deviation.
The model (`labkit.models.lstm.streamline_classifier`): a bidirectional LSTM then LSTMs, 5 units each, dropout 0.2,
a sigmoid output for two bundles (softmax for more); binary (categorical) cross-entropy, Adam 1e-4, 50 epochs.

The course trained with batch size 1 to avoid padding. Here each batch is padded after every streamline's last point
and the model's Masking layer skips the padding, so a streamline gets the output it gets alone, and any batch size
trains on the same per-streamline losses (tests/test_lab6.py checks it); larger batches are just faster. E.g.

  python labs/lab6_streamlines.py --data-dir /DL_course_data/Lab5/HCP_lab --batch-size 1
  python labs/lab6_streamlines.py --data-dir /DL_course_data/Lab5/HCP_lab --sweep units=2,5,8,10

Without --data-dir it trains on embedded synthetic subjects (curved left and right tracts with per-subject shifts,
20–60 points per streamline, written as .trk files with nibabel) with a demo-sized profile (printed when it runs).

The run folder gets config.json, history.csv, model.keras (best epoch by validation accuracy), metrics.json,
report.txt / report.csv, predictions.csv (each validation streamline's true and predicted bundle), curves.png (loss
and accuracy), confusion_matrix.png and streamlines.png (the validation streamlines in 3D, coloured by predicted
bundle, misclassified ones dashed).

example:
  python labs/lab6_streamlines.py
  python labs/lab6_streamlines.py --units 10 --batch-size 4
"""

import numpy as np

from labkit import flags, lab
from labkit.data.layouts.tractography import (COURSE_BUNDLES, COURSE_TRAIN_SUBJECTS, COURSE_VAL_SUBJECTS,
                                              load_streamlines)
from labkit.data.pipeline import array_dataset
from labkit.data.sequences import pad_streamlines, point_statistics, standardize
from labkit.data.synthetic.tracts import tract_dataset
from labkit.errors import require
from labkit.evaluation.classification import write_classification_report
from labkit.history import summarize
from labkit.models.lstm import streamline_classifier
from labkit.plots import confusion_matrix_figure, plot_history, streamlines_figure
from labkit.runtime import distribute
from labkit.training import compile_model, fit

COURSE = {"train_subjects": list(COURSE_TRAIN_SUBJECTS), "val_subjects": list(COURSE_VAL_SUBJECTS),
          "bundles": list(COURSE_BUNDLES), "n_tracts": 20, "units": 5, "layers": 4, "dropout": 0.2, "epochs": 50,
          "batch_size": 1, "lr": 1e-4, "seed": 42}
#: The demo: the course's subjects on the embedded set, 40 streamlines per bundle and subject (80 validation ones, so
#: one streamline moves the accuracy by 0.0125), in batches of 8 at a larger rate.
DEMO = {"epochs": 12, "batch_size": 8, "lr": 3e-3, "n_tracts": 40, "n_streamlines": 60}
DEMO_TEXT = ("embedded synthetic subjects ({n_tracts} streamlines per bundle and subject drawn from "
             "{n_streamlines}), {layers} LSTM layers of {units} units, batch {batch_size}, lr {lr:g}, {epochs} epochs.")
FULL_COURSE_COMMAND = "python labs/lab6_streamlines.py --data-dir /path/to/HCP_lab (batch 1, lr 1e-4, 50 epochs)"
MONITOR = "val_accuracy"
#: Shared lab flags that mean nothing here, with the reason given when one is passed.
NOT_USED = {"img_size": "the inputs are streamlines of any length",
            "folds": "the split is by subject: choose them with --train-subjects and --val-subjects",
            "fold": "the split is by subject: choose them with --train-subjects and --val-subjects"}


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    parser.add_argument("--train-subjects", nargs="+", help="training subject folders of --data-dir (course "
                        "default: " + " ".join(COURSE_TRAIN_SUBJECTS) + ")")
    parser.add_argument("--val-subjects", nargs="+", help="validation subject folders (course default: " +
                        " ".join(COURSE_VAL_SUBJECTS) + ")")
    parser.add_argument("--bundles", nargs="+", help="bundles to tell apart, the .trk file stems (course default: " +
                        " ".join(COURSE_BUNDLES) + ")")
    parser.add_argument("--n-tracts", type=flags.positive_int, help="streamlines drawn from each bundle of each subject "
                        "(course default: 20)")
    parser.add_argument("--units", type=flags.positive_int, help="units of every LSTM layer (course default: 5)")
    parser.add_argument("--layers", type=flags.positive_int, help="LSTM layers, the first bidirectional (course "
                        "default: 4)")
    parser.add_argument("--dropout", type=flags.dropout_rate, help="dropout after every LSTM (course default: 0.2)")
    args = parser.parse_args(argv)
    flags.refuse_unused(args, NOT_USED, "lab6_streamlines")
    return args


def load_split(data_dir, subjects, bundles, n_tracts, seed):
    """Streamlines, labels and names (``subject/bundle/k``) of `subjects`, drawn subject by subject."""
    streamlines, labels, names = [], [], []
    for subject in subjects:
        X, y = load_streamlines(data_dir, [subject], bundles, n_tracts, seed=seed)
        counts = {}
        for label in y:
            counts[label] = counts.get(label, 0) + 1
            names.append(f"{subject}/{bundles[label]}/{counts[label]}")
        streamlines += X
        labels += y
    return streamlines, np.asarray(labels), names


LAB = lab.Lab("lab6_streamlines", parse_args, COURSE, DEMO, DEMO_TEXT, FULL_COURSE_COMMAND)


def main(argv=None):
    # Settings: explicit flags, then the demo profile (embedded data only), then the course defaults.
    settings, run = lab.begin(main, argv, LAB)
    if run is None:  # --sweep / --folds: labkit.multirun ran this main once per variant and fold, then compared them
        return
    bundles = list(settings.bundles)
    require(len(set(bundles)) == len(bundles) >= 2, f"--bundles {' '.join(bundles)}: name at least two different ones")

    # Data: every subject's bundles, standardised with the training points' statistics, padded after the last point.
    data_dir = settings.data_dir or tract_dataset(n_streamlines=settings.n_streamlines)
    train_lines, train_labels, _ = load_split(data_dir, settings.train_subjects, bundles, settings.n_tracts,
                                              settings.seed)
    val_lines, val_labels, val_names = load_split(data_dir, settings.val_subjects, bundles, settings.n_tracts,
                                                  settings.seed + 1)
    mean, std = point_statistics(train_lines)
    distribution = distribute(settings)  # --batch-size per replica; --scale-lr scales the learning rate
    lab.save_config(run, settings, data_dir, len(bundles) * (len(settings.train_subjects) + len(settings.val_subjects)),
                    distribution=distribution)
    lengths = [len(s) for s in train_lines + val_lines]
    print(f"data: {len(train_lines)} training and {len(val_lines)} validation streamlines of {', '.join(bundles)} "
          f"from {data_dir}, {min(lengths)}–{max(lengths)} points each")
    batch, binary = distribution.global_batch_size, len(bundles) == 2
    targets = lambda labels: labels.reshape(-1, 1).astype(np.float32) if binary else labels  # noqa: E731
    x_train, x_val = (pad_streamlines(standardize(lines, mean, std)) for lines in (train_lines, val_lines))
    train = array_dataset(x_train, targets(train_labels), batch, shuffle=True, seed=settings.seed)
    val = array_dataset(x_val, targets(val_labels), batch)

    # Model: masked bidirectional LSTM then LSTMs; sigmoid and BCE for two bundles, softmax and CE for more.
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    with distribution.strategy.scope():
        model = streamline_classifier(3, settings.layers, settings.units, settings.dropout, len(bundles))
        compile_model(model, distribution.learning_rate, loss, metrics=["accuracy"])
    print(f"model: bidirectional LSTM + {settings.layers - 1} LSTM layers of {settings.units} units, dropout "
          f"{settings.dropout}, {model.count_params():,} parameters; {loss}, Adam lr {distribution.learning_rate:g}, "
          f"batch {settings.batch_size}, {settings.epochs} epochs")

    # Training: history.csv every epoch, model.keras at every new best validation accuracy.
    history = fit(model, train, val, settings.epochs, run=run, monitor=MONITOR, **lab.fit_options(settings))

    # Evaluation: the best model on every validation streamline.
    best = lab.best_model(run)
    outputs = best.predict(x_val, batch_size=batch, verbose=0)
    probabilities = np.concatenate([1 - outputs, outputs], axis=1) if binary else outputs
    scores = write_classification_report(run, val_names, val_labels, probabilities, bundles)
    metrics = {**summarize(history, MONITOR), "validation": scores,
               "standardization": {"mean": mean.tolist(), "std": std.tolist()}}

    # Figures, then metrics.json last: its presence marks a finished run.
    title = f"BiLSTM + {settings.layers - 1}×LSTM({settings.units}), batch {settings.batch_size}"
    figures = {"curves.png": plot_history(history, ("loss", "accuracy"), title, monitor=MONITOR),
               "confusion_matrix.png": confusion_matrix_figure(val_labels, probabilities, bundles, title=title),
               "streamlines.png": streamlines_figure(val_lines, probabilities.argmax(1), bundles, val_labels,
                                                     title=f"{title}: validation streamlines")}
    lab.finish_run(run, metrics, figures, f"best epoch {metrics['best']['epoch']}: val_accuracy "
                   f"{metrics['best'][MONITOR]:.4f}; best model on {scores['images']} validation streamlines: "
                   f"accuracy {scores['accuracy']:.4f}")

if __name__ == "__main__":
    lab.run_lab(main)
