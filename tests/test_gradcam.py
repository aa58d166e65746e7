"""Grad-CAM against independent computations: the CAM closed form, and gradients taken through an explicit split."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure

from labkit.errors import LabkitInputError
from labkit.gradcam import find_layer, grad_cam
from labkit.models.classic import vgg16_model
from labkit.models.transfer import imagenet_backbone
from labkit.models.unet import get_unet
from labkit.plots.explain import activation_map_figure, overlay_heatmap


def normalised(cam):
    cam = np.maximum(cam, 0)
    return cam / cam.max()


@pytest.fixture(scope="module")
def gap_classifier():
    """Conv (ReLU) → global average pooling → Dense softmax: Grad-CAM equals CAM (Zhou et al.) up to scale."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="Last_ConvLayer")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("class_index", [0, 1, 2, None])
def test_grad_cam_equals_class_activation_map_for_gap_dense(gap_classifier, class_index):
    """For y_c = mean_ij(A) · W[:, c] + b_c, dy_c/dA_ijk = W[k, c] / (h·w): the map is ReLU(A · W[:, c])."""
    image = np.random.default_rng(2).random((12, 12, 2), dtype=np.float32)
    features = keras.Model(gap_classifier.input, gap_classifier.get_layer("Last_ConvLayer").output)(image[None])[0]
    weights = gap_classifier.get_layer("classes").kernel.numpy()
    expected_class = int(np.argmax(gap_classifier(image[None])[0])) if class_index is None else class_index
    expected = normalised(np.asarray(features) @ weights[:, expected_class])
    np.testing.assert_allclose(grad_cam(gap_classifier, image, class_index=class_index), expected, atol=1e-5)


