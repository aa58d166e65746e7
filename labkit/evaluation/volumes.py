"""Per-case evaluation of segmented volumes: Dice, Jaccard, ASD and 95HD, a per-case table and a mean ± std summary.

The columns follow the LA 2018 (UA-MT) tables: Dice, Jaccard, ASD (directed pred → ref, see
`labkit.evaluation.surface.asd`) and 95HD (pooled, see `labkit.evaluation.surface.hd95`). Distances are given in
voxels (``*_vox``) and, for cases whose voxel spacing is known, in the spacing's unit (``*_mm``).
"""

import math

import numpy as np

from labkit.errors import require
from labkit.evaluation.overlap import dice, jaccard
from labkit.evaluation.surface import surface_metrics

#: Columns of a per-case row, in order (``*_mm`` only when some case has a known spacing).
OVERLAP_COLUMNS = ("dice", "jaccard")
DISTANCE_METRICS = ("asd", "hd95")


def _per_case_spacing(spacing, n_cases):
    """A list of `n_cases` spacings (each None or one voxel size) from None, one spacing, or one spacing per case.

    A list counts as one spacing per case when any of its items is None or a sequence, e.g.
    ``[(1, 1, 2), None]``; a flat list of numbers such as ``(0.625, 0.625, 1.25)`` is one spacing for every case.
    """
    if spacing is None:
        return [None] * n_cases
    per_case = isinstance(spacing, (list, tuple)) and any(s is None or np.ndim(s) > 0 for s in spacing)
    if not per_case:
        return [spacing] * n_cases
    require(len(spacing) == n_cases, f"{len(spacing)} spacings given for {n_cases} cases")
    return list(spacing)


def case_scores(pred, ref, spacing=None, hd95_mode="pooled"):
    """One row of the per-case table: Dice, Jaccard, and ASD / 95HD in voxels and (with `spacing`) in its unit.

    Args:
        pred, ref: masks of the same shape; probabilities are binarised at 0.5.
        spacing: voxel size per axis (e.g. mm), or None when unknown (then there are no ``*_mm`` values).
        hd95_mode: ``"pooled"`` (medpy, default) or ``"max"``; see `labkit.evaluation.surface.hd95`.

    Returns:
        A dict ``{dice, jaccard, asd_vox, hd95_vox[, asd_mm, hd95_mm]}``.
    """
    row = {"dice": dice(pred, ref), "jaccard": jaccard(pred, ref)}
    voxels = surface_metrics(pred, ref, None, hd95_mode=hd95_mode)
    row.update({f"{name}_vox": voxels[name] for name in DISTANCE_METRICS})
    if spacing is not None:
        physical = surface_metrics(pred, ref, spacing, hd95_mode=hd95_mode)
        row.update({f"{name}_mm": physical[name] for name in DISTANCE_METRICS})
    return row


def summarise_rows(rows, keys):
    """``{key: {mean, std, n, n_infinite}}`` over the rows: mean and (population) std of the finite values.

    ``n`` counts the finite values used and ``n_infinite`` the cases left out because a mask was empty (distance
    ``inf``), so a summary never hides a missed object. Missing values (a case without spacing) are skipped.
    """
    summary = {}
    for key in keys:
        values = np.array([row[key] for row in rows if row.get(key) not in (None, "")], dtype=float)
        finite = values[np.isfinite(values)]
        summary[key] = {
            "mean": float(finite.mean()) if finite.size else math.nan,
            "std": float(finite.std()) if finite.size else math.nan,
            "n": int(finite.size),
            "n_infinite": int(np.isinf(values).sum()),
        }
    return summary


def evaluate_volumes(preds, refs, spacing=None, names=None, hd95_mode="pooled"):
    """Score every case and summarise: the per-case table and a mean ± std summary.

    Args:
        preds, refs: sequences of masks (one volume each, shapes matching pairwise; probabilities binarised at 0.5).
        spacing: None (voxel units only), one voxel size for every case, or a list with one spacing (or None) per
            case, e.g. from the NIfTI headers.
        names: case names for the ``case`` column (default ``"0"``, ``"1"``, …).
        hd95_mode: ``"pooled"`` (medpy, default) or ``"max"``.

    Returns:
        ``(rows, summary)``: `rows` is a list of dicts ``{case, dice, jaccard, asd_vox, hd95_vox[, asd_mm,
        hd95_mm]}`` ready for CSV (``labkit.run_folder.write_csv`` or `write_per_case_csv`); `summary` maps each metric
        column to ``{mean, std, n, n_infinite}`` (see `summarise_rows`).

    Example:
        >>> rows, summary = evaluate_volumes([p1, p2], [r1, r2], spacing=(0.625, 0.625, 0.625), names=["a", "b"])
        >>> summary["dice"]["mean"], summary["hd95_mm"]["std"]
    """
    require(len(preds) == len(refs), f"{len(preds)} predicted volumes but {len(refs)} reference volumes")
    names = [str(n) for n in names] if names is not None else [str(i) for i in range(len(preds))]
    require(len(names) == len(preds), f"{len(names)} names for {len(preds)} cases")
    spacings = _per_case_spacing(spacing, len(preds))
    rows = [{"case": name, **case_scores(p, r, s, hd95_mode)} for name, p, r, s in zip(names, preds, refs, spacings)]
    columns = metric_columns(rows)
    rows = [{"case": row["case"], **{c: row.get(c, "") for c in columns}} for row in rows]
    return rows, summarise_rows(rows, columns)


def metric_columns(rows):
    """The metric columns present in `rows`, in table order (``*_mm`` only when some case has them)."""
    columns = list(OVERLAP_COLUMNS) + [f"{m}_vox" for m in DISTANCE_METRICS]
    if any("asd_mm" in row for row in rows):
        columns += [f"{m}_mm" for m in DISTANCE_METRICS]
    return columns
