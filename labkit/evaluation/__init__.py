"""NumPy / SciPy / scikit-learn evaluation of whole images and volumes, and reports.

One module per family: `overlap` (Dice, Jaccard on binarised masks, per-image tables).
"""

from labkit.evaluation.overlap import binarise, dice, jaccard, mean_std, per_image_scores

__all__ = ["binarise", "dice", "jaccard", "mean_std", "per_image_scores"]
