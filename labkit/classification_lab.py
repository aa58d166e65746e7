"""The image-classification run of Labs 1–3 (CM2003), shared by ``labs/lab1_mlp.py``, ``labs/lab2_cnn.py`` and
``labs/lab3_cnn.py``: which files (either course layout) → datasets → model with the chosen head → compile →
evaluation, report and figures.

Two course layouts hold the same sets (`find_labelled_set` tells them apart by what ``train/`` holds):

* Lab 1's flat folders, class in the file name: ``Skin/{train,test}/Mel_0001.png``, ``Nev_…`` (Bone ``AFF_``/``NFF_``,
  X-ray ``C1_``–``C9_``); ``test/`` is the validation split;
* Lab 2's class folders: ``Skin/{train,validation}/{Mel,Nevi}/*.png`` (Bone ``AFF``/``NFF``).

The output unit follows the loss (`Head`): one sigmoid unit with binary cross-entropy for two classes, one linear
unit (the SVM score s) with the hinge loss ``mean(max(0, 1 − y·s))`` on labels y ∈ {−1, 1} (Lab 2 Task 6: a sigmoid
cannot reach −1), softmax with categorical cross-entropy for more classes (the nine-class X-ray set). Every head
logs its accuracy under the key ``accuracy`` (so sweeps over the loss compare like with like): the fraction of images
whose predicted class is the true class.
"""

import argparse
import inspect
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from scipy.special import expit

from labkit import flags, lab
from labkit.data.layouts import subfolders
from labkit.data.layouts.filename_labels import list_labelled_files
from labkit.data.layouts.class_folders import LAB2_SETS, ClassFolderSplit, find_lab2_set
from labkit.data.pipeline import classification_dataset, even_replica_batches, map_batches
from labkit.data.split import refold_class_splits
from labkit.errors import LabkitInputError, require
from labkit.metrics import sign_accuracy
from labkit.models.classic import lab1_mlp_model, vgg16_model
from labkit.models.lenet_alexnet import alexnet_model, lenet_model
from labkit.optimizers import OPTIMIZERS, learning_rate_schedule, optimizer_by_name
from labkit.reports import evaluate_classifier, spread_over_classes
from labkit.runtime import distribute
from labkit.training import compile_model, steps_per_epoch

#: The course's sets: folder name, class names and the file-name pattern of each class (Lab 1's flat layout).
COURSE_SETS = {
    "skin": ("Skin", ("Mel", "Nevi"), ("Mel", "Nev")),  # the real folder says Nevi, the file names Nev: both work
    "bone": ("Bone", ("AFF", "NFF"), ("AFF", "NFF")),
    "xray9": ("X_ray", tuple(f"C{i}" for i in range(1, 10)), tuple(f"C{i}_" for i in range(1, 10))),
}
#: Validation folders of the flat layout, in the order they are looked for.
FLAT_VALIDATION = ("test", "validation")
#: Every lab keeps the model of the epoch with the best validation accuracy.
MONITOR = "val_accuracy"
LOSSES = ("bce", "hinge")


# --- data ---------------------------------------------------------------------------------------------------------


def _child(folder, name):
    """The subfolder of `folder` called `name` (any case), or None."""
    return next((Path(folder) / s for s in subfolders(folder) if s.lower() == name.lower()), None)


def _set_folder(data_dir, dataset):
    """The folder holding ``train/``: `data_dir` itself, or its ``Skin/`` / ``Bone/`` / ``X_ray/``."""
    root = Path(data_dir)
    require(root.is_dir(), f"data folder not found: {root}")
    if _child(root, "train") is not None:
        return root
    folder = _child(root, COURSE_SETS[dataset][0])
    found = ", ".join(f"{s}/" for s in subfolders(root)) or "no folders"
    require(folder is not None and _child(folder, "train") is not None,
            f"{root} has neither train/ nor {COURSE_SETS[dataset][0]}/train/ (found {found})")
    return folder


