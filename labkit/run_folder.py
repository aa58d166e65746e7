"""A run folder: config, history, metrics, figures and model, each written whole or not at all.

Every file is written to a temporary name beside it (``.<name>.tmp``) and renamed over the target (`os.replace` is
atomic on POSIX and Windows), so a crash, a SIGKILL or a full disk never leaves a truncated ``metrics.json``,
``history.csv`` or ``model.keras``: the file keeps its previous content. A write that fails raises
`labkit.errors.RunWriteError`, naming the file.

Every run folder keeps a hidden manifest, ``.labkit-run.json``: the exact relative path of every file labkit wrote
there (inside ``backup/`` and ``tensorboard/`` too), recorded before the file is written. Child run folders (the
variants of a ``--sweep``, the folds of ``--folds``, auto-context steps) keep manifests of their own.
``--overwrite`` removes exactly what the manifests list (and temporaries of listed files a killed process left)
and refuses, removing nothing, a folder that holds anything else, whatever its name.
"""

import csv
import io
import json
import math
import os
import re
import shutil
import traceback
import weakref
from datetime import datetime
from pathlib import Path

from labkit.errors import LabkitInputError, RunWriteError

RUN_FILES = ("config.json", "history.csv", "metrics.json", "model.keras")

MANIFEST = ".labkit-run.json"
"""The hidden file in each run folder that lists what labkit wrote there (paths relative to the folder)."""

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp(\.keras|\.weights\.h5)?$")
"""A temporary of `atomic_write` (``.<name>.tmp``, plus the extension Keras insists on)."""


def temporary_path(path):
    """Where `atomic_write` writes `path` before renaming it: ``.<name>.tmp`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


def _read_manifest(folder):
    """The set of paths `folder`'s manifest lists, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
        return set(data["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_manifest(folder, files):
    text = json.dumps({"written_by": "labkit", "files": sorted(files)}, indent=1) + "\n"
    target = Path(folder) / MANIFEST
    tmp = temporary_path(target)
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise RunWriteError(target, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def run_folder_of(path, levels=3):
    """The nearest folder at most `levels` above `path` that holds a run manifest, or None."""
    path = Path(path).absolute()
    return next((folder for folder in list(path.parents)[:levels] if (folder / MANIFEST).is_file()), None)


def record_written(path, levels=3):
    """Add `path` to the manifest of the nearest run folder at most `levels` folders above it (if any).

    `atomic_write` calls this for every file before writing it, so a lab writing through `RunFolder` or
    `atomic_write` needs nothing else; call it for a file made another way inside a run folder (TensorBoard's
    event files, a file a library writes).
    """
    path = Path(path).absolute()
    folder = run_folder_of(path, levels)
    if folder is not None:
        files = _read_manifest(folder)
        name = path.relative_to(folder).as_posix()
        if files is not None and name not in files:
            _write_manifest(folder, files | {name})


def record_folder(folder):
    """Record every file under `folder` (e.g. what TensorBoard wrote into ``<run>/tensorboard``) as labkit's."""
    folder = Path(folder)
    run = run_folder_of(folder / "x")
    files = _read_manifest(run) if run is not None else None
    if files is None or not folder.is_dir():
        return
    found = {p.relative_to(run).as_posix() for p in folder.rglob("*") if p.is_file()}
    if found - files:
        _write_manifest(run, files | found)


def forget_written(folder, *names):
    """Delete the files `folder`'s manifest lists under `names` (files, or folders: everything in them) and drop
    them from the manifest; folders left empty go too."""
    folder = Path(folder)
    files = _read_manifest(folder) or set()
    gone = {f for f in files for name in names if f == name or f.startswith(name.rstrip("/") + "/")}
    for name in gone:
        (folder / name).unlink(missing_ok=True)
    for name in names:
        if (folder / name).is_dir():
            _remove_empty_folders(folder / name)
    if gone:
        _write_manifest(folder, files - gone)


def _is_labkit_config(folder):
    """Does `folder` hold a ``config.json`` of the shape labkit writes (a run made before manifests existed)?"""
    try:
        data = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool({"settings", "multirun", "variant"} & set(data))


def _listed(name, recorded):
    """Is `name` (relative to a run folder) a file the manifest lists, or a temporary of one?"""
    if name in recorded:
        return True
    folder, _, base = name.rpartition("/")
    match = _TEMPORARY.match(base)
    return bool(match) and (f"{folder}/" if folder else "") + match["name"] in recorded


def foreign_file(folder):
    """The first file or folder under `folder` that labkit did not write (sorted order), or None.

    labkit's own are exactly: the files its manifest lists (and temporaries of those a killed write left), the
    manifest itself, and child run folders whose own manifests account for everything in them. A folder without a
    manifest is not a run folder: its first entry is foreign.
    """
    folder = Path(folder)
    recorded = _read_manifest(folder)
    if recorded is None:
        return _first_file(folder) if any(folder.iterdir()) else None
    return _foreign_in(folder, folder, recorded)


def _foreign_in(root, folder, recorded):
    for entry in sorted(folder.iterdir()):
        name = entry.relative_to(root).as_posix()
        if folder == root and name in (MANIFEST, temporary_path(MANIFEST).name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            if (entry / MANIFEST).is_file():
                found = foreign_file(entry)  # a child run folder: its own manifest decides
            elif any(r.startswith(name + "/") for r in recorded):
                found = _foreign_in(root, entry, recorded)
            else:
                found = _first_file(entry)
            if found is not None:
                return found
        elif not _listed(name, recorded):
            return entry
    return None


def _first_file(folder):
    """The first file under `folder` (sorted, depth first), or `folder` itself when it holds none: what a
    refusal names."""
    for entry in sorted(Path(folder).iterdir()):
        inner = _first_file(entry) if entry.is_dir() and not entry.is_symlink() else entry
        if inner is not None and not inner.is_dir():
            return inner
    return Path(folder)


def _remove_empty_folders(folder):
    """Remove `folder` and the folders under it that are (or become) empty."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in folder.iterdir():
        _remove_empty_folders(entry)
    if not any(folder.iterdir()):
        folder.rmdir()


def _remove_recorded(folder):
    """Delete what `folder`'s manifest lists (with their temporaries) and its child run folders; keep the folder."""
    recorded = _read_manifest(folder) or set()
    for entry in sorted(folder.rglob("*"), reverse=True):
        name = entry.relative_to(folder).as_posix()
        if entry.is_dir() and not entry.is_symlink() and (entry / MANIFEST).is_file():
            _remove_recorded(entry)
            (entry / MANIFEST).unlink()
        elif entry.exists() and not entry.is_dir() and _listed(name, recorded):
            entry.unlink()
    for entry in folder.iterdir():
        _remove_empty_folders(entry)


def clear_run_folder(folder, flag="--overwrite"):
    """Remove exactly what labkit wrote in `folder` (see `foreign_file`), or raise and remove nothing if it holds
    anything else.

    Raises:
        LabkitInputError: one line naming the folder and the first file labkit did not write.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    found = foreign_file(folder)
    if found is not None:
        older = (" (a run made by a labkit that kept no list of its files: delete it yourself)"
                 if _read_manifest(folder) is None and _is_labkit_config(folder) else "")
        raise LabkitInputError(
            f"{flag}: {folder} holds {found.relative_to(folder)}, which labkit did not write{older}; nothing was "
            "deleted: choose another --out or move that file away"
        )
    _remove_recorded(folder)
    (folder / MANIFEST).unlink(missing_ok=True)


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
            _write_manifest(run.path, _read_manifest(run.path) or set())  # also proves the folder is writable
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
