"""Figures for runs and notebooks. Each function returns a `matplotlib.figure.Figure`.

No function calls ``plt.show()`` or touches pyplot's global state, so figures display inline in Jupyter (as the
cell's value) and stay silent in scripts and tests; pass ``save_to=`` to also write a PNG. Every figure ends in
`labkit.plots.common.finish` (title, PNG, inline display).

One module per family: `curves` (training histories), `segmentation` (2D masks), `volume_views` (3D slices and
surfaces), `classification` (samples, confusion matrix, ROC, Grad-CAM per class), `explain` (Grad-CAM overlays, a
small network's decision boundary), `augmentation` (Lab 3's before/after figure), `sequences` (Lab 6's series and streamlines) and `notebook` (Jupyter set-up).
"""

from labkit.plots.augmentation import augmentation_preview
from labkit.plots.classification import (class_gradcam_figure, classification_samples, confusion_matrix_figure,
                                         roc_figure)
from labkit.plots.curves import (ACCURACY_KEYS, autocontext_curve, comparison_curves, loss_accuracy_plot,
                                 loss_dice_plot, loss_dice_precision_recall_plot, plot_history)
from labkit.plots.explain import activation_map_figure, decision_boundary_figure
from labkit.plots.notebook import show_figures_inline
from labkit.plots.segmentation import (CLASS_COLOURS, class_samples, comparison_samples, prediction_overlays,
                                       segmentation_samples, weight_map_figure)
from labkit.plots.sequences import series_prediction_figure, streamlines_figure
from labkit.plots.volume_views import surface_view, volume_slices

__all__ = ["ACCURACY_KEYS", "CLASS_COLOURS", "activation_map_figure", "augmentation_preview", "autocontext_curve",
           "class_gradcam_figure", "class_samples", "classification_samples", "comparison_curves",
           "comparison_samples", "confusion_matrix_figure", "decision_boundary_figure", "loss_accuracy_plot",
           "loss_dice_plot", "loss_dice_precision_recall_plot", "plot_history", "prediction_overlays", "roc_figure",
           "segmentation_samples", "series_prediction_figure", "show_figures_inline", "streamlines_figure",
           "surface_view", "volume_slices", "weight_map_figure"]
