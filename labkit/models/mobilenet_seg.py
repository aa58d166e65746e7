"""MobileNetV2 encoder–decoder segmenters (the ISIC 2016 lesion lab): a transposed-convolution or a U-Net decoder.

The encoder is the ImageNet MobileNetV2 feature extractor without its top (`labkit.models.transfer.imagenet_backbone`,
input in [0, 1], 1 or 3 channels), nested in the segmenter as the layer ``"encoder"``; it has 2,257,984 weights,
2,223,872 of them trainable when unfrozen. Two decoders:

* ``transpose`` (the course's): five ``Conv2DTranspose(kernel 4, stride 2, same)`` stages 1280 → 512 → 256 → 128 →
  64 → 32, each followed by BatchNorm, ReLU and Dropout(0.5), then a 1×1 convolution to one channel. Its trainable
  parameters equal those of PyTorch's ``ConvTranspose2d(1280, 512, 4, 2, 1)`` … ``Conv2d(32, 1, 1)`` table:
  ``Σ (16·cᵢₙ·cₒᵤₜ + cₒᵤₜ + 2·cₒᵤₜ) + 33`` = 13,274,049.
* ``unet``: the same five upsampling stages, each after the first four concatenated with a MobileNetV2 activation of
  that resolution (1/16, 1/8, 1/4, 1/2: ``block_13/6/3/1_expand_relu``), then dropout and a 3×3 conv + BN + ReLU.

Both output **logits** at the input resolution (train with ``from_logits=True`` losses; a sigmoid gives
probabilities). BatchNorm moving statistics follow PyTorch's running-average factor 0.1 (Keras momentum 0.9, in the
encoder too, instead of keras.applications' 0.999), so short runs settle them as the course's PyTorch code did; the
decoder also uses PyTorch's epsilon 1e-5. A frozen encoder (``encoder_trainable=False``) runs its BatchNorm layers in
inference mode and never changes.

A randomly initialised encoder (``weights="none"``) has moving statistics 0 and 1, under which MobileNetV2's
activations shrink to ~1e-12 by its last block at inference; `calibrate_batchnorm` sets them from a batch of
training images first (no weight is trained).
"""

import hashlib

import keras
import numpy as np
from keras import layers

from labkit.batchnorm import batchnorm_layers, calibrate_batchnorm
from labkit.errors import require
from labkit.losses import get_loss
from labkit.metrics import logit_segmentation_metrics
from labkit.models.summary import parameter_counts
from labkit.models.transfer import backbone_features, imagenet_backbone
from labkit.optimizers import learning_rate_schedule, optimizer_by_name, per_layer_learning_rates

ENCODER = "encoder"
DECODERS = ("transpose", "unet")
DECODER_CHANNELS = (512, 256, 128, 64, 32)
#: MobileNetV2 activations at 1/16, 1/8, 1/4 and 1/2 of the input resolution (deepest first), then the 1/32 output.
UNET_SKIPS = ("block_13_expand_relu", "block_6_expand_relu", "block_3_expand_relu", "block_1_expand_relu")
BOTTLENECK = "out_relu"
STRIDE = 32
BN_MOMENTUM = 0.9  # PyTorch's running-average factor 0.1


def _batchnorm(name):
    # PyTorch's BatchNorm2d defaults: running-average factor 0.1 (Keras momentum 0.9), epsilon 1e-5.
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-5, name=name)


def upsample_block(x, filters, dropout=0.5, name=None):
    """``Conv2DTranspose(filters, 4, strides=2, padding="same")`` → BatchNorm → ReLU → Dropout: doubles height and width.

    The same stage as PyTorch's ``ConvTranspose2d(c_in, filters, 4, 2, 1)`` + ``BatchNorm2d`` + ``ReLU`` + ``Dropout``.
    """
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"{name}_deconv")(x)
    x = _batchnorm(f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x) if dropout else x


def conv_bn_relu(x, filters, name=None):
    """3×3 same-padded convolution → BatchNorm → ReLU."""
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = _batchnorm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def logits_head(x):
    """1×1 convolution to one channel of logits, kept in float32 under mixed precision."""
    return layers.Conv2D(1, 1, dtype="float32", name="logits")(x)


def transpose_decoder(features, dropout=0.5, channels=DECODER_CHANNELS):
    """The course's decoder: five `upsample_block` stages (1280 → 512 → … → 32) and a 1×1 conv to logits.

    Args:
        features: the encoder's 1/32-resolution feature map (1280 channels).
        dropout: dropout rate after every stage (course: 0.5).
        channels: output channels of the five stages.

    Returns:
        The logits tensor at 32× the feature map's resolution.
    """
    x = features
    for i, filters in enumerate(channels, start=1):
        x = upsample_block(x, filters, dropout, name=f"decoder_up{i}")
    return logits_head(x)


