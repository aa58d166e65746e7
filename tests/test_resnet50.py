"""The ResNet50 classifier (parameter counts, frozen backbone, BatchNorm momentum, save/load, Grad-CAM) and the
classification losses (focal = Keras's own, CE+focal = their sum, by hand)."""

import math

import keras
import numpy as np
import pytest

from labkit.gradcam import grad_cam
from labkit.losses import CEFocalLoss, classification_loss
from labkit.models.classifiers import (RESNET50_LAST_CONV, resnet50_classifier, resnet50_gradcam_layer,
                                      set_batchnorm_momentum)
from labkit.models.transfer import imagenet_backbone

RESNET50_NOTOP_PARAMS = 23_587_712  # keras.applications.ResNet50(include_top=False).count_params()

# Keras's documented example of categorical focal cross-entropy (alpha 0.25, gamma 2).
Y_TRUE = np.array([[0, 1, 0], [0, 0, 1]], np.float32)
Y_PRED = np.array([[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]], np.float32)


def by_hand(p_true, gamma=2.0, alpha=0.25):
    """Focal loss of one sample whose true class has probability `p_true`: −alpha·(1 − p)^gamma·log p."""
    return -alpha * (1 - p_true) ** gamma * math.log(p_true)


@pytest.mark.parametrize("gamma, alpha", [(2.0, 0.25), (0.0, 1.0), (5.0, 0.5)])
def test_focal_loss_equals_keras_own_on_known_values(gamma, alpha):
    loss = classification_loss("focal", gamma=gamma, alpha=alpha)
    keras_value = np.mean(keras.losses.categorical_focal_crossentropy(Y_TRUE, Y_PRED, alpha=alpha, gamma=gamma))
    hand = np.mean([by_hand(0.9, gamma, alpha), by_hand(0.05, gamma, alpha)])
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(float(keras_value), rel=1e-6)
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(hand, rel=1e-4)


def test_keras_documented_focal_values_are_reproduced():
    per_sample = keras.losses.categorical_focal_crossentropy(Y_TRUE, Y_PRED)
    assert np.asarray(per_sample) == pytest.approx([2.63401289e-04, 6.75912094e-01], rel=1e-5)
    assert [by_hand(0.9), by_hand(0.05)] == pytest.approx([2.63401289e-04, 6.75912094e-01], rel=1e-5)


def test_ce_plus_focal_is_the_sum_of_cross_entropy_and_keras_focal():
    loss = classification_loss("ce+focal", gamma=2.0, alpha=0.25)
    assert isinstance(loss, CEFocalLoss)
    hand = np.mean([-math.log(0.9) + by_hand(0.9), -math.log(0.05) + by_hand(0.05)])
    assert float(loss(Y_TRUE, Y_PRED)) == pytest.approx(hand, rel=1e-4)
    weighted = CEFocalLoss(ce_weight=0.5, focal_weight=2.0)
    expected = np.mean([-0.5 * math.log(p) + 2 * by_hand(p) for p in (0.9, 0.05)])
    assert float(weighted(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-4)


def test_ce_plus_focal_from_logits_matches_softmax_probabilities():
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert float(CEFocalLoss(from_logits=True)(Y_TRUE, logits)) == pytest.approx(float(CEFocalLoss()(Y_TRUE, probs)),
                                                                                 rel=1e-5)


def test_ce_plus_focal_round_trips_through_its_config_and_per_class_alpha():
    loss = CEFocalLoss(gamma=1.5, alpha=[0.1, 0.2, 0.7], ce_weight=0.5)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(again, CEFocalLoss) and again.get_config() == loss.get_config()
    # per-class alpha weights each sample by its true class's alpha
    expected = np.mean([-0.5 * math.log(0.9) + by_hand(0.9, 1.5, 0.2), -0.5 * math.log(0.05) + by_hand(0.05, 1.5, 0.7)])
    assert float(again(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-4)


def test_unknown_loss_name_is_rejected():
    from labkit.errors import LabkitInputError

    with pytest.raises(LabkitInputError, match="unknown loss 'dice': choose one of ce, focal, ce\\+focal"):
        classification_loss("dice")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)  # a fixed initialisation: the Grad-CAM test below needs a non-zero map
    return resnet50_classifier((64, 64, 3), n_class=7, weights=None, dropout=0.5, bn_momentum=0.9)


def batchnorm_momenta(parent):
    """Momentum of every BatchNormalization layer in `parent`, nested models included."""
    momenta = []
    for layer in parent.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            momenta.append(layer.momentum)
        if hasattr(layer, "layers"):
            momenta += batchnorm_momenta(layer)
    return momenta


def test_parameter_count_is_resnet50_plus_a_dense_head(model):
    assert model.count_params() == RESNET50_NOTOP_PARAMS + 2048 * 7 + 7
    assert model.output_shape == (None, 7)
    assert [layer.name for layer in model.layers][-3:] == ["avg_pool", "head_dropout", "predictions"]
    assert model.get_layer("predictions").activation is keras.activations.softmax


def test_frozen_backbone_trains_the_head_only():
    frozen = resnet50_classifier((32, 32, 3), n_class=5, weights=None, freeze_backbone=True)
    assert sum(int(np.prod(w.shape)) for w in frozen.trainable_weights) == 2048 * 5 + 5
    assert set(batchnorm_momenta(frozen)) == {0.99}  # Keras's default unless asked


def test_saved_model_keeps_its_loss_and_batchnorm_momentum_and_predicts_the_same(model, tmp_path):
    momenta = batchnorm_momenta(model)
    assert len(momenta) == 53 and set(momenta) == {0.9}  # ResNet50 has 53 BatchNorm layers
    model.compile(optimizer="adam", loss=CEFocalLoss(gamma=2.0, alpha=0.25), metrics=["accuracy"])
    images = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")  # plain Keras, safe mode, no custom_objects
    assert isinstance(again.loss, CEFocalLoss) and set(batchnorm_momenta(again)) == {0.9}
    probabilities = np.asarray(again(images, training=False))
    assert probabilities == pytest.approx(np.asarray(model(images, training=False)), abs=1e-5)
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_set_batchnorm_momentum_counts_the_layers_it_changes():
    backbone = imagenet_backbone("resnet50", (32, 32, 3), weights=None)
    assert set_batchnorm_momentum(backbone, 0.8) == 53 and set(batchnorm_momenta(backbone)) == {0.8}


def test_grad_cam_reaches_the_last_resnet_block_inside_the_nested_backbone(model):
    image = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    heatmap = grad_cam(model, image, layer_name=RESNET50_LAST_CONV)
    assert heatmap.shape == (64, 64) and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() == pytest.approx(1.0)  # scaled to its maximum


@pytest.mark.parametrize("img_size, layer, side", [
    (224, "conv5_block3_out", 7), (128, "conv4_block6_out", 8), (64, "conv3_block4_out", 8),
    (32, "conv2_block3_out", 8), (16, "conv2_block3_out", 4),   # nothing reaches 7 px: the shallowest stage
])
def test_gradcam_layer_is_the_deepest_stage_with_a_usable_map(model, img_size, layer, side):
    assert resnet50_gradcam_layer(img_size) == layer
    if img_size == 64:  # the layer's real feature map in the 64 px model
        inner = model.get_layer("resnet50").get_layer(layer)
        assert inner.output.shape[1:3] == (side, side)