def find_labelled_set(data_dir, dataset):
    """Training and validation images of a course set, in either course layout.

    Args:
        data_dir: the set folder (holding ``train/``) or the folder holding it (``Lab1/``, ``Lab2/``).
        dataset: ``"skin"``, ``"bone"`` or ``"xray9"`` (flat layout only).

    Returns:
        ``(train, validation, layout)``: two `ClassFolderSplit` with the course's class names, and ``"flat"``
        (class from the file name; validation is ``test/``) or ``"class folders"``.

    Raises:
        LabkitInputError: a missing or empty folder, a file whose name matches no class or several, a missing class
            folder (each named).

    Example:
        >>> train, val, layout = find_labelled_set("/DL_course_data/Lab1", "xray9")
        >>> train.class_names[:3], layout
        (('C1', 'C2', 'C3'), 'flat')
    """
    require(dataset in COURSE_SETS, f"unknown set {dataset!r}: choose {', '.join(COURSE_SETS)}")
    folder = _set_folder(data_dir, dataset)
    train_folder = _child(folder, "train")
    if any(not name.startswith(".") for name in subfolders(train_folder)) and dataset in LAB2_SETS:  # Lab 2 layout
        train, val = find_lab2_set(folder, dataset)
        return train, val, "class folders"
    val_folder = next((f for f in (_child(folder, n) for n in FLAT_VALIDATION) if f is not None), None)
    require(val_folder is not None, f"{folder} has train/ but no test/ (or validation/) folder")
    _, names, patterns = COURSE_SETS[dataset]
    train, val = (ClassFolderSplit(*map(tuple, list_labelled_files(f, patterns)), names)
                  for f in (train_folder, val_folder))
    return train, val, "flat"


def classes_in_turn(split):
    """The same images reordered so that the classes take turns (first of each class, then second, …)."""
    order = spread_over_classes(np.asarray(split.labels), len(split))
    return type(split)(tuple(split.paths[i] for i in order), tuple(split.labels[i] for i in order), split.class_names)


def load_splits(settings, data_dir):
    """The training and validation images of ``settings.dataset`` in `data_dir` (`find_labelled_set`), with
    ``--folds`` fold i of both pooled (stratified by class), checked readable (``--skip-bad-files``).

    The validation images take the classes in turn, so every validation batch holds every class it can, and so do
    the few images the dead-run watch of `labkit.training.fit` probes: sorted by class, they would all be of one
    class, and a model that classifies them confidently and rightly would look saturated, i.e. dead.

    Returns:
        ``(train, validation, layout)`` as `find_labelled_set`.
    """
    train, val, layout = find_labelled_set(data_dir, settings.dataset)
    train, val = refold_class_splits(train, val, settings.kfold, settings.seed)
    train, val = lab.readable_files(settings, train), lab.readable_files(settings, val)
    return train, classes_in_turn(val), layout


@dataclass(frozen=True)
class LabData:
    """What a Labs 1–3 run trains on: the splits, the output head, the datasets and the distribution decision."""

    train: object
    val: object
    head: "Head"
    train_data: object
    val_data: object
    distribution: object

    @property
    def n_class(self):
        return len(self.train.class_names)

    @property
    def steps_per_epoch(self):
        """Optimizer steps of one epoch (training images / global batch, rounded up)."""
        return steps_per_epoch(len(self.train.paths), self.distribution.global_batch_size)


def prepare_data(settings, run, data_dir, augment=None):
    """Splits, head and datasets of a Labs 1–3 run, announced on screen and recorded in ``config.json``.

    Args:
        settings: the run's settings (``dataset``, ``loss``, ``img_size``, ``seed``, ``--folds``, batch and
            distribution flags).
        run: the run folder.
        data_dir: the course folder (either layout, `find_labelled_set`).
        augment: training-only augmentation, as `labkit.data.pipeline.classification_dataset` takes it.

    Returns:
        A `LabData`; its ``distribution`` is `labkit.runtime.distribute`'s decision (``--batch-size`` per replica,
        ``--scale-lr``).
    """
    train, val, layout = load_splits(settings, data_dir)
    print(f"data: {settings.dataset} ({layout} layout): {train.counts()} training and {val.counts()} validation "
          f"images from {data_dir}")
    distribution = distribute(settings)
    lab.save_config(run, settings, data_dir, len(train) + len(val), splits={"train": train.paths, "val": val.paths},
                    distribution=distribution)
    head = head_for(settings.loss, len(train.class_names))
    train_data, val_data = datasets(train, val, settings.img_size, distribution.global_batch_size, head,
                                    augment=augment, seed=settings.seed, replicas=distribution.replicas)
    return LabData(train, val, head, train_data, val_data, distribution)


