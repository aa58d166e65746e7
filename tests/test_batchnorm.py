"""Precise BatchNorm statistics: the plain mean of batch statistics, dropout off, frozen layers kept, and in `fit`
the statistics each validation (and the saved model) uses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from labkit.batchnorm import calibrate_batchnorm, dropout_off, estimate_batchnorm_statistics
from labkit.callbacks import PreciseBatchNorm
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


def batch_statistics(batches, axes=0):
    """Mean over `batches` of each batch's mean and (biased) variance over `axes`, by NumPy."""
    return (np.mean([b.mean(axis=axes) for b in batches], axis=0), np.mean([b.var(axis=axes) for b in batches], axis=0))


def test_fit_sets_precise_statistics_on_every_replica_under_a_mirrored_strategy():
    from labkit.runtime import get_strategy

    rng = np.random.default_rng(4)
    x = rng.normal([10.0, -2.0, 5.0], [1.0, 3.0, 0.5], size=(64, 3)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 13).astype("float32")
    strategy = get_strategy("mirrored")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = compile_model(norm_model(), 1e-3, "bce")
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    fit(model, train, train, epochs=1, verbose=0, stop_dead=False, precise_batchnorm=True)
    norm = model.get_layer("norm")
    assert isinstance(norm.moving_mean.value, tf.distribute.DistributedValues)  # a mirrored variable
    mean, variance = batch_statistics(batches_of(x, 16))
    for replica_mean, replica_variance in zip(norm.moving_mean.value.values, norm.moving_variance.value.values):
        np.testing.assert_allclose(replica_mean.numpy(), mean, rtol=1e-5)  # Keras's average: about 4 % of it
        np.testing.assert_allclose(replica_variance.numpy(), variance, rtol=1e-4)


def test_precise_statistics_reach_the_batchnorm_layers_of_a_nested_resnet50():
    from labkit.models.classifiers import resnet50_classifier

    keras.utils.set_random_seed(0)
    model = resnet50_classifier((32, 32, 3), n_class=3, weights=None)
    rng = np.random.default_rng(5)
    x = rng.random((12, 32, 32, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 12)]
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    callback = PreciseBatchNorm(train)  # what fit(precise_batchnorm=True) runs before each validation
    callback.set_model(model)
    callback.on_test_begin()

    # Independently: the input of each chosen layer of the nested "resnet50" on each training batch, from a model cut
    # at that layer and run in training mode (every BatchNorm before it normalising with its batch's statistics, as
    # during the estimate), then NumPy's mean and variance per channel, averaged over the three batches.
    resnet = model.get_layer("resnet50")
    chosen = [resnet.get_layer(name) for name in ("conv1_bn", "conv3_block2_2_bn", "conv5_block3_3_bn")]
    found = [(norm.moving_mean.numpy(), norm.moving_variance.numpy()) for norm in chosen]  # before the cut model runs
    cut = keras.Model(resnet.input, [norm.input for norm in chosen])
    preprocess = model.get_layer("imagenet_preprocess")
    features = [[np.asarray(f) for f in cut(preprocess(batch), training=True)] for batch in batches_of(x, 4)]
    for k, (norm, (moving_mean, moving_variance)) in enumerate(zip(chosen, found)):
        mean, variance = batch_statistics([batch[k] for batch in features], axes=(0, 1, 2))
        np.testing.assert_allclose(moving_mean, mean, rtol=1e-3, atol=1e-4, err_msg=norm.name)
        np.testing.assert_allclose(moving_variance, variance, rtol=1e-3, atol=1e-5, err_msg=norm.name)
