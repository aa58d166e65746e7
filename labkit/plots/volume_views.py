"""3D figures: slices of volumes with their labels and predictions, and surface renderings of a label and a
prediction."""

import numpy as np
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from skimage.measure import marching_cubes

from labkit.plots.common import finish, legend_line, outline


def _object_slices(label, pred, n_slices):
    """`n_slices` axial (last-axis) indices spread over the slices of the true object (of the prediction when the
    true mask is empty, of the whole volume when both are)."""
    present = np.flatnonzero(np.any(label, axis=(0, 1)))
    if not present.size:
        present = np.flatnonzero(np.any(pred, axis=(0, 1)))
    low, high = (present[0], present[-1]) if present.size else (0, label.shape[2] - 1)
    return np.unique(np.linspace(low, high, n_slices + 2)[1:-1].round().astype(int)) if high > low else [low]


def volume_slices(images, labels, predictions, names=None, scores=None, n_slices=4, title=None, save_to=None):
    """Several axial slices per case: the image with the true contour (green) and the predicted contour (red).

    Slices are spread evenly over the slices where the true object lies (the predicted one when the true mask is
    empty). Image grey levels are windowed to each case's 1st–99th percentile (z-scored MRI has no fixed range).

    Args:
        images: sequence of volumes ``(x, y, z)`` (or with a trailing channel axis).
        labels: true masks, same shapes.
        predictions: predicted masks or probabilities (contoured at 0.5), same shapes.
        names: case names for the row titles.
        scores: optional per-case Dice values shown in the row titles.
        n_slices: slices per case.

    Returns:
        A `Figure` with one row per case and `n_slices` columns.

    Example:
        >>> volume_slices([image], [label], [prediction], names=["case1"], scores=[0.91])
    """
    squeeze = lambda v: np.asarray(v)[..., 0] if np.ndim(v) == 4 else np.asarray(v)  # noqa: E731
    n = len(images)
    figure = Figure(figsize=(2.6 * n_slices, 2.7 * n), layout="constrained")
    axes = figure.subplots(n, n_slices, squeeze=False)
    for row in range(n):
        image, label, pred = squeeze(images[row]), squeeze(labels[row]) > 0.5, squeeze(predictions[row]) > 0.5
        low, high = np.percentile(image, (1, 99))
        picked = list(_object_slices(label, pred, n_slices))
        for column, axis in enumerate(axes[row]):
            axis.axis("off")
            if column >= len(picked):
                continue
            z = picked[column]
            axis.imshow(image[:, :, z].T, cmap="gray", vmin=low, vmax=high)
            outline(axis, label[:, :, z].T, "lime")
            outline(axis, pred[:, :, z].T, "red")
            name = names[row] if names is not None else f"case {row}"
            score = f", Dice {scores[row]:.3f}" if scores is not None and column == 0 else ""
            axis.set_title(f"{name} z={z}{score}" if column == 0 else f"z={z}", fontsize="small")
    figure.legend(handles=[legend_line("lime", "true"), legend_line("red", "predicted")], loc="outside lower center", ncols=2)
    return finish(figure, save_to, title)


def _surface_mesh(mask, spacing, region, step):
    """Vertices (in spacing units) and faces of the 0.5 iso-surface of `mask` inside `region` (padded by one voxel,
    so objects touching the region's edge come out closed), or None for an empty mask."""
    block = np.pad(np.asarray(mask[region], dtype=np.float32), 1)
    if not block.any():
        return None
    verts, faces, _, _ = marching_cubes(block, 0.5, spacing=spacing, step_size=step)
    offset = np.array([s.start - 1 for s in region]) * np.asarray(spacing)
    return verts + offset, faces


def surface_view(label, prediction, spacing=None, title=None, names=("true", "predicted"), max_steps=80,
                 max_faces=30_000, save_to=None):
    """A 3D view of the true and the predicted surface side by side (marching cubes at 0.5, same axes and angle).

    Args:
        label: true mask ``(x, y, z)``.
        prediction: predicted mask or probabilities, same shape.
        spacing: voxel size per axis, so the object has its physical proportions (default 1 per axis).
        title: figure title.
        names: panel titles.
        max_steps: the marching-cubes step grows so that the object's box is at most about this many steps across
            (keeps full-size LA volumes quick to draw).
        max_faces: the step grows further until each surface has at most this many triangles (a fragmented
            prediction would otherwise take long to render).

    Returns:
        A `Figure` with two 3D axes; an empty mask gets a panel saying so.

    Example:
        >>> surface_view(label, prediction > 0.5, spacing=(0.625, 0.625, 0.625), title="case 1")
    """
    masks = [np.squeeze(np.asarray(label)) > 0.5, np.squeeze(np.asarray(prediction)) > 0.5]
    unit = "voxels" if spacing is None else "mm"
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0, 1.0, 1.0)))
    union = np.argwhere(masks[0] | masks[1])
    low, high = (union.min(0), union.max(0) + 1) if len(union) else (np.zeros(3, int), np.array(masks[0].shape))
    region = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
    step = max(1, int(np.ceil((high - low).max() / max_steps)))
    figure = Figure(figsize=(10, 4.8), layout="constrained")
    for index, (mask, name, color) in enumerate(zip(masks, names, ("tab:green", "tab:red"))):
        axis = figure.add_subplot(1, 2, index + 1, projection="3d")
        mesh, mask_step = _surface_mesh(mask, spacing, region, step), step
        while mesh is not None and len(mesh[1]) > max_faces and mask_step < 8:
            mask_step += 1
            mesh = _surface_mesh(mask, spacing, region, mask_step)
        if mesh is None:
            axis.text2D(0.5, 0.5, "empty mask", transform=axis.transAxes, ha="center")
        else:
            verts, faces = mesh
            axis.add_collection3d(Poly3DCollection(verts[faces], facecolors=color, edgecolor="none", alpha=0.85,
                                                   shade=True))
        lows, highs = low * np.asarray(spacing), high * np.asarray(spacing)
        axis.set(xlim=(lows[0], highs[0]), ylim=(lows[1], highs[1]), zlim=(lows[2], highs[2]),
                 xlabel=f"x ({unit})", ylabel=f"y ({unit})", zlabel=f"z ({unit})", title=name)
        axis.set_box_aspect(highs - lows)
        axis.view_init(elev=25, azim=-60)
    return finish(figure, save_to, title)