# --- heads: output unit, loss, targets and accuracy ----------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """The output of a classifier and what goes with it.

    Attributes:
        name: ``sigmoid``, ``hinge`` (one linear score unit) or ``softmax``.
        loss: the Keras loss name.
    """

    name: str
    loss: str

    def targets(self, one_hot):
        """Training targets from one-hot labels ``(b, k)``: class 1's column (sigmoid), that column as {−1, 1}
        (hinge) or the one-hot rows (softmax)."""
        if self.name == "softmax":
            return one_hot
        positive = one_hot[:, 1:2]
        return positive * 2.0 - 1.0 if self.name == "hinge" else positive

    def probabilities(self, outputs):
        """``(n, k)`` class scores from the network's outputs; their arg-max is the predicted class. A hinge score s
        maps to the logistic 1 / (1 + e^−s): monotone (AUC unchanged), and above 0.5 exactly when s > 0, the side
        the hinge loss calls class 1."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if self.name == "softmax":
            return outputs
        positive = expit(outputs[:, :1]) if self.name == "hinge" else outputs[:, :1]
        return np.concatenate([1.0 - positive, positive], axis=1)

    def accuracy(self):
        """The per-epoch accuracy metric, logged as ``accuracy``."""
        if self.name == "softmax":
            return keras.metrics.CategoricalAccuracy(name="accuracy")
        if self.name == "hinge":
            return keras.metrics.MeanMetricWrapper(sign_accuracy, name="accuracy")
        return keras.metrics.BinaryAccuracy(name="accuracy")


def head_for(loss, n_class):
    """The `Head` for ``--loss`` (``bce`` or ``hinge``) and the number of classes (more than two: softmax with
    categorical cross-entropy, the multi-class form of ``bce``)."""
    require(loss in LOSSES, f"unknown loss {loss!r}: choose {', '.join(LOSSES)}")
    if n_class > 2:
        require(loss == "bce", f"--loss {loss} needs two classes; this set has {n_class}")
        return Head("softmax", "categorical_crossentropy")
    return Head("hinge", "hinge") if loss == "hinge" else Head("sigmoid", "binary_crossentropy")


def datasets(train, val, img_size, batch_size, head, channels=1, augment=None, seed=42, replicas=1):
    """Training (shuffled; `augment` as `labkit.data.pipeline.classification_dataset` takes it, e.g. True for
    `labkit.data.augment.CLASSIFICATION_AUGMENT`) and validation ``(images, targets)`` datasets, decoded images cached
    in memory when they fit; targets as `head` wants them. Under several `replicas` no batch leaves one empty
    (`even_replica_batches`)."""
    n_class = len(train.class_names)
    to_targets = lambda x, y: (x, head.targets(y))  # noqa: E731
    train_data = classification_dataset(train.paths, train.labels, img_size, batch_size, n_class, channels,
                                        augment=augment, shuffle=True, seed=seed, cache="auto")
    val_data = classification_dataset(val.paths, val.labels, img_size, batch_size, n_class, channels, cache="auto")
    return tuple(even_replica_batches(map_batches(data, to_targets), len(split), batch_size, replicas)
                 for data, split in ((train_data, train), (val_data, val)))


# --- models ---------------------------------------------------------------------------------------------------------

#: The course's builders by ``--model`` name.
MODELS = {"mlp": lab1_mlp_model, "lenet": lenet_model, "alexnet": alexnet_model, "vgg16": vgg16_model}
#: Keyword names a builder may use for each option (the course's builders differ).
_KEYWORDS = {"base": ("n_base", "base", "base_dense"), "dropout": ("dropout",),
             "batchnorm": ("batchnorm", "batch_norm"), "spatial_dropout": ("spatial_dropout", "s_dropout"),
             "dense": ("first2_dense",)}
#: Options whose absence from a builder is not an error (the dense widths of the networks that have them).
_OPTIONAL = ("dense",)


def _keyword(builder, option):
    accepted = inspect.signature(builder).parameters
    return next((k for k in _KEYWORDS[option] if k in accepted), None)


def build_classifier(model_name, img_size, channels, n_class, head, base, dropout=None, batchnorm=False,
                     spatial_dropout=None, dense=None):
    """One of the course's networks (`MODELS`) with the output `head` wants.

    Args:
        model_name: ``mlp`` (Lab 1), ``lenet``, ``alexnet`` or ``vgg16``.
        img_size: side of the square input; channels: 1 or 3; n_class: classes.
        head: the `Head`; the hinge head asks the builder for its linear score unit (``hinge=True``).
        base: filters (units for the MLP) of the first layer.
        dropout, batchnorm, spatial_dropout: regularisation, where the network has it (None/False: off).
        dense: widths of the hidden dense layers of AlexNet and VGG16 (the course's ``first2_dense``).

    Raises:
        LabkitInputError: an option the chosen network does not have (e.g. ``--dropout`` with LeNet).
    """
    builder = MODELS[model_name]
    options = {"dropout": dropout, "batchnorm": batchnorm, "spatial_dropout": spatial_dropout, "dense": dense}
    kwargs = {_keyword(builder, "base"): int(base), "n_class": int(n_class)}
    for option, value in options.items():
        if value is None or value is False:
            continue
        keyword = _keyword(builder, option)
        if keyword is None and option not in _OPTIONAL:
            raise LabkitInputError(f"--{option.replace('_', '-')} is not an option of {model_name} "
                                   f"({builder.__module__}.{builder.__name__})")
        if keyword is not None:
            kwargs[keyword] = tuple(value) if option == "dense" else value
    if head.name == "hinge":
        require("hinge" in inspect.signature(builder).parameters,
                f"--loss hinge is not an option of {model_name} ({builder.__module__}.{builder.__name__})")
        kwargs["hinge"] = True
    return builder(img_size, img_size, channels, **kwargs)


