"""Lab 3 Task 7's figure: deterministic image transforms before and after, then random augmentations."""

import numpy as np
from matplotlib.figure import Figure

from labkit.errors import require
from labkit.plots.common import finish, show_image


def augmentation_preview(image, transformed, augmented, augment_title="random augmentation", title=None,
                         save_to=None):
    """Lab 3 Task 7's figure: deterministic transforms as before/after pairs, then random augmentations.

    The top part has one column per transform: the original above, the transformed image below. An image of
    another size (a rescale) is drawn on the original's pixel grid, with its axes, so the change of size shows. The
    bottom part is a grid of the original followed by its random augmentations.

    Args:
        image: the original, ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` in [0, 1].
        transformed: ``{name: transformed image}``, e.g. `labkit.data.image_transforms.apply_transforms`.
        augmented: random augmentations of `image`, each of its shape.
        augment_title: heading of the grid (e.g. the augmentation settings).

    Example:
        >>> augmentation_preview(image, apply_transforms(image), augmented, save_to="augmentation_preview.png")
    """
    require(len(transformed) > 0 and len(augmented) > 0, "augmentation_preview needs transforms and augmentations")
    columns = max(len(transformed), 4)
    grid_columns = max(columns, min(len(augmented) + 1, 6))
    grid_rows = -(-(len(augmented) + 1) // grid_columns)
    figure = Figure(figsize=(2.3 * grid_columns, 2.5 * (2 + grid_rows) + 0.6), layout="constrained")
    pairs, grid = figure.subfigures(2, 1, height_ratios=(2, grid_rows))
    pair_axes = pairs.subplots(2, columns, squeeze=False)
    height, width = np.shape(image)[:2]
    for column, (name, after) in enumerate(transformed.items()):
        show_image(pair_axes[0, column], image, "before")
        show_image(pair_axes[1, column], after, f"after: {name}")
        if np.shape(after)[:2] != (height, width):
            pair_axes[1, column].axis("on")
            pair_axes[1, column].set(xlim=(-0.5, width - 0.5), ylim=(height - 0.5, -0.5))
            pair_axes[1, column].tick_params(labelsize="x-small")
    for axis in pair_axes[:, len(transformed):].ravel():
        axis.axis("off")
    pairs.suptitle("scikit-image transforms: before and after")
    grid_axes = grid.subplots(grid_rows, grid_columns, squeeze=False).ravel()
    show_image(grid_axes[0], image, "original")
    for number, (axis, picture) in enumerate(zip(grid_axes[1:], augmented), start=1):
        show_image(axis, picture, f"augmented {number}")
    for axis in grid_axes[len(augmented) + 1:]:
        axis.axis("off")
    grid.suptitle(augment_title)
    return finish(figure, save_to, title)
