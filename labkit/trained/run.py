"""A finished run folder as one object: its model (loaded safely), settings, history and metrics, and the exact
preprocessing its lab trained with.

A run folder handed in by someone else is untrusted input: the model loads with Keras's ``safe_mode`` (a model that
would need unsafe deserialization, e.g. a ``Lambda`` layer, is refused), values read from ``config.json`` are only
compared with known choices or used as numbers, never executed or used as paths, and nothing is written into the
run folder except under ``evaluations/``.

Example:
    >>> run = load_run("runs/lab4_unet-20250101-120000")
    >>> run.kind, run.image_size, run.channels
    ('segmentation', (256, 256), 1)
    >>> run.predict(["new_xray.png"], out="predictions")
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import labkit.losses  # noqa: F401  (registers labkit's layers, losses and metrics)
import labkit.metrics  # noqa: F401  (registers labkit's layers, losses and metrics)
import labkit.models  # noqa: F401  (registers labkit's layers, losses and metrics)
from labkit.autocontext import chained_model, step_folder
from labkit.classification_lab import COURSE_SETS, Head
from labkit.data.io import load_image, read_scaled
from labkit.data.layouts.ct_mri import CT_LEVELS
from labkit.data.pipeline import decode_image
from labkit.errors import LabkitInputError, require
from labkit.inference import predict_arrays, sigmoid
from labkit.run_folder import read_csv
from labkit.trained.evaluate import evaluate
from labkit.trained.predict import predict

MODEL_FILE = "model.keras"
#: Model files of plain course code (``model.save(...)``), loaded when a folder has no ``model.keras``.
MODEL_FILES = (MODEL_FILE, "model.h5")
#: Families of labs by what their runs need to be applied: how images are read and what the outputs mean.
LAB5_TASKS = ("ct", "ct-lr", "mri")


def lab_family(settings, output_rank):
    """Which lab family made a run, from its settings (known keys only) and the rank of its model's output.

    Returns:
        ``"series"`` (Lab 6 Task 1 forecaster), ``"streamlines"`` (Lab 6 Task 2 classifier), ``"unet3d"``
        (patch-based 3D U-Net), ``"lab5"`` (CT/MRI slices), ``"mobilenet"`` (lesion segmenter with logits),
        ``"segmentation"`` (Lab 4 U-Net and any other 2D segmenter), or ``"classification"``.
    """
    if "window" in settings and "column" in settings:
        return "series"
    if "bundles" in settings and "train_subjects" in settings:
        return "streamlines"
    if output_rank == 5:
        return "unet3d"
    if output_rank == 2:
        return "classification"
    if settings.get("task") in LAB5_TASKS:
        return "lab5"
    if "decoder" in settings:
        return "mobilenet"
    return "segmentation"


def load_model_safely(path, run_name):
    """``keras.saving.load_model(path, safe_mode=True)``, every failure turned into one line naming the run.

    Raises:
        LabkitInputError: the file needs unsafe deserialization (a ``Lambda`` layer: arbitrary code), or it is not
            a Keras model this labkit can read.
    """
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a foreign or corrupt file
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "lambda" in text:
            raise LabkitInputError(f"{run_name}: {Path(path).name} needs unsafe deserialization (e.g. a Lambda "
                                   "layer, which runs arbitrary code); refused") from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise LabkitInputError(f"{run_name}: cannot load {Path(path).name} ({first[:200]})") from None


def _read_json(path):
    """The JSON object in `path`, {} when the file is missing; a broken file is one line naming it."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabkitInputError(f"{path}: not readable JSON ({type(exc).__name__})") from None
    require(isinstance(data, dict), f"{path}: not a labkit {path.name} (no JSON object)")
    return data


def _find_class_names(metrics):
    """The class names a classifier's ``metrics.json`` lists (``per_class`` of its validation or test scores)."""
    for key in ("validation", "test"):
        per_class = (metrics.get(key) or {}).get("per_class") if isinstance(metrics.get(key), dict) else None
        if isinstance(per_class, dict) and per_class:
            return [str(name) for name in per_class]
    return None


