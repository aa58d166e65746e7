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


# --- Lab 2–3 options: LeNet, AlexNet, VGG16 (batch norm, spatial dropout, dropout, softmax and hinge heads) ---------

def conv3x3(c_in, c_out):
    return 9 * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def lab3_head_units(n_class):
    return 1 if n_class <= 2 else n_class


def lenet_formula(w, h, c, base, n_class, batchnorm):
    """Two convolutions (base, 2·base), two 2× poolings, Dense(2·base), the head; BN: 4 numbers per channel."""
    total = conv3x3(c, base) + conv3x3(base, 2 * base)
    total += 4 * (base + 2 * base) if batchnorm else 0
    return total + dense((w // 4) * (h // 4) * 2 * base, 2 * base) + dense(2 * base, lab3_head_units(n_class))


def alexnet_formula(w, h, c, n, n_class, batchnorm, widths=(64, 64)):
    """Convolutions n·(1, 2, 4, 4, 2), three 2× poolings, two hidden dense layers, the head."""
    filters = [n, 2 * n, 4 * n, 4 * n, 2 * n]
    total = sum(conv3x3(a, b) for a, b in zip([c, *filters], filters))
    total += 4 * sum(filters) if batchnorm else 0
    sizes = [(w // 8) * (h // 8) * 2 * n, *widths, lab3_head_units(n_class)]
    return total + sum(dense(a, b) for a, b in zip(sizes, sizes[1:]))


def vgg16_lab3_formula(w, h, c, n, n_class, batchnorm, widths=(64, 64)):
    """13 convolutions n·(1,1,2,2,4,4,4,8,8,8,8,8,8), five 2× poolings, the dense widths, the Lab 3 head."""
    filters = [n, n, 2 * n, 2 * n, 4 * n, 4 * n, 4 * n] + [8 * n] * 6
    total = sum(conv3x3(a, b) for a, b in zip([c, *filters], filters))
    total += 4 * sum(filters) if batchnorm else 0
    sizes = [(w // 32) * (h // 32) * 8 * n, *widths, lab3_head_units(n_class)]
    return total + sum(dense(a, b) for a, b in zip(sizes, sizes[1:]))


OPTIONS = [  # batchnorm, spatial_dropout, dropout, n_class — every combination that changes the graph
    (False, None, None, 2), (True, None, None, 2), (False, 0.1, None, 2), (False, None, 0.4, 2),
    (True, 0.1, 0.4, 2), (True, 0.1, 0.4, 9), (False, None, None, 9),
]


@pytest.mark.parametrize("batchnorm, spatial_dropout, dropout, n_class", OPTIONS)
def test_lenet_parameter_count_for_every_option(batchnorm, spatial_dropout, dropout, n_class):
    from labkit.models.lenet_alexnet import lenet_model
    model = lenet_model(32, 48, 1, 4, n_class=n_class, batchnorm=batchnorm, spatial_dropout=spatial_dropout,
                        dropout=dropout)
    assert model.count_params() == lenet_formula(32, 48, 1, 4, n_class, batchnorm)
    assert model.output_shape == (None, lab3_head_units(n_class))


@pytest.mark.parametrize("batchnorm, spatial_dropout, dropout, n_class", OPTIONS)
def test_alexnet_parameter_count_for_every_option(batchnorm, spatial_dropout, dropout, n_class):
    from labkit.models.lenet_alexnet import alexnet_model
    model = alexnet_model(32, 32, 3, 4, dropout=dropout, n_class=n_class, batchnorm=batchnorm,
                          spatial_dropout=spatial_dropout)
    assert model.count_params() == alexnet_formula(32, 32, 3, 4, n_class, batchnorm)


@pytest.mark.parametrize("batchnorm, n_class", [(False, 2), (True, 2), (True, 9)])
def test_vgg16_lab3_parameter_count_with_and_without_batchnorm(batchnorm, n_class):
    model = vgg16_model(64, 32, 1, 2, dropout=0.4, batchnorm=batchnorm, spatial_dropout=0.1, n_class=n_class,
                        first2_dense=(64, 64))
    assert model.count_params() == vgg16_lab3_formula(64, 32, 1, 2, n_class, batchnorm)


def kinds_from(model, first, count):
    names = [layer.name for layer in model.layers]
    return [type(layer).__name__ for layer in model.layers[names.index(first):names.index(first) + count]]


def test_batchnorm_sits_between_each_convolution_and_its_relu():
    from labkit.models.lenet_alexnet import alexnet_model, lenet_model
    lenet = lenet_model(32, 32, 1, 4, batchnorm=True, spatial_dropout=0.1)
    assert lenet.get_layer("block1_conv").activation is keras.activations.linear  # ReLU only after the BN
    assert kinds_from(lenet, "block1_conv", 5) == ["Conv2D", "BatchNormalization", "Activation", "SpatialDropout2D",
                                                   "MaxPooling2D"]
    alexnet = alexnet_model(32, 32, 1, 4, batchnorm=True, spatial_dropout=0.1)
    for index in range(1, 6):
        assert kinds_from(alexnet, f"conv{index}", 4) == ["Conv2D", "BatchNormalization", "Activation",
                                                          "SpatialDropout2D"]
    assert [layer.rate for layer in alexnet.layers if isinstance(layer, keras.layers.SpatialDropout2D)] == \
        pytest.approx([0.1] * 5)
    vgg = vgg16_model(32, 32, 1, 2, batchnorm=True, spatial_dropout=0.1, first2_dense=(8, 8))
    assert kinds_from(vgg, "block1_conv1", 7) == ["Conv2D", "BatchNormalization", "Activation", "Conv2D",
                                                  "BatchNormalization", "Activation", "SpatialDropout2D"]
    assert sum(isinstance(layer, keras.layers.SpatialDropout2D) for layer in vgg.layers) == 5  # one per block


def test_default_graphs_are_the_handout_graphs():
    """No option: LeNet keeps the handout's fused Conv+ReLU and Dense+ReLU, and no model grows an extra layer."""
    from labkit.models.lenet_alexnet import alexnet_model, lenet_model
    lenet = lenet_model(32, 32, 1, 4)
    assert [type(layer).__name__ for layer in lenet.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense", "Activation"]
    assert lenet.get_layer("block1_conv").activation is keras.activations.relu
    regularisers = (keras.layers.BatchNormalization, keras.layers.Dropout, keras.layers.SpatialDropout2D)
    for built in (alexnet_model(32, 32, 1, 4), vgg16_model(32, 32, 1, 2, first2_dense=(8, 8))):
        assert not any(isinstance(layer, regularisers) for layer in built.layers), built.name


def test_lenet_dropout_follows_the_hidden_dense_layer():
    from labkit.models.lenet_alexnet import lenet_model
    model = lenet_model(32, 32, 1, 4, dropout=0.4)
    assert kinds_from(model, "dense1", 2) == ["Dense", "Dropout"]
    assert model.get_layer("dropout1").rate == pytest.approx(0.4)


def test_course_names_batch_norm_and_s_dropout_equal_the_labkit_keywords():
    from labkit.models.lenet_alexnet import alexnet_model
    course = alexnet_model(32, 32, 1, 4, 0.4, 2, [16, 8], True, 0.1)
    labkit_names = alexnet_model(32, 32, 1, 4, dropout=0.4, first2_dense=(16, 8), batchnorm=True, spatial_dropout=0.1)
    assert [type(layer).__name__ for layer in course.layers] == [type(layer).__name__ for layer in labkit_names.layers]
    with pytest.raises(LabkitInputError, match="disagree"):
        alexnet_model(32, 32, 1, 4, s_dropout=0.1, spatial_dropout=0.2)


@pytest.mark.parametrize("bad", [1.5, -0.1, "lots"])
def test_impossible_rates_are_input_errors(bad):
    from labkit.models.lenet_alexnet import lenet_model
    with pytest.raises(LabkitInputError, match="spatial_dropout"):
        lenet_model(32, 32, 1, 4, spatial_dropout=bad)
    with pytest.raises(LabkitInputError, match="dropout"):
        vgg16_model(32, 32, 1, 2, dropout=bad)


def test_hinge_head_is_one_linear_score_and_learns_with_minus_one_one_labels():
    """Hinge loss max(0, 1 − y·s) needs an unbounded score s: one linear unit; the class is the sign of s."""
    from labkit.models.lenet_alexnet import alexnet_model, lenet_model
    for built in (lenet_model(32, 32, 1, 2, hinge=True), alexnet_model(32, 32, 1, 2, hinge=True),
                  vgg16_model(32, 32, 1, 2, first2_dense=(8, 8), hinge=True)):
        assert built.output_shape == (None, 1)
        assert built.layers[-1].activation is keras.activations.linear, built.name
    with pytest.raises(LabkitInputError, match="hinge"):
        lenet_model(32, 32, 1, 2, n_class=9, hinge=True)

    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 32, 32, 1)).astype(np.float32)
    labels = np.where(np.arange(32) % 2 == 0, 1.0, -1.0).astype(np.float32)
    images[labels > 0, 8:24, 8:24] += 2.0  # a bright square marks the +1 class
    keras.utils.set_random_seed(0)
    model = lenet_model(32, 32, 1, 4, hinge=True)
    model.compile(keras.optimizers.Adam(3e-3), "hinge")
    before = model.evaluate(images, labels, verbose=0)
    model.fit(images, labels, epochs=15, batch_size=8, verbose=0)
    assert model.evaluate(images, labels, verbose=0) < 0.5 * before
    assert np.mean(np.sign(model.predict(images, verbose=0)[:, 0]) == labels) >= 0.9
