"""Benchmark: peak memory of one training-pipeline epoch over 10,000 image/mask pairs of 256×256 on disk.

The files are written once into a temporary folder in the course layout (``Image/`` + ``Mask/``, PNG): a few distinct
synthetic chest X-rays are rendered and PNG-encoded once, then their bytes are written out under 10,000 names, so
generating them takes seconds. A fresh Python process then does what Lab 4 does with ``--augment`` — pair the files
by name, check that every file decodes (`check_readable`), build `segmentation_dataset(..., augment=True,
shuffle=True, cache="auto")` — and pulls one full epoch of batches of 8 through it. The benchmark prints that
process's peak resident memory (``VmHWM``) against the 2 GB limit.

Decoded, the 10,000 pairs would take 10,000 × 256 × 256 × 2 × 4 bytes = 5.2 GB, so ``cache="auto"`` streams them
(only file names are held and shuffled; decoded batches exist only while in flight).

usage:
  python benchmarks/memory.py [--files 10000] [--distinct 32] [--limit-gb 2] [--cache-budget-mb MB]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)

SIZE, BATCH = 256, 8


def write_files(folder, n_files, distinct):
    """`n_files` image/mask pairs in ``folder/Image`` and ``folder/Mask``, cycling `distinct` rendered pairs."""
    import cv2
    import numpy as np

    from labkit.data.synthetic.xray import chest_xray

    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(distinct):
        image, mask = chest_xray(rng, SIZE)
        encoded.append((cv2.imencode(".png", image)[1].tobytes(), cv2.imencode(".png", mask)[1].tobytes()))
    for sub in ("Image", "Mask"):
        (folder / sub).mkdir(parents=True)
    for i in range(n_files):
        image, mask = encoded[i % distinct]
        (folder / "Image" / f"case{i:05d}.png").write_bytes(image)
        (folder / "Mask" / f"case{i:05d}.png").write_bytes(mask)
    return sum(len(a) + len(b) for a, b in encoded) * n_files / distinct


def status_kib(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def one_epoch(folder, cache_budget_mb=None):
    """In this process: the lab's data path over `folder`, one epoch; prints a JSON line of what it measured.

    `cache_budget_mb` lowers ``cache="auto"``'s memory budget, so a few files take the streaming path (tests)."""
    from labkit.data import check_readable, find_xray_pairs, pipeline, segmentation_dataset
    from labkit.data.pipeline import resolve_cache
    from labkit.progress import set_quiet

    if cache_budget_mb is not None:
        pipeline.CACHE_BUDGET_BYTES = int(cache_budget_mb * 2**20)
    set_quiet(True)
    after_import = status_kib("VmRSS")
    start = time.perf_counter()
    pairs = check_readable(find_xray_pairs(folder))
    check_seconds = time.perf_counter() - start
    dataset = segmentation_dataset(pairs, SIZE, BATCH, augment=True, shuffle=True, seed=0, cache="auto")
    start, images = time.perf_counter(), 0
    for image_batch, mask_batch in dataset:
        images += int(image_batch.shape[0])
    print(json.dumps({"pairs": len(pairs), "images": images, "check_seconds": check_seconds,
                      "epoch_seconds": time.perf_counter() - start, "rss_after_import_kib": after_import,
                      "peak_rss_kib": status_kib("VmHWM"),
                      "cached": resolve_cache("auto", len(pairs), SIZE, 2) is not False}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="image/mask pairs (default: 10000)")
    parser.add_argument("--distinct", type=int, default=32, help="distinct rendered pairs the files cycle through")
    parser.add_argument("--limit-gb", type=float, default=2.0, help="peak resident memory allowed (default: 2 GB)")
    parser.add_argument("--cache-budget-mb", type=float, help="cache=\"auto\"'s memory budget (default: labkit's "
                        "1 GiB); a small one makes a few files stream as 10,000 do")
    parser.add_argument("--epoch", type=Path, help=argparse.SUPPRESS)  # internal: the measured child process
    args = parser.parse_args(argv)
    if args.epoch:
        return one_epoch(args.epoch, args.cache_budget_mb)
    started = time.perf_counter()

    from machine import load_warning, machine_summary

    print(machine_summary())
    with tempfile.TemporaryDirectory(prefix="labkit-memory-") as tmp:
        start = time.perf_counter()
        total_bytes = write_files(Path(tmp), args.files, args.distinct)
        print(f"wrote {args.files:,} image/mask pairs ({2 * args.files:,} PNG files, {total_bytes / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        budget = [] if args.cache_budget_mb is None else ["--cache-budget-mb", str(args.cache_budget_mb)]
        child = subprocess.run([sys.executable, __file__, "--epoch", tmp, *budget], capture_output=True, text=True)
    if child.returncode != 0:
        sys.exit(f"the epoch process failed:\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak_gb, limit = result["peak_rss_kib"] * 1024 / 1e9, args.limit_gb
    decoded_gb = args.files * SIZE * SIZE * 2 * 4 / 1e9
    print(f"checked {result['pairs']:,} pairs in {result['check_seconds']:.1f} s; one epoch (Task 4e augmentation, "
          f"shuffled, batch {BATCH}) delivered {result['images']:,} images in {result['epoch_seconds']:.1f} s "
          f"({result['images'] / result['epoch_seconds']:.1f} images/s)")
    print(f"cache=\"auto\": {'cached in memory' if result['cached'] else 'streamed from disk'} (decoded pairs would "
          f"take {decoded_gb:.1f} GB)")
    print(f"resident memory after importing labkit/TensorFlow: {result['rss_after_import_kib'] * 1024 / 1e9:.2f} GB")
    print(f"peak resident memory of the epoch process: {peak_gb:.2f} GB — "
          f"{'under' if peak_gb < limit else 'OVER'} the {limit:g} GB limit")
    print(load_warning())
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
