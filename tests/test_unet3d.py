"""get_unet3d: shapes and parameter counts from a formula, the shared block, learning on a tiny volume, save/load."""

import keras
import numpy as np
import pytest

from labkit import LabkitInputError, conv_block, dice_coef, get_unet3d
from labkit.training import compile_model
from test_unet import unet_params


def unet3d_params(base, depth, c_in=1, n_class=1, batchnorm=True):
    """The layer-by-layer count of test_unet with 3×3×3 convs and 2×2×2 transpose convs."""
    return unet_params(base, c_in, n_class, batchnorm, depth, kernel_volume=27, up_volume=8)


@pytest.mark.parametrize("input_shape, base, depth, batchnorm", [
    ((16, 16, 8, 1), 4, 2, True), ((16, 16, 8, 1), 4, 3, False), ((32, 16, 16, 2), 2, 4, True),
    ((8, 8, 8, 1), 8, 1, False)])
def test_shapes_and_parameter_count(input_shape, base, depth, batchnorm):
    model = get_unet3d(input_shape, base=base, depth=depth, batchnorm=batchnorm)
    assert model.output_shape == (None, *input_shape[:3], 1)
    assert model.count_params() == unet3d_params(base, depth, c_in=input_shape[-1], batchnorm=batchnorm)
    assert sum(isinstance(l, keras.layers.MaxPooling3D) for l in model.layers) == depth
    assert sum(isinstance(l, keras.layers.Conv3DTranspose) for l in model.layers) == depth
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in model.layers) == (
        2 * (2 * depth + 1) if batchnorm else 0)


def test_course_default_size():
    model = get_unet3d()
    assert model.input_shape == (None, 112, 112, 80, 1) and model.output_shape == (None, 112, 112, 80, 1)
    assert model.count_params() == unet3d_params(16, 4)


def test_shares_the_2d_block_function():
    """The 3D encoder blocks have the same layer names as the 2D conv_block, with Conv3D inside."""
    inputs = keras.Input((8, 8, 1))
    two_d = keras.Model(inputs, conv_block(inputs, base=4, batchnorm=True, name="enc1"))
    three_d = get_unet3d((8, 8, 8, 1), base=4, depth=1)
    names_2d = [l.name for l in two_d.layers[1:]]
    assert [l.name for l in three_d.layers[1:1 + len(names_2d)]] == names_2d
    assert isinstance(three_d.get_layer("enc1_conv1"), keras.layers.Conv3D)


def test_softmax_head_and_dropout():
    model = get_unet3d((8, 8, 8, 1), base=2, depth=2, n_class=3, dropout=0.3, batchnorm=False)
    out = model.predict(np.random.default_rng(0).random((2, 8, 8, 8, 1)), verbose=0)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert [l.rate for l in model.layers if isinstance(l, keras.layers.Dropout)] == [0.3] * 4


@pytest.mark.parametrize("shape, message", [((18, 16, 8, 1), "not divisible by 4"), ((16, 16, 1), "spatial sizes")])
def test_bad_shapes_are_clear_errors(shape, message):
    with pytest.raises(LabkitInputError, match=message):
        get_unet3d(shape, base=2, depth=2)


def tiny_volume(seed=0, shape=(16, 16, 8)):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape)
    centre = rng.uniform(5, 11, 3) * np.array([1, 1, 0.5])
    label = (sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, (4, 4, 2.5))) <= 1).astype(np.float32)
    image = label * 1.5 + rng.normal(0, 0.3, shape)
    return image[None, ..., None].astype(np.float32), label[None, ..., None]


def test_training_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    x, y = tiny_volume()
    model = get_unet3d((16, 16, 8, 1), base=4, depth=2, batchnorm=False)
    compile_model(model, 1e-2, "bce", metrics=[dice_coef])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.fit(x, y, epochs=25, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert after["loss"] < 0.7 * before["loss"]
    assert after["dice_coef"] > before["dice_coef"] + 0.1


def test_saved_model_reloads_in_safe_mode(tmp_path):
    model = get_unet3d((8, 8, 8, 1), base=2, depth=1)
    compile_model(model, 1e-3, "bce+dice", metrics=[dice_coef])
    model.optimizer.build(model.trainable_variables)
    x, _ = tiny_volume(shape=(8, 8, 8))
    model.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
