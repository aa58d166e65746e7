"""Benchmark: the quality every lab's demo reaches, at its best and at its last epoch, over seeds and precisions.

Each lab's demo (the lab script with no data folder, as its README section runs it) is trained once per seed under
float32 and under the policy ``--precision auto`` picks on this machine; where the CPU has no native bf16 (so auto
is float32), mixed_bfloat16 is run too, emulated, at a reduced size (``--emulated-size``). Every run is a fresh
process, exactly as a user starts it. Per lab and policy the script prints the mean ± std over seeds of the headline
metric (the one the lab monitors: validation Dice, accuracy or macro F1; Lab 6's time series: validation MSE, lower is
better) at the best epoch and at the last epoch,
the worst last epoch, how many runs ended more than 0.02 below their best ("fell back"), and the wall time.

usage:
  python benchmarks/quality.py [--labs lab4_unet,...] [--seeds 3] [--out runs/quality] [--json quality.json]
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit  # noqa: E402,F401  (first: it loads TensorFlow without the start-up notices)

from labkit.history import monitor_mode  # noqa: E402
from machine import load_warning, machine_summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: Each lab's demo command, as its README section gives it (flags after the script name).
DEMOS = {
    "lab4_unet": ["--loss", "dice", "--base", "32", "--dropout", "0.2"],
    "lab4_transfer": [],
    "lab4_activation_map": [],
    "mobilenet_segmentation": [],
    "resnet50_classification": [],
    "unet3d_segmentation": ["--loss", "dice", "--augment"],
    "lab1_mlp": [],
    "lab2_cnn": [],
    "lab3_cnn": [],
    "lab5_segmentation": [],
    "lab6_timeseries": [],
    "lab6_streamlines": [],
}
#: Lab scripts without a demo to measure here, and why.
NOT_MEASURED = {
    "lab1_perceptron": "four points, a loss to minimise rather than a validation score; trains in seconds",
    "lab3_augmentation": "draws a figure, trains nothing",
}

#: A run "fell back" when its last epoch ends more than this below its best.
FALL_BACK = 0.02


def fell_back(best, last, mode="max"):
    """Whether a run's last epoch ended more than `FALL_BACK` below its best (above it, for a metric to minimise:
    `mode` ``min``, e.g. Lab 6's validation loss), on the values as printed (4 decimals): float32 accuracies 0.80
    and 0.78 differ by 0.0200000405, which is not more than 0.02."""
    return round((best - last) if mode == "max" else (last - best), 4) > FALL_BACK


def policies(emulated_size):
    """``[(policy, extra flags)]``: float32, auto's choice here, and emulated bf16 at a reduced size when auto is
    float32."""
    from labkit.runtime import resolve_precision

    auto = resolve_precision("auto")
    chosen = [("float32", [])] + ([(auto, [])] if auto != "float32" else [])
    if auto == "float32":
        chosen.append(("mixed_bfloat16", ["--img-size", str(emulated_size)]))
    return chosen


def run_demo(lab, policy, extra, seed, out):
    """Train one demo in a fresh process; returns its ``metrics.json`` and the wall seconds (None on failure)."""
    command = [sys.executable, str(ROOT / "labs" / f"{lab}.py"), *DEMOS[lab], *extra, "--precision", policy,
               "--seed", str(seed), "--out", str(out), "--overwrite", "--quiet"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    seconds = time.perf_counter() - start
    if result.returncode != 0 or not (out / "metrics.json").is_file():
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {lab} {policy} seed {seed}: exit {result.returncode}: {last}", flush=True)
        return None, seconds
    return json.loads((out / "metrics.json").read_text()), seconds


def headline(metrics):
    """``(metric name, best value, last-epoch value)`` of a run's ``metrics.json``."""
    monitor = metrics["monitor"]
    return monitor, float(metrics["best"][monitor]), float(metrics["final"][monitor])


def mean_std(values):
    """``mean ± std`` to 3 decimals, or to 3 significant digits for values below 0.01 (a validation MSE)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    if max(abs(v) for v in values) < 0.01:
        return f"{statistics.mean(values):.3g} ± {spread:.2g}"
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def summarize_runs(lab, policy, runs):
    """One table row from the runs of a lab under a policy."""
    done = [r for r in runs if r["metrics"] is not None]
    if not done:
        return {"lab": lab, "policy": policy, "runs": f"0/{len(runs)}"}
    monitor = headline(done[0]["metrics"])[0]
    mode = monitor_mode(monitor)
    best, last = zip(*[headline(r["metrics"])[1:] for r in done])
    return {
        "lab": lab, "policy": policy, "metric": monitor, "runs": f"{len(done)}/{len(runs)}",
        "best": mean_std(best), "last": mean_std(last),
        "worst last": f"{max(last):.3g}" if mode == "min" else f"{min(last):.3f}",
        "fell back": sum(fell_back(b, l, mode) for b, l in zip(best, last)),
        "seconds": f"{statistics.mean(r['seconds'] for r in runs):.0f}",
        "values": {"best": best, "last": last},
    }


def markdown(rows):
    columns = ["lab", "policy", "metric", "runs", "best", "last", "worst last", "fell back", "seconds"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labs", default=",".join(DEMOS), help="comma-separated lab scripts (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per lab and policy (default: 3)")
    parser.add_argument("--emulated-size", type=int, default=64, help="--img-size of the emulated-bf16 runs")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "quality", help="where the run folders go")
    parser.add_argument("--json", type=Path, help="also write the rows (with every run's values) as JSON")
    parser.add_argument("--lab-args", default="", help="extra flags for every run, e.g. \"--epochs 4\" to try a "
                        "shorter profile (explicit flags win over the demo profile)")
    args = parser.parse_args(argv)
    labs = [lab.strip() for lab in args.labs.split(",") if lab.strip()]
    unknown = [lab for lab in labs if lab not in DEMOS]
    if unknown:
        parser.error(f"unknown lab(s) {', '.join(unknown)}: choose from {', '.join(DEMOS)}")

    print(machine_summary())
    rows = []
    for lab in labs:
        for policy, extra in policies(args.emulated_size):
            extra = [*extra, *shlex.split(args.lab_args)]
            runs = []
            for seed in range(1, args.seeds + 1):
                metrics, seconds = run_demo(lab, policy, extra, seed, args.out / lab / f"{policy}-seed{seed}")
                runs.append({"seed": seed, "metrics": metrics, "seconds": seconds})
                if metrics is not None:
                    name, best, last = headline(metrics)
                    print(f"  {lab} {policy} seed {seed}: {name} best {best:.4f} (epoch {metrics['best']['epoch']}),"
                          f" last {last:.4f} (epoch {metrics['final']['epoch']}), {seconds:.0f} s", flush=True)
            rows.append(summarize_runs(lab, policy, runs))
    print(f"\nheadline metric over {args.seeds} seeds (mean ± std); 'fell back': runs whose last epoch ended more "
          f"than {FALL_BACK} below their best; seconds: wall time of one run, start-up included")
    print(markdown(rows))
    print(load_warning())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
