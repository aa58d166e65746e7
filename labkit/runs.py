"""A run folder: config, history, metrics, figures and model, each written whole or not at all.

Every file is written to a temporary name in the same folder and renamed over the target (`os.replace` is atomic
on POSIX and Windows), so a crash or SIGKILL never leaves a truncated ``metrics.json``, ``history.csv`` or
``model.keras``.
"""

import csv
import io
import json
import math
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from labkit.errors import LabkitInputError

RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras")


def atomic_write(path, write):
    """Call ``write(tmp_path)`` and rename the result to `path` only once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _json_default(value):
    if hasattr(value, "item"):  # NumPy / TF scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _json_safe(value):
    """Replace non-finite floats by strings ("inf", "nan"): strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path, data):
    """Write `data` as indented JSON, atomically."""
    text = json.dumps(_json_safe(json.loads(json.dumps(data, default=_json_default))), indent=2) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_csv(path, rows, fieldnames=None):
    """Write a list of dicts as CSV (columns in first-seen order unless `fieldnames` is given), atomically."""
    if fieldnames is None:
        fieldnames = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


def read_csv(path):
    """Rows of a CSV file as dicts, numbers converted to float (int for whole-number columns such as epoch)."""
    def convert(value):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number

    with open(path, newline="") as handle:
        return [{k: convert(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def markdown_table(rows, fieldnames=None, floatfmt=".4f"):
    """A GitHub-flavoured Markdown table of a list of dicts (floats formatted with `floatfmt`)."""
    fieldnames = fieldnames or list(dict.fromkeys(key for row in rows for key in row))
    cell = lambda v: format(v, floatfmt) if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(fieldnames) + " |", "|" + "---|" * len(fieldnames)]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in fieldnames) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def default_run_dir(lab_name, root="runs"):
    """``runs/<lab>-<YYYYmmdd-HHMMSS>``."""
    return Path(root) / f"{lab_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class RunFolder:
    """The output folder of one lab run.

    Example:
        >>> run = RunFolder.create("runs/demo")
        >>> run.write_json("config.json", {"epochs": 3})
    """

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def create(cls, path, overwrite=False, resume=False):
        """Open `path` as a run folder, refusing to clobber a finished run.

        Args:
            path: the folder (created when missing).
            overwrite: delete the run files already there and start afresh.
            resume: continue the run that is there (its ``config.json`` must exist).

        Raises:
            LabkitInputError: the folder holds a finished run (``metrics.json``) and neither flag is given, or
                `resume` is asked for a folder without a run.
        """
        run = cls(path)
        if resume:
            if not run.file("config.json").is_file():
                raise LabkitInputError(f"--resume: {run.path} holds no run to resume (no config.json)")
        elif run.file("metrics.json").is_file() and not overwrite:
            raise LabkitInputError(
                f"--out {run.path} already holds a finished run: choose another folder, or pass --overwrite or --resume"
            )
        elif overwrite and run.path.is_dir():
            shutil.rmtree(run.path)
        elif run.file("config.json").is_file() and not overwrite:
            raise LabkitInputError(
                f"--out {run.path} holds an unfinished run: pass --resume to continue it or --overwrite to start afresh"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    def file(self, name):
        """Path of `name` inside the run folder."""
        return self.path / name

    @property
    def finished(self):
        return self.file("metrics.json").is_file()

    def write_json(self, name, data):
        return write_json(self.file(name), data)

    def read_json(self, name):
        return json.loads(self.file(name).read_text())

    def write_csv(self, name, rows, fieldnames=None):
        return write_csv(self.file(name), rows, fieldnames)

    def write_table(self, stem, rows, fieldnames=None, floatfmt=".4f"):
        """Write a comparison table twice: ``<stem>.csv`` and a Markdown copy ``<stem>.md``."""
        self.write_csv(f"{stem}.csv", rows, fieldnames)
        return self.write_text(f"{stem}.md", markdown_table(rows, fieldnames, floatfmt))

    def write_text(self, name, text):
        return atomic_write(self.file(name), lambda tmp: Path(tmp).write_text(text))

    def save_figure(self, name, figure, dpi=110):
        """Save a matplotlib Figure as PNG, atomically."""
        return atomic_write(self.file(name), lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))

    def save_model(self, model, name="model.keras"):
        """Save a Keras model in the ``.keras`` format, atomically."""
        def save(tmp):
            keras_tmp = f"{tmp}.keras"  # Keras insists on the extension
            try:
                model.save(keras_tmp)
                os.replace(keras_tmp, tmp)
            finally:
                if os.path.exists(keras_tmp):
                    os.remove(keras_tmp)

        return atomic_write(self.file(name), save)