def unet_decoder(skips, bottleneck, dropout=0.5, channels=DECODER_CHANNELS):
    """A U-Net decoder: upsample, concatenate the skip of that resolution, dropout, 3×3 conv; last stage to full size.

    Args:
        skips: encoder activations at 1/16, 1/8, 1/4 and 1/2 resolution (deepest first).
        bottleneck: the 1/32 feature map.
        dropout: dropout rate after each concatenation and after the last upsampling.
        channels: filters of the five stages; the first four meet a skip, the last reaches full resolution.

    Returns:
        The logits tensor at the input resolution.
    """
    require(len(channels) == len(skips) + 1, f"{len(skips)} skips need {len(skips) + 1} decoder stages")
    x = bottleneck
    for i, (skip, filters) in enumerate(zip(skips, channels), start=1):
        x = upsample_block(x, filters, dropout=None, name=f"decoder_up{i}")
        x = layers.Concatenate(name=f"decoder_skip{i}")([x, skip])
        if dropout:
            x = layers.Dropout(dropout, name=f"decoder_skip{i}_dropout")(x)
        x = conv_bn_relu(x, filters, name=f"decoder_block{i}")
    x = upsample_block(x, channels[-1], dropout, name=f"decoder_up{len(channels)}")
    return logits_head(x)


def mobilenet_encoder(input_shape=(128, 128, 3), weights="imagenet", trainable=True, skips=False):
    """The MobileNetV2 feature extractor as a model named ``"encoder"``.

    Args:
        input_shape: ``(height, width, channels)``; sides multiples of 32, 1 or 3 channels.
        weights: ``"imagenet"``, ``"none"``/None or a path to a weights file (see `imagenet_backbone`).
        trainable: False freezes it (BatchNorm in inference mode, weights never change).
        skips: also output the `UNET_SKIPS` activations: outputs are then ``[1/16, 1/8, 1/4, 1/2, 1/32]``.

    Returns:
        A `keras.Model` sharing its weights with `imagenet_backbone`'s.
    """
    backbone = imagenet_backbone("mobilenet_v2", input_shape, weights=weights, trainable=trainable)
    if skips:
        encoder = backbone_features(backbone, [*UNET_SKIPS, BOTTLENECK], name=ENCODER)
    else:
        encoder = keras.Model(backbone.input, backbone.output, name=ENCODER)
    for layer in batchnorm_layers(encoder):
        layer.momentum = BN_MOMENTUM
    encoder.trainable = trainable
    return encoder


def mobilenet_segmenter(input_shape=(128, 128, 3), decoder="transpose", weights="imagenet", encoder_trainable=True,
                        dropout=0.5):
    """A MobileNetV2 encoder–decoder that maps images in [0, 1] to one channel of lesion logits.

    Args:
        input_shape: ``(height, width, channels)``; height and width multiples of 32 (course: 128×128×3); a
            one-channel input goes through `GrayscaleToRGB`.
        decoder: ``"transpose"`` (five ConvTranspose stages, the course's) or ``"unet"`` (with skip connections).
        weights: encoder weights: ``"imagenet"``, ``"none"``/None or a path.
        encoder_trainable: False for the frozen ("off-the-shelf") encoder.
        dropout: decoder dropout rate (course: 0.5).

    Returns:
        A `keras.Model` named ``"mobilenet_v2_<decoder>"`` whose layer ``"encoder"`` is the nested MobileNetV2.

    Raises:
        LabkitInputError: unknown decoder, a side that is not a multiple of 32, or weights that cannot be had.

    Example:
        >>> model = mobilenet_segmenter((128, 128, 3), decoder="unet", weights=None)
        >>> model.output_shape
        (None, 128, 128, 1)
    """
    require(decoder in DECODERS, f"unknown decoder {decoder!r}: choose one of {', '.join(DECODERS)}")
    height, width = int(input_shape[0]), int(input_shape[1])
    require(height % STRIDE == 0 and width % STRIDE == 0 and min(height, width) >= STRIDE,
            f"--img-size must be a multiple of {STRIDE} (MobileNetV2 downsamples 32×), got {height}×{width}")
    encoder = mobilenet_encoder(input_shape, weights, encoder_trainable, skips=decoder == "unet")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    features = encoder(inputs)
    if decoder == "unet":
        logits = unet_decoder(features[:-1], features[-1], dropout)
    else:
        logits = transpose_decoder(features, dropout)
    return keras.Model(inputs, logits, name=f"mobilenet_v2_{decoder}")


