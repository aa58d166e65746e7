"""Where a folder or file argument of a course function points: the one rule every course name follows.

Course code names folders in two ways, and both must work:

* **a name under the data folder**, as labkit's docs and much student code: ``load_data("Data/CT", "Image", "Mask",
  …)``;
* **a path that already holds the data folder**, as the handout's own notebooks: ``image_dir =
  os.path.join(data_dir, 'Image/')``, then ``load_data(data_dir, image_dir, mask_dir, …)``; the handout's loader
  ignored `data_dir` and listed `image_dir` as it stood, so any path that works from the working directory (or an
  absolute one) works there.

`find_path` and `resolve_path` take a base folder and a name and try, in this order: the name as it stands when it is
absolute or already starts with the base (``Data/CT/Image/`` under ``Data/CT``), else ``base / name``, then the name
as it stands, relative to the working directory. The first that exists wins. Trailing separators, ``str``,
`pathlib.Path` and any `os.PathLike` are all fine; ``.`` and ``..`` components are compared after normalisation
(``./Data/CT`` holds ``Data/CT/Image``). A base of None or ``""`` means "no base": the name is used as it stands.
"""

import os
from pathlib import Path

from labkit.errors import LabkitInputError

_EXISTS = {"folder": Path.is_dir, "file": Path.is_file}


def _as_path(value):
    return Path(os.fspath(value))


def _starts_with(path, base):
    """True when the relative `path` begins with the relative `base` and goes deeper (both normalised)."""
    parts = Path(os.path.normpath(path)).parts
    base_parts = Path(os.path.normpath(base)).parts
    return base_parts != (".",) and len(parts) > len(base_parts) and parts[: len(base_parts)] == base_parts


def candidates(base, name):
    """The paths `name` may mean under `base`, most likely first (see the module docstring), without duplicates."""
    name = _as_path(name)
    if base is None or os.fspath(base) == "" or name.is_absolute():
        return [name]
    base = _as_path(base)
    joined = base / name
    if _starts_with(name, base):
        order = [name, joined]  # the handout's convention: the path already holds the base
    else:
        order = [joined, name]  # a name under the base; else a path from the working directory
    return list(dict.fromkeys(order))


def find_path(base, name, kind="folder"):
    """The existing folder (or file) that `name` means under `base`, or None when there is none.

    Args:
        base: the data folder (``str``, `Path` or None).
        name: a name under `base`, or a path that already holds `base`, or any path from the working directory, or
            an absolute path; trailing separators are fine.
        kind: ``"folder"`` or ``"file"``: what must exist there.

    Returns:
        A `Path` as the caller spelled it (relative paths stay relative), or None.

    Example:
        >>> find_path("Data/CT", "Image/") == find_path("Data/CT", os.path.join("Data/CT", "Image/"))
        True
    """
    exists = _EXISTS[kind]
    return next((path for path in candidates(base, name) if exists(path)), None)


def resolve_path(base, name, kind="folder"):
    """`find_path`, raising when `name` exists in neither convention.

    Raises:
        LabkitInputError: one line naming the folder (or file) as given and every place it was looked for, e.g.
            ``folder not found: 'Imag' (looked for Data/CT/Imag and Imag from /home/me/lab5)``.

    Example:
        >>> image_dir = resolve_path("Data/CT", "Image")  # or os.path.join("Data/CT", "Image/"), or an absolute path
    """
    found = find_path(base, name, kind)
    if found is not None:
        return found
    tried = candidates(base, name)
    if len(tried) == 1:
        raise LabkitInputError(f"{kind} not found: {tried[0]}"
                               + ("" if tried[0].is_absolute() else f" (from {Path.cwd()})"))
    shown = " and ".join(str(path) for path in tried)
    missing_base = "" if _as_path(base).is_dir() else f"; the data folder {os.fspath(base)} does not exist either"
    raise LabkitInputError(f"{kind} not found: {os.fspath(name)!r} (looked for {shown} from {Path.cwd()})"
                           f"{missing_base}")


__all__ = ["candidates", "find_path", "resolve_path"]
