"""Grade students' Lab 4 U-Net runs on a hidden test folder.

For each run folder handed in, this script

1. opens the run with `labkit.load_run` (the model loads in Keras's safe mode: a model that would run code, e.g. a
   Lambda layer, is refused and graded as an error);
2. checks its architecture: the parameter count must be that of the course's `get_unet` built with the run's own
   settings (image size, base, batch normalisation, dropout), so a hand-modified network is flagged;
3. evaluates it on the hidden folder (course layout ``Image/`` + ``Mask/``) with the lab's metric: Dice per image at
   threshold 0.5, averaged; the evaluation goes into ``<run>/evaluations/<folder>/``;
4. writes one CSV row per run.

    python examples/grade_unet.py submissions/*/ --data-dir hidden/X_ray --out grades.csv

The same table without the architecture check: ``labkit evaluate submissions/*/ --data-dir hidden/X_ray``.
"""

import argparse
import csv
import sys
from pathlib import Path

import labkit
from labkit import get_unet


def course_parameter_count(settings, input_shape):
    """Parameters of the course's U-Net with a run's settings (its input shape from the saved model)."""
    return get_unet(input_shape, base=int(settings["base"]), batchnorm=bool(settings.get("batchnorm")),
                    dropout=settings.get("dropout")).count_params()


def grade(run_dir, data_dir):
    """One CSV row: the run, whether its network is the course's, its validation and hidden-test Dice."""
    row = {"run": Path(run_dir).name, "parameters": "", "course_parameters": "", "architecture_ok": "",
           "val_dice": "", "test_dice": "", "error": ""}
    try:
        run = labkit.load_run(run_dir)
        expected = course_parameter_count(run.settings, run.input_shape)
        row.update(parameters=run.model.count_params(), course_parameters=expected,
                   architecture_ok=run.model.count_params() == expected,
                   val_dice=run.metrics.get("validation", {}).get("dice", {}).get("mean", ""))
        row["test_dice"] = run.evaluate(data_dir)["test"]["dice"]["mean"]
    except (labkit.LabkitInputError, KeyError) as exc:  # a broken submission is graded as such, not a crash
        row["error"] = str(exc) if isinstance(exc, labkit.LabkitInputError) else f"config.json lacks {exc}"
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="students' run folders")
    parser.add_argument("--data-dir", type=Path, required=True, help="hidden test folder (Image/ and Mask/)")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write")
    args = parser.parse_args(argv)
    rows = [grade(run, args.data_dir) for run in args.runs]
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} runs graded; {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
