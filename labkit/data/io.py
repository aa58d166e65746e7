"""Decode one image or mask file into a float32 NumPy array (the course's ``load_image`` / ``load_mask``).

Pixel values are scaled by the file's bit depth (8-bit → /255, 16-bit → /65535), so 8-bit and 16-bit masks follow
the same rule: foreground where the scaled value is above 0.5 (above 127 in 8-bit).
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from labkit.data.paths import as_path
from labkit.errors import LabkitInputError, require
from labkit.progress import progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def read_scaled(path):
    """Read an image file (``str`` or `Path`, ``~`` for home) as float32 in [0, 1], shape (h, w) or (h, w, 3) in RGB
    order."""
    written, path = os.fspath(path), as_path(path)
    require(path.is_file(), f"image file not found: {written}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise LabkitInputError(f"cannot read image {path}: not an image file or corrupt")
    scale = float(np.iinfo(raw.dtype).max) if np.issubdtype(raw.dtype, np.integer) else 1.0
    image = raw.astype(np.float32) / scale
    if image.ndim == 3:
        image = image[..., :3]  # drop alpha
        image = image[..., 0] if image.shape[-1] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _to_channels(image, channels):
    if image.ndim == 2:
        image = image[..., None]
    if channels == 1 and image.shape[-1] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
    elif channels == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def _resize(image, img_width, img_height):
    if image.shape[:2] == (img_height, img_width):
        return image
    resized = cv2.resize(image, (int(img_width), int(img_height)), interpolation=cv2.INTER_LINEAR)
    return resized if resized.ndim == image.ndim else resized[..., None]


def load_image(path, img_width, img_height, channels=1):
    """Load one image, convert it to `channels` (1 = grey, 3 = RGB) and resize it (bilinear).

    Args:
        path: an image file (PNG, JPEG or BMP; 8 or 16 bits).
        img_width, img_height: output size in pixels.
        channels: 1 or 3.

    Returns:
        float32 array of shape ``(img_height, img_width, channels)`` in [0, 1].

    Raises:
        LabkitInputError: the file is missing or cannot be decoded (the message names it).

    Example:
        >>> load_image("X_ray/Image/case_001.png", 256, 256).shape
        (256, 256, 1)
    """
    require(channels in (1, 3), f"channels must be 1 or 3, got {channels}")
    image = _to_channels(read_scaled(path), channels)
    return _resize(image, img_width, img_height).astype(np.float32)


def load_mask(path, img_width, img_height):
    """Load one mask, resize it (bilinear) and binarise it: foreground where the scaled value is > 0.5.

    RGB masks are converted to grey first; 8-bit masks are foreground above 127, 16-bit above 32767.

    Returns:
        float32 array of shape ``(img_height, img_width, 1)`` with values in {0, 1}.
    """
    mask = _to_channels(read_scaled(path), 1)
    return (_resize(mask, img_width, img_height) > 0.5).astype(np.float32)


def load_mask_levels(path, img_width, img_height):
    """Load one mask keeping its grey levels (scaled to [0, 1]), resized by nearest neighbour so no new levels
    appear: for masks that code several structures as levels (the course's CT lungs), to pick with
    `labkit.data.binarize_mask`.

    Returns:
        float32 array ``(img_height, img_width, 1)`` in [0, 1].
    """
    mask = _to_channels(read_scaled(path), 1)
    if mask.shape[:2] != (img_height, img_width):
        mask = cv2.resize(mask, (int(img_width), int(img_height)), interpolation=cv2.INTER_NEAREST)
        mask = mask if mask.ndim == 3 else mask[..., None]
    return mask.astype(np.float32)


def inspect_image(path):
    """``(size, problem)`` of one file: its ``(width, height)`` when it decodes completely, else the reason.

    Pillow decodes the whole stream and raises on truncated data, where OpenCV pads it silently.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as image:
            size = image.size
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))  # JPEG: fast DCT scaling
            image.load()
    except FileNotFoundError:
        return None, "file not found"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is unusable
        return None, f"cannot decode ({type(exc).__name__}: {exc})".splitlines()[0]
    return size, None


def inspect_images(paths, workers=4):
    """`inspect_image` of every file, in a thread pool (the decoders release the GIL): ``{path: (size, problem)}``."""
    paths = list(paths)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = progress(pool.map(inspect_image, paths), desc="checking images", total=len(paths), unit="file")
        return dict(zip(paths, results))


def find_unreadable(paths, workers=4):
    """Check that each file decodes completely; returns ``[(path, reason), …]`` for those that do not."""
    return [(path, problem) for path, (_, problem) in inspect_images(paths, workers).items() if problem]


def binarize_mask(data, img_height, img_width, val_lower=0.5, val_upper=1):
    """The course's ``binarize_mask`` (Lab 5), vectorised: 1 where ``val_lower <= value <= val_upper``, else 0.

    Used to pick one structure from a mask that codes several as grey levels (the CT masks hold the two lungs at
    two levels). The course looped over every pixel in Python; this is one NumPy comparison.

    Args:
        data: masks of any shape holding ``n × img_height × img_width`` values (a list of masks is fine).
        img_height, img_width: size of one mask.
        val_lower, val_upper: the inclusive range of values that become 1.

    Returns:
        float32 array ``(n, img_height, img_width, 1)`` in {0, 1}.

    Example:
        >>> right_lung = binarize_mask(masks, 256, 256, val_lower=0.4, val_upper=0.6)
    """
    data = np.asarray(data, dtype=np.float32)
    require(data.size % (int(img_height) * int(img_width)) == 0,
            f"binarize_mask: {data.shape} does not hold whole {img_height}×{img_width} masks")
    inside = (data >= val_lower) & (data <= val_upper)
    return inside.astype(np.float32).reshape((-1, int(img_height), int(img_width), 1))
