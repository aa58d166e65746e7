"""Find the files of a dataset layout and pair them by name, never by directory-listing order.

This module holds what every layout shares (listing image files, pairing by name, checking that files decode);
one submodule per layout family finds its files (see ``data/README.md``):

* `xray`: course X-ray / CT (Lab 3–4).
* `lab2`: course Lab 2 class folders (Bone AFF/NFF, Skin Mel/Nevi).
* `isic2016`: ISIC 2016 Part 1, official and Kaggle copies.
* `isic2018`: ISIC 2018 Task 3 CSVs and HAM10000 metadata.
* `volumes`: LA 2018 (UA-MT h5) and NIfTI image/label pairs.
* `stock`: course Lab 6 Task 1, a daily series in two CSV files (newest row first).
* `tractography`: course Lab 6 Task 2, TrackVis bundles ``<subject>/<bundle>.trk`` (read with nibabel).
"""

import dataclasses
from pathlib import Path

from labkit.data.io import IMAGE_EXTENSIONS, inspect_images
from labkit.errors import LabkitInputError, require

MASK_SUFFIXES = ("_Mask", "_mask", "_Segmentation", "_segmentation", "_seg")


def subfolders(folder):
    """Names of the subfolders of `folder` (empty when it is not a folder), sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_dir()) if Path(folder).is_dir() else []


def name_some(paths, limit=5):
    """The names of the first `limit` paths, and how many more there are, for an error message."""
    shown = ", ".join(Path(p).name for p in list(paths)[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def by_key(paths, key=lambda path: Path(path).stem, kind="files"):
    """``{key(path): path}`` for `paths`, refusing two files with one key (``a.png`` and ``a.jpg``).

    Raises:
        LabkitInputError: naming both files of the first clash: labkit will not pick one of them silently.
    """
    found = {}
    for path in paths:
        k = key(path)
        if k in found:
            raise LabkitInputError(f"two {kind} for {k!r}: {found[k]} and {path}; labkit cannot tell which one to "
                                   "use: remove or rename one of them")
        found[k] = path
    return found


def list_image_files(folder):
    """Image files in `folder` (not recursive, hidden files skipped), sorted by name.

    Raises:
        LabkitInputError: the folder is missing, or two files share a name but for the extension (both named).
    """
    folder = Path(folder)
    require(folder.is_dir(), f"folder not found: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    by_key(files, kind="image files")
    return files


def _mask_key(path, suffixes):
    stem = path.stem
    for suffix in suffixes:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def pair_by_name(image_dir, mask_dir, mask_suffixes=MASK_SUFFIXES):
    """Pair every image with the mask of the same name (ignoring extension and a mask suffix such as ``_Mask``; a
    mask named exactly as an image is that image's, even when its name ends in such a suffix).

    Args:
        image_dir: folder of images.
        mask_dir: folder of masks.
        mask_suffixes: suffixes a mask's name may carry after the image's name.

    Returns:
        A list of ``(image_path, mask_path)`` sorted by image name.

    Raises:
        LabkitInputError: a folder is missing or empty, two masks claim one image, or images lack masks / masks lack
            images (up to five of each are named).
    """
    images = list_image_files(image_dir)
    require(images, f"no images (.png, .jpg, .jpeg, .bmp) in {image_dir}")
    stems, masks = {p.stem for p in images}, {}
    for mask in list_image_files(mask_dir):
        # The image's own name first: a mask named exactly as its image (``lung_seg.png``) is that image's mask.
        key = mask.stem if mask.stem in stems else _mask_key(mask, mask_suffixes)
        require(key not in masks, f"two masks for image {key!r} in {mask_dir}: {masks.get(key, Path()).name}, {mask.name}")
        masks[key] = mask
    return match_keys({p.stem: p for p in images}, masks, image_dir, mask_dir)


def match_keys(images, masks, image_dir, mask_dir, kind="mask"):
    """Pairs ``(images[k], masks[k])`` sorted by key, from two ``{key: path}`` dicts that must hold the same keys.

    Raises:
        LabkitInputError: naming up to five images without a mask and five masks without an image (`kind` is
            what the messages call the second file: "mask", "label", …).
    """
    orphans = [images[k] for k in sorted(images) if k not in masks]
    strays = [masks[k] for k in sorted(masks) if k not in images]
    problems = []
    if orphans:
        problems.append(f"{len(orphans)} image(s) in {image_dir} without a {kind} in {mask_dir}: "
                        f"{name_some(orphans)}")
    if strays:
        problems.append(f"{len(strays)} {kind}(s) in {mask_dir} without an image: {name_some(strays)}")
    if problems:
        raise LabkitInputError("; ".join(problems))
    return [(images[k], masks[k]) for k in sorted(images)]


_SKIPPED = []  # files skipped by --skip-bad-files since the run started (cli.start_run forgets, save_config lists)


def skipped_files():
    """The files `check_readable` (or `load_cases`) skipped since `forget_skipped`, as strings, in order."""
    return list(dict.fromkeys(_SKIPPED))


def forget_skipped():
    """Start a new list of skipped files (called when a run starts)."""
    _SKIPPED.clear()


def note_skipped(paths):
    """Add files left out as unreadable to the list `skipped_files` gives (``config.json`` lists them)."""
    _SKIPPED.extend(str(p) for p in paths)


def _keep(split, indices):
    """The entries at `indices` of a split object with ``paths`` and ``labels`` (e.g. a `ClassFolderSplit`)."""
    if hasattr(split, "subset"):
        return split.subset(indices)
    return dataclasses.replace(split, paths=tuple(split.paths[i] for i in indices),
                               labels=tuple(split.labels[i] for i in indices))


def check_readable(paths, skip_bad=False, warn=print):
    """Return `paths` after checking that each file decodes; raise on bad files, or skip them with `skip_bad`.

    For image/mask pairs, a mask whose size differs from its image is allowed (both are resized to the network's
    input size) with one warning for all of them. Skipped files are remembered for the run's ``config.json``
    (`skipped_files`).

    Args:
        paths: a list of files, or of tuples of files (e.g. image/mask pairs; a tuple goes if any member is bad),
            or a split object with ``paths`` and ``labels`` (`ClassFolderSplit`, `LabelledImages`): the same
            kind of object comes back, without the bad files.
        skip_bad: drop bad entries with one warning (count and first names) instead of raising.
        warn: where warnings go.

    Raises:
        LabkitInputError: naming the first unreadable file and why (and how many more there are).

    Example:
        >>> pairs = check_readable(find_xray_pairs("X_ray"), skip_bad=True)
    """
    if hasattr(paths, "paths") and hasattr(paths, "labels"):
        split = paths
        kept = set(check_readable(split.paths, skip_bad, warn))
        return _keep(split, [i for i, path in enumerate(split.paths) if path in kept])
    paths = list(paths)
    members = lambda entry: entry if isinstance(entry, tuple) else (entry,)  # noqa: E731
    report = inspect_images([p for entry in paths for p in members(entry)])
    bad = {p: problem for p, (_, problem) in report.items() if problem}
    if bad and not skip_bad:
        path, problem = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more bad file(s))" if len(bad) > 1 else ""
        raise LabkitInputError(f"unreadable image {path}: {problem}{more}; --skip-bad-files leaves such files out")
    if bad:
        warn(f"warning: skipped {len(bad)} unreadable file(s): {name_some(list(bad))}")
        note_skipped(bad)
        paths = [e for e in paths if not any(p in bad for p in members(e))]
    mismatched = [e for e in paths if isinstance(e, tuple) and len(e) > 1 and report[e[0]][0] != report[e[1]][0]]
    if mismatched:
        image, mask = mismatched[0]
        warn(f"warning: {len(mismatched)} mask(s) differ in size from their image (e.g. {mask.name} "
             f"{report[mask][0]} vs {image.name} {report[image][0]}); each is resized to the network's input size")
    return paths


from labkit.data.layouts.xray import find_xray_pairs  # noqa: E402  (the submodule uses the helpers above)
