"""get_unet / get_unet3d / conv_block: the course's layer graph, checked by parameter counts from a formula."""

import keras
import numpy as np
import pytest

from labkit import LabkitInputError, conv_block, get_unet, get_unet3d


def conv_params(kernel_volume, c_in, c_out):
    return kernel_volume * c_in * c_out + c_out


def unet_params(base, c_in=1, n_class=1, batchnorm=False, depth=4, kernel_volume=9, up_volume=4):
    """Parameter count of the course U-Net, worked out layer by layer (independent of labkit's builder)."""
    bn = (lambda c: 4 * c) if batchnorm else (lambda c: 0)  # gamma, beta, moving mean, moving variance
    block = lambda cin, f: conv_params(kernel_volume, cin, f) + conv_params(kernel_volume, f, f) + 2 * bn(f)  # noqa: E731
    total, channels = 0, c_in
    for level in range(depth):
        total += block(channels, base * 2**level)
        channels = base * 2**level
    total += block(channels, base * 2**depth)
    for level in reversed(range(depth)):
        f = base * 2**level
        total += conv_params(up_volume, 2 * f, f)  # transpose conv from 2f to f channels
        total += block(2 * f, f)  # after concatenation with the skip
    return total + conv_params(1, base, n_class)


@pytest.mark.parametrize("base", [2, 8, 16, 32])
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("dropout", [None, 0.2])
def test_get_unet_parameter_count_matches_formula(base, batchnorm, dropout):
    model = get_unet((32, 32, 1), base=base, batchnorm=batchnorm, dropout=dropout)
    assert model.count_params() == unet_params(base, batchnorm=batchnorm)


def test_course_base8_count_and_shapes():
    model = get_unet((256, 256, 1), base=8)
    assert model.count_params() == 485_673 == unet_params(8)
    assert model.output_shape == (None, 256, 256, 1)
    assert model.layers[-1].activation is keras.activations.sigmoid


def test_dropout_layers_follow_each_pool_and_concat():
    model = get_unet((32, 32, 1), base=4, dropout=0.3)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.3] * 8
    assert not any(isinstance(l, keras.layers.Dropout) for l in get_unet((32, 32, 1), base=4).layers)


def test_multiclass_head_is_softmax_and_sums_to_one():
    model = get_unet((32, 32, 3), base=4, n_class=3)
    assert model.count_params() == unet_params(4, c_in=3, n_class=3)
    out = model.predict(np.random.default_rng(0).random((2, 32, 32, 3)), verbose=0)
    assert out.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)


def test_conv_block_shape_and_batchnorm_layers():
    inputs = keras.Input((16, 16, 3))
    outputs = conv_block(inputs, base=5, batchnorm=True, name="blk")
    model = keras.Model(inputs, outputs)
    assert outputs.shape == (None, 16, 16, 5)
    assert [l.name for l in model.layers[1:]] == ["blk_conv1", "blk_bn1", "blk_act1", "blk_conv2", "blk_bn2", "blk_act2"]


@pytest.mark.parametrize("shape", [(40, 40, 1), (64, 72, 1)])
def test_size_not_divisible_by_16_is_a_clear_error(shape):
    with pytest.raises(LabkitInputError, match="not divisible by 16"):
        get_unet(shape)


def test_dropout_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="dropout"):
        get_unet((32, 32, 1), dropout=1.0)


def test_unet3d_shapes_and_parameter_count():
    model = get_unet3d((16, 16, 8, 1), base=4, depth=2, batchnorm=False)
    assert model.output_shape == (None, 16, 16, 8, 1)
    assert model.count_params() == unet_params(4, depth=2, kernel_volume=27, up_volume=8)


def test_mixed_precision_keeps_output_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = get_unet((32, 32, 1), base=2)
    assert model.layers[-2].compute_dtype == "bfloat16"
    assert model.output.dtype == "float32"


def test_he_initialisation_keeps_the_signal_through_the_unet_and_the_parameter_count():
    # The cause of slow and dying demo runs: with Keras's Glorot default, each ReLU halves the signal's variance, so
    # after the 18 hidden convolutions the last feature map is ~60x smaller than the image and the output hardly
    # depends on it. He initialisation keeps it the image's size. Same layers, same parameters either way.
    images = np.random.default_rng(0).random((4, 32, 32, 1)).astype(np.float32)
    spread = {}
    for init in ("he_normal", "glorot_uniform"):
        keras.utils.set_random_seed(0)
        model = get_unet((32, 32, 1), base=8, kernel_initializer=init)
        last_hidden = keras.Model(model.input, model.get_layer("dec1_act2").output)
        spread[init] = float(np.std(last_hidden(images))) / float(np.std(images))
        spread[init, "params"] = model.count_params()
    assert 0.5 < spread["he_normal"] < 5
    assert spread["glorot_uniform"] < 0.1
    assert spread["he_normal", "params"] == spread["glorot_uniform", "params"]
    assert isinstance(get_unet((32, 32, 1), base=2).get_layer("enc1_conv1").kernel_initializer,
                      keras.initializers.HeNormal)
