"""ImageNet backbones offline: weight resolution, the download-failure message, local weight files, adapters, and the
bottleneck-feature cache."""

import urllib.error

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from labkit.data.io import load_image
from labkit.data.layouts.class_folders import find_lab2_set
from labkit.data.synthetic.bone_skin import bone_skin_dataset
from labkit.errors import LabkitInputError
from labkit.features import bottleneck_features, cache_path, pretrain_data_label
from labkit.models.transfer import (GrayscaleToRGB, ImageNetPreprocess, WeightsUnavailableError, decide_weights,
                                    imagenet_backbone, keras_cache_dir, weights_file_name)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty Keras cache: Keras's download (urlretrieve inside get_file) fails as it does here."""
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home").mkdir()
    return tmp_path / "keras_home" / "models"


def test_download_failure_is_one_line_naming_file_folder_and_way_out(offline):
    with pytest.raises(WeightsUnavailableError) as caught:
        imagenet_backbone("vgg16", (32, 32, 3), weights="imagenet")
    message = str(caught.value)
    assert "\n" not in message
    assert f"put vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 in {offline}/" in message
    assert "--weights none" in message and "--weights PATH" in message
    assert "name resolution" in message  # the reason, shortened
    assert isinstance(caught.value, LabkitInputError)  # lab scripts turn it into exit code 2
    assert keras_cache_dir() == offline


def test_errors_before_any_download_are_not_reported_as_missing_weights(offline):
    with pytest.raises(LabkitInputError, match="at least 32×32") as caught:
        imagenet_backbone("vgg16", (16, 16, 3), weights="imagenet")
    assert not isinstance(caught.value, WeightsUnavailableError)


