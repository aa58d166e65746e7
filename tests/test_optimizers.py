"""Per-group learning rates: exact SGD updates, Adam step sizes, frozen groups, fit, save/load, schedules."""

import h5py
import keras
import numpy as np
import pytest

from labkit.errors import LabkitInputError
from labkit.optimizers import GroupedOptimizer, per_layer_learning_rates


def _variables(scale=1.0):
    rng = np.random.default_rng(0)
    return [keras.Variable((scale * rng.normal(size=(3, 2))).astype("float32"), name=n) for n in ("a", "b", "c")]


@pytest.mark.parametrize("rate_a, rate_b, rate_rest", [(0.0, 0.1, 0.01), (0.5, 0.0, 0.2), (1e-3, 1e-3, 1e-3),
                                                       (0.25, 2.0, 0.0625)])
def test_sgd_update_is_each_groups_rate_times_the_gradient(rate_a, rate_b, rate_rest):
    variables = _variables()
    start = [v.numpy().copy() for v in variables]
    grads = [np.full((3, 2), g, np.float32) for g in (1.0, -2.0, 4.0)]
    optimizer = GroupedOptimizer(keras.optimizers.SGD(rate_rest), [
        {"name": "A", "learning_rate": rate_a, "paths": ["a"]},
        {"name": "B", "learning_rate": rate_b, "paths": ["b"]},
    ])
    optimizer.apply(grads, variables)
    for variable, before, grad, rate in zip(variables, start, grads, (rate_a, rate_b, rate_rest)):
        np.testing.assert_allclose(variable.numpy(), before - rate * grad, rtol=1e-6, atol=1e-7)
    assert int(optimizer.iterations) == 1
    assert [optimizer.group_of(v) for v in variables] == ["A", "B", None]


def test_adam_first_step_moves_each_group_by_its_own_rate():
    # Adam's first step is lr · g / (|g| + ε/√(1−β₂)) ≈ lr · sign(g) per element, whatever the gradient's scale.
    variables = _variables(scale=1e-3)  # small weights: float32 rounding of w − step stays far below the step
    start = [v.numpy().copy() for v in variables]
    grads = [np.full((3, 2), g, np.float32) for g in (0.3, -5.0, 20.0)]
    optimizer = GroupedOptimizer(keras.optimizers.Adam(1e-2), [{"name": "A", "learning_rate": 1e-4, "paths": ["a"]},
                                                             {"name": "B", "learning_rate": 1e-3, "paths": ["b"]}])
    optimizer.apply(grads, variables)
    for variable, before, grad, rate in zip(variables, start, grads, (1e-4, 1e-3, 1e-2)):
        np.testing.assert_allclose(variable.numpy() - before, -rate * np.sign(grad), rtol=1e-4)


def test_a_group_at_rate_zero_is_never_touched_even_by_nan_gradients():
    variables = _variables()
    start = [v.numpy().copy() for v in variables]
    grads = [np.full((3, 2), np.nan, np.float32), np.ones((3, 2), np.float32), np.ones((3, 2), np.float32)]
    optimizer = GroupedOptimizer(keras.optimizers.AdamW(1e-2, weight_decay=0.1),
                                 [{"name": "frozen", "learning_rate": 0.0, "paths": ["a"]}])
    for _ in range(3):
        optimizer.apply(grads, variables)
    assert np.array_equal(variables[0].numpy(), start[0])  # bit-identical: no step, no weight decay
    assert not np.allclose(variables[1].numpy(), start[1])
    assert optimizer.group_learning_rate("frozen") == 0.0


def _two_layer_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="encoder_dense")(inputs)
    outputs = keras.layers.Dense(1, name="decoder_dense")(hidden)
    return keras.Model(inputs, outputs)


def _data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)).astype("float32")