def encoder_decoder_optimizer(model, encoder_lr, decoder_lr, optimizer="adam", lr_schedule="constant",
                              total_steps=None):
    """An optimizer with one learning rate for the encoder and another for the decoder.

    Args:
        model: a `mobilenet_segmenter` (any model with an ``"encoder"`` layer).
        encoder_lr: encoder learning rate; 0 leaves the encoder's weights untouched.
        decoder_lr: learning rate of every other variable.
        optimizer: a name of `labkit.optimizers.OPTIMIZERS` (``"adam"``, ``"sgd"``, ``"rmsprop"``), or a Keras
            optimizer whose learning rate is replaced by `decoder_lr`.
        lr_schedule: ``constant``, or ``cosine``: both rates warm up and decay along the same curve
            (`labkit.optimizers.learning_rate_schedule`), each to its own peak.
        total_steps: optimizer steps of the whole run; needed for ``cosine``.

    Returns:
        A `labkit.optimizers.GroupedOptimizer`.

    Example:
        >>> model.compile(optimizer=encoder_decoder_optimizer(model, 1e-4, 1e-3), loss=...)
    """
    decoder_rate = learning_rate_schedule(decoder_lr, lr_schedule, total_steps)
    encoder_rate = learning_rate_schedule(encoder_lr, lr_schedule, total_steps) if encoder_lr > 0 else 0.0
    if isinstance(optimizer, str):
        optimizer = optimizer_by_name(optimizer, decoder_rate)
    else:
        optimizer = type(optimizer).from_config({**optimizer.get_config(), "learning_rate": decoder_rate})
    return per_layer_learning_rates(optimizer, model, {ENCODER: encoder_rate})


def compiled_segmenter(input_shape, decoder, weights, encoder_lr, decoder_lr, loss="bce", dropout=0.5,
                       calibration_images=None, lr_schedule="constant", total_steps=None):
    """A `mobilenet_segmenter` compiled for training on logits, as the lesion lab trains it.

    The encoder is frozen when `encoder_lr` is 0; a random encoder (`weights` ``"none"``) first gets its BatchNorm
    statistics from `calibration_images` (`calibrate_batchnorm`). Adam takes the encoder's and the decoder's learning
    rates (`encoder_decoder_optimizer`, constant or along `lr_schedule` over `total_steps`), the loss is
    `labkit.losses.get_loss` of `loss` on logits, and the metrics are pixel accuracy, IoU and Dice at probability 0.5
    (`labkit.metrics.logit_segmentation_metrics`). Call it inside a distribution strategy's scope.

    Returns:
        The compiled `keras.Model`.

    Example:
        >>> model = compiled_segmenter((128, 128, 3), "transpose", "imagenet", 1e-4, 1e-3, loss="bce+dice")
    """
    model = mobilenet_segmenter(input_shape, decoder, weights, encoder_trainable=encoder_lr > 0, dropout=dropout)
    if weights == "none":
        calibrate_batchnorm(model.get_layer(ENCODER), calibration_images)
    optimizer = encoder_decoder_optimizer(model, encoder_lr, decoder_lr, lr_schedule=lr_schedule,
                                          total_steps=total_steps)
    model.compile(optimizer=optimizer, loss=get_loss(loss, from_logits=True), metrics=logit_segmentation_metrics())
    return model


def parameter_split(model):
    """Trainable and non-trainable parameter counts of the encoder, the decoder and the whole model.

    Returns:
        ``{"encoder": {...}, "decoder": {...}, "model": {...}}``, each ``{"trainable", "non_trainable", "total"}``
        (see `labkit.models.summary.parameter_counts`); the decoder is everything outside the ``"encoder"`` layer.
    """
    encoder, whole = parameter_counts(model.get_layer(ENCODER)), parameter_counts(model)
    decoder = {key: whole[key] - encoder[key] for key in whole}
    return {"encoder": encoder, "decoder": decoder, "model": whole}


def encoder_fingerprint(model):
    """SHA-256 of every encoder weight (trainable ones and BatchNorm statistics): equal fingerprints, identical bits.

    Compare the fingerprint before and after training to show that a frozen encoder never changed.
    """
    digest = hashlib.sha256()
    for weight in model.get_layer(ENCODER).weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()
