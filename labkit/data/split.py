"""Reproducible train / validation splits."""

from sklearn.model_selection import train_test_split

from labkit.errors import LabkitInputError, require


def kfold_indices(n_items, kfold, seed=42, labels=None, groups=None):
    """Indices ``(train, val)`` of fold `i` of `k` (``kfold = (i, k)``, i from 1): the fold-aware split of every lab.

    Stratified by class when `labels` are given, grouped when `groups` are (all items of a group, e.g. the images
    of one patient or lesion, in the same fold), both with scikit-learn's `StratifiedGroupKFold`, else plain
    `KFold`; shuffled with `seed`. Over ``i = 1 … k`` every item is in exactly one validation fold.

    Example:
        >>> train, val = kfold_indices(10, (2, 5), seed=42)
    """
    import warnings

    import numpy as np
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    fold, k = (int(v) for v in kfold)
    require(k >= 2 and 1 <= fold <= k, f"--fold {fold} is not in 1..{k} (--folds {k})")
    require(n_items >= k, f"--folds {k} needs at least {k} items, got {n_items}")
    x = np.zeros(n_items)
    if labels is not None and groups is not None:
        require(len(set(groups)) >= k, f"--folds {k} needs at least {k} groups (patients/lesions), got {len(set(groups))}")
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=int(seed)).split(x, labels, groups)
    elif labels is not None:
        splitter = StratifiedKFold(k, shuffle=True, random_state=int(seed)).split(x, labels)
    elif groups is not None:
        require(len(set(groups)) >= k, f"--folds {k} needs at least {k} groups (patients/lesions), got {len(set(groups))}")
        order = np.random.default_rng(int(seed)).permutation(n_items)  # GroupKFold itself does not shuffle
        splitter = ((order[a], order[b]) for a, b in GroupKFold(k).split(x, groups=np.asarray(groups)[order]))
    else:
        splitter = KFold(k, shuffle=True, random_state=int(seed)).split(x)
    with warnings.catch_warnings():  # "least populated class has only N members": small classes are expected
        warnings.simplefilter("ignore", UserWarning)
        train, val = list(splitter)[fold - 1]
    return np.sort(train), np.sort(val)


def train_val_split(items, val_fraction=0.2, seed=42, kfold=None, group_of=None):
    """Split `items` into ``(train, val)`` at random with `seed`; `val_fraction` of them (at least one) for validation.

    The order of `items` is sorted first, so the split depends on the items, not on how they were listed. With
    `kfold` ``(i, k)`` the validation part is fold `i` of `k` instead (`kfold_indices`; `val_fraction` unused).

    `group_of` (optional) maps an item to its group, e.g. the patient of a slice: when every item has one, no group
    is split between training and validation (folds by `kfold_indices` with ``groups``; without `kfold`, fold 1 of
    ``round(1 / val_fraction)`` grouped folds, so about `val_fraction` of the items, when there are that many
    groups; with fewer groups the split is by item).
    """
    items = sorted(items)
    groups = [group_of(item) for item in items] if group_of else None
    groups = None if groups is None or None in groups else groups
    if kfold:
        train, val = kfold_indices(len(items), kfold, seed, groups=groups)
        return [items[i] for i in train], [items[i] for i in val]
    k = max(2, round(1.0 / float(val_fraction))) if 0.0 < float(val_fraction) < 1.0 else 0
    if groups is not None and k and len(set(groups)) >= k:
        train, val = kfold_indices(len(items), (1, k), seed, groups=groups)
        return [items[i] for i in train], [items[i] for i in val]
    require(0.0 < float(val_fraction) < 1.0, f"--val-split must be between 0 and 1 (exclusive), got {val_fraction}")
    require(len(items) >= 2, f"need at least 2 items to split into training and validation, got {len(items)}")
    n_val = min(len(items) - 1, max(1, round(len(items) * float(val_fraction))))
    train, val = train_test_split(items, test_size=n_val, random_state=int(seed), shuffle=True)
    return sorted(train), sorted(val)


