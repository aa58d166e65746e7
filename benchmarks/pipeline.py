"""Benchmark: the labkit training pipeline against the course's ImageDataGenerator, and against U-Net's appetite.

What is timed, in the same run, in interleaved rounds (each round builds fresh iterators, so nothing prefetches while
another variant is timed; the best and the median round of each are reported):

- **baseline** — the course's way: every image and mask read into memory with OpenCV (``cv2.imread``, resized to
  256×256), then two Keras legacy ``ImageDataGenerator``s with the Task 4e options (rotation 10°, shift 0.1, zoom 0.2,
  horizontal flip), one for images and one for masks, ``.flow(..., seed=s)`` with the same seed, zipped. Keras 3.15
  no longer exports ``ImageDataGenerator`` under ``keras.preprocessing.image``, but it still ships the legacy
  class itself in its tf.keras compatibility namespace (``keras._tf_keras.keras.preprocessing.image``); that exact
  class is used (or ``tf_keras``'s when installed). The load into memory is timed separately and not counted.
- **labkit, from disk** — `labkit.data.segmentation_dataset(..., augment=True, shuffle=True)` without a cache:
  every batch is read and decoded from the PNG files again, then augmented in the tf.data graph.
- **labkit, cached** — the same with ``cache=True`` (decoded once, kept in memory, as the baseline's arrays).
- **U-Net consumption** — ``train_on_batch`` of U-Net base 16 on 256×256 batches of 8 (the auto precision policy),
  the images per second the model can take in; the pipeline should deliver at least 5× that.

Images per second count image/mask pairs. The images are the embedded synthetic chest X-rays, written once to a
temporary folder as 256×256 PNGs.

usage:
  python benchmarks/pipeline.py [--images 64] [--batches 32] [--rounds 5] [--train-steps 4]
"""

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from machine import load_warning, machine_summary, rate  # noqa: E402

SIZE, BATCH = 256, 8


def image_data_generator():
    """The legacy `ImageDataGenerator` class and where it came from."""
    try:
        from tf_keras.preprocessing.image import ImageDataGenerator

        return ImageDataGenerator, "tf_keras.preprocessing.image"
    except ImportError:
        from keras._tf_keras.keras.preprocessing.image import ImageDataGenerator

        return ImageDataGenerator, "keras._tf_keras.keras.preprocessing.image (Keras 3's copy of the legacy class)"


def course_load(pairs):
    """Images and masks read into memory the course's way: OpenCV, resize, scale to [0, 1]."""
    read = lambda path: cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (SIZE, SIZE))  # noqa: E731
    images = np.stack([read(image) for image, _ in pairs])[..., None].astype(np.float32) / 255.0
    masks = (np.stack([read(mask) for _, mask in pairs])[..., None] > 127).astype(np.float32)
    return images, masks


def course_generator(images, masks, seed=1):
    """Two `ImageDataGenerator`s with the Task 4e options and a shared seed, zipped (Lab 4 Task 4e)."""
    from labkit.data.augment import COURSE_AUGMENT

    generator, _ = image_data_generator()
    image_flow = generator(**COURSE_AUGMENT).flow(images, batch_size=BATCH, seed=seed)
    mask_flow = generator(**COURSE_AUGMENT).flow(masks, batch_size=BATCH, seed=seed)
    return zip(image_flow, mask_flow)


def timed_batches(make_iterator, warmup, batches):
    """Images per second over `batches` batches of a fresh iterator, after `warmup` untimed ones."""
    iterator = make_iterator()
    for _ in range(warmup):
        next(iterator)
    result = rate(lambda: next(iterator), batches, BATCH)
    iterator = None  # drop the last reference
    gc.collect()  # a tf.data iterator's threads stop once it is gone: nothing runs in the next variant's time
    return result


def unet_consumption(steps):
    """Training images per second of U-Net base 16 at 256×256, batch 8, under the auto precision policy."""
    import keras

    from labkit import dice_coef, get_unet
    from labkit.runtime import set_precision
    from labkit.training import compile_model

    policy = set_precision("auto")
    model = compile_model(get_unet((SIZE, SIZE, 1), base=16), 1e-3, "binary_crossentropy", metrics=[dice_coef])
    rng = np.random.default_rng(0)
    images = rng.random((BATCH, SIZE, SIZE, 1), np.float32)
    masks = (images > 0.5).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(images, masks)
    result = rate(lambda: model.train_on_batch(images, masks), steps, BATCH)
    keras.mixed_precision.set_global_policy("float32")
    return result, policy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="image/mask pairs written to disk (default: 64)")
    parser.add_argument("--batches", type=int, default=32, help="timed batches of 8 per variant and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best and median reported)")
    parser.add_argument("--train-steps", type=int, default=4, help="timed U-Net training steps (0: skip)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    from labkit.data import find_xray_pairs, segmentation_dataset
    from labkit.data.synthetic import xray_dataset

    print(machine_summary())
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        pairs = find_xray_pairs(xray_dataset(n_images=args.images, size=SIZE, root=Path(tmp)))
        start = time.perf_counter()
        images, masks = course_load(pairs)
        load_seconds = time.perf_counter() - start
        print(f"data: {len(pairs)} pairs of {SIZE}×{SIZE} PNG files; course-style OpenCV load into memory took "
              f"{load_seconds:.2f} s (not counted below); ImageDataGenerator from {image_data_generator()[1]}")

        def labkit(cache):
            return lambda: iter(segmentation_dataset(pairs, SIZE, BATCH, augment=True, shuffle=True, seed=0,
                                                     cache=cache, repeat=True))

        variants = {"baseline: OpenCV arrays + 2 ImageDataGenerators": lambda: course_generator(images, masks),
                    "labkit, from disk (decode every batch)": labkit(False),
                    "labkit, cached (decoded once, in memory)": labkit(True)}
        rates = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name, make in variants.items():
                rates[name].append(timed_batches(make, warmup=2, batches=args.batches))
            print(f"round {round_ + 1}: " + ", ".join(f"{r[-1]:.1f}" for r in rates.values()) + " images/s")

    best = {name: max(values) for name, values in rates.items()}
    median = {name: float(np.median(values)) for name, values in rates.items()}
    baseline, disk, cached = best.values()
    print(f"\nimages/s with Task 4e augmentation, {SIZE}×{SIZE}, batch {BATCH} ({args.rounds} interleaved rounds of "
          f"{args.batches} batches)")
    print(f"  {'':52s} {'best':>8s} {'median':>8s}")
    for name in rates:
        print(f"  {name:52s} {best[name]:8.1f} {median[name]:8.1f}")
    for label, value in (("from disk", disk), ("cached   ", cached)):
        name = next(n for n in rates if n.startswith(f"labkit, {label.strip()}"))
        print(f"  ratio labkit {label} / baseline = {value / baseline:.2f}× (best), "
              f"{median[name] / median[next(iter(rates))]:.2f}× (median)")

    if args.train_steps:
        consumption, policy = unet_consumption(args.train_steps)
        print(f"\nU-Net base 16 trains on {consumption:.2f} images/s ({policy}, {args.train_steps} steps of {BATCH}); "
              f"the pipeline from disk delivers {disk / consumption:.1f}× that, cached {cached / consumption:.1f}× "
              f"({'at least' if disk / consumption >= 5 else 'LESS than'} 5× from disk)")
    print(load_warning())
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
