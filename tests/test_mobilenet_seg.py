"""MobileNetV2 segmenters: parameter counts against the published tables, skips, freezing, per-group rates, reload."""

import keras
import numpy as np
import pytest

from labkit.errors import LabkitInputError
from labkit.losses import segmentation_loss
from labkit.metrics import dice_from_logits, iou_from_logits, logit_segmentation_metrics
from labkit.models.mobilenet_seg import (
    BN_MOMENTUM, batchnorm_layers, calibrate_batchnorm, encoder_decoder_optimizer, mobilenet_encoder,
    mobilenet_segmenter, parameter_split)
from labkit.optimizers import GroupedOptimizer

# MobileNetV2 without its top (keras.applications, alpha 1.0): 2,257,984 weights, 34,112 of them BatchNorm moving
# statistics; the published "trainable params" of the feature extractor is 2,223,872.
ENCODER_TOTAL, ENCODER_TRAINABLE = 2_257_984, 2_223_872


def pytorch_parameters(module, *args):
    """Parameter count of a PyTorch module as torchsummary lists it (BatchNorm: weight and bias; buffers excluded)."""
    if module == "ConvTranspose2d" or module == "Conv2d":
        c_in, c_out, k = args
        return c_in * c_out * k * k + c_out
    if module == "BatchNorm2d":
        return 2 * args[0]
    return 0  # ReLU, Dropout


# The course's decoder as published: ConvTranspose2d(c_in, c_out, 4, 2, 1) + BatchNorm2d + ReLU + Dropout(0.5), ×5.
PYTORCH_DECODER = [row for c_in, c_out in ((1280, 512), (512, 256), (256, 128), (128, 64), (64, 32))
                   for row in (("ConvTranspose2d", c_in, c_out, 4), ("BatchNorm2d", c_out), ("ReLU",), ("Dropout",))
                   ] + [("Conv2d", 32, 1, 1)]


@pytest.fixture(scope="module")
def transpose_model():
    return mobilenet_segmenter((32, 32, 3), "transpose", weights=None)


@pytest.fixture(scope="module")
def unet_model():
    return mobilenet_segmenter((64, 64, 3), "unet", weights=None)


def test_transpose_decoder_has_the_published_pytorch_parameter_count(transpose_model):
    expected = sum(pytorch_parameters(*row) for row in PYTORCH_DECODER)
    assert expected == 13_274_049
    counts = parameter_split(transpose_model)
    assert counts["decoder"]["trainable"] == expected
    assert counts["decoder"]["non_trainable"] == 2 * (512 + 256 + 128 + 64 + 32)  # BatchNorm running statistics


@pytest.mark.parametrize("stage, c_in, c_out", [(1, 1280, 512), (2, 512, 256), (3, 256, 128), (4, 128, 64),
                                                (5, 64, 32)])
def test_each_transposed_stage_matches_its_pytorch_row(transpose_model, stage, c_in, c_out):
    deconv = transpose_model.get_layer(f"decoder_up{stage}_deconv")
    assert deconv.kernel_size == (4, 4) and deconv.strides == (2, 2) and deconv.padding == "same"
    assert deconv.count_params() == pytorch_parameters("ConvTranspose2d", c_in, c_out, 4)
    assert transpose_model.get_layer(f"decoder_up{stage}_dropout").rate == 0.5
    assert transpose_model.get_layer(f"decoder_up{stage}_deconv").output.shape[1] == 32 // 2 ** (5 - stage)


def test_encoder_has_the_published_trainable_count_when_unfrozen(transpose_model):
    counts = parameter_split(transpose_model)["encoder"]
    assert counts == {"trainable": ENCODER_TRAINABLE, "non_trainable": ENCODER_TOTAL - ENCODER_TRAINABLE,
                      "total": ENCODER_TOTAL}
    assert transpose_model.output_shape == (None, 32, 32, 1)
    assert all(norm.momentum == BN_MOMENTUM for norm in batchnorm_layers(transpose_model))


