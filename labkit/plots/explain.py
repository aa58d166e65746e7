"""What a network looks at: Grad-CAM heatmaps over images (`labkit.gradcam` computes them), and the decision
boundary of a small network on two inputs (`labkit.numpy_net`)."""

import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from labkit.errors import require
from labkit.plots.common import finish


def _as_rgb(image):
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]


def overlay_heatmap(image, heatmap, alpha=0.4, cmap="jet"):
    """Blend a [0, 1] heatmap (coloured with `cmap`) over an image in [0, 1].

    Args:
        image: ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)`` in [0, 1].
        heatmap: ``(h', w')`` in [0, 1]; resized (bilinear) to the image when the sizes differ.
        alpha: weight of the heatmap's colour.
        cmap: a matplotlib colormap name.

    Returns:
        float32 RGB array ``(h, w, 3)`` in [0, 1].

    Example:
        >>> overlay = overlay_heatmap(images[0], grad_cam(model, images[0]))
    """
    image = _as_rgb(image)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.shape != image.shape[:2]:
        heatmap = tf.image.resize(heatmap[..., None], image.shape[:2], method="bilinear")[..., 0].numpy()
    colour = colormaps[cmap](np.clip(heatmap, 0, 1))[..., :3]
    return np.clip((1 - alpha) * image + alpha * colour, 0, 1).astype(np.float32)


def activation_map_figure(images, heatmaps, titles=None, alpha=0.4, title=None, save_to=None):
    """One row per image: the image, its Grad-CAM heatmap and the overlay.

    Args:
        images: images in [0, 1], each ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)``.
        heatmaps: one ``(h, w)`` map in [0, 1] per image.
        titles: optional label per image (e.g. ``"AFF (pred. AFF 0.93)"``), shown over the image.
        alpha: heatmap weight in the overlay.
        title: optional figure title.
        save_to: optional PNG path.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    n = len(images)
    require(n == len(heatmaps) and n > 0, f"need one heatmap per image, got {n} images and {len(heatmaps)} maps")
    figure = Figure(figsize=(8, 2.7 * n), layout="constrained")
    axes = figure.subplots(n, 3, squeeze=False)
    for i, (image, heatmap) in enumerate(zip(images, heatmaps)):
        shown = np.squeeze(np.asarray(image))
        axes[i, 0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        axes[i, 1].imshow(heatmap, cmap="jet", vmin=0, vmax=1)
        axes[i, 2].imshow(overlay_heatmap(image, heatmap, alpha))
        for axis, label in zip(axes[i], ("image", "Grad-CAM", "overlay")):
            axis.set_title(f"{titles[i]}" if titles and label == "image" else label, fontsize="small")
            axis.axis("off")
    return finish(figure, save_to, title)


def decision_boundary_figure(predict_fn, X, y, title=None, save_to=None):
    """A two-input classifier's output over the plane with the training points on top.

    The background shows the output from 0 (blue) to 1 (red) on ``[−0.5, 1.5]²``, the black line is where it crosses
    0.5 (the decision boundary), and each point is drawn in its target's colour with the network's output beside it;
    a point on the wrong side of the boundary is ringed.

    Args:
        predict_fn: a function of inputs (n, 2) giving outputs (n, 1) or (n,), e.g. ``lambda x: predict(params, x)``
            or ``lambda x: model.predict(x, verbose=0)``.
        X, y: the points (n, 2) and their 0/1 targets.
        title: figure title.
        save_to: optional PNG path.

    Returns:
        A `Figure`.
    """
    grid = np.linspace(-0.5, 1.5, 201)
    xx, yy = np.meshgrid(grid, grid)
    field = np.asarray(predict_fn(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)))
    field = field.reshape(xx.shape)
    outputs = np.asarray(predict_fn(np.asarray(X, np.float32))).reshape(-1)
    targets = np.asarray(y).reshape(-1)
    figure = Figure(figsize=(5.2, 4.4), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(field, origin="lower", extent=(-0.5, 1.5, -0.5, 1.5), cmap="coolwarm", vmin=0, vmax=1)
    if field.min() < 0.5 < field.max():
        axis.contour(xx, yy, field, levels=[0.5], colors="black", linewidths=1.5)
    for (x1, x2), target, output in zip(np.asarray(X), targets, outputs):
        wrong = (output > 0.5) != (target > 0.5)
        axis.scatter(x1, x2, s=220, c="tab:red" if target > 0.5 else "tab:blue", edgecolors="black",
                     linewidths=1.2, zorder=3)
        if wrong:
            axis.scatter(x1, x2, s=520, facecolors="none", edgecolors="yellow", linewidths=2.5, zorder=3)
        axis.annotate(f"{output:.2f}", (x1, x2), xytext=(12, 10), textcoords="offset points", fontsize=10,
                      bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.85})
    axis.set(xlabel="input 1", ylabel="input 2", xticks=[0, 1], yticks=[0, 1], aspect="equal")
    marker = lambda face, edge, label: Line2D([], [], marker="o", linestyle="", markersize=9,  # noqa: E731
                                              markerfacecolor=face, markeredgecolor=edge, label=label)
    axis.legend(handles=[marker("tab:blue", "black", "target 0"), marker("tab:red", "black", "target 1"),
                         marker("none", "yellow", "misclassified")], loc="upper center",
                bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize="small", frameon=False)
    figure.colorbar(image, ax=axis, label="network output", shrink=0.85)
    return finish(figure, save_to, title)