@dataclass
class TrainedRun:
    """A finished run: the model and what applying it needs. Made by `load_run`.

    Attributes:
        path: the run folder.
        model: the best model (``model.keras``), loaded with ``safe_mode``.
        config: ``config.json`` ({} for a model saved by plain course code).
        history: ``history.csv`` rows (one dict per epoch; [] when missing).
        metrics: ``metrics.json`` ({} when missing).
        family: see `lab_family`.
    """
    path: Path
    model: object
    config: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    family: str = "segmentation"
    overrides: dict = field(default_factory=dict)

    # --- what the run records ------------------------------------------------------------------------------------

    @property
    def name(self):
        return self.path.name

    @property
    def settings(self):
        """The resolved settings of ``config.json`` (``{}`` when absent), with the `overrides` given by the caller."""
        stored = self.config.get("settings") if isinstance(self.config.get("settings"), dict) else {}
        return {**stored, **self.overrides}

    def setting(self, key, default=None, flag=None):
        """One setting; without it and without a `default`, one line saying which key is missing and which flag
        gives it (a run of an older labkit, or a model without ``config.json``)."""
        value = self.settings.get(key, default)
        if value is None:
            raise LabkitInputError(f"{self.path}: config.json has no setting {key!r} (a run of another labkit "
                                   f"version?); give it with --{flag or key.replace('_', '-')}")
        return value

    def number(self, key, default=None, flag=None):
        """A numeric setting (`setting`), checked to be a number: a value of another type is one line naming it."""
        value = self.setting(key, default, flag)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise LabkitInputError(f"{self.path}/config.json: setting {key!r} is {value!r}, not a number") from None

    @property
    def spacing(self):
        """The run's ``--spacing`` (voxel size in mm for volumes without one), or None."""
        value = self.settings.get("spacing")
        if value is None:
            return None
        try:
            spacing = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            spacing = ()
        require(len(spacing) == 3, f"{self.path}/config.json: setting 'spacing' is {value!r}, not three numbers")
        return spacing

    @property
    def kind(self):
        """``segmentation`` (2D), ``volume`` (3D), ``classification``, ``series`` or ``streamlines`` (Lab 6)."""
        kinds = {"unet3d": "volume", "classification": "classification", "series": "series",
                 "streamlines": "streamlines"}
        return kinds.get(self.family, "segmentation")

    @property
    def input_shape(self):
        """The model's input shape without the batch axis, e.g. ``(256, 256, 1)``."""
        shape = self.model.input_shape
        return tuple(shape[0][1:] if isinstance(shape, list) else shape[1:])

    @property
    def image_size(self):
        """``(height, width)`` the model takes (2D), read from the model itself, so it cannot drift from training."""
        height, width = self.input_shape[:2]
        require(height is not None and width is not None, f"{self.path}: the model takes any image size; this "
                "labkit applies models with a fixed input size only")
        return int(height), int(width)

    @property
    def channels(self):
        """Image channels the model takes: 1 (grey) or 3 (RGB); ImageNet preprocessing is inside the model."""
        return int(self.input_shape[-1])

    @property
    def patch(self):
        """The 3D patch ``(x, y, z)``: the model's input (the run's ``--patch``)."""
        return tuple(int(p) for p in self.input_shape[:3])

    @property
    def from_logits(self):
        """Does the model output logits (its last activation is linear)? MobileNet lesion segmenters and the hinge
        classifier do."""
        layer = next((l for l in reversed(self.model.layers) if hasattr(l, "activation")), None)
        return layer is not None and getattr(layer.activation, "__name__", "") == "linear"

    @property
    def threshold(self):
        """The probability above which a pixel is foreground: the run's ``threshold`` setting, else 0.5 (the Dice
        threshold every lab reports)."""
        return self.number("threshold", 0.5) if self.settings.get("threshold") is not None else 0.5

    @property
    def n_outputs(self):
        return int(self.model.output_shape[-1])

    @property
    def softmax_classes(self):
        """Lab 5 ct-lr (and any multi-channel 2D segmenter): True for a softmax with background first, False for
        independent sigmoid heads."""
        return self.settings.get("heads", "softmax") == "softmax"

    @property
    def structures(self):
        """Names of a multi-class segmenter's structures (Lab 5 ct-lr: ``left``, ``right``)."""
        n = self.n_outputs - (1 if self.softmax_classes else 0)
        return list(CT_LEVELS)[:n] if n == len(CT_LEVELS) else [f"class_{i + 1}" for i in range(n)]

    @property
    def class_names(self):
        """A classifier's class names, in output order: given (``--classes``), else from ``metrics.json`` (the names
        training scored), else the course set the run names (``--dataset``), else ``class_0`` …"""
        count = max(2, self.n_outputs)
        given = self.overrides.get("classes")
        if given is not None:
            require(len(given) == count, f"{self.path}: --classes names {len(given)} classes; the model has {count}")
            return list(given)
        names = _find_class_names(self.metrics)
        dataset = self.settings.get("dataset")
        if names is None and dataset in COURSE_SETS:
            names = list(COURSE_SETS[dataset][1])
        return names if names and len(names) == count else [f"class_{i}" for i in range(count)]

    # --- applying the model ----------------------------------------------------------------------------------------

    def read_image(self, path):
        """One image file as the lab's own pipeline reads it for this model: ``(image, (height, width))``, the image
        float32 ``(h, w, channels)`` in [0, 1] at the model's input size and the file's own size.

        Lab 5 reads slices with `labkit.data.io.load_image` (OpenCV); every other lab decodes in its tf.data pipeline
        (`labkit.data.pipeline.decode_image`). Both scale by the file's bit depth and resize bilinearly.
        """
        original = read_scaled(path)  # also the one-line error for a missing or undecodable file
        height, width = self.image_size
        if self.family == "lab5":
            image = load_image(path, width, height, self.channels)
        else:
            import tensorflow as tf

            try:
                image = decode_image(tf.constant(str(path)), (height, width), self.channels).numpy()
            except tf.errors.OpError:
                raise LabkitInputError(f"cannot read image {path}: not an image file or corrupt") from None
        return image.astype(np.float32), original.shape[:2]

    def probabilities(self, inputs, batch_size=8):
        """The model's outputs on preprocessed inputs, as probabilities: sigmoid of logits for segmenters with
        logits; for classifiers ``(n, classes)`` as training scored them (`labkit.classification_lab.Head`)."""
        outputs = predict_arrays(self.model, inputs, batch_size)
        if self.kind != "classification":
            return sigmoid(outputs) if self.from_logits else outputs
        return self.head.probabilities(outputs).astype(np.float32)

    @property
    def head(self):
        """A classifier's `labkit.classification_lab.Head`: one sigmoid unit, one linear (hinge) unit, or softmax."""
        if self.n_outputs > 1:
            return Head("softmax", "categorical_crossentropy")
        return Head("hinge", "hinge") if self.from_logits else Head("sigmoid", "binary_crossentropy")

    def predict(self, inputs, out=None, **options):
        """Apply the model to image files, folders or volumes (`labkit.trained.predict.predict`); with `out`, write
        masks / ``predictions.csv`` / volumes there. Returns one result dict per input."""
        return predict(self, inputs, out, **options)

    def evaluate(self, data_dir, out=None, **options):
        """The lab's own metrics on a held-out folder (`labkit.trained.evaluate.evaluate`); returns the metrics dict
        (and writes per-item CSV, ``metrics.json`` and figures into `out`, default
        ``<run>/evaluations/<folder name>``)."""
        return evaluate(self, data_dir, out, **options)


