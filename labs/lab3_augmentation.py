"""Lab 3 Task 7 (CM2003): what data augmentation does to an image, in one figure.

First scikit-image's deterministic transforms, each shown before and after (rescale ×0.2, rotation 30°, horizontal
and vertical flip, intensity rescaling between the 5th and 95th percentiles); then random `ImageDataGenerator`-style
augmentations of the same image with the course's settings (rotation 20°, width shift 0.2, horizontal flip), drawn
by the augmenter every labkit dataset builder uses for ``augment=`` (`labkit.data.augment.make_augmenter`).

Writes ``augmentation_preview.png`` and ``config.json`` into the run folder. Without ``--image`` or ``--data-dir``
the image is drawn from an embedded set (default: a class C4 radiograph of the nine-class X-ray set, as the
course's ``C4_4662.jpg``).

  python labs/lab3_augmentation.py                                   # embedded X-ray image
  python labs/lab3_augmentation.py --dataset skin --count 8
  python labs/lab3_augmentation.py --image /DL_course_data/Lab1/X_ray/train/C4_4662.jpg
  python labs/lab3_augmentation.py --data-dir /DL_course_data/Lab1/Bone/train --rotation 10 --shift 0.1
"""

import argparse
from pathlib import Path

import numpy as np

from labkit import flags, lab
from labkit.data.augment import PREVIEW_AUGMENT, make_augmenter
from labkit.data.image_transforms import apply_transforms, embedded_preview_image
from labkit.data.io import load_image
from labkit.data.layouts import list_image_files
from labkit.errors import require
from labkit.plots import augmentation_preview
from labkit.run_folder import RunFolder, default_run_dir

COURSE = {"dataset": "xray", "img_size": 128, "rotation": PREVIEW_AUGMENT["rotation_range"],
          "shift": PREVIEW_AUGMENT["width_shift_range"], "height_shift": 0.0, "flip": True, "count": 5, "seed": 0}


def parse_args(argv=None):
    parser = flags.LabArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--dataset", choices=("xray", "bone", "skin"), default=COURSE["dataset"], help="embedded set to draw the "
        "image from; skin is RGB, the others grey (default: xray)")
    add("--image", type=Path, help="an image file to preview instead")
    add("--data-dir", type=Path, help="a folder of images: the first by name is previewed")
    add("--img-size", type=flags.positive_int, default=COURSE["img_size"], help="side in pixels (default: 128)")
    add("--rotation", type=flags.nonnegative_float, default=COURSE["rotation"], help="rotation_range in degrees "
        "(course: 20)")
    add("--shift", type=flags.dropout_rate, default=COURSE["shift"], help="width_shift_range, a fraction of the "
        "width (course: 0.2)")
    add("--height-shift", type=flags.dropout_rate, default=COURSE["height_shift"], help="height_shift_range "
        "(course: 0)")
    add("--flip", action=argparse.BooleanOptionalAction, default=COURSE["flip"], help="horizontal_flip (course: on)")
    add("--count", type=flags.positive_int, default=COURSE["count"], help="random augmentations shown (course: 5)")
    add("--seed", type=int, default=COURSE["seed"], help="seed of the embedded image and the augmentations")
    add("--out", type=Path, help="run folder (default: runs/lab3_augmentation-<timestamp>)")
    add("--overwrite", action="store_true", help="replace a preview already in --out")
    return parser.parse_args(argv)


def preview_image(settings):
    """The image to preview, float in [0, 1]: ``(h, w)`` grey or ``(h, w, 3)`` for skin, and where it came from."""
    channels = 3 if settings.dataset == "skin" else 1
    path = settings.image
    if path is None and settings.data_dir is not None:
        files = list_image_files(settings.data_dir)
        require(files, f"no image files in {settings.data_dir}")
        path = files[0]
    if path is None:
        image = embedded_preview_image(settings.dataset, settings.img_size, settings.seed)
        return image, f"embedded {settings.dataset} image"
    require(Path(path).is_file(), f"image not found: {path}")
    image = load_image(path, settings.img_size, settings.img_size, channels)
    return (image[..., 0] if channels == 1 else image), str(path)


def random_augmentations(image, options, count, seed):
    """`count` random augmentations of `image` by the classification augmenter built from `options` (copies of
    `image` when every option is off)."""
    augmenter = make_augmenter(options, "classification", seed=seed)
    batch = np.repeat(np.atleast_3d(image)[None].astype(np.float32), count, axis=0)
    augmented = np.asarray(augmenter(batch, np.zeros(count))[0]) if augmenter else batch
    return augmented[..., 0] if np.ndim(image) == 2 else augmented


def main(argv=None):
    settings = parse_args(argv)
    image, source = preview_image(settings)
    run = RunFolder.create(settings.out or default_run_dir("lab3_augmentation"), overwrite=settings.overwrite)
    options = {"rotation_range": settings.rotation, "width_shift_range": settings.shift,
               "height_shift_range": settings.height_shift, "horizontal_flip": settings.flip}
    run.write_json("config.json", {"source": source, "img_size": settings.img_size, "augment": options,
                                   "count": settings.count, "seed": settings.seed})

    transformed = apply_transforms(image)
    augmented = random_augmentations(image, options, settings.count, settings.seed)
    heading = (f"ImageDataGenerator-style augmentation: rotation {settings.rotation:g}°, width shift "
               f"{settings.shift:g}, height shift {settings.height_shift:g}, flip {'on' if settings.flip else 'off'}")
    figure = augmentation_preview(image, transformed, augmented, heading, title=f"Lab 3 Task 7: {source}")
    run.save_figure("augmentation_preview.png", figure)
    print(f"wrote {run.file('augmentation_preview.png')}")


if __name__ == "__main__":
    lab.run_lab(main)
