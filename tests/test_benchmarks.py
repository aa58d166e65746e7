"""The benchmark scripts run at toy sizes, and the ratios they print agree with the rates they print.

These tests time nothing: they keep the scripts from rotting and check that each one's summary is arithmetic on its
own measurements (a ratio of two numbers it printed), as BENCHMARKS.md relies on.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit.runtime import resolve_precision

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(name, *args):
    """Run ``benchmarks/<name>.py`` with `args` in a fresh interpreter; returns its standard output."""
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *args],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def numbers(line):
    """Every decimal number in `line`, as floats."""
    return [float(n) for n in re.findall(r"[-+]?\d+\.\d+", line)]


def line_with(out, text):
    """The first line of `out` that contains `text`."""
    return next(line for line in out.splitlines() if text in line)


@pytest.mark.slow
def test_precision_rows_are_relative_to_the_float32_row_and_auto_names_its_policy():
    out = run_benchmark("precision", "--steps", "3", "--warmup-steps", "2", "--images", "10", "--size", "32")
    rows = {line.split("  ")[0]: numbers(line) for line in out.splitlines()
            if re.match(r"^(float32|auto|mixed_bfloat16)\b", line) and "×" in line}
    auto_label = f"auto (= {resolve_precision('auto')})"
    assert set(rows) == {"float32", auto_label, "mixed_bfloat16"}
    float32_rate = rows["float32"][0]
    for rate, times, dice, delta, _soft in rows.values():
        assert times == pytest.approx(rate / float32_rate, abs=0.01)
        # three values each rounded to 4 decimals: they can disagree by 1.5e-4
        assert delta == pytest.approx(dice - rows["float32"][2], abs=1.5e-4 + 1e-9)
    assert rows[auto_label] == rows[resolve_precision("auto")]  # the same measurement, not a second run


@pytest.mark.slow
def test_overhead_rows_are_each_variants_epoch_time_over_plain_keras():
    out = run_benchmark("overhead", "--size", "32", "--images", "8", "--epochs", "3", "--rounds", "2")
    sys.path.insert(0, str(BENCHMARKS))
    from overhead import VARIANTS

    tables = out.split("\nunet: ")[1].split("\nlenet: ")
    assert len(tables) == 2
    for table in tables:
        names = [name for name, _ in VARIANTS]
        rows = [line for line in table.splitlines() if line[:30].strip() in names]
        assert [row[:30].strip() for row in rows] == names
        plain = numbers(rows[0])[0]
        for row in rows:
            seconds, ratio = numbers(row)
            # both times print rounded to 0.0005 s, the ratio to 0.0005: the bound of the rounding errors
            rounding = 0.0005 + ratio * (0.0005 / seconds + 0.0005 / plain)
            assert seconds > 0 and ratio == pytest.approx(seconds / plain, abs=rounding)
        assert numbers(rows[0])[1] == 1.0


def test_roofline_counts_two_flops_per_multiply_add_of_every_convolution_and_dense_layer():
    import keras

    sys.path.insert(0, str(BENCHMARKS))
    from roofline import forward_flops

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8·8 outputs × 4 filters × 3·3·2 weights each
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)  # 8·8·4 outputs × 3·3 weights each
    x = keras.layers.Conv2DTranspose(3, 2, strides=2)(x)  # 8·8·4 inputs, each spread over 2·2 × 3 filters
    x = keras.layers.BatchNormalization()(x)  # element-wise: not counted
    outputs = keras.layers.Dense(5)(keras.layers.Flatten()(x))  # 16·16·3 inputs × 5 units
    by_hand = 2 * (8 * 8 * 4 * 3 * 3 * 2 + 8 * 8 * 4 * 3 * 3 + 8 * 8 * 4 * 2 * 2 * 3 + 16 * 16 * 3 * 5)
    assert forward_flops(keras.Model(inputs, outputs)) == by_hand
    volume = keras.Input((4, 4, 4, 1))
    nested = keras.Model(volume, keras.layers.Conv3D(2, 3, padding="same")(volume))  # counted inside a model too
    outer = keras.Input((4, 4, 4, 1))
    assert forward_flops(keras.Model(outer, nested(outer))) == 2 * 4 * 4 * 4 * 2 * 3 * 3 * 3


@pytest.mark.slow
def test_pipeline_ratios_divide_labkits_rates_by_the_baselines():
    out = run_benchmark("pipeline", "--images", "8", "--batches", "2", "--rounds", "2", "--train-steps", "0")
    baseline, from_disk, cached, disk_ratio, cached_ratio = (numbers(line_with(out, text)) for text in (
        "baseline:", "labkit, from disk", "labkit, cached", "ratio labkit from disk", "ratio labkit cached"))
    for rates, ratios in ((from_disk, disk_ratio), (cached, cached_ratio)):
        for k in (0, 1):  # best / best, median / median
            # The rates print to 0.1 images/s, the ratios to 0.01: a ratio of two rounded rates can be off by the
            # rates' relative rounding (large for a baseline of a few images/s on a busy machine) plus 0.005.
            ratio = rates[k] / baseline[k]
            assert ratios[k] == pytest.approx(ratio, abs=ratio * (0.05 / rates[k] + 0.05 / baseline[k]) + 0.005 + 1e-9)


@pytest.mark.slow
def test_memory_epoch_delivers_every_file_and_reports_a_peak_above_the_import():
    # The benchmark's claim is about streaming (10,000 pairs do not fit the cache budget): a 1 MB budget makes
    # 40 pairs (21 MB decoded) take that same path.
    out = run_benchmark("memory", "--files", "40", "--distinct", "4", "--cache-budget-mb", "1")
    assert re.search(r"delivered 40 images", out)
    assert 'cache="auto": streamed from disk' in out
    after_import = numbers(line_with(out, "after importing"))[0]
    peak_line = line_with(out, "peak resident memory")
    assert numbers(peak_line)[0] >= after_import
    assert "under the 2 GB limit" in peak_line


@pytest.mark.slow
def test_surface_benchmark_gets_identical_values_cropped_and_uncropped():
    out = run_benchmark("surface_distance", "--repeats", "1")
    rows = {"cropped": [], "uncropped": []}  # each name prints a time row, then a row of the four values
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name in rows and numbers(line):
            rows[name].append(numbers(line))
    (cropped_time,), cropped_values = rows["cropped"]
    (uncropped_time,), uncropped_values = rows["uncropped"]
    ratio = numbers(line_with(out, "ratio cropped / uncropped"))[0]
    assert ratio == pytest.approx(cropped_time / uncropped_time, abs=0.001)
    assert len(cropped_values) == 4
    assert cropped_values == uncropped_values
    assert "largest |cropped − uncropped| = 0" in out
    assert line_with(out, "machine:") and re.search(r"load average \d", out)  # as BENCHMARKS.md says every script does


def test_readme_states_the_overhead_ratio_benchmarks_md_recorded():
    root = BENCHMARKS.parent
    row = line_with((root / "BENCHMARKS.md").read_text(), "**+ progress bar (= what a lab runs)**")
    recorded = re.search(r"\*\*(\d+\.\d+)×\*\*", row).group(1)  # the U-Net's ratio, in bold
    assert f"at **{recorded}×** the seconds per epoch of plain `model.fit`" in (root / "README.md").read_text()


@pytest.mark.slow
def test_quality_table_is_the_mean_and_std_of_the_runs_it_made(tmp_path):
    import json
    import statistics

    out = run_benchmark("quality", "--labs", "lab4_unet", "--seeds", "2", "--emulated-size", "16", "--out",
                        str(tmp_path / "runs"), "--json", str(tmp_path / "quality.json"),
                        "--lab-args", "--img-size 16 --epochs 2 --base 2 --no-stop-dead")
    rows = json.loads((tmp_path / "quality.json").read_text())
    policies = {row["policy"] for row in rows}
    assert "float32" in policies and len(policies) == 2  # float32 and auto's bf16, or emulated bf16
    for row in rows:
        runs = sorted((tmp_path / "runs" / "lab4_unet").glob(f"{row['policy']}-seed*/metrics.json"))
        assert len(runs) == 2 and row["runs"] == "2/2"
        last = [json.loads(p.read_text())["final"]["val_dice_coef"] for p in runs]
        best = [json.loads(p.read_text())["best"]["val_dice_coef"] for p in runs]
        assert row["last"] == f"{statistics.mean(last):.3f} ± {statistics.stdev(last):.3f}"
        assert row["best"] == f"{statistics.mean(best):.3f} ± {statistics.stdev(best):.3f}"
        assert row["fell back"] == sum(round(b - v, 4) > 0.02 for b, v in zip(best, last))
        assert f"| lab4_unet | {row['policy']} | val_dice_coef | 2/2 | {row['best']} | {row['last']} |" in out
    assert line_with(out, "machine:").count("cores") == 1


def test_demo_range_in_the_lab_and_readme_is_the_one_benchmarks_md_recorded():
    import math

    from conftest import load_lab

    root = BENCHMARKS.parent
    expected = load_lab("lab4_unet").DEMO_EXPECTED  # e.g. "0.88–0.95"
    low, high = (float(v) for v in expected.split("–"))
    # the per-run lines quality.py printed, kept verbatim in BENCHMARKS.md
    runs = re.findall(r"lab4_unet \S+ seed \d+: val_dice_coef best [\d.]+ \(epoch \d+\), last ([\d.]+)",
                      (root / "BENCHMARKS.md").read_text())
    assert len(runs) >= 3  # at least three seeds
    last = [float(v) for v in runs]
    assert low == math.floor(min(last) * 100) / 100 and high == math.ceil(max(last) * 100) / 100
    assert f"validation Dice of {expected}" in (root / "README.md").read_text()


def test_a_run_that_ends_exactly_the_threshold_below_its_best_did_not_fall_back():
    sys.path.insert(0, str(BENCHMARKS))
    import quality

    best, last = (float(np.float32(v)) for v in (0.80, 0.78))  # accuracies as Keras logs them
    assert best - last > 0.02 and not quality.fell_back(best, last)
    assert quality.fell_back(float(np.float32(0.825)), float(np.float32(0.80)))


def test_quality_benchmark_knows_every_lab_script():
    sys.path.insert(0, str(BENCHMARKS))
    import quality

    scripts = {path.stem for path in (BENCHMARKS.parent / "labs").glob("*.py")}
    assert set(quality.DEMOS) | set(quality.NOT_MEASURED) == scripts
    assert not set(quality.DEMOS) & set(quality.NOT_MEASURED)
