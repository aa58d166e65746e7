"""Progress bars for long steps that are not a Keras `fit` / `predict` (data generation, feature extraction, …).

A bar shows in a terminal and in Jupyter; it stays quiet when asked (`set_quiet(True)`, the labs' ``--quiet``)
or when stderr is not a terminal (CI logs).
"""

import importlib.util
import sys

if importlib.util.find_spec("ipywidgets"):
    from tqdm.auto import tqdm  # widget bars in Jupyter
else:
    from tqdm.std import tqdm  # text bars; Jupyter still updates them in place (tqdm.auto would warn)

_quiet = False


def set_quiet(quiet=True):
    """Silence (or re-enable) every labkit progress bar in this process."""
    global _quiet
    _quiet = bool(quiet)


def _in_jupyter():
    """True inside a Jupyter kernel (not merely when ipykernel has been imported)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _interactive():
    return _in_jupyter() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def progress(iterable=None, desc=None, total=None, unit="it"):
    """`tqdm` over `iterable`, disabled when quiet or not interactive."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=_quiet or not _interactive(), leave=False)
