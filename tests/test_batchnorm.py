"""Precise BatchNorm statistics: the plain mean of batch statistics, dropout off, frozen layers kept, and in `fit`
the statistics each validation (and the saved model) uses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from labkit.batchnorm import PreciseBatchNorm, calibrate_batchnorm, dropout_off, estimate_batchnorm_statistics
from labkit.training import compile_model, fit


def batches_of(x, size):
    return [x[i:i + size] for i in range(0, len(x), size)]


def norm_model(dropout=None, momentum=0.99):
    inputs = keras.Input((3,))
    x = keras.layers.Dropout(dropout, name="drop")(inputs) if dropout else inputs
    x = keras.layers.BatchNormalization(momentum=momentum, name="norm")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x))


def test_statistics_are_the_mean_of_the_batch_statistics():
    x = np.random.default_rng(0).normal([5.0, -2.0, 0.5], [2.0, 0.5, 1.0], size=(48, 3)).astype("float32")
    model = norm_model()
    assert estimate_batchnorm_statistics(model, batches_of(x, 16)) == 3
    norm = model.get_layer("norm")
    expected_mean = np.mean([b.mean(axis=0) for b in batches_of(x, 16)], axis=0)  # by hand: numpy, not Keras
    expected_var = np.mean([b.var(axis=0) for b in batches_of(x, 16)], axis=0)
    np.testing.assert_allclose(norm.moving_mean.numpy(), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), expected_var, rtol=1e-4)
    assert norm.momentum == 0.99  # restored


def test_dropout_is_off_while_estimating_and_its_rate_restored():
    x = np.random.default_rng(1).normal(3.0, 1.0, size=(64, 3)).astype("float32")
    model = norm_model(dropout=0.5)
    estimate_batchnorm_statistics(model, [(x, np.zeros((64, 1)))])  # (inputs, targets) batches work too
    # with dropout on, half the inputs would be 0 and the rest doubled: the variance would be about 10, not 1
    np.testing.assert_allclose(model.get_layer("norm").moving_variance.numpy(), x.var(axis=0), rtol=1e-4)
    assert model.get_layer("drop").rate == 0.5
    with dropout_off(model):
        np.testing.assert_allclose(model.get_layer("drop")(x, training=True), x)
    assert model.get_layer("drop").rate == 0.5


def test_a_frozen_batchnorm_keeps_its_statistics_and_calibration_still_sets_them():
    x = np.random.default_rng(2).normal(4.0, 2.0, size=(32, 3)).astype("float32")
    model = norm_model()
    model.trainable = False  # as a frozen encoder is
    estimate_batchnorm_statistics(model, [x])
    np.testing.assert_array_equal(model.get_layer("norm").moving_mean.numpy(), np.zeros(3))
    calibrate_batchnorm(model, x)  # a frozen random encoder is calibrated on purpose
    np.testing.assert_allclose(model.get_layer("norm").moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    assert not model.get_layer("norm").trainable


def test_an_empty_batch_list_changes_nothing():
    model = norm_model()
    assert estimate_batchnorm_statistics(model, []) == 0
    np.testing.assert_array_equal(model.get_layer("norm").moving_variance.numpy(), np.ones(3))


@pytest.mark.parametrize("precise", [False, True])
def test_fit_validates_with_statistics_of_the_current_weights(precise):
    """Four steps at momentum 0.99 leave Keras's moving mean at about 4 % of the data's mean of 10: the validation
    loss is then that of badly normalised inputs. With precise statistics it is the mean of the training batches."""
    rng = np.random.default_rng(3)
    x = rng.normal(10.0, 1.0, size=(64, 3)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 30).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    keras.utils.set_random_seed(0)
    model = norm_model()
    compile_model(model, 1e-3, "bce")
    fit(model, train, train, epochs=1, verbose=0, stop_dead=False, precise_batchnorm=precise)
    moving_mean = model.get_layer("norm").moving_mean.numpy()
    if precise:
        np.testing.assert_allclose(moving_mean, x.mean(axis=0), rtol=1e-4)
    else:
        assert np.all(moving_mean < 1.0)


def test_the_callback_averages_only_the_first_batches_it_is_given():
    x = np.repeat(np.arange(5, dtype="float32"), 8)[:, None] * np.ones((1, 3), "float32")  # batch i is all i
    data = tf.data.Dataset.from_tensor_slices((x, np.ones((40, 1), "float32"))).batch(8)
    model = norm_model()
    model.compile("adam", "mse")
    model.fit(data, validation_data=data, epochs=1, verbose=0, callbacks=[PreciseBatchNorm(data, batches=2)])
    np.testing.assert_allclose(model.get_layer("norm").moving_mean.numpy(), np.full(3, 0.5))  # batches 0 and 1
