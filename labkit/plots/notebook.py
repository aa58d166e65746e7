"""Jupyter set-up: let a `Figure` that a cell returns draw inline. Nothing here runs on import; `finish` calls
`show_figures_inline` when a figure is made."""

import io
import sys

from matplotlib.figure import Figure


def _figure_png(figure):
    """The PNG bytes of `figure`, trimmed to its content (what Jupyter displays)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def show_figures_inline():
    """Let Jupyter draw a `Figure` that a cell returns, even when pyplot was never imported.

    IPython knows how to display a `Figure` only once matplotlib's inline backend is active (``%matplotlib inline``
    or an ``import matplotlib.pyplot``); before that, a cell ending in ``loss_dice_plot(history, "U-Net")`` shows only
    ``<Figure size 1000x380 with 2 Axes>``. This registers a PNG formatter for `Figure` with the running IPython shell,
    unless some formatter (e.g. the inline backend's, with the user's ``figure_formats``) already handles figures.
    Every labkit figure calls it as it finishes (`labkit.plots.common.finish`); outside IPython it does nothing.

    Returns:
        True when the formatter was registered.

    Example:
        >>> from labkit.plots import loss_dice_plot
        >>> loss_dice_plot(history, "U-Net")      # last line of a notebook cell: drawn inline
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    if any(formatter.for_type(Figure) is not None for formatter in formatters.values()):
        return False
    formatters["image/png"].for_type(Figure, _figure_png)
    return True
