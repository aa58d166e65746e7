"""A run folder: config, history, metrics, figures and model, each written whole or not at all.

Every file is written to a temporary name beside it (``.<name>.tmp``) and renamed over the target (`os.replace` is
atomic on POSIX and Windows), so a crash, a SIGKILL or a full disk never leaves a truncated ``metrics.json``,
``history.csv`` or ``model.keras``: the file keeps its previous content. A write that fails raises
`labkit.errors.RunWriteError`, naming the file.

Every file written here is first recorded in the run folder's hidden manifest (`labkit.run_manifest`), so
``--overwrite`` removes exactly what labkit wrote and nothing else.
"""

import csv
import io
import json
import math
import os
import traceback
import weakref
from datetime import datetime
from pathlib import Path

from labkit.errors import LabkitInputError, RunWriteError
from labkit.run_manifest import clear_run_folder, forget_written, open_manifest, record_written, temporary_path

RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras")

def atomic_write(path, write, suffix=""):
    """Call ``write(tmp_path)`` and rename the result to `path` only once it is complete.

    Args:
        path: the file to write.
        write: writes the whole content to the path it is given.
        suffix: an extension the writer insists on (Keras: ``.keras``, ``.weights.h5``), added to the temporary.

    Raises:
        RunWriteError: the file could not be written (full disk, no permission, ...); `path` is unchanged and no
            temporary is left behind. Other exceptions of `write` pass through, with the same guarantees.
    """
    path = Path(path)
    tmp = Path(f"{temporary_path(path)}{suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        record_written(path)
        try:
            write(str(tmp))
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            _discard(tmp)
    except RunWriteError:
        raise
    except OSError as exc:
        # A writer that failed may still hold the file open (h5py does, until its object is collected): its
        # frames let go of it now, and the emptied file has room for its last flush, so it closes quietly.
        traceback.clear_frames(exc.__traceback__)
        raise RunWriteError(path, exc) from None
    return path


def _discard(tmp):
    """Remove a temporary; emptied first, so a full disk gets its space back even while a writer holds it open."""
    if tmp.exists():
        try:
            os.truncate(tmp, 0)
        except OSError:
            pass
        tmp.unlink()


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


_INFERENCE_COPIES = weakref.WeakKeyDictionary()


def _inference_copy(model):
    """An uncompiled twin of `model` holding its current weights (made once per model, refreshed on each call).

    A model Keras cannot clone (a subclassed model without ``get_config``) is returned as it is.
    """
    if not getattr(model, "compiled", False):
        return model
    twin = _INFERENCE_COPIES.get(model)
    if twin is None:
        try:  # from its config: keras.models.clone_model would compile the twin like the model
            twin = type(model).from_config(model.get_config())
        except Exception:  # noqa: BLE001 - Keras raises several types for models it cannot rebuild from config
            return model
        _INFERENCE_COPIES[model] = twin
    twin.set_weights(model.get_weights())
    return twin


def check_writable_folder(path):
    """Refuse, before anything trains, an ``--out`` that cannot be a folder: a file in its place or above it.

    Raises:
        LabkitInputError: naming the file in the way.
    """
    path = Path(path)
    for part in [path, *path.parents]:
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "" if part == path else f": {part} is a file"
                raise LabkitInputError(f"--out {path} cannot be a run folder{where or ': it is a file'}")
            return


def default_run_dir(lab_name, root="runs"):
    """``runs/<lab>-<YYYYmmdd-HHMMSS>``."""
    return Path(root) / f"{lab_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class RunFolder:
    """The output folder of one lab run.

    ``metrics.json`` is written last and marks a finished run; writing it also removes the run's resume checkpoint
    (``backup/``, see `labkit.resume`), which a finished run no longer needs.

    Example:
        >>> run = RunFolder.create("runs/demo")
        >>> run.write_json("config.json", {"epochs": 3})
    """

    def __init__(self, path, resumed=False):
        self.path = Path(path)
        self.resumed = resumed

    @classmethod
    def create(cls, path, overwrite=False, resume=False):
        """Open `path` as a run folder, refusing to clobber a finished run.

        Args:
            path: the folder (created when missing).
            overwrite: delete the files labkit wrote there and start afresh (see `clear_run_folder`: a folder
                holding anything else is refused, nothing deleted).
            resume: continue the run that is there (its ``config.json`` must exist).

        Raises:
            LabkitInputError: the folder cannot be written (a file in the way, no permission, a read-only or full
                file system), holds a finished run (``metrics.json``) and neither flag is given, `resume` is asked
                for a folder without a run, or `overwrite` for a folder holding files labkit did not write.
        """
        run = cls(path, resumed=resume)
        check_writable_folder(run.path)
        if resume:
            if not run.file("config.json").is_file():
                raise LabkitInputError(f"--resume: {run.path} holds no run to resume (no config.json)")
        elif run.file("metrics.json").is_file() and not overwrite:
            raise LabkitInputError(
                f"--out {run.path} already holds a finished run: choose another folder, or pass --overwrite or --resume"
            )
        elif overwrite:
            clear_run_folder(run.path)
        elif run.file("config.json").is_file():
            raise LabkitInputError(
                f"--out {run.path} holds an unfinished run: pass --resume to continue it or --overwrite to start afresh"
            )
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            open_manifest(run.path)  # also proves the folder is writable
        except OSError as exc:
            reason = exc.reason if isinstance(exc, RunWriteError) else exc.strerror or str(exc)
            raise LabkitInputError(f"--out {run.path}: cannot write there ({reason})") from None
        return run

    def file(self, name):
        """Path of `name` inside the run folder."""
        return self.path / name

    @property
    def finished(self):
        return self.file("metrics.json").is_file()

    def write_json(self, name, data):
        written = write_json(self.file(name), data)
        if name == "metrics.json":
            forget_written(self.path, "backup")  # finished: the resume checkpoint has done its job
        return written

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
        """Save a Keras model in the ``.keras`` format, atomically, without its compile state and optimizer.

        The file holds the network and its weights only, so plain ``keras.saving.load_model`` reads it in a process
        that never imported labkit (when the network uses only Keras layers; else ``import labkit`` first) and it is
        a third of the size with Adam. Resuming does not need it: the checkpoint in ``backup/`` keeps the optimizer
        (`labkit.resume`). To train a reloaded model further, compile it again.
        """
        inference = _inference_copy(model)
        return atomic_write(self.file(name), inference.save, suffix=".keras")
