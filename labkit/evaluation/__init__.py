"""NumPy / SciPy / scikit-learn evaluation of whole images and volumes, and reports (no Keras, no run folders:
`labkit.reports` scores a trained model and writes what it finds into a run folder).

One module per family: `overlap` (Dice, Jaccard on binarised masks, per-image tables).
"""

from labkit.evaluation.overlap import (binarise, class_channels, dice, jaccard, mean_std, per_image_class_scores,
                                      per_image_scores)

__all__ = ["binarise", "class_channels", "dice", "jaccard", "mean_std", "per_image_class_scores", "per_image_scores"]

# Surface distances (medpy 0.5 definitions) and per-volume tables: `surface`, `volumes`.
from labkit.evaluation.surface import asd, assd, hd, hd95, surface_distances, surface_metrics  # noqa: E402
from labkit.evaluation.volumes import case_scores, evaluate_volumes  # noqa: E402

__all__ += ["asd", "assd", "case_scores", "evaluate_volumes", "hd", "hd95", "surface_distances", "surface_metrics"]

# Multi-class classification scores and scikit-learn reports (balanced accuracy, AUC): `classification`.
from labkit.evaluation.classification import (classification_report_rows, classification_report_text,  # noqa: E402
                                              classification_scores, confusion_counts, per_class_auc)

__all__ += ["classification_report_rows", "classification_report_text", "classification_scores", "confusion_counts",
            "per_class_auc"]

# A one-step-ahead forecast against persistence (Lab 6 Task 1): `series`.
from labkit.evaluation.series import forecast_scores  # noqa: E402

__all__ += ["forecast_scores"]
