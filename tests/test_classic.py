"""The course's classic classifiers: layer graph, parameter counts against formulas, outputs."""

import keras
import numpy as np
import pytest

from labkit.errors import LabkitInputError
from labkit.models.classic import VGG16_BLOCKS, MLP_model, vgg16_model


def vgg16_parameter_count(width, height, channels, n_base, dense_layers, n_class):
    """3×3 convolutions (weights + bias) of the five blocks, then the dense layers after five 2× poolings."""
    count, previous = 0, channels
    for n_conv, multiple in VGG16_BLOCKS:
        for _ in range(n_conv):
            count += (9 * previous + 1) * n_base * multiple
            previous = n_base * multiple
    flat = (height // 32) * (width // 32) * previous
    for units in (*dense_layers, n_class):
        count += (flat + 1) * units
        flat = units
    return count


@pytest.mark.parametrize("width, height, channels, n_base, dense_layers, n_class", [
    (224, 224, 3, 64, (64,), 2),          # VGG16 itself with the course's head
    (128, 128, 1, 8, (64, 64, 64), 2),    # course Task 3
    (64, 96, 3, 4, (16,), 3),             # not square, three classes
    (32, 32, 1, 2, (), 2),                # no hidden dense layer
])
def test_vgg16_parameter_count_matches_formula(width, height, channels, n_base, dense_layers, n_class):
    model = vgg16_model(width, height, channels, n_base, None, n_class, dense_layers)
    assert model.count_params() == vgg16_parameter_count(width, height, channels, n_base, dense_layers, n_class)
    assert model.input_shape == (None, height, width, channels)
    assert model.output_shape == (None, n_class)


def test_vgg16_batchnorm_adds_four_parameters_per_channel_between_conv_and_relu():
    plain = vgg16_model(64, 64, 1, n_base=2)
    normed = vgg16_model(64, 64, 1, n_base=2, batchnorm=True)
    channels = sum(n_conv * 2 * multiple for n_conv, multiple in VGG16_BLOCKS)
    assert normed.count_params() == plain.count_params() + 4 * channels  # γ, β, moving mean and variance
    names = [layer.name for layer in normed.layers]
    assert names[names.index("Last_ConvLayer") + 1: names.index("Last_ConvLayer") + 3] == ["block5_bn3", "block5_relu3"]


def test_vgg16_full_size_matches_keras_vgg16_convolutions():
    """With n_base 64 the convolutions are VGG16's: same count as keras.applications.VGG16 without its top."""
    ours = vgg16_model(224, 224, 3, n_base=64, dense_layers=())
    conv_params = sum(layer.count_params() for layer in ours.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv_params == keras.applications.VGG16(include_top=False, weights=None).count_params() == 14_714_688


def test_last_conv_layer_is_the_thirteenth_convolution():
    model = vgg16_model(128, 128, 1, n_base=8)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 13
    assert convs[-1].name == "Last_ConvLayer"
    # After four poolings, with 8 × n_base filters, before the fifth pooling.
    assert model.get_layer("Last_ConvLayer").output.shape == (None, 8, 8, 64)


@pytest.mark.parametrize("dropout, expected", [(0.4, 3), (None, 0), (0.0, 0)])
def test_vgg16_dropout_after_each_hidden_dense_layer(dropout, expected):
    model = vgg16_model(64, 64, 1, n_base=2, dropout=dropout, dense_layers=(8, 8, 8))
    kinds = [type(layer).__name__ for layer in model.layers[model.layers.index(model.get_layer("flatten")):]]
    assert kinds.count("Dropout") == expected
    if expected:  # the course's order: Dense → Dropout → ReLU
        assert kinds[1:4] == ["Dense", "Dropout", "Activation"]
        assert all(model.get_layer(f"dropout{i}").rate == pytest.approx(dropout) for i in (1, 2, 3))


def test_vgg16_outputs_are_probabilities():
    model = vgg16_model(32, 32, 3, n_base=2, n_class=3)
    probabilities = model(np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)).numpy()
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_vgg16_single_unit_is_sigmoid():
    model = vgg16_model(32, 32, 1, n_base=2, n_class=1)
    assert model.layers[-1].activation is keras.activations.sigmoid


def test_vgg16_rejects_images_too_small_for_five_poolings():
    with pytest.raises(LabkitInputError, match="at least 32"):
        vgg16_model(16, 16, 1)


@pytest.mark.parametrize("base, dropout, n_class, input_shape", [
    (128, 0.5, 2, (7, 7, 512)),   # course Task 1 on VGG16 features at 224×224
    (128, None, 2, (4, 4, 512)),  # features at 128×128
    (32, 0.2, 7, (1, 1, 2048)),   # ResNet50-like features, seven classes
])
def test_mlp_parameter_count_matches_formula(base, dropout, n_class, input_shape):
    flat = int(np.prod(input_shape))
    expected = (flat + 1) * base + (base + 1) * n_class
    model = MLP_model(base, dropout, n_class, input_shape=input_shape)
    assert model.count_params() == expected
    kinds = [type(layer).__name__ for layer in model.layers]
    expected_kinds = ["Flatten", "Dense"] + (["Dropout"] if dropout else []) + ["Activation", "Dense", "Activation"]
    assert kinds == expected_kinds


def test_mlp_without_input_shape_builds_on_first_data_like_the_course():
    model = MLP_model(16, 0.5, 2)
    assert not model.built
    probabilities = model(np.ones((3, 2, 2, 8), np.float32)).numpy()
    assert model.count_params() == (2 * 2 * 8 + 1) * 16 + (16 + 1) * 2
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_mlp_learns_a_linearly_separable_feature_task():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 2, 2, 4)).astype(np.float32)
    labels = (features[:, 0, 0, 0] > 0).astype(int)
    model = MLP_model(16, None, 2, input_shape=(2, 2, 4))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(features, labels, epochs=30, batch_size=16, verbose=0)
    assert model.evaluate(features, labels, verbose=0)[1] >= 0.95