def find_model_file(path):
    """The model file of a run folder (``model.keras``, or ``model.h5`` of plain course code), or `path` itself
    when it is a model file. Raises one line when there is none."""
    path = Path(path)
    if path.is_file() and path.suffix in (".keras", ".h5"):
        return path
    require(path.is_dir(), f"run folder not found: {path}")
    found = next((path / name for name in MODEL_FILES if (path / name).is_file()), None)
    require(found is not None, f"{path} holds no model.keras: a run that never finished its first epoch, or not a "
            "run folder")
    return found


def load_run(run_dir, **overrides):
    """Open a finished run folder (or a bare ``.keras``/``.h5`` model file of course code).

    Args:
        run_dir: the run folder (``model.keras``, and normally ``config.json``, ``history.csv``, ``metrics.json``).
        overrides: settings that replace or complete those of ``config.json`` (e.g. ``overlap=0.25``,
            ``threshold=0.4``), for runs of an older labkit or models without ``config.json``.

    Returns:
        A `TrainedRun`.

    Raises:
        LabkitInputError: no such folder, no model, a model refused by ``safe_mode`` or unreadable, or a broken
            ``config.json`` / ``metrics.json`` (one line naming it).
    """
    folder = Path(run_dir).parent if Path(run_dir).is_file() else Path(run_dir)
    require(folder.is_dir(), f"run folder not found: {run_dir}")
    config = _read_json(folder / "config.json") if Path(run_dir).is_dir() else {}
    metrics = _read_json(folder / "metrics.json") if Path(run_dir).is_dir() else {}
    try:
        history = read_csv(folder / "history.csv") if (folder / "history.csv").is_file() else []
    except (OSError, ValueError) as exc:
        raise LabkitInputError(f"{folder / 'history.csv'}: unreadable ({type(exc).__name__})") from None
    plan = config.get("autocontext")
    if isinstance(plan, dict) and Path(run_dir).is_dir():  # Lab 5 auto-context: every step, in order
        model = autocontext_model(folder, plan)
    else:
        model = load_model_safely(find_model_file(run_dir), folder)
    settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
    family = lab_family({**settings, **overrides}, len(model.output_shape))
    run = TrainedRun(folder, model, config, history, metrics, family, dict(overrides))
    check_applicable(run)
    return run