def test_grad_cam_matches_gradients_through_an_explicit_split():
    """A deeper head (Flatten → Dense tanh → Dense → softmax layer) and a pooled map: the reference splits the model
    at the layer, differentiates the head's logit by hand with its own tape, and resizes with OpenCV."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(3, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="target"),
        keras.layers.Flatten(),
        keras.layers.Dense(6, activation="tanh"),
        keras.layers.Dense(2),
        keras.layers.Activation("softmax"),
    ])
    image = np.random.default_rng(4).random((16, 16, 1), dtype=np.float32)
    split = model.layers.index(model.get_layer("target")) + 1
    features = tf.convert_to_tensor(keras.Model(model.inputs[0], model.get_layer("target").output)(image[None]))
    for class_index in (0, 1):
        with tf.GradientTape() as tape:
            tape.watch(features)
            x = features
            for layer in model.layers[split:-1]:  # the head without the final softmax: the logit
                x = layer(x)
            logit = x[0, class_index]
        gradients = tape.gradient(logit, features)[0].numpy()
        low = np.maximum((gradients.mean(axis=(0, 1)) * features[0].numpy()).sum(axis=-1), 0)
        expected = cv2.resize(low, (16, 16), interpolation=cv2.INTER_LINEAR)
        expected = expected / expected.max()
        heatmap = grad_cam(model, image, layer_name="target", class_index=class_index)
        assert heatmap.shape == (16, 16)
        np.testing.assert_allclose(heatmap, expected, atol=1e-4)


def test_grad_cam_leaves_the_model_unchanged(gap_classifier):
    image = np.random.default_rng(5).random((1, 12, 12, 2), dtype=np.float32)
    before = gap_classifier(image).numpy()
    grad_cam(gap_classifier, image)
    np.testing.assert_allclose(gap_classifier(image).numpy(), before)  # softmax back, layer call unwrapped
    assert "call" not in gap_classifier.get_layer("Last_ConvLayer").__dict__


@pytest.fixture(scope="module")
def nested_transfer_model():
    """An ImageNet-style transfer classifier: the VGG16 backbone is a nested model inside the classifier."""
    keras.utils.set_random_seed(6)
    backbone = imagenet_backbone("vgg16", (64, 64, 1), weights=None)
    inputs = keras.Input((64, 64, 1))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    outputs = keras.layers.Dense(2, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs), backbone


def test_grad_cam_on_nested_backbone_has_the_input_size(nested_transfer_model):
    model, _ = nested_transfer_model
    assert find_layer(model).name == "block5_conv3"  # inside the nested model, not the pooled backbone output
    image = np.random.default_rng(7).random((64, 64, 1), dtype=np.float32)
    for layer_name in (None, "block4_conv3"):
        heatmap = grad_cam(model, image, layer_name=layer_name)
        assert heatmap.shape == (64, 64) and heatmap.dtype == np.float32
        assert np.isfinite(heatmap).all() and heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)


def test_grad_cam_on_nested_layer_matches_closed_form(nested_transfer_model):
    """At the backbone's last layer (block5_pool, 2×2 at 64×64) a GAP + Dense head makes Grad-CAM the CAM closed
    form, with the features computed by calling the backbone on its own and the map resized by OpenCV."""
    model, backbone = nested_transfer_model
    image = np.random.default_rng(8).random((64, 64, 1), dtype=np.float32)
    features = backbone(image[None])[0].numpy()
    weights = model.get_layer("classes").kernel.numpy()
    assert features.shape == (2, 2, 512)
    assert max(np.maximum(features @ weights, 0).max(axis=(0, 1))) > 0  # at least one class has a non-trivial map
    for class_index in (0, 1):
        low = np.maximum(features @ weights[:, class_index], 0)
        if low.max() == 0:  # nothing raises this class's score: an all-zero map
            expected = np.zeros((64, 64), np.float32)
        else:
            expected = cv2.resize(low, (64, 64), interpolation=cv2.INTER_LINEAR)
            expected /= expected.max()
        heatmap = grad_cam(model, image, layer_name="block5_pool", class_index=class_index)
        np.testing.assert_allclose(heatmap, expected, atol=1e-4)


def test_grad_cam_of_a_segmenter_is_the_foreground_logit_map():
    """Features → 1×1 conv → sigmoid: score = mean logit, dscore/dA_ijk = w_k/(h·w), so the map is ReLU(A · w)."""
    keras.utils.set_random_seed(9)
    inputs = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(features)
    model = keras.Model(inputs, outputs)
    assert find_layer(model).name == "features"  # the output layer itself is never the default
    image = np.random.default_rng(10).random((16, 16, 1), dtype=np.float32)
    a = keras.Model(inputs, features)(image[None])[0].numpy()
    w = model.get_layer("mask").kernel.numpy()[0, 0, :, 0]
    np.testing.assert_allclose(grad_cam(model, image), normalised(a @ w), atol=1e-5)


def test_grad_cam_of_a_unet_has_the_input_size():
    model = get_unet((32, 32, 1), base=2)
    heatmap = grad_cam(model, np.random.default_rng(11).random((32, 32, 1), dtype=np.float32))
    assert heatmap.shape == (32, 32) and 0 <= heatmap.min() and heatmap.max() <= 1
    assert find_layer(model) is not model.layers[-1]


def test_course_vgg16_defaults_to_last_conv_layer():
    model = vgg16_model(32, 32, 1, n_base=2)
    assert find_layer(model).name == "Last_ConvLayer"
    heatmap = grad_cam(model, np.ones((32, 32, 1), np.float32))
    assert heatmap.shape == (32, 32)


@pytest.mark.parametrize("call, message", [
    (lambda m: grad_cam(m, np.zeros((2, 12, 12, 2), np.float32)), "one image at a time"),
    (lambda m: grad_cam(m, np.zeros((12, 12, 2), np.float32), layer_name="nope"), "'nope' not found"),
    (lambda m: grad_cam(m, np.zeros((12, 12, 2), np.float32), class_index=3), "class_index 3"),
])
def test_grad_cam_bad_input_names_the_problem(gap_classifier, call, message):
    with pytest.raises(LabkitInputError, match=message):
        call(gap_classifier)


def test_overlay_blends_colour_over_grey_image():
    image = np.full((4, 6, 1), 0.5, np.float32)
    heatmap = np.zeros((4, 6), np.float32)
    np.testing.assert_allclose(overlay_heatmap(image, heatmap, alpha=0.0), np.full((4, 6, 3), 0.5))
    jet_zero = np.array([0.0, 0.0, 0.5])  # the jet colormap at 0 is dark blue
    np.testing.assert_allclose(overlay_heatmap(image, heatmap, alpha=1.0)[0, 0], jet_zero, atol=0.01)
    assert overlay_heatmap(image, np.zeros((2, 3)), alpha=0.5).shape == (4, 6, 3)  # heatmap resized to the image


def test_activation_map_figure_has_three_panels_per_image():
    images = [np.random.default_rng(i).random((8, 8, 1)) for i in range(2)]
    figure = activation_map_figure(images, [np.eye(8)] * 2, titles=["AFF", "NFF"])
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 6
    assert [figure.axes[i].get_title() for i in (0, 1, 2, 3)] == ["AFF", "Grad-CAM", "overlay", "NFF"]