@pytest.mark.parametrize("name, shape, expected", [
    ("vgg16", (224, 224, 3), "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("resnet50", (64, 64, 1), "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("mobilenet_v2", (128, 128, 3), "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_128_no_top.h5"),
    ("mobilenet_v2", (100, 100, 3), "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
])
def test_weights_file_name_is_the_one_keras_downloads(name, shape, expected):
    assert weights_file_name(name, shape) == expected


def test_weights_file_name_matches_keras_source():
    """The VGG16 name is read from Keras's own download address, so a rename in Keras would show here."""
    from keras.src.applications import vgg16

    assert vgg16.WEIGHTS_PATH_NO_TOP.endswith("/" + weights_file_name("vgg16", (224, 224, 3)))


@pytest.fixture(scope="module")
def vgg16_weights(tmp_path_factory):
    """A VGG16 (no top) with random weights, saved in both formats a user may hold."""
    keras.utils.set_random_seed(11)
    application = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    folder = tmp_path_factory.mktemp("weights")
    legacy = folder / weights_file_name("vgg16", (32, 32, 3))  # the format of the file Keras downloads
    with h5py.File(legacy, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, application)
    modern = folder / "vgg16_notop.weights.h5"
    application.save_weights(modern)
    return application.get_weights(), legacy, modern


@pytest.mark.parametrize("which", ["legacy", "modern"])
def test_local_weights_file_loads(vgg16_weights, which, offline):
    expected, legacy, modern = vgg16_weights
    backbone = imagenet_backbone("vgg16", (32, 32, 3), weights=legacy if which == "legacy" else modern)
    loaded = backbone.get_layer("vgg16").get_weights()
    assert len(loaded) == len(expected) == 26
    assert all(np.array_equal(a, b) for a, b in zip(loaded, expected))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("content", ["another model", "not hdf5"])
def test_weights_file_that_does_not_fit_is_refused(tmp_path, content):
    path = tmp_path / ("other.weights.h5" if content == "another model" else "garbage.h5")
    if content == "another model":
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(path)
    else:
        path.write_text(content)
    with pytest.raises(LabkitInputError, match=f"--weights {path}: cannot load into vgg16") as caught:
        imagenet_backbone("vgg16", (32, 32, 3), weights=path)
    assert "\n" not in str(caught.value)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(LabkitInputError, match="nothing.h5: file not found"):
        imagenet_backbone("vgg16", (32, 32, 3), weights=tmp_path / "nothing.h5")


def test_random_weights_never_touch_the_network(offline):
    backbone = imagenet_backbone("vgg16", (64, 64, 1), weights="none")
    assert backbone.output_shape == (None, 2, 2, 512)
    assert [layer.name for layer in backbone.layers[1:3]] == ["grayscale_to_rgb", "imagenet_preprocess"]


@pytest.mark.parametrize("mode, reference", [
    ("caffe", keras.applications.vgg16.preprocess_input),
    ("tf", keras.applications.mobilenet_v2.preprocess_input),
])
def test_imagenet_preprocess_matches_keras_preprocess_input(mode, reference):
    images = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    expected = reference(images * 255.0)
    np.testing.assert_allclose(ImageNetPreprocess(mode)(images).numpy(), expected, rtol=1e-5, atol=1e-3)


def test_grayscale_adapter_repeats_the_channel():
    grey = np.random.default_rng(1).random((2, 5, 5, 1), dtype=np.float32)
    rgb = GrayscaleToRGB()(grey).numpy()
    assert rgb.shape == (2, 5, 5, 3)
    assert all(np.array_equal(rgb[..., c], grey[..., 0]) for c in range(3))


def test_backbone_with_adapters_round_trips_in_safe_mode(tmp_path):
    backbone = imagenet_backbone("vgg16", (32, 32, 1), weights=None)
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: the layers are registered
    image = np.random.default_rng(2).random((1, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded(image).numpy(), backbone(image).numpy(), rtol=1e-5, atol=1e-5)


# --- bottleneck features ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lab2(tmp_path_factory):
    return bone_skin_dataset(n_train=3, n_val=2, size=32, root=tmp_path_factory.mktemp("data"))


def test_features_equal_the_backbone_on_each_image_and_are_cached(tiny_lab2, vgg16_weights, tmp_path, monkeypatch):
    """Features from the tf.data path equal the backbone run image by image (same weights, from a file); the
    second call loads them from the cache without building the backbone."""
    _, legacy, _ = vgg16_weights
    train, val = find_lab2_set(tiny_lab2, "skin")
    first = bottleneck_features(train, val, 32, weights=legacy, channels=3, batch_size=4, cache_dir=tmp_path)
    assert not first.cache_hit and first.cache_file.is_file()
    assert first.train_features.shape == (6, 1, 1, 512) and first.val_features.shape == (4, 1, 1, 512)
    assert first.train_labels.tolist() == [0, 0, 0, 1, 1, 1] and first.class_names == ("Mel", "Nevi")

    reference = imagenet_backbone("vgg16", (32, 32, 3), weights=legacy)
    images = np.stack([load_image(p, 32, 32, channels=3) for p in val.paths])
    np.testing.assert_allclose(first.val_features, reference.predict(images, verbose=0), rtol=1e-4, atol=1e-4)

    def no_build(*args, **kwargs):
        raise AssertionError("a cache hit must not build the backbone")

    monkeypatch.setattr("labkit.features.imagenet_backbone", no_build)
    second = bottleneck_features(train, val, 32, weights=legacy, channels=3, batch_size=4, cache_dir=tmp_path)
    assert second.cache_hit and second.cache_file == first.cache_file and second.seconds == 0
    for a, b in zip(first.as_tuple(), second.as_tuple()):
        np.testing.assert_array_equal(a, b)


def test_cache_key_changes_with_size_weights_and_data(tiny_lab2, tmp_path):
    train, val = find_lab2_set(tiny_lab2, "bone")
    base = bottleneck_features(train, val, 32, weights=None, channels=1, cache_dir=tmp_path, seed=1)
    again = bottleneck_features(train, val, 32, weights=None, channels=1, cache_dir=tmp_path, seed=1)
    assert again.cache_hit
    np.testing.assert_array_equal(base.train_features, again.train_features)
    other_seed = bottleneck_features(train, val, 32, weights=None, channels=1, cache_dir=tmp_path, seed=2)
    bigger = bottleneck_features(train, val, 64, weights=None, channels=1, cache_dir=tmp_path, seed=1)
    fewer = bottleneck_features(train, val.__class__(val.paths[1:], val.labels[1:], val.class_names), 32,
                                weights=None, channels=1, cache_dir=tmp_path, seed=1)
    assert not (other_seed.cache_hit or bigger.cache_hit or fewer.cache_hit)
    assert len({r.cache_file for r in (base, other_seed, bigger, fewer)}) == 4
    assert bigger.train_features.shape == (6, 2, 2, 512) and len(fewer.val_labels) == 3
    assert not np.allclose(base.train_features, other_seed.train_features)  # another random VGG16


def test_pretrain_data_label_has_the_course_signature(tiny_lab2, tmp_path):
    xt, yt, xv, yv = pretrain_data_label(tiny_lab2 / "Bone" / "train", tiny_lab2 / "Bone" / "validation", 32, 32, 8,
                                         weights="none", cache_dir=tmp_path)
    assert xt.shape == (6, 1, 1, 512) and xv.shape == (4, 1, 1, 512)
    assert yt.tolist() == [0, 0, 0, 1, 1, 1] and yv.tolist() == [0, 0, 1, 1]
    assert xt.dtype == np.float32 and np.isfinite(xt).all()


def test_offline_features_come_from_the_cache_once_computed(tiny_lab2, vgg16_weights, tmp_path, offline):
    """Offline, ImageNet features fail with the one-line error, unless they are already cached."""
    train, val = find_lab2_set(tiny_lab2, "skin")
    with pytest.raises(WeightsUnavailableError, match="--weights none"):
        bottleneck_features(train, val, 32, weights="imagenet", cache_dir=tmp_path)
    # A cache filled on a machine with network: the ImageNet key, holding features (here from a local file).
    _, legacy, _ = vgg16_weights
    computed = bottleneck_features(train, val, 32, weights=legacy, cache_dir=tmp_path)
    computed.cache_file.rename(cache_path(train, val, 32, 3, "vgg16", "imagenet", 42, tmp_path))
    hit = bottleneck_features(train, val, 32, weights="imagenet", cache_dir=tmp_path)
    assert hit.cache_hit and hit.weights == "imagenet"
    np.testing.assert_array_equal(hit.val_features, computed.val_features)


@pytest.mark.parametrize("given, demo, cached, used, noted", [
    (None, False, False, "imagenet", False),   # the course: ImageNet (downloaded once when not cached)
    (None, True, True, "imagenet", False),     # the demo with the file already cached
    (None, True, False, "none", True),         # the demo never downloads: random weights, and a note says so
    ("imagenet", True, False, "imagenet", False),  # asked for: never replaced (fails offline with the file to place)
    ("none", False, False, "none", False),
])
@pytest.mark.parametrize("backbone, shape", [("vgg16", (32, 32, 1)), ("resnet50", (64, 64, 3)),
                                             ("mobilenet_v2", (128, 128, 3))])
def test_one_weights_rule_for_every_lab(monkeypatch, tmp_path, backbone, shape, given, demo, cached, used, noted):
    monkeypatch.setattr("labkit.models.transfer.keras_cache_dir", lambda: tmp_path)
    if cached:
        (tmp_path / weights_file_name(backbone, shape)).write_bytes(b"cached")
    choice = decide_weights(given, backbone, shape, demo)
    assert choice.used == used and choice.requested == (given or "imagenet")
    assert (choice.note is not None) == noted
    if noted:
        assert weights_file_name(backbone, shape) in choice.note and "not transfer learning" in choice.note
    assert choice.record() == {"requested": choice.requested, "used": used, "note": choice.note}
