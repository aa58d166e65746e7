"""ImageNet encoders from `keras.applications`, offline-friendly weight resolution and a grayscale adapter.

``weights`` is ``"imagenet"`` (Keras's cache, downloaded once), ``None`` / ``"none"`` (random initialisation) or a
path to a local ``.h5`` / ``.weights.h5`` file. When ImageNet weights cannot be fetched, `WeightsUnavailableError`
says which file to put where.

Inputs are images in [0, 1]: each backbone is preceded by an `ImageNetPreprocess` layer that converts them to what
the backbone was trained on, so a saved model is self-contained. A one-channel input goes through a
`GrayscaleToRGB` adapter (the grey channel repeated three times) instead of failing on the backbone's 3 channels.
"""

import os
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


class WeightsUnavailableError(LabkitInputError):
    """ImageNet weights could not be fetched (e.g. no network); the message names the file and the folder."""


@keras.saving.register_keras_serializable(package="labkit")
class ImageNetPreprocess(layers.Layer):
    """Map RGB images in [0, 1] to a backbone's expected input.

    ``mode="caffe"`` (VGG16, ResNet50): scale to 0–255, RGB → BGR, subtract the ImageNet channel means.
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

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="labkit")
class GrayscaleToRGB(layers.Layer):
    """Repeat a one-channel image three times, so grey images can feed an ImageNet (RGB) encoder."""

    def call(self, inputs):
        return ops.repeat(inputs, 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def keras_cache_dir():
    """The folder where `keras.applications` looks for downloaded weights (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


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
    path = Path(weights)
    require(path.is_file(), f"--weights {weights}: file not found (use imagenet, none or a path to an .h5 file)")
    return path


def imagenet_backbone(name, input_shape, weights="imagenet", trainable=True):
    """A `keras.applications` encoder without its top, taking images in [0, 1].

    Args:
        name: ``"vgg16"``, ``"resnet50"`` or ``"mobilenet_v2"``.
        input_shape: ``(height, width, channels)`` with 1 or 3 channels.
        weights: ``"imagenet"``, None/``"none"`` or a path to a local weights file.
        trainable: whether the backbone's weights train.

    Returns:
        A `keras.Model` named ``"<name>_backbone"`` from the image to the last feature map. The inner
        `keras.applications` model is kept as a nested model (its layer names stay the familiar ones).

    Raises:
        WeightsUnavailableError: ImageNet weights could not be fetched; the message names the file, the folder to put
            it in and ``--weights none``.

    Example:
        >>> backbone = imagenet_backbone("mobilenet_v2", (128, 128, 3), weights=None)
        >>> backbone.output_shape
        (None, 4, 4, 1280)
    """
    require(name in _APPLICATIONS, f"unknown backbone {name!r}: choose one of {', '.join(_APPLICATIONS)}")
    require(len(input_shape) == 3 and input_shape[-1] in (1, 3),
            f"input_shape {tuple(input_shape)} must be (height, width, 1 or 3)")
    constructor, mode = _APPLICATIONS[name]
    weights = normalise_weights(weights)
    rgb_shape = (*input_shape[:2], 3)
    try:
        application = getattr(keras.applications, constructor)(
            include_top=False, weights="imagenet" if weights == "imagenet" else None, input_shape=rgb_shape
        )
    except Exception as exc:  # noqa: BLE001 - the download raises many kinds (URLError, OSError, Exception)
        if weights != "imagenet":
            raise
        file = weights_file_name(name, input_shape)
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} could not be fetched ({type(exc).__name__}): put {file} in "
            f"{keras_cache_dir()}/ or pass --weights PATH to a local copy, or --weights none to train from scratch"
        ) from exc
    if isinstance(weights, Path):
        try:
            application.load_weights(str(weights))
        except Exception as exc:  # noqa: BLE001
            raise LabkitInputError(f"--weights {weights}: cannot load into {name} ({exc})".splitlines()[0]) from exc
    application.trainable = trainable

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = GrayscaleToRGB(name="grayscale_to_rgb")(inputs) if input_shape[-1] == 1 else inputs
    x = ImageNetPreprocess(mode, name="imagenet_preprocess")(x)
    outputs = application(x)
    return keras.Model(inputs, outputs, name=f"{name}_backbone")
