"""ImageNet encoders from `keras.applications`, offline-friendly weight resolution and a grayscale adapter.

``weights`` is ``"imagenet"`` (Keras's cache, downloaded once), ``None`` / ``"none"`` (random initialisation) or a
path to a local weights file: the very file Keras downloads (legacy ``.h5``, e.g.
``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``) or a Keras 3 ``.weights.h5``. When ImageNet weights cannot
be fetched (no network), `WeightsUnavailableError` says in one line which file to put in which folder, and that
``--weights none`` trains from random initialisation instead.

Inputs are images in [0, 1]: each backbone is preceded by an `ImageNetPreprocess` layer that converts them to what
the backbone was trained on, so a saved model is self-contained. A one-channel input goes through a
`GrayscaleToRGB` adapter (the grey channel repeated three times) instead of failing on the backbone's 3 channels.
"""

import os
import tempfile
import urllib.error
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
from keras import layers, ops

from labkit.errors import LabkitInputError, require

_APPLICATIONS = {
    "vgg16": ("VGG16", "caffe"),
    "resnet50": ("ResNet50", "caffe"),
    "mobilenet_v2": ("MobileNetV2", "tf"),
}
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_MIN_SIZE = 32  # keras.applications refuses smaller inputs
_DOWNLOAD_FUNCTIONS = {"get_file", "urlretrieve", "urlopen"}


class WeightsUnavailableError(LabkitInputError):
    """ImageNet weights could not be fetched (e.g. no network); the message names the file and the folder."""


