"""TensorBoard logs: the mask strips, the image callback, and a lab run with --tensorboard read back by TensorBoard's
own event reader (the epoch scalars equal history.csv; the images are the validation images and their masks)."""

import csv

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit
from tensorboard.backend.event_processing import event_accumulator

from labkit import LabkitInputError
from labkit.callbacks.tensorboard_images import GAP, IMAGES_RUN, SegmentationImages, default_interval, mask_strip


def read_events(folder):
    """``{tag: [(step, value), …]}`` of one TensorBoard run folder: floats for scalars, RGB arrays for images."""
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    events = {}
    for tag in accumulator.Tags()["tensors"]:
        plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        values = []
        for event in accumulator.Tensors(tag):
            array = tf.make_ndarray(event.tensor_proto)
            if plugin == "images":  # [width, height, png bytes, …]
                value = cv2.imdecode(np.frombuffer(array[2], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
            else:
                value = float(array)
            values.append((event.step, value))
        events[tag] = values
    return events


def panels(strip, width):
    """The four panels of a `mask_strip`, cut at the `GAP`-wide separators."""
    return [strip[:, i * (width + GAP): i * (width + GAP) + width] for i in range(4)]


@pytest.mark.parametrize("channels", [1, 3])
def test_mask_strip_panels_and_overlay_colours(channels):
    rng = np.random.default_rng(0)
    image = rng.random((12, 10, channels)).astype(np.float32)
    mask = np.zeros((12, 10, 1), np.float32)
    mask[2:8, 2:6] = 1
    prediction = np.full((12, 10, 1), 0.2, np.float32)
    prediction[4:10, 4:8] = 0.7
    strip = mask_strip(image, mask, prediction)
    assert strip.shape == (12, 4 * 10 + 3 * GAP, 3) and strip.dtype == np.uint8
    assert (strip[:, 10:10 + GAP] == 255).all()
    base = np.repeat(image, 3, axis=-1) if channels == 1 else image
    shown_image, shown_mask, shown_prediction, overlay = panels(strip, 10)
    np.testing.assert_array_equal(shown_image, (base * 255).round())
    np.testing.assert_array_equal(shown_mask, np.repeat(mask * 255, 3, axis=-1))
    np.testing.assert_array_equal(shown_prediction, np.repeat((prediction * 255).round(), 3, axis=-1))
    expected = {(2, 2): (0, 1, 0), (9, 7): (1, 0, 0), (5, 5): (1, 1, 0)}  # true only, predicted only, both
    for (y, x), colour in expected.items():
        np.testing.assert_allclose(overlay[y, x], ((0.5 * base[y, x] + 0.5 * np.array(colour)) * 255).round(), atol=1)
    np.testing.assert_array_equal(overlay[0, 0], shown_image[0, 0])  # neither: the image itself


def test_mask_strip_names_mismatched_shapes():
    with pytest.raises(LabkitInputError, match="same height and width"):
        mask_strip(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), np.zeros((6, 8, 1)))


@pytest.mark.parametrize("epochs, interval", [(150, 15), (12, 1), (2, 1), (25, 2), (1, 1)])
def test_default_interval_gives_about_ten_snapshots(epochs, interval):
    assert default_interval(epochs) == interval


def one_by_one_conv(activation):
    """A segmenter whose output is activation(2·x − 1) per pixel, so its predictions are known exactly."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 1, activation=activation)])
    model.layers[0].set_weights([np.full((1, 1, 1, 1), 2.0, np.float32), np.array([-1.0], np.float32)])
    return model


def run_callback(callback, model, epochs):
    """Drive the callback through a training run of `epochs` epochs, as `Model.fit` would."""
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "verbose": 0, "steps": 1})
    callback.on_train_begin()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": 0.0})
    callback.on_train_end()


@pytest.mark.parametrize("activation, from_logits", [("sigmoid", False), ("linear", True)])
def test_callback_logs_every_n_epochs_and_the_last(tmp_path, activation, from_logits):
    images = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)
    masks = (images > 0.5).astype(np.float32)
    callback = SegmentationImages(tmp_path, images, masks, every=2, names=["a", "b"], from_logits=from_logits)
    run_callback(callback, one_by_one_conv(activation), epochs=5)
    events = read_events(tmp_path / IMAGES_RUN)
    assert sorted(events) == ["validation/a", "validation/b"]
    for index, tag in enumerate(("validation/a", "validation/b")):
        assert [step for step, _ in events[tag]] == [1, 3, 4]  # epochs 2 and 4, and the last (0-based steps)
        image, mask, prediction, _ = panels(events[tag][-1][1], 8)
        np.testing.assert_allclose(image[..., 0], images[index, ..., 0] * 255, atol=1)
        np.testing.assert_array_equal(mask[..., 0], masks[index, ..., 0] * 255)
        np.testing.assert_allclose(prediction[..., 0], expit(2 * images[index, ..., 0] - 1) * 255, atol=1)


def test_volumes_are_drawn_by_their_middle_slice(tmp_path):
    volumes = np.random.default_rng(2).random((1, 8, 8, 5, 1)).astype(np.float32)
    labels = (volumes > 0.5).astype(np.float32)
    model = keras.Sequential([keras.Input((8, 8, 5, 1)), keras.layers.Conv3D(1, 1, activation="sigmoid")])
    model.layers[0].set_weights([np.full((1, 1, 1, 1, 1), 2.0, np.float32), np.array([-1.0], np.float32)])
    run_callback(SegmentationImages(tmp_path, volumes, labels, names=["case"]), model, epochs=1)
    (step, strip), = read_events(tmp_path / IMAGES_RUN)["validation/case"]
    image, label, prediction, _ = panels(strip, 8)
    np.testing.assert_allclose(image[..., 0], volumes[0, :, :, 2, 0] * 255, atol=1)  # slice 2 of 0…4
    np.testing.assert_array_equal(label[..., 0], labels[0, :, :, 2, 0] * 255)
    np.testing.assert_allclose(prediction[..., 0], expit(2 * volumes[0, :, :, 2, 0] - 1) * 255, atol=1)


def test_from_dataset_takes_the_first_images_and_names(tmp_path):
    images = np.arange(5 * 4 * 4, dtype=np.float32).reshape(5, 4, 4, 1) / 80
    masks = (images > 0.5).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)
    callback = SegmentationImages.from_dataset(tmp_path, dataset, n_images=3, names=list("vwxyz"))
    np.testing.assert_array_equal(callback.images, images[:3])
    np.testing.assert_array_equal(callback.masks, masks[:3])
    assert callback.names == ["v", "w", "x"]


def test_callback_rejects_bad_arguments(tmp_path):
    with pytest.raises(LabkitInputError, match="2 images but 1 masks"):
        SegmentationImages(tmp_path, np.zeros((2, 8, 8, 1)), np.zeros((1, 8, 8, 1)))
    with pytest.raises(LabkitInputError, match="at least 1 epoch"):
        SegmentationImages(tmp_path, np.zeros((1, 8, 8, 1)), np.zeros((1, 8, 8, 1)), every=0)


@pytest.mark.slow
def test_lab_run_with_tensorboard_writes_scalars_and_images(lab_runner, tmp_path):
    from labkit.data.pipeline import decode_image
    from labkit.data.synthetic import xray_dataset

    data = xray_dataset(n_images=16, size=64, root=tmp_path / "data")
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner("lab4_unet", ["--data-dir", data, "--img-size", 32, "--epochs", 2,
                                                    "--batch-size", 4, "--quiet", "--tensorboard", "--out", out])
    assert code == 0, stderr
    with open(out / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    train, validation = read_events(out / "tensorboard" / "train"), read_events(out / "tensorboard" / "validation")
    for metric in ("loss", "dice_coef"):
        assert [step for step, _ in train[f"epoch_{metric}"]] == [0, 1]
        np.testing.assert_allclose([v for _, v in train[f"epoch_{metric}"]], [float(r[metric]) for r in history],
                                   rtol=1e-5)
        np.testing.assert_allclose([v for _, v in validation[f"epoch_{metric}"]],
                                   [float(r[f"val_{metric}"]) for r in history], rtol=1e-5)

    with open(out / "per_image.csv", newline="") as handle:
        val_names = [row["name"] for row in csv.DictReader(handle)]
    images = read_events(out / "tensorboard" / IMAGES_RUN)
    shown = [name.removesuffix(".png") for name in val_names[:3]]
    assert sorted(images) == sorted(f"validation/{name}" for name in shown)
    for name in shown:
        steps = images[f"validation/{name}"]
        assert [step for step, _ in steps] == [0, 1]
        image, mask, _, _ = panels(steps[-1][1], 32)
        assert image.shape == (32, 32, 3)
        expected = decode_image(str(data / "Image" / f"{name}.png"), 32).numpy()[..., 0] * 255
        np.testing.assert_allclose(image[..., 0], expected, atol=1)
        assert set(np.unique(mask)) == {0, 255}