def test_fit_trains_only_the_groups_with_a_positive_rate():
    model = _two_layer_model()
    encoder = model.get_layer("encoder_dense")
    before_encoder = [w.numpy().copy() for w in encoder.weights]
    before_decoder = [w.numpy().copy() for w in model.get_layer("decoder_dense").weights]
    model.compile(optimizer=per_layer_learning_rates(keras.optimizers.Adam(1e-2), model, {encoder: 0.0}), loss="mse")
    model.fit(*_data(), epochs=2, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before_encoder, encoder.weights))
    assert not any(np.array_equal(a, b.numpy())
                   for a, b in zip(before_decoder, model.get_layer("decoder_dense").weights))


def test_saved_model_reloads_with_its_optimizer_state_and_trains_on_identically(tmp_path):
    model = _two_layer_model()
    optimizer = per_layer_learning_rates(keras.optimizers.Adam(1e-2), model, {"encoder_dense": 1e-3})
    model.compile(optimizer=optimizer, loss="mse")
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)

    reloaded = keras.saving.load_model(path)  # plain load: no custom_objects
    assert isinstance(reloaded.optimizer, GroupedOptimizer)
    assert reloaded.optimizer.get_config()["groups"] == optimizer.get_config()["groups"]
    assert reloaded.optimizer.group_learning_rate("encoder_dense") == pytest.approx(1e-3)
    assert int(reloaded.optimizer.iterations) == int(optimizer.iterations) == 8
    for saved, loaded in zip(optimizer.variables, reloaded.optimizer.variables):
        assert np.array_equal(saved.numpy(), loaded.numpy()), saved.path
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    reloaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.weights, reloaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)

    # Adam keeps two slots per weight; the file must hold them once (plus 2 scalars for each of 3 optimizers).
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    sizes = []
    with h5py.File(_weights_file(path, tmp_path), "r") as weights:
        weights["optimizer"].visititems(lambda name, item: sizes.append(item.size)
                                        if isinstance(item, h5py.Dataset) else None)
    assert sum(sizes) == 2 * trainable + 6


def _weights_file(keras_file, folder):
    import zipfile

    with zipfile.ZipFile(keras_file) as archive:
        archive.extract("model.weights.h5", folder)
    return folder / "model.weights.h5"


@pytest.mark.parametrize("inner", [keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.Adam(3e-4)])
def test_config_round_trip_keeps_the_inner_optimizer_and_groups(inner):
    groups = [{"name": "encoder", "learning_rate": 1e-5, "paths": ["x/kernel", "x/bias"]},
              {"name": "head", "learning_rate": 0.0, "paths": ["y/kernel"]}]
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(GroupedOptimizer(inner, groups)))
    assert isinstance(clone, GroupedOptimizer)
    assert clone.get_config()["groups"] == groups
    assert type(clone.inner_optimizer) is type(inner)
    assert clone.inner_optimizer.get_config() == inner.get_config()


def test_setting_the_learning_rate_scales_every_group_as_reduce_lr_on_plateau_expects():
    optimizer = GroupedOptimizer(keras.optimizers.Adam(1e-3), [{"name": "e", "learning_rate": 1e-4, "paths": ["a"]},
                                                             {"name": "f", "learning_rate": 0.0, "paths": ["b"]}])
    optimizer.learning_rate = 2.5e-4
    assert float(optimizer.learning_rate) == pytest.approx(2.5e-4)
    assert optimizer.group_learning_rate("e") == pytest.approx(2.5e-5)
    assert optimizer.group_learning_rate("f") == 0.0


@pytest.mark.parametrize("groups, message", [
    ([{"name": "g", "learning_rate": -1e-3, "paths": ["a"]}], "must be >= 0"),
    ([{"name": "g", "learning_rate": 1e-3, "paths": ["a"]}, {"name": "h", "learning_rate": 0.0, "paths": ["a"]}],
     "in two groups"),
])
def test_bad_groups_are_refused(groups, message):
    with pytest.raises(LabkitInputError, match=message):
        GroupedOptimizer(keras.optimizers.SGD(0.1), groups)


