"""Course notebooks on labkit (issue 16): the handout flows of Labs 1–5 written with the course's names only, at tiny
sizes, plus the builders' parameter counts against formulas written out here."""

import os

import cv2
import keras
import matplotlib
import numpy as np
import pytest
from tensorflow.keras.preprocessing.image import ImageDataGenerator  # the course's import, still there in Keras 3

matplotlib.use("Agg")

from labkit import (  # noqa: E402
    LabkitInputError,
    MLP_model,
    alexnet_model,
    binarize_mask,
    conv_block,
    create_generator,
    dice_coef,
    dice_coef_loss,
    gen_labels,
    gen_labels_multiclass,
    get_data_multiclass,
    get_train_test_arrays,
    get_train_test_arrays_multiclass,
    get_unet,
    image_mask_generator,
    lab1_mlp_model,
    lenet_model,
    load_data,
    load_image,
    load_partial_data,
    loss_accuracy_plot,
    loss_dice_plot,
    loss_dice_precision_recall_plot,
    model,
    pretrain_data_label,
    train_unet,
    vgg16_model,
)
from labkit.course_training import course_loss, course_metrics  # noqa: E402
from labkit.data.generators import training_stream  # noqa: E402
from labkit.data.synthetic.bone_skin import bone_skin_dataset  # noqa: E402

COURSE_DATAGEN = dict(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.2,
                      horizontal_flip=True)


