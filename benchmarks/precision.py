"""Benchmark: U-Net training speed and the Dice it reaches under float32, the auto policy and mixed_bfloat16.

Each policy trains U-Net base 16 at 256×256 with batch 8 (binary cross-entropy, Adam at the course's 1e-4) for the
same number of steps, from the same weights, on the same batches of the embedded synthetic chest X-rays (read
through the labkit pipeline); then the validation Dice of each is measured on the same held-out images. Throughput
counts training images per second over the steps after the first two (which build and compile the graph).
The default 48 steps take the Dice past the steep part of its learning curve: compared after 16 steps, where the
Dice climbs by a few hundredths per step, small numeric differences show up as gaps of 0.02 that vanish later.

The shared starting weights come from a short float32 warm start at 128×128 (the U-Net is fully convolutional, so
the same weights run at 256×256): from random weights, a few dozen steps at 256×256 leave the network predicting
all background or all foreground under any policy, and a Dice comparison would compare nothing. The warm start is
not timed and is the same for every policy.

``--precision auto`` resolves to mixed_bfloat16 only on hardware with native bf16 (AMX/AVX512-BF16 CPUs, GPUs of
compute capability ≥ 8) — elsewhere bf16 is emulated and slower, and auto picks float32. When auto resolves to a
policy already in the list, that run is not repeated: its row is the same measurement.

usage:
  python benchmarks/precision.py [--steps 48] [--warmup-steps 96] [--images 80] [--size 256]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)

import keras  # noqa: E402

from machine import load_warning, machine_summary  # noqa: E402

SIZE, BATCH, BASE, LR = 256, 8, 16, 1e-4
WARM_LR = 1e-3  # the warm start runs at half the compared size


class StepTimer(keras.callbacks.Callback):
    """Wall time of each training batch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def datasets(train_pairs, val_pairs, size):
    """The repeated, shuffled training batches and the validation batches at `size`, decoded once (cached)."""
    from labkit.data import segmentation_dataset

    return (segmentation_dataset(train_pairs, size, BATCH, shuffle=True, seed=42, cache=True, repeat=True),
            segmentation_dataset(val_pairs, size, BATCH, cache=True))


def warm_start(train_pairs, val_pairs, steps, size=SIZE):
    """Weights of U-Net base 16 after `steps` float32 steps at half of `size`, and their validation Dice at
    `size`."""
    from labkit import get_unet
    from labkit.metrics import thresholded_dice
    from labkit.runtime import set_seed
    from labkit.training import compile_model

    keras.mixed_precision.set_global_policy("float32")
    set_seed(42)
    warm = size // 2
    model = compile_model(get_unet((warm, warm, 1), base=BASE), WARM_LR, "binary_crossentropy")
    if steps:
        model.fit(datasets(train_pairs, val_pairs, warm)[0], epochs=1, steps_per_epoch=steps, verbose=0,
                  shuffle=False)
    weights = model.get_weights()
    full = compile_model(get_unet((size, size, 1), base=BASE), LR, "binary_crossentropy", metrics=[thresholded_dice])
    full.set_weights(weights)
    dice = full.evaluate(datasets(train_pairs, val_pairs, size)[1], verbose=0, return_dict=True)["thresholded_dice"]
    return weights, dice


def train_and_validate(policy, initial_weights, train, val, steps, size=SIZE):
    """Train `steps` steps under `policy` from `initial_weights`; returns images/s and validation Dice."""
    from labkit import dice_coef, get_unet
    from labkit.metrics import thresholded_dice
    from labkit.training import compile_model

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    model = get_unet((size, size, 1), base=BASE)
    model.set_weights(initial_weights)
    compile_model(model, LR, "binary_crossentropy", metrics=[dice_coef, thresholded_dice])
    timer = StepTimer()
    model.fit(train, epochs=1, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False)
    timed = timer.seconds[2:]
    scores = model.evaluate(val, verbose=0, return_dict=True)
    keras.mixed_precision.set_global_policy("float32")
    return {"images_per_s": len(timed) * BATCH / sum(timed), "soft_dice": scores["dice_coef"],
            "dice": scores["thresholded_dice"], "loss": scores["loss"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=48, help="training steps of 8 images per policy (default: 48)")
    parser.add_argument("--warmup-steps", type=int, default=96, help="float32 warm-start steps at half the size "
                        "(default: 96)")
    parser.add_argument("--images", type=int, default=80, help="embedded X-ray pairs: 80%% train, 20%% validation")
    parser.add_argument("--size", type=int, default=SIZE, help="side of the compared runs' images, a multiple of 32 "
                        f"(default: {SIZE}; smaller only to check the script)")
    args = parser.parse_args(argv)
    size = args.size
    started = time.perf_counter()

    from labkit.data import find_xray_pairs, synthetic
    from labkit.data.split import train_val_split
    from labkit.runtime import resolve_precision

    print(machine_summary())
    pairs = find_xray_pairs(synthetic.xray_dataset(n_images=args.images, size=size))
    train_pairs, val_pairs = train_val_split(pairs, 0.2, seed=42)
    start = time.perf_counter()
    initial, warm_dice = warm_start(train_pairs, val_pairs, args.warmup_steps, size)
    print(f"warm start: float32, {size // 2}×{size // 2}, Adam {WARM_LR}, {args.warmup_steps} steps in "
          f"{time.perf_counter() - start:.0f} s; validation Dice at {size}×{size} before the compared runs: "
          f"{warm_dice:.4f}")
    train, val = datasets(train_pairs, val_pairs, size)
    auto = resolve_precision("auto")
    print(f"compared runs: U-Net base {BASE}, {size}×{size}, batch {BATCH}, binary cross-entropy, Adam {LR}, "
          f"{args.steps} steps on {len(train_pairs)} training images; validation on {len(val_pairs)}; auto resolves "
          f"to {auto}")

    results = {}
    for policy in dict.fromkeys(["float32", auto, "mixed_bfloat16"]):
        start = time.perf_counter()
        results[policy] = train_and_validate(policy, initial, train, val, args.steps, size)
        print(f"  {policy}: done in {time.perf_counter() - start:.0f} s")

    reference = results["float32"]
    print(f"\n{'policy':24s} {'images/s':>9s} {'× float32':>10s} {'val Dice':>9s} {'Δ Dice':>8s} {'soft Dice':>10s}")
    for label, policy in (("float32", "float32"), (f"auto (= {auto})", auto), ("mixed_bfloat16", "mixed_bfloat16")):
        row = results[policy]
        print(f"{label:24s} {row['images_per_s']:9.2f} {row['images_per_s'] / reference['images_per_s']:9.2f}× "
              f"{row['dice']:9.4f} {row['dice'] - reference['dice']:+8.4f} {row['soft_dice']:10.4f}")
    if auto == "float32":
        print("auto ran as float32 (its row is the float32 measurement): this CPU has no native bf16, where "
              "mixed_bfloat16 is emulated")
    print("val Dice: thresholded at 0.5, mean over the validation batches; soft Dice: the training metric "
          "dice_coef on the same batches")
    print(load_warning())
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
    keras.backend.clear_session()


if __name__ == "__main__":
    main()