def test_layers_whose_variable_paths_clash_are_refused():
    # Functional models build their layers outside any name scope: a nested layer's path does not carry the model's
    # name, so two layers named alike in different models share paths.
    inner_inputs = keras.Input((3,))
    inner = keras.Model(inner_inputs, keras.layers.Dense(2, name="shared")(inner_inputs), name="inner")
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(1, name="shared")(inner(inputs))
    model = keras.Model(inputs, outputs)
    with pytest.raises(LabkitInputError, match="shared/kernel"):
        per_layer_learning_rates(keras.optimizers.SGD(0.1), model, {"inner": 0.01})


def test_optimizer_by_name_gives_the_named_optimizer_at_the_learning_rate():
    from labkit.errors import LabkitInputError
    from labkit.optimizers import optimizer_by_name

    for name, kind in (("adam", keras.optimizers.Adam), ("sgd", keras.optimizers.SGD),
                       ("rmsprop", keras.optimizers.RMSprop)):
        optimizer = optimizer_by_name(name, 3e-4)
        assert type(optimizer) is kind and float(optimizer.learning_rate) == pytest.approx(3e-4)
    with pytest.raises(LabkitInputError, match="unknown optimizer 'adagrad': choose one of adam, sgd, rmsprop"):
        optimizer_by_name("adagrad", 1e-3)


def test_groups_with_schedules_follow_them_and_reload_where_they_stopped(tmp_path):
    from labkit.optimizers import learning_rate_schedule

    model = _two_layer_model()
    decoder, encoder = (learning_rate_schedule(rate, "cosine", total_steps=20) for rate in (1e-2, 1e-3))
    optimizer = per_layer_learning_rates(keras.optimizers.Adam(decoder), model, {"encoder_dense": encoder})
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(*_data(), epochs=2, batch_size=8, verbose=0)  # 8 of the 20 steps
    assert int(optimizer.iterations) == 8
    assert optimizer.group_learning_rate("encoder_dense") == pytest.approx(float(encoder(8)), rel=1e-6)
    assert float(optimizer.learning_rate) == pytest.approx(float(decoder(8)), rel=1e-6)
    assert float(encoder(8)) / float(decoder(8)) == pytest.approx(0.1)  # one curve, each group to its own peak

    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras").optimizer
    assert reloaded.get_config()["groups"] == optimizer.get_config()["groups"]
    assert reloaded.get_config()["groups"][0]["learning_rate"]["class_name"] == "CosineDecay"  # not a frozen number
    assert reloaded.group_learning_rate("encoder_dense") == pytest.approx(float(encoder(8)), rel=1e-6)


def test_encoder_decoder_optimizer_decays_both_rates_along_the_cosine():
    from labkit.models.mobilenet_seg import encoder_decoder_optimizer

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, name="head")(keras.layers.Dense(8, name="encoder")(inputs))
    model = keras.Model(inputs, outputs)
    optimizer = encoder_decoder_optimizer(model, 1e-4, 1e-3, lr_schedule="cosine", total_steps=10)
    model.compile(optimizer=optimizer, loss="mse")
    x, y = _data()
    rates = []
    for _ in range(10):
        model.train_on_batch(x[:8], y[:8])
        rates.append((optimizer.group_learning_rate("encoder"), float(optimizer.learning_rate)))
    # warm-up over the first step to the peaks (1e-4, 1e-3), then half a cosine down to 0 at step 10
    assert rates[0] == pytest.approx((1e-4, 1e-3), rel=1e-5)
    assert rates[4] == pytest.approx((0.5e-4 * (1 + np.cos(np.pi * 4 / 9)), 0.5e-3 * (1 + np.cos(np.pi * 4 / 9))),
                                     rel=1e-4)
    assert rates[-1] == pytest.approx((0.0, 0.0), abs=1e-12)
    frozen = encoder_decoder_optimizer(model, 0.0, 1e-3, lr_schedule="cosine", total_steps=10)
    assert frozen.group_learning_rate("encoder") == 0.0  # a frozen encoder stays frozen