def test_unet_decoder_takes_skips_at_half_quarter_eighth_and_sixteenth(unet_model):
    assert [tuple(t.shape[1:]) for t in unet_model.get_layer("encoder").outputs] == [
        (4, 4, 576), (8, 8, 192), (16, 16, 144), (32, 32, 96), (2, 2, 1280)]
    assert unet_model.output_shape == (None, 64, 64, 1)
    # Formula: per stage a 4×4 transposed conv + BN, then (stages 1–4) a 3×3 conv over [upsampled, skip] + BN.
    expected, c_in = 33, 1280
    for c_out, skip in ((512, 576), (256, 192), (128, 144), (64, 96), (32, 0)):
        expected += 16 * c_in * c_out + c_out + 2 * c_out
        if skip:
            expected += 9 * (c_out + skip) * c_out + c_out + 2 * c_out
        c_in = c_out
    assert parameter_split(unet_model)["decoder"]["trainable"] == expected
    assert unet_model.get_layer("decoder_skip1_dropout").rate == 0.5


def test_optimizer_routes_exactly_the_encoder_variables_to_the_encoder_rate(unet_model):
    optimizer = encoder_decoder_optimizer(unet_model, 1e-4, 1e-3)
    encoder = {id(v) for v in unet_model.get_layer("encoder").weights}
    groups = [optimizer.group_of(v) for v in unet_model.trainable_weights]
    assert groups == ["encoder" if id(v) in encoder else None for v in unet_model.trainable_weights]
    assert groups.count("encoder") == len(unet_model.get_layer("encoder").trainable_weights) > 100
    assert optimizer.group_learning_rate("encoder") == 1e-4
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


def _batch(size=32, n=4):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(n, size, size, 3)).astype("float32")
    masks = (images[..., :1] > 0.5).astype("float32")
    return images, masks


def _snapshot(layer):
    return [w.numpy().copy() for w in layer.weights]


def test_frozen_encoder_is_bit_identical_after_training_while_the_decoder_learns_and_reloads(tmp_path):
    model = mobilenet_segmenter((32, 32, 3), "transpose", weights=None, encoder_trainable=False)
    counts = parameter_split(model)
    assert counts["model"]["trainable"] == counts["decoder"]["trainable"] == 13_274_049
    assert counts["encoder"]["trainable"] == 0
    encoder, decoder_layer = model.get_layer("encoder"), model.get_layer("decoder_up1_deconv")
    encoder_before, decoder_before = _snapshot(encoder), _snapshot(decoder_layer)
    # SGD keeps no slots, so the saved file stays small; eager mode skips the slow graph tracing.
    model.compile(optimizer=encoder_decoder_optimizer(model, 0.0, 1e-2, optimizer="sgd"), run_eagerly=True,
                  loss=segmentation_loss("bce", from_logits=True), metrics=logit_segmentation_metrics())
    images, masks = _batch()
    for _ in range(2):
        model.train_on_batch(images, masks)
    assert all(np.array_equal(a, b) for a, b in zip(encoder_before, _snapshot(encoder)))  # BN statistics included
    assert not any(np.array_equal(a, b) for a, b in zip(decoder_before, _snapshot(decoder_layer)))

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # plain load: GroupedOptimizer, losses and metrics are registered
    np.testing.assert_allclose(reloaded(images, training=False), model(images, training=False), atol=1e-5)
    assert isinstance(reloaded.optimizer, GroupedOptimizer)
    assert reloaded.optimizer.get_config()["groups"] == model.optimizer.get_config()["groups"]
    assert not reloaded.get_layer("encoder").trainable
    assert int(reloaded.optimizer.iterations) == 2


