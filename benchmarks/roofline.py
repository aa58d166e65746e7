"""Benchmark: each lab's training step as a fraction of what this machine computes at best.

1. **The machine's limit**, measured: the best FLOP/s of a large matrix product (2048×2048) and of a 3×3
   convolution (batch 8, 64×64, 128 → 128 channels, "same") through TensorFlow, each compiled once and timed
   `--repeats` times, in float32 and in bfloat16 (what the ``mixed_bfloat16`` policy computes in).
2. **Each lab's training step** at the course's image size and batch (`LABS`), built with labkit's builders and
   trained with ``train_on_batch`` on random data: the median seconds of `--steps` steps after two warm-up steps,
   under float32 and under mixed_bfloat16. Its FLOPs are counted from the model's layers: 2 × the multiply-adds of
   every convolution (2D, 3D, transposed, depthwise) and dense layer in the forward pass, times 3 for a training
   step (the gradients with respect to the inputs and to the weights cost one forward pass each). Element-wise
   work (BatchNorm, activations, pooling, concatenation, the loss, the optimizer) is not counted: the fraction of
   the peak is that of the work a convolution engine does, and what stays below the peak is, with the measured
   element-wise and host time, what bounds the step.

The table prints GFLOP per step, seconds per step, achieved GFLOP/s and the fraction of the convolution peak of the
same precision. On a CPU without native bf16 (no ``avx512_bf16``/``amx_bf16`` in /proc/cpuinfo) TensorFlow emulates
bfloat16: its peak and steps are then slower than float32, which is why ``--precision auto`` picks float32 there.

usage:
  python benchmarks/roofline.py [--labs unet lenet vgg16 mobilenet resnet50 unet3d] [--steps 3] [--repeats 5]
                               [--policies float32 mixed_bfloat16]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from machine import load_warning, machine_summary  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")
#: Each lab at the course's settings: input shape (without batch), batch, and the model it trains.
LABS = {
    "unet": ("Lab 4 U-Net, base 8", (256, 256, 1), 8),
    "lenet": ("Lab 2 LeNet, base 32", (128, 128, 1), 8),
    "vgg16": ("Lab 3 VGG16, base 8", (128, 128, 1), 8),
    "mobilenet": ("MobileNetV2, transpose decoder", (128, 128, 3), 32),
    "resnet50": ("ResNet50, 7 classes", (224, 224, 3), 32),
    "unet3d": ("3D U-Net, base 16, depth 4", (112, 112, 80, 1), 2),
}


def build(lab, input_shape):
    """The lab's model at the course's settings, compiled with its loss and Adam (random weights: speed only)."""
    from labkit import get_unet, get_unet3d, lenet_model, vgg16_model
    from labkit.models.classifiers import resnet50_classifier
    from labkit.models.mobilenet_seg import mobilenet_segmenter

    height, width = input_shape[:2]
    if lab == "unet":
        model, loss = get_unet(input_shape, base=8), "binary_crossentropy"
    elif lab == "unet3d":
        model, loss = get_unet3d(input_shape, base=16, depth=4), "binary_crossentropy"
    elif lab == "lenet":
        model, loss = lenet_model(width, height, 1, 32), "binary_crossentropy"
    elif lab == "vgg16":
        model, loss = vgg16_model(width, height, 1, n_base=8), "binary_crossentropy"
    elif lab == "mobilenet":
        model, loss = mobilenet_segmenter(input_shape, "transpose", weights=None), "binary_crossentropy"
    else:
        model, loss = resnet50_classifier(input_shape, n_class=7, weights=None), "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)
    return model


def layers_of(model):
    """Every layer of `model`, nested models opened."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from layers_of(layer)
        else:
            yield layer