def shapes(n, size=32, seed=0):
    """Binary images of random rectangles: an image that is its own mask shows any misalignment."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 1), np.float32)
    for image in out:
        top, left = rng.integers(0, size // 2, 2)
        image[top:top + rng.integers(4, size // 2), left:left + rng.integers(4, size // 2)] = 1.0
    return out


def write_png(path, array):
    cv2.imwrite(str(path), np.asarray(array, np.uint8))


# --- Lab 4 Task 4: U-Net through train_unet ------------------------------------------------------------------------

def test_lab4_task4_unet_with_list_loss_metric_objects_and_an_image_data_generator():
    masks = shapes(16, seed=1)
    images = np.clip(masks * 0.7 + 0.15, 0, 1)
    x_train, y_train, x_val, y_val = images[:12], masks[:12], images[12:], masks[12:]
    keras.utils.set_random_seed(0)
    unet = get_unet((32, 32, 1), base=4, batchnorm=True, dropout=0.2)
    unet, history = train_unet(unet, x_train, y_train, x_val, y_val, 4, 2, 1e-3,
                               [dice_coef, keras.metrics.Precision(), keras.metrics.Recall()], verbose=0,
                               loss=[dice_coef_loss], generator=ImageDataGenerator(**COURSE_DATAGEN))
    names = ["loss", "dice_coef", "precision", "recall"]
    assert set(history.history) == set(names) | {f"val_{n}" for n in names}
    assert all(len(values) == 2 for values in history.history.values()) and history.epoch == [0, 1]
    assert all(0.0 <= v <= 1.0 for n in names[1:] for v in history.history[n] + history.history[f"val_{n}"])
    # Validation is never augmented: the last epoch's validation numbers are the model's on the untouched arrays.
    evaluated = dict(zip(unet.metrics_names, unet.evaluate(x_val, y_val, batch_size=4, verbose=0)))
    np.testing.assert_allclose(history.history["val_loss"][-1], evaluated["loss"], rtol=1e-4)
    assert [a.get_ylabel() for a in loss_dice_plot(history, "Task 4").axes] == ["loss", "dice_coef"]
    figure = loss_dice_precision_recall_plot(history, "Task 4")
    assert [a.get_ylabel() for a in figure.axes] == names


def test_the_image_data_generator_transforms_image_and_mask_together():
    masks = shapes(8, seed=2)
    dataset, steps = training_stream(ImageDataGenerator(**COURSE_DATAGEN), masks.copy(), masks, 4)
    assert steps == 2
    moved = 0
    for images, batch_masks in dataset.take(6).as_numpy_iterator():
        np.testing.assert_array_equal(batch_masks, (images > 0.5).astype(np.float32))
        moved += int(np.any(images != masks[:4]))
    assert moved >= 5  # it transforms


@pytest.mark.parametrize("setting", [{"shear_range": 0.2}, {"rescale": 1 / 255}, {"brightness_range": (0.8, 1.2)},
                                     {"width_shift_range": 5}])
def test_image_data_generator_settings_that_cannot_be_joint_are_named(setting):
    with pytest.raises(LabkitInputError, match=next(iter(setting))):
        training_stream(ImageDataGenerator(**setting), shapes(4), shapes(4), 2)


@pytest.mark.parametrize("loss, expected", [
    ([dice_coef_loss], dice_coef_loss),
    ((dice_coef_loss,), dice_coef_loss),
    (dice_coef_loss, dice_coef_loss),
    (["binary_crossentropy"], keras.losses.binary_crossentropy),
    ("binary_crossentropy", keras.losses.binary_crossentropy),
])
def test_train_unet_takes_the_loss_as_a_name_a_function_or_a_list(loss, expected):
    y_true = np.array([[1.0, 0.0, 1.0, 1.0]], np.float32)
    y_pred = np.array([[0.9, 0.2, 0.6, 0.3]], np.float32)
    got = course_loss(loss, get_unet((16, 16, 1), base=2))(y_true, y_pred)
    np.testing.assert_allclose(np.mean(got), np.mean(expected(y_true, y_pred)), rtol=1e-6)


def test_two_losses_for_one_output_are_refused():
    with pytest.raises(LabkitInputError, match="2 losses for a model with 1 output"):
        course_loss([dice_coef_loss, "binary_crossentropy"], get_unet((16, 16, 1), base=2))


def test_metric_objects_are_fresh_copies_with_the_course_names():
    precision = keras.metrics.Precision()
    precision.update_state([1, 0], [1, 1])
    metrics = course_metrics([dice_coef, precision, "recall", keras.metrics.Recall(thresholds=0.3)])
    assert metrics[0] is dice_coef
    assert [m.name for m in metrics[1:]] == ["precision", "recall", "recall"]
    assert metrics[1] is not precision and float(metrics[1].result()) == 0.0  # no state carried over
    assert metrics[3].thresholds == pytest.approx([0.3])


# --- create_generator + image_mask_generator: the course's unpack-and-zip pattern ---------------------------------

def test_course_generators_stay_aligned_without_a_seed_over_many_batches():
    masks = shapes(10, seed=3)
    image_gen, mask_gen = create_generator(masks.copy(), masks, ImageDataGenerator(**COURSE_DATAGEN), 4, seed=None)
    assert (image_gen.n, image_gen.batch_size, len(image_gen)) == (10, 4, 3)
    assert image_gen.n // image_gen.batch_size == 2  # the course's steps_per_epoch
    early_images = [next(image_gen) for _ in range(3)]  # read one half ahead: the other keeps its batches
    early_masks = [next(mask_gen) for _ in range(3)]
    pairs = list(zip(early_images, early_masks))
    stream = image_mask_generator(image_gen, mask_gen)
    pairs += [next(stream) for _ in range(25)]
    for images, batch_masks in pairs:
        assert images.shape[1:] == (32, 32, 1) and set(np.unique(batch_masks)) <= {0.0, 1.0}
        np.testing.assert_array_equal(batch_masks, (images > 0.5).astype(np.float32))
    assert len({images.tobytes() for images, _ in pairs}) > 20  # random transforms, not one batch repeated


def test_halves_of_two_generator_pairs_are_refused():
    masks = shapes(4)
    images_a, _ = create_generator(masks, masks, None, 2)
    _, masks_b = create_generator(masks, masks, None, 2)
    with pytest.raises(LabkitInputError, match="not aligned"):
        next(image_mask_generator(images_a, masks_b))


def test_a_generator_pair_is_a_training_stream_too():
    masks = shapes(6)
    pair = create_generator(masks, masks, augment=True, batch_size=3, seed=1)
    dataset, steps = training_stream(pair, masks, masks, 3)
    assert dataset is pair.dataset and steps == 2


# --- Lab 4 Tasks 1–2: bottleneck features + MLP head --------------------------------------------------------------

def test_lab4_task1_features_mlp_fit_and_accuracy_plot(tmp_path):
    root = bone_skin_dataset(n_train=3, n_val=2, size=32, root=tmp_path / "data")
    train_data, train_labels, validation_data, validation_labels = pretrain_data_label(
        root / "Bone" / "train", root / "Bone" / "validation", 32, 32, 8, class_labels=["AFF", "NFF"],
        weights="none", cache_dir=tmp_path / "cache")  # weights: no ImageNet download in tests
    assert train_data.shape == (6, 1, 1, 512) and validation_data.shape == (4, 1, 1, 512)
    assert train_labels.tolist() == [0, 0, 0, 1, 1, 1] and validation_labels.tolist() == [0, 0, 1, 1]
    keras.utils.set_random_seed(0)
    mlp = MLP_model(base=16, dropout=0.5, n_class=2)
    mlp.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                metrics=["sparse_categorical_accuracy"])
    history = mlp.fit(train_data, train_labels, validation_data=(validation_data, validation_labels), epochs=2,
                      batch_size=3, verbose=0)
    assert mlp.count_params() == 512 * 16 + 16 + 16 * 2 + 2
    figure = loss_accuracy_plot(history, "MLP on VGG16 features", accuracy="sparse_categorical_accuracy")
    assert [a.get_ylabel() for a in figure.axes] == ["loss", "sparse_categorical_accuracy"]


@pytest.mark.parametrize("logged, asked, drawn", [
    ("binary_accuracy", "binary_accuracy", "binary_accuracy"),
    ("sparse_categorical_accuracy", "sparse_categorical_accuracy", "sparse_categorical_accuracy"),
    ("categorical_accuracy", "categorical_accuracy", "categorical_accuracy"),
    ("accuracy", "accuracy", "accuracy"),
    ("accuracy", "binary_accuracy", "accuracy"),  # Keras 3 logs metrics=["accuracy"] as "accuracy"
])
def test_loss_accuracy_plot_reads_each_accuracy_key(logged, asked, drawn):
    history = {"loss": [0.7, 0.5], "val_loss": [0.8, 0.6], logged: [0.5, 0.7], f"val_{logged}": [0.4, 0.6]}
    figure = loss_accuracy_plot(history, "t", accuracy=asked)
    assert [a.get_ylabel() for a in figure.axes] == ["loss", drawn]
    assert list(figure.axes[1].lines[1].get_ydata()) == [0.4, 0.6]


def test_loss_accuracy_plot_without_the_metric_says_what_the_history_has():
    with pytest.raises(LabkitInputError, match="no binary_accuracy .*has loss, dice_coef"):
        loss_accuracy_plot({"loss": [1.0], "dice_coef": [0.5]}, "t")


# --- Lab 1–3: flat folders, class in the file name -----------------------------------------------------------------

@pytest.fixture
def skin_folders(tmp_path):
    """Lab 1 Skin layout: Mel images are dark (51), Nev images bright (204); a label can be checked on its image."""
    folders = {}
    for split, count in (("train", 5), ("test", 3)):
        folder = tmp_path / "Skin" / split
        folder.mkdir(parents=True)
        for i in range(count):
            write_png(folder / f"Mel_{split}_{i}.png", np.full((24, 30), 51))
            write_png(folder / f"ISIC_{i}_Nev.png", np.full((24, 30), 204))
        (folder / ".DS_Store").write_bytes(b"")
        folders[split] = folder
    return folders


@pytest.mark.parametrize("name, pat1, pat2, label", [
    ("Mel_0001.jpg", "Mel", "Nev", 0),
    ("ISIC_0002_Nev.png", "Mel", "Nev", 1),
    ("AFF_12.png", "AFF", "NFF", 0),
    ("train/NFF_3.png", "AFF", "NFF", 1),
])
def test_gen_labels_reads_the_class_from_the_file_name(name, pat1, pat2, label):
    assert gen_labels(name, pat1, pat2).tolist() == [label]


@pytest.mark.parametrize("name, patterns, problem", [
    ("scan_0001.jpg", ("Mel", "Nev"), "contains none"),
    ("Mel_Nev_3.jpg", ("Mel", "Nev"), "contains 'Mel' and 'Nev'"),
])
def test_a_name_matching_no_pattern_or_two_is_an_error_naming_the_file(name, patterns, problem):
    with pytest.raises(LabkitInputError, match=problem) as error:
        gen_labels_multiclass(name, list(patterns))
    assert name in str(error.value) and isinstance(error.value, ValueError)


def test_lab1_get_train_test_arrays_keeps_every_label_with_its_image(skin_folders):
    train, test = skin_folders["train"], skin_folders["test"]
    x_train, x_test, y_train, y_test = get_train_test_arrays(train, test, os.listdir(train), os.listdir(test), 16, 20)
    assert x_train.shape == (10, 16, 20, 1) and x_test.shape == (6, 16, 20, 1) and x_train.dtype == np.float32
    assert y_train.dtype == np.int32 and sorted(y_train.tolist()) == [0] * 5 + [1] * 5
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), np.where(labels == 0, 51 / 255, 204 / 255), atol=1e-3)


def test_lab3_multiclass_patterns_and_an_unmatched_file(tmp_path):
    folder = tmp_path / "X_ray" / "train"
    folder.mkdir(parents=True)
    for c in (1, 2, 3):
        write_png(folder / f"C{c}_scan.png", np.full((8, 8), 60 * c))
    patterns = ["C1_", "C2_", "C3_"]
    x, _, y, _ = get_train_test_arrays_multiclass(folder, folder, os.listdir(folder), ["C2_scan.png"], 8, 8, patterns)
    np.testing.assert_allclose(x[:, 0, 0, 0], (y + 1) * 60 / 255, atol=1e-6)
    write_png(folder / "unknown.png", np.zeros((8, 8)))
    with pytest.raises(LabkitInputError, match="unknown.png"):  # (with two patterns, C3_scan.png fails first)
        get_data_multiclass(folder, os.listdir(folder), 8, 8, patterns)


# --- Lab 5: part of a big set, masks with two structures as grey levels --------------------------------------------

def test_lab5_load_partial_data_pairs_by_name_and_binarize_mask_picks_a_structure(tmp_path):
    root = tmp_path / "CT"
    (root / "Image").mkdir(parents=True)
    (root / "Mask").mkdir()
    for i in (4, 0, 3, 1, 2):  # written out of order
        write_png(root / "Image" / f"Im{i}.png", np.full((16, 16), 10 * (i + 1)))
        mask = np.zeros((16, 16))
        mask[2:6, i:i + 4] = 128  # "left lung" moves with the index
        mask[10:14, 8:12] = 255  # "right lung"
        write_png(root / "Mask" / f"Im{i}_Mask.png", mask)
    images, masks = load_partial_data(root, "Image", "Mask", 16, 16, number_of_images=2, partition=1)
    assert images.shape == (2, 16, 16, 1) and masks.shape == (2, 16, 16, 1)
    np.testing.assert_allclose(images[:, 0, 0, 0], [30 / 255, 40 / 255], atol=1e-6)  # Im2, Im3
    left = binarize_mask(masks, 16, 16, val_lower=0.4, val_upper=0.6)
    right = binarize_mask(masks, 16, 16, val_lower=0.9, val_upper=1)
    for k, i in enumerate((2, 3)):
        expected = np.zeros((16, 16))
        expected[2:6, i:i + 4] = 1
        np.testing.assert_array_equal(left[k, ..., 0], expected)
    assert right.sum() == 2 * 16 and set(np.unique(binarize_mask(masks, 16, 16))) == {0.0, 1.0}
    everything, _ = load_partial_data(root, "Image", "Mask", 16, 16)
    assert len(everything) == 5
    with pytest.raises(LabkitInputError, match="selects none"):
        load_partial_data(root, "Image", "Mask", 16, 16, number_of_images=2, partition=3)


@pytest.mark.parametrize("lower, upper", [(0.5, 1), (0.0, 0.3), (0.25, 0.75), (1, 1)])
def test_binarize_mask_equals_the_course_pixel_loop(lower, upper):
    data = np.random.default_rng(4).choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(3, 6, 5))
    expected = np.zeros((3, 6, 5, 1), np.float32)
    for n in range(3):
        for row in range(6):
            for col in range(5):
                expected[n, row, col, 0] = 1.0 if lower <= data[n, row, col] <= upper else 0.0
    np.testing.assert_array_equal(binarize_mask(list(data), 6, 5, lower, upper), expected)


def test_load_results_take_the_course_reshape(tmp_path):
    for folder in ("Image", "Mask"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        write_png(tmp_path / "Image" / f"p{i}.png", np.full((20, 20), 100))
        write_png(tmp_path / "Mask" / f"p{i}.png", np.full((20, 20), 255))
    images, masks = load_data(tmp_path, "Image", "Mask", 16, 16)
    assert np.array(images).reshape((-1, 16, 16, 1)).shape == (3, 16, 16, 1)
    assert np.array(masks).reshape((-1, 16, 16, 1)).sum() == 3 * 256
    single = [load_image(tmp_path / "Image" / f"p{i}.png", 16, 16) for i in range(3)]
    assert np.array(single).reshape((-1, 16, 16, 1)).shape == (3, 16, 16, 1)


# --- builders: parameter counts against formulas written out by hand ----------------------------------------------

def conv(c_in, c_out, k=3):
    return k * k * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def head(n_in, n_class, lab3):
    return dense(n_in, 1 if (lab3 and n_class <= 2) or n_class == 1 else n_class)


def lenet_params(w, h, c, base, n_class):
    return conv(c, base) + conv(base, 2 * base) + dense((w // 4) * (h // 4) * 2 * base, 2 * base) + \
        head(2 * base, n_class, True)


def alexnet_params(w, h, c, n, n_class, widths, batch_norm):
    filters = [n, 2 * n, 4 * n, 4 * n, 2 * n]
    total = sum(conv(a, b) for a, b in zip([c] + filters, filters))
    total += 4 * sum(filters) if batch_norm else 0  # gamma, beta, moving mean, moving variance
    flat = (w // 8) * (h // 8) * 2 * n
    return total + dense(flat, widths[0]) + dense(widths[0], widths[1]) + head(widths[1], n_class, True)


def vgg_params(w, h, c, n, n_class, widths, lab3):
    filters = [n, n, 2 * n, 2 * n, 4 * n, 4 * n, 4 * n, 8 * n, 8 * n, 8 * n, 8 * n, 8 * n, 8 * n]
    total = sum(conv(a, b) for a, b in zip([c] + filters, filters))
    sizes = [(w // 32) * (h // 32) * 8 * n, *widths]
    return total + sum(dense(a, b) for a, b in zip(sizes, sizes[1:])) + head(sizes[-1], n_class, lab3)


def unet_params(base, c_in, out_channels):
    total, channels = 0, c_in
    for level in range(4):
        total += conv(channels, base * 2**level) + conv(base * 2**level, base * 2**level)
        channels = base * 2**level
    total += conv(channels, base * 16) + conv(base * 16, base * 16)
    channels = base * 16
    for level in reversed(range(4)):
        f = base * 2**level
        total += 2 * 2 * channels * f + f  # transposed 2×2 convolution
        total += conv(2 * f, f) + conv(f, f)
        channels = f
    return total + dense(channels, out_channels)  # the 1×1 convolution


@pytest.mark.parametrize("name, build, expected", [
    ("lenet 2 classes", lambda: lenet_model(32, 32, 1, 8), lenet_params(32, 32, 1, 8, 2)),
    ("lenet 3 classes", lambda: lenet_model(64, 32, 3, 4, n_class=3), lenet_params(64, 32, 3, 4, 3)),
    ("alexnet", lambda: alexnet_model(32, 32, 1, 8), alexnet_params(32, 32, 1, 8, 2, (64, 64), False)),
    ("alexnet bn+dropouts", lambda: alexnet_model(32, 32, 1, 4, dropout=0.4, n_class=4, first2_dense=[32, 16],
                                                  batch_norm=True, s_dropout=0.1),
     alexnet_params(32, 32, 1, 4, 4, (32, 16), True)),
    ("vgg16 lab3 keyword", lambda: vgg16_model(32, 32, 1, 4, dropout=0.2, first2_dense=[16, 8], n_class=2),
     vgg_params(32, 32, 1, 4, 2, (16, 8), True)),
    ("vgg16 lab3 positional", lambda: vgg16_model(64, 64, 1, 4, 0.2, [16, 8], 3), vgg_params(64, 64, 1, 4, 3, (16, 8),
                                                                                                True)),
    ("vgg16 lab4", lambda: vgg16_model(32, 32, 3, 4, 0.2, 2, dense_layers=[16, 16, 16]),
     vgg_params(32, 32, 3, 4, 2, (16, 16, 16), False)),
    ("lab1 mlp", lambda: model(16, 12, 1, 32), dense(16 * 12, 32) + dense(32, 16) + dense(16, 8) + dense(8, 1)),
    ("lab1 mlp clear name", lambda: lab1_mlp_model(8, 8, 3, 10, n_class=3),
     dense(8 * 8 * 3, 10) + dense(10, 5) + dense(5, 2) + dense(2, 3)),
    ("unet 2 classes = 1 sigmoid", lambda: get_unet((32, 32, 1), base=4, n_class=2), unet_params(4, 1, 1)),
    ("unet 4 classes", lambda: get_unet((32, 32, 3), base=2, dropout=0.2, n_class=4), unet_params(2, 3, 4)),
])
def test_builders_have_the_handout_parameter_counts(name, build, expected):
    assert build().count_params() == expected, name


def test_mlp_head_and_conv_block_counts():
    mlp = MLP_model(64, 0.5, 3)
    mlp.build((None, 2, 2, 8))
    assert mlp.count_params() == dense(2 * 2 * 8, 64) + dense(64, 3)
    inputs = keras.Input((16, 16, 3))
    block = keras.Model(inputs, conv_block(inputs, base=5, batchnorm=True))
    assert block.count_params() == conv(3, 5) + conv(5, 5) + 2 * 4 * 5


@pytest.mark.parametrize("build, units, activation", [
    (lambda n: lenet_model(32, 32, 1, 4, n_class=n), {1: 1, 2: 1, 3: 3}, {1: "sigmoid", 2: "sigmoid", 3: "softmax"}),
    (lambda n: alexnet_model(32, 32, 1, 4, n_class=n), {1: 1, 2: 1, 3: 3}, {1: "sigmoid", 2: "sigmoid", 3: "softmax"}),
    (lambda n: vgg16_model(32, 32, 1, 2, n_class=n), {1: 1, 2: 2, 3: 3}, {1: "sigmoid", 2: "softmax", 3: "softmax"}),
    (lambda n: get_unet((16, 16, 1), base=2, n_class=n), {1: 1, 2: 1, 3: 3}, {1: "sigmoid", 2: "sigmoid",
                                                                              3: "softmax"}),
])
def test_output_head_follows_n_class_as_the_handout(build, units, activation):
    for n_class in (1, 2, 3):
        built = build(n_class)
        assert built.output_shape[-1] == units[n_class]
        last = built.layers[-1]
        assert keras.activations.serialize(last.activation) == activation[n_class]