def test_encoder_rate_zero_keeps_trainable_weights_but_not_batchnorm_statistics():
    # Why --strategy frozen also sets trainable=False: at lr 0 the optimizer leaves the weights alone, but BatchNorm
    # layers in training mode still move their statistics.
    model = mobilenet_segmenter((32, 32, 3), "transpose", weights=None, encoder_trainable=True)
    encoder = model.get_layer("encoder")
    trainable_before = [w.numpy().copy() for w in encoder.trainable_weights]
    stats_before = [w.numpy().copy() for w in encoder.non_trainable_weights]
    model.compile(optimizer=encoder_decoder_optimizer(model, 0.0, 1e-2, optimizer="sgd"), run_eagerly=True,
                  loss=segmentation_loss("bce+dice", from_logits=True))
    model.train_on_batch(*_batch())
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(trainable_before, encoder.trainable_weights))
    assert not all(np.array_equal(a, b.numpy()) for a, b in zip(stats_before, encoder.non_trainable_weights))


def test_calibrating_a_random_encoder_gives_it_informative_features():
    encoder = mobilenet_encoder((32, 32, 3), weights=None, trainable=False)
    images = _batch(n=8)[0]
    kernels = [w.numpy().copy() for w in encoder.weights if "moving" not in w.path]
    before = encoder(images, training=False).numpy()
    assert before.std(axis=0).mean() < 1e-6  # initial 0/1 statistics: the features vanish
    assert calibrate_batchnorm(encoder, images) == 52
    after = encoder(images, training=False).numpy()
    assert after.std(axis=0).mean() > 1e-2
    assert not encoder.trainable and all(n.momentum == BN_MOMENTUM for n in batchnorm_layers(encoder))
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(kernels, [w for w in encoder.weights
                                                                       if "moving" not in w.path]))


def test_grayscale_images_go_through_the_rgb_adapter():
    model = mobilenet_segmenter((32, 32, 1), "transpose", weights=None)
    assert model.output_shape == (None, 32, 32, 1)
    assert "grayscale_to_rgb" in [layer.name for layer in model.get_layer("encoder").layers]


def test_encoder_weights_from_a_local_file(tmp_path):
    keras.utils.set_random_seed(7)
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_v2_notop.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(8)  # a different random start, overwritten by the file
    model = mobilenet_segmenter((32, 32, 3), "unet", weights=str(path))
    loaded = {w.path: w.numpy() for w in model.get_layer("encoder").weights}
    for weight in source.weights:
        assert np.array_equal(loaded[weight.path], weight.numpy()), weight.path


@pytest.mark.parametrize("shape, decoder, message", [
    ((48, 48, 3), "transpose", "multiple of 32"),
    ((64, 64, 3), "fpn", "unknown decoder"),
    ((16, 16, 3), "unet", "multiple of 32"),
])
def test_bad_settings_are_refused(shape, decoder, message):
    with pytest.raises(LabkitInputError, match=message):
        mobilenet_segmenter(shape, decoder, weights=None)


@pytest.mark.parametrize("logits, truth, dice, iou", [
    ([3.0, -1.0, 0.5, -4.0], [1, 0, 0, 0], 2 / 3, 1 / 2),  # logit > 0 ⇔ probability > 0.5
    ([-0.1, -2.0, -3.0, -4.0], [0, 0, 0, 0], 1.0, 1.0),  # both empty
    ([1e-3, 2.0, -1e-3, 5.0], [1, 1, 1, 1], 6 / 7, 3 / 4),
])
def test_thresholded_metrics_on_logits(logits, truth, dice, iou):
    logits, truth = np.array(logits, np.float32).reshape(1, 2, 2, 1), np.array(truth, np.float32).reshape(1, 2, 2, 1)
    assert float(dice_from_logits(truth, logits)) == pytest.approx(dice, abs=1e-6)
    assert float(iou_from_logits(truth, logits)) == pytest.approx(iou, abs=1e-6)
    accuracy = logit_segmentation_metrics()[0]
    accuracy.update_state(truth, logits)
    assert float(accuracy.result()) == pytest.approx(np.mean((logits > 0) == (truth > 0.5)))