def autocontext_model(folder, plan):
    """The step models of a Lab 5 auto-context run (``step-1/`` … ``step-S/``) chained into one model
    (`labkit.autocontext.chained_model`): it takes the slice and gives the last step's output."""
    steps = plan.get("steps")
    require(isinstance(steps, int) and steps >= 1, f"{folder}/config.json: auto-context 'steps' is {steps!r}, not a "
            "number of steps")
    return chained_model([load_model_safely(find_model_file(step_folder(folder, s)), folder)
                          for s in range(1, steps + 1)])


def check_applicable(run):
    """Refuse, in one line, a run whose model does not take files: a Lab 4 bottleneck MLP (it takes VGG16
    features), an auto-context step of Lab 5 (it takes the previous step's maps too), or any 2D model whose input
    is not a grey or RGB image."""
    settings = run.settings
    require(settings.get("method") != "bottleneck", f"{run.path}: a bottleneck run (Lab 4 Task 1) classifies VGG16 "
            "features, not images: predict and evaluate take its scratch runs (--method scratch)")
    require(not settings.get("context_maps"), f"{run.path}: an auto-context step takes the previous step's maps as "
            "input channels: predict and evaluate take the auto-context run's top folder")
    shape = run.input_shape
    if run.kind in ("segmentation", "classification") and len(shape) == 3:
        require(shape[-1] in (1, 3), f"{run.path}: the model takes {shape[-1]}-channel inputs, not grey or RGB "
                "images (a Lab 4 bottleneck MLP, which takes VGG16 features? predict its scratch child run)")
