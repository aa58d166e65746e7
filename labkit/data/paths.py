"""Where a folder or file argument of a course function points: the one rule every course name follows.

Course code names folders in two ways, and both must work:

* **a name under the data folder**, as labkit's docs and much student code: ``load_data("Data/CT", "Image", "Mask",
  …)``;
* **a path that already holds the data folder**, as the handout's own notebooks: ``image_dir =
  os.path.join(data_dir, 'Image/')``, then ``load_data(data_dir, image_dir, mask_dir, …)``; the handout's loader
  ignored `data_dir` and listed `image_dir` as it stood, so any path that works from the working directory (or an
  absolute one) works there.

`find_path` and `resolve_path` take a base folder (`data_dir`) and a name and look in at most two places:

1. the name **as it stands** (the only place when it is absolute) first when it leads into the base from outside
   it: its leading components spell the base (``Data/CT/Image/`` under ``Data/CT``; ``./Data/CT`` and ``Data/CT/`` are the
   same base), or it reaches the base's folder from the working directory (``Data/CT/Image`` under
   ``/home/me/lab5/Data/CT``, run from ``/home/me/lab5``);
2. otherwise **base / name** first, then the name as it stands (from the working directory).

Two spellings of one folder count once, and the first that exists wins. So when a relative name exists both under the base and in the working directory, the
reading the course code meant is taken: a bare subfolder name (``"Image"``) is the data folder's subfolder, never a
stray ``Image/`` next to the notebook; a path that already holds the base is taken as it stands, never doubled
(``Data/CT/Data/CT/Image``). Trailing separators, ``str``, `pathlib.Path` and any `os.PathLike` are all fine, and a
leading ``~`` is the home folder (as in a shell; `pathlib` and OpenCV leave it as a folder named ``~``). A base of
None or ``""`` means "no base": the name is used as it stands.
"""

import os
from pathlib import Path

from labkit.errors import LabkitInputError

_EXISTS = {"folder": Path.is_dir, "file": Path.is_file}


def as_path(value):
    """`value` (``str``, `Path` or any `os.PathLike`) as a `Path`, a leading ``~`` expanded to the home folder."""
    return Path(os.path.expanduser(os.fspath(value)))


def _inside(path, folder):
    """True when the absolute, normalised `path` lies strictly below the absolute, normalised `folder`."""
    return path != folder and os.path.commonpath([path, folder]) == folder


def holds_base(base, name):
    """True when the relative path `name` leads into the folder `base` from outside it (the handout's
    ``os.path.join(data_dir, 'Image/')``), whichever of the two is spelled relative or absolute.

    When the working directory is the base or inside it, every relative name lands inside the base, so only a name
    whose own leading components spell the base counts then.
    """
    parts, base_parts = Path(os.path.normpath(name)).parts, Path(os.path.normpath(base)).parts
    if base_parts != (".",) and len(parts) > len(base_parts) and parts[: len(base_parts)] == base_parts:
        return True
    folder, cwd = os.path.abspath(base), os.getcwd()
    return _inside(os.path.abspath(name), folder) and cwd != folder and not _inside(cwd, folder)


def candidates(base, name):
    """The paths `name` may mean under `base`, most likely first (see the module docstring), each folder once."""
    name = as_path(name)
    if base is None or os.fspath(base) == "" or name.is_absolute():
        return [name]
    base = as_path(base)
    joined = base / name
    order = [name, joined] if holds_base(base, name) else [joined, name]
    unique = {}
    for path in order:  # "../D/../D/Image" is "../D/Image"; "Image" from inside the base is "base/Image"
        unique.setdefault(os.path.abspath(path), path)
    return list(unique.values())


def find_path(base, name, kind="folder"):
    """The existing folder (or file) that `name` means under `base`, or None when there is none.

    Args:
        base: the data folder (``str``, `Path` or None).
        name: a name under `base` (``"Image"``, ``"Image/"``), or a path that already holds `base`
            (``os.path.join(base, "Image/")``, relative or absolute), or any path from the working directory, or an
            absolute path; ``str`` or `Path`, trailing separators and a leading ``~`` are fine. When a relative name
            exists in two places, the one the course code meant is taken (module docstring): a bare name under
            `base`, a path that holds `base` as it stands.
        kind: ``"folder"`` or ``"file"``: what must exist there.

    Returns:
        A `Path` as the caller spelled it (relative paths stay relative; ``~`` expanded), or None.

    Example:
        >>> find_path("Data/CT", "Image/") == find_path("Data/CT", os.path.join("Data/CT", "Image/"))
        True
    """
    exists = _EXISTS[kind]
    return next((path for path in candidates(base, name) if exists(path)), None)


def resolve_path(base, name, kind="folder"):
    """`find_path`, raising when `name` exists in neither convention.

    Takes what `find_path` takes: a name under `base` or a path that already holds it, relative (to `base` or to the
    working directory) or absolute, ``str`` or `Path`, with or without a trailing separator, ``~`` for home.

    Raises:
        LabkitInputError: one line naming the folder (or file) as given and every place it was looked for, e.g.
            ``folder not found: 'Imag' (looked for Data/CT/Imag and Imag from /home/me/lab5)``.

    Example:
        >>> image_dir = resolve_path("Data/CT", "Image")  # or os.path.join("Data/CT", "Image/"), or an absolute path
    """
    found = find_path(base, name, kind)
    if found is not None:
        return found
    written, tried = os.fspath(name), candidates(base, name)
    shown = " and ".join(str(path) for path in tried)
    if len(tried) == 1 and tried[0].is_absolute():
        where = "" if shown == os.path.normpath(written) else f" ({shown})"  # e.g. '~/data' (/home/me/data)
    elif len(tried) == 1:
        where = f" (from {Path.cwd()})"
    else:
        where = f" (looked for {shown} from {Path.cwd()})"
    missing_base = "" if len(tried) == 1 or as_path(base).is_dir() else \
        f"; the data folder {os.fspath(base)} does not exist either"
    raise LabkitInputError(f"{kind} not found: {written!r}{where}{missing_base}")

__all__ = ["as_path", "candidates", "find_path", "holds_base", "resolve_path"]