def _grouped_holdout(labels, groups, fraction, seed, class_names):
    """Indices ``(kept, held_out)``: about `fraction` of the items held out, stratified by label, grouped by group.

    Uses scikit-learn's `StratifiedGroupKFold` with ``round(1 / fraction)`` folds and takes the first fold whose
    held-out part and remainder both contain every class; when a rare class makes every fold of one shuffle fail,
    up to nine more shuffles (derived from `seed`) are tried.
    """
    import warnings

    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, round(1.0 / float(fraction)))
    classes, sizes = np.unique(labels, return_counts=True)
    if sizes.max() < n_splits:  # StratifiedGroupKFold refuses this with a message about its own parameters
        raise LabkitInputError(
            f"too few images to hold out a fraction of {fraction:.2g} ({n_splits} folds): the largest class has "
            f"{sizes.max()} image(s); add images or raise --val-split / --test-split")
    for attempt in range(10):
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=int(seed) + 1000 * attempt)
        with warnings.catch_warnings():  # "least populated class has only N members": rare classes are expected
            warnings.simplefilter("ignore", UserWarning)
            for kept, held in folds.split(np.zeros(len(labels)), labels, groups):
                if len(np.unique(labels[kept])) == len(classes) and len(np.unique(labels[held])) == len(classes):
                    return kept, held
    counts = {c: len(set(np.asarray(groups)[labels == c])) for c in classes}
    rarest = min(counts, key=counts.get)
    name = class_names[rarest] if class_names is not None else rarest
    raise LabkitInputError(
        f"cannot split so that every split holds every class: class {name} has only {counts[rarest]} lesion(s) "
        f"(groups); each split needs at least one"
    )


def refold_class_splits(train, val, kfold, seed=42):
    """A set's given training and validation images, or with `kfold` ``(i, k)`` fold `i` of both pooled.

    For layouts that come split already (Lab 2's ``train/`` and ``validation/`` class folders): `train` and `val`
    are `ClassFolderSplit`-like (``paths``, ``labels``, ``class_names``); the folds are stratified by class.
    """
    if not kfold:
        return train, val
    paths, labels = [*train.paths, *val.paths], [*train.labels, *val.labels]
    parts = kfold_indices(len(paths), kfold, seed, labels=labels)
    return tuple(type(train)(tuple(paths[i] for i in part), tuple(labels[i] for i in part), train.class_names)
                 for part in parts)


def grouped_stratified_split(labels, groups, val_fraction=0.15, test_fraction=0.15, seed=42, class_names=None,
                             kfold=None):
    """Split items into training, validation and test indices, stratified by class and grouped by lesion.

    All items of one group (e.g. the images of one HAM10000 ``lesion_id``) land in the same split, so no lesion is
    seen in training and scored in test; each split holds every class, and class proportions are kept as well as
    whole groups allow. The test part is held out first, then the validation part from the rest, each with
    scikit-learn's `StratifiedGroupKFold` (fractions are rounded to ``1 / n_folds``).

    Args:
        labels: class index of each item.
        groups: group (lesion) ID of each item; use the item's own ID when there are no groups.
        val_fraction: fraction for validation, or 0 for no validation split.
        test_fraction: fraction for test, or 0 for no test split.
        seed: the split's seed; items are identified by position, so keep their order fixed.
        kfold: ``(i, k)``: after the test part is held out, the validation part is fold `i` of `k` of the rest
            (stratified, grouped: `kfold_indices`) instead of `val_fraction`.
        class_names: names of the classes, for error messages.

    Returns:
        ``(train, val, test)``: sorted int arrays of item indices (an empty array for a fraction of 0).

    Raises:
        LabkitInputError: a fraction outside [0, 1), or a class with too few groups to appear in every split.

    Example:
        >>> train, val, test = grouped_stratified_split(labels, lesion_ids, 0.15, 0.15, seed=42)
    """
    import numpy as np

    labels = np.asarray(labels)
    groups = np.asarray([str(g) for g in groups])
    require(len(labels) == len(groups), f"{len(labels)} labels but {len(groups)} groups")
    for flag, value in (("--val-split", val_fraction), ("--test-split", test_fraction)):
        require(0.0 <= float(value) < 1.0, f"{flag} must be in [0, 1), got {value}")
    require(float(val_fraction) + float(test_fraction) < 1.0,
            f"--val-split {val_fraction} and --test-split {test_fraction} leave nothing to train on")
    empty = np.array([], dtype=np.int64)
    rest, test = np.arange(len(labels)), empty
    if test_fraction:
        rest, test = _grouped_holdout(labels, groups, test_fraction, seed, class_names)
    val = empty
    if kfold:
        kept, held = kfold_indices(len(rest), kfold, seed + 1, labels[rest], groups[rest])
        rest, val = rest[kept], rest[held]
    elif val_fraction:
        kept, held = _grouped_holdout(labels[rest], groups[rest], val_fraction / (1.0 - test_fraction), seed + 1,
                                      class_names)
        rest, val = rest[kept], rest[held]
    return np.sort(rest), np.sort(val), np.sort(test)
