"""Benchmark: the four surface-distance metrics with and without cropping to the objects, in the same run.

A 576×576×88 volume (the size of an LA 2018 MRI) holds a left-atrium-sized object (a wobbly ellipsoid of about
96×80×56 voxels at 0.625 mm) and a prediction of it: shifted, slightly grown, with a small stray blob nearby.
`labkit.evaluation.surface_metrics` computes HD, HD95, ASD and ASSD from one pair of distance transforms; it is timed
cropped to the bounding box of both masks plus a margin (the default) and uncropped (``crop=False``). The script
prints both times, their ratio and the values of both runs with their largest difference; with ``--medpy`` it
also times medpy 0.5's four functions (eight full-volume distance transforms) and compares their values.

usage:
  python benchmarks/surface_distance.py [--repeats 3] [--medpy]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)
from labkit.evaluation.surface import SURFACE_METRICS, surface_metrics  # noqa: E402
from machine import load_warning, machine_summary  # noqa: E402

SHAPE = (576, 576, 88)
SPACING = (0.625, 0.625, 0.625)


def atrium_pair(seed=0):
    """A reference object of left-atrium size and an imperfect prediction of it, in a 576×576×88 volume."""
    rng = np.random.default_rng(seed)
    x, y, z = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    centre, radii = np.array([300, 260, 44]), np.array([48.0, 40.0, 28.0])
    radius = np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                     + ((z - centre[2]) / radii[2]) ** 2)
    box = tuple(slice(c - int(r * 1.4), c + int(r * 1.4)) for c, r in zip(centre, radii))
    wobble = np.zeros(SHAPE, np.float32)
    wobble[box] = ndimage.gaussian_filter(rng.normal(size=wobble[box].shape), 8)
    wobble[box] /= wobble[box].std()
    ref = radius + 0.12 * wobble < 1.0
    pred = np.roll(ndimage.binary_dilation(ref, iterations=2), (3, -2, 1), axis=(0, 1, 2))
    pred[360:368, 330:338, 50:56] = True  # a stray false-positive blob next to the atrium
    return pred, ref


def best_time(function, repeats):
    """Smallest wall time of `repeats` calls, and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def medpy_metrics(pred, ref):
    from medpy.metric import binary

    return {"hd": binary.hd(pred, ref, SPACING), "hd95": binary.hd95(pred, ref, SPACING),
            "asd": binary.asd(pred, ref, SPACING), "assd": binary.assd(pred, ref, SPACING)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant; the best counts")
    parser.add_argument("--medpy", action="store_true", help="also time medpy 0.5 (slow: 8 full transforms)")
    args = parser.parse_args(argv)

    print(machine_summary())
    pred, ref = atrium_pair()
    union = np.argwhere(pred | ref)
    extent = union.max(0) - union.min(0) + 1
    print(f"volume {'×'.join(map(str, SHAPE))} at {SPACING[0]} mm; reference {int(ref.sum()):,} voxels, prediction "
          f"{int(pred.sum()):,}; bounding box of both {'×'.join(map(str, extent))} "
          f"({np.prod(extent) / np.prod(SHAPE):.1%} of the volume)")

    cropped_time, cropped = best_time(lambda: surface_metrics(pred, ref, SPACING), args.repeats)
    full_time, full = best_time(lambda: surface_metrics(pred, ref, SPACING, crop=False), args.repeats)
    print(f"\nfour metrics (hd, hd95, asd, assd), best of {args.repeats}:")
    print(f"  cropped   {cropped_time:8.3f} s")
    print(f"  uncropped {full_time:8.3f} s")
    print(f"  ratio cropped / uncropped = {cropped_time / full_time:.3f} "
          f"(cropped is {full_time / cropped_time:.1f}× faster)")

    rows = [("cropped", cropped), ("uncropped", full)]
    if args.medpy:
        medpy_time, reference = best_time(lambda: medpy_metrics(pred, ref), 1)
        print(f"  medpy 0.5 {medpy_time:8.3f} s (ratio cropped / medpy = {cropped_time / medpy_time:.3f})")
        rows.append(("medpy", reference))
    print("\nvalues in mm:")
    print("  " + " ".join(f"{name:>12}" for name in ("", *SURFACE_METRICS)))
    for label, values in rows:
        print("  " + f"{label:>12} " + " ".join(f"{values[name]:12.6f}" for name in SURFACE_METRICS))
    for label, values in rows[1:]:
        worst = max(abs(values[name] - cropped[name]) for name in SURFACE_METRICS)
        print(f"  largest |cropped − {label}| = {worst:.3g}")
    print(load_warning())


if __name__ == "__main__":
    main()