@keras.saving.register_keras_serializable(package="labkit")
class ImageNetPreprocess(layers.Layer):
    """Map RGB images in [0, 1] to a backbone's expected input.

    ``mode="caffe"`` (VGG16, ResNet50): scale to 0–255, RGB → BGR, subtract the ImageNet channel means
    (what ``keras.applications.vgg16.preprocess_input`` does to 0–255 RGB images).
    ``mode="tf"`` (MobileNetV2): scale to [−1, 1].
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        require(mode in ("caffe", "tf"), f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "tf":
            return inputs * 2.0 - 1.0
        bgr = ops.flip(inputs * 255.0, axis=-1)
        return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=bgr.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="labkit")
class GrayscaleToRGB(layers.Layer):
    """Repeat a one-channel image three times, so grey images can feed an ImageNet (RGB) encoder.

    A grey image repeated in R, G and B is exactly what an RGB file of a grey picture holds (as the course's JPEG
    radiographs), so the encoder sees what its ImageNet training saw for grey pictures.
    """

    def call(self, inputs):
        return ops.repeat(inputs, 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def keras_cache_dir():
    """The folder where `keras.applications` looks for (and downloads) weights files.

    ``$KERAS_HOME/models`` or ``~/.keras/models``; ``/tmp/.keras/models`` when that is not writable (as
    `keras.utils.get_file` decides).
    """
    try:
        from keras.src.backend.config import keras_home  # the value Keras itself uses

        base = keras_home()
    except ImportError:  # pragma: no cover - older or newer Keras layouts
        base = os.environ.get("KERAS_HOME", str(Path.home() / ".keras"))
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models"


def weights_file_name(name, input_shape):
    """The file name `keras.applications` downloads for the no-top ImageNet weights of backbone `name`."""
    if name == "mobilenet_v2":
        rows = input_shape[0] if input_shape[0] in (96, 128, 160, 192, 224) else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    return f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def normalise_weights(weights):
    """``"imagenet"``, None or a `Path` from a ``--weights`` value; a path must exist."""
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    require(path.is_file(), f"--weights {weights}: file not found (use imagenet, none or a path to an .h5 file)")
    return path


def weights_label(weights):
    """A short record of a ``weights`` value for config files and tables: ``imagenet``, ``none`` or the path."""
    weights = normalise_weights(weights)
    return "none" if weights is None else str(weights)


def weights_text(weights):
    """``ImageNet weights``, ``random weights`` or ``weights from <file>``, for titles, tables and the console."""
    label = weights_label(weights)
    return {"imagenet": "ImageNet weights", "none": "random weights"}.get(label, f"weights from {Path(label).name}")


@dataclass(frozen=True)
class WeightsChoice:
    """What a lab builds its ImageNet encoder with: ``requested`` (the flag, or the course default), ``used``
    (``imagenet``, ``none`` or a path) and ``note`` (why they differ, shown on screen and recorded; else None)."""

    requested: str
    used: str
    note: str = None

    def record(self):
        """``{"requested", "used", "note"}`` for ``metrics.json``."""
        return asdict(self)


def decide_weights(given, backbone, input_shape, demo):
    """The one rule every lab follows for its ImageNet weights, decided before any model is built.

    A ``--weights`` value that was given is used as given (``imagenet`` then needs its file in Keras's cache or the
    network, else `imagenet_backbone` stops with `WeightsUnavailableError`). Not given: ImageNet, except on the demo
    (embedded data), which never downloads: ImageNet when its file is already in Keras's cache, else random
    initialisation with a note saying so.

    Args:
        given: the ``--weights`` value, or None when the flag was not given.
        backbone: ``"vgg16"``, ``"resnet50"`` or ``"mobilenet_v2"`` (names the cached file).
        input_shape: the network input, ``(height, width, channels)``.
        demo: whether the lab runs its demo profile.

    Returns:
        A `WeightsChoice`.

    Example:
        >>> decide_weights(None, "vgg16", (64, 64, 3), demo=False)
        WeightsChoice(requested='imagenet', used='imagenet', note=None)
    """
    if given is not None:
        return WeightsChoice(weights_label(given), weights_label(given))
    file = keras_cache_dir() / weights_file_name(backbone, input_shape)
    if not demo or file.is_file():
        return WeightsChoice("imagenet", "imagenet")
    name = _APPLICATIONS[backbone][0]
    return WeightsChoice("imagenet", "none", (
        f"ImageNet weights are not in Keras's cache ({file}) and the demo never downloads, so it uses an UNTRAINED "
        f"{name} (--weights none): its numbers are a random-initialisation baseline, not transfer learning. For "
        "ImageNet weights put that file there, or pass --weights imagenet (downloads once) or --weights PATH"))


def resolve_weights(settings, given, backbone, input_shape):
    """`decide_weights` for a lab run, once, before any model is built: records the choice in `settings`
    (``weights`` = used, ``weights_requested``, ``weights_note``, all in ``config.json``) and prints its note.

    A resumed run keeps the choice it began with. Returns the `WeightsChoice`.
    """
    if getattr(settings, "resume", False) and getattr(settings, "weights_requested", None):
        choice = WeightsChoice(settings.weights_requested, weights_label(settings.weights), settings.weights_note)
    else:
        choice = decide_weights(given, backbone, input_shape, settings.demo)
    settings.weights, settings.weights_requested, settings.weights_note = choice.used, choice.requested, choice.note
    if choice.note:
        print(f"notice: {choice.note}")
    return choice


def _is_download_failure(exc):
    """True when `exc` was raised while fetching a file (Keras's ``get_file``), not while building the model."""
    if isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return True
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name in _DOWNLOAD_FUNCTIONS:
            return True
        frame = frame.tb_next
    return False


def _short_reason(exc):
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = text.rsplit(" -- ", 1)[-1]  # get_file's "URL fetch failure on <url>: <errno> -- <reason>"
    return reason if len(reason) <= 80 else reason[:77] + "..."


def imagenet_backbone(name, input_shape, weights="imagenet", trainable=True):
    """A `keras.applications` encoder without its top, taking images in [0, 1].

    Args:
        name: ``"vgg16"``, ``"resnet50"`` or ``"mobilenet_v2"``.
        input_shape: ``(height, width, channels)`` with 1 or 3 channels, at least 32×32.
        weights: ``"imagenet"``, None/``"none"`` or a path to a local weights file (the ``.h5`` Keras downloads,
            or a ``.weights.h5`` saved from the same architecture).
        trainable: whether the backbone's weights train.

    Returns:
        A `keras.Model` named ``"<name>_backbone"`` from the image to the last feature map: an optional
        `GrayscaleToRGB` adapter, `ImageNetPreprocess`, then the `keras.applications` model as a nested model
        (its layer names stay the familiar ones, e.g. ``block5_conv3``).

    Raises:
        WeightsUnavailableError: ImageNet weights could not be fetched; the one-line message names the file, the
            folder to put it in and ``--weights none``.
        LabkitInputError: unknown backbone, bad input shape, or a weights file that does not fit.

    Example:
        >>> backbone = imagenet_backbone("mobilenet_v2", (128, 128, 3), weights=None)
        >>> backbone.output_shape
        (None, 4, 4, 1280)
    """
    require(name in _APPLICATIONS, f"unknown backbone {name!r}: choose one of {', '.join(_APPLICATIONS)}")
    input_shape = tuple(int(d) for d in input_shape)
    require(len(input_shape) == 3 and input_shape[-1] in (1, 3),
            f"input_shape {input_shape} must be (height, width, 1 or 3)")
    require(min(input_shape[:2]) >= _MIN_SIZE,
            f"{name} needs images of at least {_MIN_SIZE}×{_MIN_SIZE}, got {input_shape[0]}×{input_shape[1]} "
            "(--img-size)")
    constructor, mode = _APPLICATIONS[name]
    weights = normalise_weights(weights)
    rgb_shape = (*input_shape[:2], 3)
    try:
        application = getattr(keras.applications, constructor)(
            include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=rgb_shape
        )
    except Exception as exc:  # noqa: BLE001 - get_file raises a bare Exception on a failed download
        if weights != "imagenet" or not _is_download_failure(exc):
            raise
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} could not be fetched ({_short_reason(exc)}): put "
            f"{weights_file_name(name, input_shape)} in {keras_cache_dir()}/, or pass --weights PATH to a local "
            "copy, or --weights none to train from random initialisation"
        ) from exc
    if isinstance(weights, Path):
        try:
            application.load_weights(str(weights))
        except Exception as exc:  # noqa: BLE001 - h5py, ValueError on shapes, …
            raise LabkitInputError(
                f"--weights {weights}: cannot load into {name} without its top ({_short_reason(exc)}); expected "
                f"e.g. {weights_file_name(name, input_shape)}"
            ) from exc
    application.trainable = trainable

    inputs = keras.Input(shape=input_shape, name="image")
    x = GrayscaleToRGB(name="grayscale_to_rgb")(inputs) if input_shape[-1] == 1 else inputs
    x = ImageNetPreprocess(mode, name="imagenet_preprocess")(x)
    outputs = application(x)
    return keras.Model(inputs, outputs, name=f"{name}_backbone")