def forward_flops(model):
    """2 × multiply-adds of the convolutions and dense layers of one forward pass of one input."""
    total = 0
    for layer in layers_of(model):
        if not isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense,
                                  keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose,
                                  keras.layers.Conv3DTranspose)):
            continue
        inputs, outputs = layer.input.shape[1:], layer.output.shape[1:]
        if isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(inputs)) * layer.units
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            total += 2 * int(np.prod(outputs)) * int(np.prod(layer.kernel_size))
        elif isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
            # every input pixel is spread over the kernel into every output channel
            total += 2 * int(np.prod(inputs)) * int(np.prod(layer.kernel_size)) * layer.filters
        else:
            groups = getattr(layer, "groups", 1) or 1
            total += 2 * int(np.prod(outputs)) * int(np.prod(layer.kernel_size)) * inputs[-1] // groups
    return total


def best_rate(function, flops, repeats):
    """The best FLOP/s of `repeats` calls of `function` (compiled first)."""
    function().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function().numpy()
        times.append(time.perf_counter() - start)
    return flops / min(times)


def machine_peaks(repeats):
    """``{dtype: {"matmul": FLOP/s, "conv3x3": FLOP/s}}`` for float32 and bfloat16."""
    n, batch, side, channels = 2048, 8, 64, 128
    peaks = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.random.normal((n, n), dtype=tf.float32)
        a = tf.cast(a, dtype)
        images = tf.cast(tf.random.normal((batch, side, side, channels)), dtype)
        kernel = tf.cast(tf.random.normal((3, 3, channels, channels)), dtype)
        matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, a), tf.float32)))
        conv = tf.function(lambda: tf.reduce_sum(tf.cast(tf.nn.conv2d(images, kernel, 1, "SAME"), tf.float32)))
        peaks[dtype.name] = {"matmul": best_rate(matmul, 2 * n ** 3, repeats),
                             "conv3x3": best_rate(conv, 2 * batch * side * side * 9 * channels * channels, repeats)}
    return peaks


def step_seconds(lab, policy, steps):
    """``(median seconds of one training step, forward FLOPs per input)`` of the lab's model under `policy`."""
    keras.mixed_precision.set_global_policy(policy)
    _, input_shape, batch = LABS[lab]
    model = build(lab, input_shape)
    rng = np.random.default_rng(0)
    x = rng.random((batch, *input_shape), dtype=np.float32)
    output = model.output_shape
    y = (rng.random((batch, *output[1:])) > 0.5).astype(np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    flops = forward_flops(model)
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    return statistics.median(times), flops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labs", nargs="+", choices=tuple(LABS), default=list(LABS))
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per lab and policy")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each peak kernel (best is kept)")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(machine_summary())
    peaks = machine_peaks(args.repeats)
    print(f"\n{'peak GFLOP/s':14s} {'matmul 2048²':>13s} {'conv 3×3':>9s}")
    for dtype, rates in peaks.items():
        print(f"{dtype:14s} {rates['matmul'] / 1e9:13.1f} {rates['conv3x3'] / 1e9:9.1f}")

    print(f"\n{'lab':30s} {'batch':>5s} {'GFLOP/step':>10s} {'policy':>15s} {'s/step':>8s} {'GFLOP/s':>8s} "
          f"{'% conv peak':>11s}")
    for lab in args.labs:
        name, _, batch = LABS[lab]
        for policy in args.policies:
            seconds, flops = step_seconds(lab, policy, args.steps)
            step_flops = 3 * flops * batch
            peak = peaks["bfloat16" if policy == "mixed_bfloat16" else "float32"]["conv3x3"]
            achieved = step_flops / seconds
            print(f"{name:30s} {batch:5d} {step_flops / 1e9:10.2f} {policy:>15s} {seconds:8.3f} "
                  f"{achieved / 1e9:8.1f} {100 * achieved / peak:10.1f}%")
    print("\nGFLOP/step: 3 × the forward FLOPs of the convolutions and dense layers (2 per multiply-add) × batch; "
          "% conv peak: achieved GFLOP/s over the 3×3 convolution's best of the same precision")
    print(load_warning())
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
