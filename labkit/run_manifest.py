"""Which files of a run folder labkit wrote: the hidden manifest every run folder keeps, and ``--overwrite``.

Every run folder keeps a hidden manifest, ``.labkit-run.json``: the exact relative path of every file labkit wrote
there (inside ``backup/`` and ``tensorboard/`` too), recorded before the file is written (`labkit.run_folder`'s
atomic writes call `record_written`). Child run folders (the variants of a ``--sweep``, the folds of ``--folds``,
auto-context steps) keep manifests of their own. ``--overwrite`` (`clear_run_folder`) removes exactly what the
manifests list (and temporaries of listed files a killed process left) and refuses, removing nothing, a folder that
holds anything else, whatever its name.
"""

import json
import os
import re
from pathlib import Path

from labkit.errors import LabkitInputError, RunWriteError

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


def open_manifest(folder):
    """Give `folder` its manifest, keeping the files an existing one lists. Raises `RunWriteError` when it cannot
    be written."""
    _write_manifest(folder, _read_manifest(folder) or set())


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
