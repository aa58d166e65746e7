"""Check: two checkouts of labkit write the same run folders (a refactor changes no result).

Every lab's demo (the command its README section gives, with ``--deterministic``), plus a sweep, folds and
auto-context, runs once with each checkout's ``labkit`` and ``labs/`` (a fresh process each, ``PYTHONPATH`` set to
the checkout, the embedded data shared). The two run folders of a case must hold the same files; ``history.csv``,
``metrics.json``, ``config.json`` and every other CSV, JSON or Markdown file must be equal but for the entries that
measure time or name the checkout (``seconds``, ``train_seconds``, ``command``, ``out``, versions); ``model.keras``
must hold the same weights; figures are compared byte for byte and reported apart (a figure may differ only where
it prints a time). Prints one line per case and exits 1 when any case differs.

usage:
  python benchmarks/same_runs.py BEFORE AFTER [--cases lab4_unet,...] [--epochs N] [--out runs/same]
  python benchmarks/same_runs.py /tmp/labkit-main . --epochs 2     # quick: every demo cut to 2 epochs
"""

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: The cases: each lab's README demo command, then one run of each multi-run mechanism.
CASES = {
    "lab1_perceptron": ("lab1_perceptron", ["--gate", "xor", "--model", "keras", "--hidden", "4"]),
    "lab1_mlp": ("lab1_mlp", []),
    "lab2_cnn": ("lab2_cnn", []),
    "lab3_cnn": ("lab3_cnn", []),
    "lab3_augmentation": ("lab3_augmentation", []),
    "lab4_unet": ("lab4_unet", ["--loss", "dice", "--base", "32", "--dropout", "0.2"]),
    "lab4_transfer": ("lab4_transfer", []),
    "lab4_activation_map": ("lab4_activation_map", []),
    "lab5_segmentation": ("lab5_segmentation", []),
    "mobilenet_segmentation": ("mobilenet_segmentation", []),
    "resnet50_classification": ("resnet50_classification", []),
    "unet3d_segmentation": ("unet3d_segmentation", ["--loss", "dice", "--augment"]),
    "sweep": ("lab1_perceptron", ["--gate", "xor", "--sweep", "hidden=1,2", "--sweep", "iterations=10,100"]),
    "folds": ("lab2_cnn", ["--folds", "2", "--epochs", "2"]),
    "autocontext": ("lab5_segmentation", ["--autocontext", "2", "--autocontext-folds", "2", "--epochs", "2"]),
    "compare-preset": ("mobilenet_segmentation", ["--compare", "--epochs", "2"]),
}
#: Entries that measure time or name the checkout or the run folder: left out of the comparison.
VOLATILE = {"seconds", "train_seconds", "command", "out", "versions", "path", "runs", "date_saved", "time",
            "elapsed", "seconds_per_epoch", "data_seconds", "extract_seconds", "total_seconds",
            "given"}  # a multi-run's command line as given: it names the run folder
TEXT = (".csv", ".json", ".md", ".txt")


def run_case(checkout, lab, argv, out, epochs, data_home):
    """Run ``labs/<lab>.py`` of `checkout` into `out`; returns (exit code, seconds, stderr tail)."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "LABKIT_DATA_HOME": str(data_home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(Path(checkout) / "labs" / f"{lab}.py"), *argv, "--deterministic", "--quiet",
               "--out", str(out)]
    if epochs and "--epochs" not in argv and lab not in ("lab1_perceptron", "lab3_augmentation"):
        command += ["--epochs", str(epochs)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=checkout)
    return done.returncode, time.perf_counter() - start, done.stderr.strip().splitlines()[-3:]


def without_volatile(value):
    """`value` (parsed JSON or a CSV row) without the `VOLATILE` entries, at any depth."""
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def readable(path):
    """A text file as comparable data: JSON parsed, CSV as rows, Markdown as lines without timing columns, other
    text as it is."""
    text = path.read_text()
    if path.suffix == ".json":
        return without_volatile(json.loads(text))
    if path.suffix == ".csv":
        rows = without_volatile(list(csv.DictReader(io.StringIO(text))))
        return [row for row in rows if not any("seconds" in str(value) for value in row.values())]  # rows of times
    return without_timing_columns(text) if path.suffix == ".md" else text


def without_timing_columns(text):
    """A Markdown table's lines without its timing columns (a header cell naming seconds, and that cell of every
    row) and rows (led by a cell naming seconds), so two runs that trained at different speeds compare equal."""
    lines, timing = [], set()
    for line in text.splitlines():
        cells = line.split("|")
        if line.startswith("|") and "seconds" in cells[1]:  # a row of times (a side-by-side table's "seconds" row)
            continue
        if line.startswith("|") and "seconds" in line:  # a header row: remember which cells hold times
            timing = {i for i, cell in enumerate(cells) if "seconds" in cell}
        lines.append("|".join(c for i, c in enumerate(cells) if i not in timing) if line.startswith("|") else line)
    return lines


def same_weights(a, b):
    import keras
    import numpy as np

    import labkit  # noqa: F401  (registers labkit's layers and losses)

    first, second = (keras.saving.load_model(p, compile=False).get_weights() for p in (a, b))
    return len(first) == len(second) and all(np.array_equal(x, y) for x, y in zip(first, second))


def compare_folders(before, after):
    """``(differences, figures that differ)`` between two run folders."""
    files = lambda root: {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    only = sorted(files(before) ^ files(after))
    differences = [f"only in one: {name}" for name in only]
    figures = []
    for name in sorted(files(before) & files(after)):
        a, b = before / name, after / name
        if name.endswith(".keras"):
            if not same_weights(a, b):
                differences.append(f"{name}: other weights")
        elif name.endswith(TEXT) and not name.endswith(".labkit-run.json"):
            if readable(a) != readable(b):
                differences.append(f"{name}: other content")
        elif name.endswith(".png") and a.read_bytes() != b.read_bytes():
            figures.append(name)
    return differences, figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="checkout whose run folders are the reference")
    parser.add_argument("after", type=Path, help="checkout to compare with it")
    parser.add_argument("--cases", help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--epochs", type=int, help="cut every training to this many epochs (default: the demo's)")
    parser.add_argument("--out", type=Path, default=Path("runs/same"), help="where both checkouts' run folders go")
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}")
    data_home = (args.out / "data").resolve()
    failed = 0
    for name in names:
        lab, lab_argv = CASES[name]
        folders, results = {}, {}
        for side, checkout in (("before", args.before.resolve()), ("after", args.after.resolve())):
            folders[side] = (args.out / side / name).resolve()
            results[side] = run_case(checkout, lab, lab_argv, folders[side], args.epochs, data_home)
        codes = {side: result[0] for side, result in results.items()}
        times = " / ".join(f"{results[s][1]:.0f} s" for s in ("before", "after"))
        if set(codes.values()) != {0}:
            failed += 1
            print(f"{name}: exit codes {codes['before']} / {codes['after']} ({times}): "
                  f"{results['after'][2] or results['before'][2]}")
            continue
        differences, figures = compare_folders(folders["before"], folders["after"])
        failed += bool(differences)
        verdict = "same files and results" if not differences else "DIFFERENT: " + "; ".join(differences[:6])
        shown = f"; figures differing in bytes: {', '.join(figures)}" if figures else "; figures byte-identical"
        print(f"{name}: {verdict}{shown} ({times})")
    print(f"{len(names) - failed} of {len(names)} cases the same")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
