"""Progress bars for long steps that are not a Keras `fit` / `predict` (data generation, feature extraction, …).

A bar shows in a terminal and in Jupyter; it stays quiet when asked (`set_quiet(True)`, the labs' ``--quiet``)
or when stderr is not a terminal (CI logs).
"""

import sys

from tqdm.auto import tqdm

_quiet = False


def set_quiet(quiet=True):
    """Silence (or re-enable) every labkit progress bar in this process."""
    global _quiet
    _quiet = bool(quiet)


def _interactive():
    return "ipykernel" in sys.modules or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def progress(iterable=None, desc=None, total=None, unit="it"):
    """`tqdm` over `iterable`, disabled when quiet or not interactive."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=_quiet or not _interactive(), leave=False)
