"""A run folder: config, history, metrics, figures and model, each written whole or not at all.

Every file is written to a temporary name in the same folder and renamed over the target (`os.replace` is atomic
on POSIX and Windows), so a crash or SIGKILL never leaves a truncated ``metrics.json``, ``history.csv`` or
``model.keras``.

Every run folder also keeps a hidden manifest, ``.labkit-run.json``: the files labkit wrote there, recorded as each
is written. ``--overwrite`` removes exactly what labkit wrote (the manifest's files, the folders Keras writes for
labkit — ``backup/``, ``tensorboard/`` —, child run folders) and refuses, removing nothing, a folder that holds
anything else.
"""

import csv
import fnmatch
import io
import json
import math
import os
import re
import shutil
import tempfile
import weakref
from datetime import datetime
from pathlib import Path

from labkit.errors import LabkitInputError

RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras")

MANIFEST = ".labkit-run.json"
"""The hidden file in each run folder that lists what labkit wrote there (paths relative to the folder)."""

LABKIT_FILES = (*RUN_FILES, "split.csv", "per_image.csv", "per_case.csv", "predictions.csv", "report.*",
                "comparison.*", "variants.*", "folds.csv", "summary.*", "encoder.json", "curves*.png", "samples.png",
                "activation_maps.png", "confusion_matrix.png", "roc.png", "gradcam.png", "slices.png", "surface.png")
"""Names (glob patterns) of the files a lab writes: what `--overwrite` also accepts in a run folder made before
manifests existed, and files written outside `atomic_write` (a hard-linked ``model.keras``)."""

LABKIT_DIRS = ("backup", "tensorboard")
"""Folders Keras callbacks write into a run folder for labkit (``BackupAndRestore``, ``TensorBoard``)."""

_LEFTOVER = re.compile(r"^\..+\.tmp(\.keras)?$")  # a temporary of atomic_write left by a killed process


def _read_manifest(folder):
    """The set of paths `folder`'s manifest lists, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
        return set(data["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_manifest(folder, files):
    text = json.dumps({"written_by": "labkit", "files": sorted(files)}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f"{MANIFEST}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, Path(folder) / MANIFEST)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def record_written(path, levels=3):
    """Add `path` to the manifest of the nearest run folder at most `levels` folders above it (if any).

    `atomic_write` calls this for every file, so a lab writing through `RunFolder` or `atomic_write` needs nothing
    else; call it for a file made another way (a hard link, a copy by a library) inside a run folder.
    """
    path = Path(path).absolute()
    for folder in list(path.parents)[:levels]:
        files = _read_manifest(folder)
        if files is not None:
            name = path.relative_to(folder).as_posix()
            if name not in files:
                _write_manifest(folder, files | {name})
            return


def _is_labkit_config(folder):
    """Does `folder` hold a ``config.json`` of the shape labkit writes (a run made before manifests existed)?"""
    try:
        data = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool({"settings", "multirun", "variant"} & set(data))


def foreign_file(folder, recorded=None, top=True):
    """The first file or folder under `folder` that labkit did not write (sorted order), or None.

    labkit's own: the files its manifest (or, for a folder without one, the nearest manifest above) lists, the
    names in `LABKIT_FILES`, the folders in `LABKIT_DIRS`, temporaries of `atomic_write`, and sub-folders whose every
    entry is labkit's (child runs). A top folder with neither a manifest nor a labkit ``config.json`` is not a run
    folder: its first entry is foreign.
    """
    folder = Path(folder)
    own = _read_manifest(folder)
    if own is not None:
        recorded = own
    elif top and not _is_labkit_config(folder):  # not a run folder: name a file no lab writes, if there is one
        found = foreign_file(folder, top=False)
        return found or next(iter(sorted(p for p in folder.iterdir() if p.name != MANIFEST)), None)
    recorded = recorded or set()
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name == MANIFEST or _LEFTOVER.match(name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            if name in LABKIT_DIRS:
                continue
            inner = {r[len(name) + 1:] for r in recorded if r.startswith(name + "/")}
            found = foreign_file(entry, inner, top=False)
            if found is not None:
                return found
        elif name not in recorded and not any(fnmatch.fnmatchcase(name, p) for p in LABKIT_FILES):
            return entry
    return None


def clear_run_folder(folder, flag="--overwrite"):
    """Remove what labkit wrote in `folder` (see `foreign_file`), or raise and remove nothing if it holds more.

    Raises:
        LabkitInputError: one line naming the folder and the first file labkit did not write.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    found = foreign_file(folder)
    if found is not None:
        raise LabkitInputError(
            f"{flag}: {folder} holds {found.relative_to(folder)}, which labkit did not write; nothing was deleted: "
            "choose another --out or move that file away"
        )
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


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
    record_written(path)
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
            overwrite: delete the files labkit wrote there and start afresh (see `clear_run_folder`: a folder
                holding anything else is refused, nothing deleted).
            resume: continue the run that is there (its ``config.json`` must exist).

        Raises:
            LabkitInputError: the folder holds a finished run (``metrics.json``) and neither flag is given,
                `resume` is asked for a folder without a run, or `overwrite` for a folder holding files labkit
                did not write.
        """
        run = cls(path)
        if resume:
            if not run.file("config.json").is_file():
                raise LabkitInputError(f"--resume: {run.path} holds no run to resume (no config.json)")
        elif run.file("metrics.json").is_file() and not overwrite:
            raise LabkitInputError(
                f"--out {run.path} already holds a finished run: choose another folder, or pass --overwrite or --resume"
            )
        elif overwrite:
            clear_run_folder(run.path)
        elif run.file("config.json").is_file() and not overwrite:
            raise LabkitInputError(
                f"--out {run.path} holds an unfinished run: pass --resume to continue it or --overwrite to start afresh"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        if _read_manifest(run.path) is None:
            _write_manifest(run.path, set())
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
        """Save a Keras model in the ``.keras`` format, atomically, without its compile state and optimizer.

        The file holds the network and its weights only, so plain ``keras.saving.load_model`` reads it in a process
        that never imported labkit (when the network uses only Keras layers; else ``import labkit`` first) and it is
        a third of the size with Adam. Resuming does not need it: ``BackupAndRestore`` keeps the optimizer in
        ``backup/``. To train a reloaded model further, compile it again.
        """
        inference = _inference_copy(model)

        def save(tmp):
            keras_tmp = f"{tmp}.keras"  # Keras insists on the extension
            try:
                inference.save(keras_tmp)
                os.replace(keras_tmp, tmp)
            finally:
                if os.path.exists(keras_tmp):
                    os.remove(keras_tmp)

        return atomic_write(self.file(name), save)