def backbone_features(backbone, layer_names, name=None):
    """A multi-output model from a backbone's image input to activations inside its `keras.applications` model.

    `imagenet_backbone` nests the application model, so its inner activations (e.g. U-Net skips) are not outputs
    of the backbone. This rebuilds the same graph — the same layer objects, so the same weights and trainable
    state — with those activations as outputs.

    Args:
        backbone: a model from `imagenet_backbone`.
        layer_names: names of layers inside the application model, e.g. ``["block_1_expand_relu", "out_relu"]``.
        name: name of the new model (default ``"<backbone name>_features"``).

    Returns:
        A `keras.Model` from the backbone's input to the listed activations, in the order given.

    Raises:
        LabkitInputError: a layer name is not in the application model.

    Example:
        >>> backbone = imagenet_backbone("mobilenet_v2", (128, 128, 3), weights=None)
        >>> [s[1] for s in backbone_features(backbone, ["block_1_expand_relu", "out_relu"]).output_shape]
        [64, 4]
    """
    application = next(layer for layer in backbone.layers if isinstance(layer, keras.Model))
    known = {layer.name for layer in application.layers}
    missing = [n for n in layer_names if n not in known]
    require(not missing, f"no layer(s) {', '.join(missing)} in {application.name}")
    inner = keras.Model(application.inputs, [application.get_layer(n).output for n in layer_names],
                        name=f"{application.name}_features")
    inputs = keras.Input(shape=backbone.input_shape[1:], name="image")
    x = inputs
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is application:
            break
        x = layer(x)  # the adapters in front of the application (grayscale, ImageNet preprocessing)
    return keras.Model(inputs, inner(x), name=name or f"{backbone.name}_features")
