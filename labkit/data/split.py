"""Reproducible train / validation splits."""

from sklearn.model_selection import train_test_split

from labkit.errors import require


def train_val_split(items, val_fraction=0.2, seed=42):
    """Split `items` into ``(train, val)`` at random with `seed`; `val_fraction` of them (at least one) for validation.

    The order of `items` is sorted first, so the split depends on the items, not on how they were listed.
    """
    items = sorted(items)
    require(0.0 < float(val_fraction) < 1.0, f"--val-split must be between 0 and 1 (exclusive), got {val_fraction}")
    require(len(items) >= 2, f"need at least 2 items to split into training and validation, got {len(items)}")
    n_val = min(len(items) - 1, max(1, round(len(items) * float(val_fraction))))
    train, val = train_test_split(items, test_size=n_val, random_state=int(seed), shuffle=True)
    return sorted(train), sorted(val)
