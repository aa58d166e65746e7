"""Bottleneck features (Lab 4 Task 1): images through an ImageNet encoder without its top, computed once and cached.

The course's ``pretrain_data_label`` ran VGG16 over both splits with an ``ImageDataGenerator`` every time. Here the
images stream through tf.data, the encoder runs batch by batch under a progress bar, and the result is saved as one
``.npz`` file in a cache folder, keyed by the data (every file's path, size and modification time), the image size,
the channels, the encoder and its weights, and the dtype policy. A second run with the same key loads the file and
does not even build the encoder (so it works offline once the features exist).

Two differences from the course code, both fixes: every image is used (the course's ``n // batch_size`` steps
dropped the last partial batch, so features and labels could disagree in length), and images get the encoder's
ImageNet preprocessing (the course fed VGG16 images scaled to [0, 1], not the mean-subtracted BGR it was trained on).
"""

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from labkit.data.layouts.class_folders import list_class_folders
from labkit.data.pipeline import as_size, classification_dataset
from labkit.errors import require
from labkit.models.transfer import imagenet_backbone, normalise_weights, weights_label
from labkit.progress import progress
from labkit.run_folder import atomic_write

FEATURES_VERSION = 1


def feature_cache_dir():
    """``$LABKIT_CACHE_DIR/features``, default ``~/.cache/labkit/features``."""
    root = os.environ.get("LABKIT_CACHE_DIR") or Path.home() / ".cache" / "labkit"
    return Path(root) / "features"


@dataclass
class BottleneckFeatures:
    """Features and integer labels of both splits, and where they came from.

    Attributes:
        train_features, val_features: float32 ``(n, h', w', channels)`` encoder outputs.
        train_labels, val_labels: int64 ``(n,)`` class indices (folder order: AFF 0, NFF 1; Mel 0, Nevi 1).
        class_names: class names in label order.
        weights: ``imagenet``, ``none`` or the weights file used.
        cache_file: the ``.npz`` holding them.
        cache_hit: True when they were loaded from `cache_file` rather than computed.
        seconds: time spent computing them (0 on a cache hit).
    """

    train_features: np.ndarray
    train_labels: np.ndarray
    val_features: np.ndarray
    val_labels: np.ndarray
    class_names: tuple
    weights: str
    cache_file: Path
    cache_hit: bool
    seconds: float

    def as_tuple(self):
        """``(train_features, train_labels, val_features, val_labels)``, the course's return value."""
        return self.train_features, self.train_labels, self.val_features, self.val_labels