def compile_classifier(model, head, optimizer, learning_rate, lr_schedule="constant", total_steps=None):
    """Compile with `optimizer` (``adam``, ``sgd`` or ``rmsprop``, Keras's defaults but the learning rate), the
    head's loss and accuracy; the rate is constant or follows `lr_schedule` over `total_steps`
    (`labkit.optimizers.learning_rate_schedule`)."""
    rate = learning_rate_schedule(learning_rate, lr_schedule, total_steps)
    return compile_model(model, rate, head.loss, metrics=[head.accuracy()],
                         optimizer=optimizer_by_name(optimizer, rate))


# --- evaluation and figures -------------------------------------------------------------------------------------------


def evaluate_and_report(run, history, model_path, val, val_data, head, title, n_samples=16):
    """Score the best model on the validation images and write the run's results (`labkit.reports.evaluate_classifier`):
    ``report.txt`` / ``report.csv``, ``predictions.csv``, ``curves.png`` (loss and accuracy, best epoch by
    validation accuracy marked), ``confusion_matrix.png``, ``samples.png`` (validation images titled with true and
    predicted class) and, last, ``metrics.json``: the history's best/final epoch plus ``validation`` (accuracy,
    balanced accuracy, macro AUC and F1, per-class scores), the head and the loss.

    Returns:
        The ``metrics.json`` content.
    """
    return evaluate_classifier(run, history, keras.saving.load_model(model_path), val, val_data, head, title, MONITOR,
                               n_samples=n_samples)


__all__ = ["COURSE_SETS", "Head", "LabData", "MODELS", "MONITOR", "OPTIMIZERS", "build_classifier", "compile_classifier",
           "classes_in_turn", "datasets", "evaluate_and_report", "find_labelled_set", "head_for", "load_splits",
           "prepare_data"]


# --- flags ------------------------------------------------------------------------------------------------------------


def add_arguments(parser, course, names, choices=None):
    """Add the Labs 1–3 classification flags `names` to a lab's parser (`labkit.flags.lab_parser`).

    Args:
        parser: the lab's parser.
        course: the lab's course defaults, shown in ``--help``.
        names: which of ``dataset``, ``model``, ``base``, ``optimizer``, ``loss``, ``dropout``, ``batchnorm``,
            ``spatial_dropout``, ``augment``.
        choices: ``{name: allowed values}`` for ``dataset`` and ``model`` (default: all).
    """
    choices = choices or {}
    default = lambda key: f" (course default: {course[key]})" if key in course else ""  # noqa: E731
    specs = {
        "dataset": dict(choices=choices.get("dataset", tuple(COURSE_SETS)), help="which course set: skin (Mel/Nevi), "
                        "bone (AFF/NFF) or xray9 (organs C1–C9, flat layout)"),
        "model": dict(choices=choices.get("model", tuple(MODELS)), help="network: mlp (Lab 1), lenet, alexnet, "
                      "vgg16"),
        "base": dict(type=flags.positive_int, help="filters of the first convolution (units of the first dense layer "
                     "of the MLP)"),
        "optimizer": dict(choices=tuple(OPTIMIZERS), help="optimizer, Keras defaults but the learning rate"),
        "loss": dict(choices=LOSSES, help="bce: one sigmoid unit, binary cross-entropy; hinge: one linear score "
                     "unit, hinge loss on labels {-1, 1} (two-class sets only)"),
        "dropout": dict(type=flags.dropout_rate, help="dropout rate in the dense head (default: none)"),
        "batchnorm": dict(action=argparse.BooleanOptionalAction, help="batch normalisation between each "
                          "convolution and its ReLU (--no-batchnorm: none)"),
        "spatial_dropout": dict(type=flags.dropout_rate, help="SpatialDropout2D rate after each convolution block "
                                "(default: none)"),
        "augment": dict(action="store_true", help="augment the training images only: rotation 10°, shifts 0.1, "
                        "horizontal flip"),
    }
    for name in names:
        spec = dict(specs[name])
        spec["help"] += default(name)
        parser.add_argument(f"--{name.replace('_', '-')}", **spec)