def _file_record(path):
    stat = Path(path).stat()
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def cache_key(train, val, img_size, channels, backbone, weights, seed):
    """A hex digest that changes whenever the features would: data, size, channels, encoder, weights, dtype policy.

    Args:
        train, val: `ClassFolderSplit` of both splits.
        img_size: int or ``(height, width)``.
        channels: 1 or 3.
        backbone: encoder name.
        weights: ``"imagenet"``, None or a weights file (its size and modification time are part of the key).
        seed: initialisation seed, part of the key only for random weights.
    """
    weights = normalise_weights(weights)
    record = {
        "version": FEATURES_VERSION,
        "backbone": backbone,
        "weights": _file_record(weights) if isinstance(weights, Path) else weights_label(weights),
        "seed": int(seed) if weights is None else None,
        "img_size": list(as_size(img_size)),
        "channels": int(channels),
        "policy": keras.mixed_precision.global_policy().name,
        "classes": list(train.class_names),
        "files": [[*_file_record(p), int(label)] for split in (train, val) for p, label in zip(split.paths,
                                                                                                split.labels)],
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def cache_path(train, val, img_size, channels, backbone, weights, seed, cache_dir=None):
    """The ``.npz`` file that holds (or will hold) these features: ``<backbone>-<h>x<w>-<weights>-<key>.npz``."""
    weights = normalise_weights(weights)
    height, width = as_size(img_size)
    tag = "imagenet" if weights == "imagenet" else ("random" if weights is None else "file")
    key = cache_key(train, val, img_size, channels, backbone, weights, seed)
    return Path(cache_dir or feature_cache_dir()) / f"{backbone}-{height}x{width}-{tag}-{key[:20]}.npz"


def _extract(encoder, split, img_size, channels, batch_size, label):
    dataset = classification_dataset(split.paths, split.labels, img_size, batch_size, len(split.class_names),
                                     channels=channels)
    batches = [np.asarray(encoder.predict_on_batch(images), dtype=np.float32)
               for images, _ in progress(dataset, desc=label, total=math.ceil(len(split) / batch_size), unit="batch")]
    return np.concatenate(batches)


def bottleneck_features(train, val, img_size=224, weights="imagenet", backbone="vgg16", channels=3, batch_size=8,
                        cache_dir=None, seed=42, quiet=False):
    """Encoder features of both splits of a class-folder set, from the cache when possible.

    Args:
        train, val: `labkit.data.layouts.class_folders.ClassFolderSplit` of the training and validation images.
        img_size: int or ``(height, width)`` the images are resized to (224 gives VGG16's 7×7×512).
        weights: ``"imagenet"``, None/``"none"`` or a weights file (see `labkit.models.transfer.imagenet_backbone`).
        backbone: ``"vgg16"`` (the course), ``"resnet50"`` or ``"mobilenet_v2"``.
        channels: channels the images are read with (1: grey, fed through the `GrayscaleToRGB` adapter; 3: RGB).
        batch_size: images per encoder batch.
        cache_dir: cache folder (default `feature_cache_dir()`).
        seed: with random weights, the encoder is initialised after ``keras.utils.set_random_seed(seed)`` so the
            cached features are reproducible (this re-seeds Keras's global random state).
        quiet: print nothing.

    Returns:
        A `BottleneckFeatures`.

    Raises:
        WeightsUnavailableError: ImageNet weights are needed (no cached features) and cannot be fetched.

    Example:
        >>> train, val = labkit.data.layouts.class_folders.find_lab2_set("Lab2", "bone")
        >>> features = bottleneck_features(train, val, 224)
        >>> features.train_features.shape[1:]
        (7, 7, 512)
    """
    require(train.class_names == val.class_names,
            f"training classes {train.class_names} differ from validation classes {val.class_names}")
    require(int(batch_size) >= 1, f"batch size must be at least 1, got {batch_size}")
    weights = normalise_weights(weights)
    height, width = as_size(img_size)
    cache_file = cache_path(train, val, img_size, channels, backbone, weights, seed, cache_dir)
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        if not quiet:
            print(f"bottleneck features: loaded from cache {cache_file}")
        return BottleneckFeatures(arrays["train_features"], arrays["train_labels"], arrays["val_features"],
                                  arrays["val_labels"], tuple(str(c) for c in arrays["class_names"]),
                                  weights_label(weights), cache_file, True, 0.0)

    start = time.perf_counter()
    if weights is None:
        keras.utils.set_random_seed(int(seed))
    encoder = imagenet_backbone(backbone, (height, width, channels), weights=weights, trainable=False)
    if not quiet:
        source = {"imagenet": "ImageNet weights", None: "random weights (--weights none)"}.get(
            weights, f"weights from {weights}") if not isinstance(weights, Path) else f"weights from {weights}"
        print(f"bottleneck features: {backbone} with {source} on {len(train)} + {len(val)} "
              f"images at {height}×{width}, output {encoder.output_shape[1:]}")
    arrays = {
        "train_features": _extract(encoder, train, (height, width), channels, batch_size,
                                   f"{backbone} features (train)"),
        "train_labels": np.asarray(train.labels, np.int64),
        "val_features": _extract(encoder, val, (height, width), channels, batch_size, f"{backbone} features (val)"),
        "val_labels": np.asarray(val.labels, np.int64),
        "class_names": np.asarray(train.class_names),
    }
    seconds = round(time.perf_counter() - start, 2)

    def save(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(cache_file, save)
    if not quiet:
        print(f"bottleneck features: computed in {seconds:.1f} s, cached in {cache_file}")
    return BottleneckFeatures(arrays["train_features"], arrays["train_labels"], arrays["val_features"],
                              arrays["val_labels"], tuple(train.class_names), weights_label(weights), cache_file,
                              False, seconds)


def pretrain_data_label(train_data_dir, validation_data_dir, img_width=224, img_height=224, batch_size=8,
                        class_labels=None, weights="imagenet", channels=3, cache_dir=None, seed=42):
    """The course's ``pretrain_data_label``: VGG16 bottleneck features and labels of a Lab 2 set, cached on disk.

    Args:
        train_data_dir, validation_data_dir: folders with one subfolder per class, e.g. ``Lab2/Bone/train`` and
            ``Lab2/Bone/validation`` (``str`` or `pathlib.Path`, relative or absolute, trailing separator or not).
        img_width, img_height: size the images are resized to (224 × 224 gives 7×7×512 features).
        batch_size: images per encoder batch.
        class_labels: class folders in label order (default: the training subfolders, sorted), as names (the
            handout's ``['AFF', 'NFF']``) or as paths that already hold `train_data_dir`
            (`labkit.data.paths.resolve_path`); the validation folder must have the same class folders.
        weights: ``"imagenet"`` (course), None/``"none"`` or a local weights file.
        channels: channels the images are read with (3, as the course; 1 goes through the grey adapter).
        cache_dir: cache folder (default `feature_cache_dir()`).
        seed: initialisation seed when `weights` is None.

    Returns:
        ``(train_features, train_labels, val_features, val_labels)``: float32 ``(n, 7, 7, 512)`` feature arrays
        (at 224 × 224) and int64 class indices.

    Example:
        >>> xt, yt, xv, yv = pretrain_data_label("Lab2/Bone/train", "Lab2/Bone/validation", 224, 224, 8)
        >>> mlp = MLP_model(128, 0.5, input_shape=xt.shape[1:])
    """
    train = list_class_folders(train_data_dir, tuple(class_labels) if class_labels else None)
    val = list_class_folders(validation_data_dir, train.class_names)
    return bottleneck_features(train, val, (img_height, img_width), weights=weights, channels=channels,
                               batch_size=batch_size, cache_dir=cache_dir, seed=seed).as_tuple()


__all__ = ["BottleneckFeatures", "bottleneck_features", "cache_key", "cache_path", "feature_cache_dir",
           "pretrain_data_label"]
