"""Classification figures: sample images with true and predicted classes, the confusion matrix, ROC curves, and
Grad-CAM of a few images per class."""

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve

from labkit.errors import require
from labkit.evaluation.classification import as_labels, confusion_counts, per_class_auc
from labkit.plots.common import finish, show_image
from labkit.plots.explain import overlay_heatmap


def classification_samples(images, true_labels, predicted_labels, class_names, n_columns=4, title=None,
                           save_to=None):
    """A grid of images, each titled ``true <class> / predicted <class>`` (green when right, red when wrong).

    Args:
        images: ``(n, h, w, c)`` in [0, 1].
        true_labels, predicted_labels: class indices ``(n,)``.
        class_names: names of the classes in index order.
        n_columns: images per row.

    Example:
        >>> classification_samples(images, labels, probabilities.argmax(1), ("Mel", "Nevi"), title="LeNet")
    """
    n = len(images)
    require(n > 0 and len(true_labels) == len(predicted_labels) == n,
            f"classification_samples: {n} images, {len(true_labels)} true and {len(predicted_labels)} predicted labels")
    columns = min(int(n_columns), n)
    rows = -(-n // columns)
    figure = Figure(figsize=(2.6 * columns, 2.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, image, true, predicted in zip(axes, images, true_labels, predicted_labels):
        show_image(axis, image, f"true {class_names[int(true)]}\npredicted {class_names[int(predicted)]}")
        axis.title.set_color("tab:green" if int(true) == int(predicted) else "tab:red")
    for axis in axes[n:]:
        axis.axis("off")
    return finish(figure, save_to, title)


def confusion_matrix_figure(y_true, y_pred, class_names, title=None, save_to=None):
    """The confusion matrix twice: counts, and row-normalised (each true class's row sums to 1, so the diagonal is
    the per-class recall).

    Args:
        y_true, y_pred: class indices ``(n,)`` (or one-hot / probability rows, reduced by arg-max).
        class_names: names of the classes in index order.
        title: figure title.

    Returns:
        A `Figure` with two panels; rows are true classes, columns predicted ones (scikit-learn's convention). A true
        class without images shows an empty row.

    Example:
        >>> confusion_matrix_figure(labels, probabilities, CLASSES, title="ResNet50, CE")
    """
    n = len(class_names)
    counts = confusion_counts(y_true, y_pred, n)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    figure = Figure(figsize=(2 * (2.2 + 0.55 * n), 1.6 + 0.55 * n), layout="constrained")
    for axis, matrix, name, fmt in zip(figure.subplots(1, 2), (counts, normalised), ("counts", "row-normalised"),
                                       ("d", ".2f")):
        shown = axis.imshow(matrix / max(matrix.max(), 1e-12), cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                axis.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize="small",
                          color="white" if shown.norm(matrix[i, j] / max(matrix.max(), 1e-12)) > 0.6 else "black")
        axis.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class", title=name)
        axis.set_xticklabels(class_names, rotation=45, ha="right")
        axis.set_yticklabels([f"{c} ({r})" for c, r in zip(class_names, rows[:, 0])])
    return finish(figure, save_to, title)


def roc_figure(y_true, probabilities, class_names, title=None, save_to=None):
    """One-vs-rest ROC curves of every class with its AUC in the legend, plus the micro and macro averages.

    Curves come from scikit-learn's `roc_curve`. The micro average pools every (image, class) decision; the macro
    average is the mean true-positive rate over a common false-positive-rate grid, and its legend shows the mean of
    the per-class AUCs (the ``macro_auc`` of `labkit.evaluation.classification`). A class with no positive image in
    `y_true` has no curve (its legend entry says so).

    Args:
        y_true: class indices ``(n,)`` or one-hot rows.
        probabilities: predicted probabilities ``(n, k)``.
        class_names: the `k` class names.
        title: figure title.

    Returns:
        A `Figure` with one axis.

    Example:
        >>> roc_figure(labels, probabilities, CLASSES, title="ResNet50, CE")
    """
    y_true = as_labels(y_true)
    probabilities = np.asarray(probabilities, dtype=float)
    onehot = np.eye(len(class_names))[y_true]
    aucs = per_class_auc(y_true, probabilities)
    figure = Figure(figsize=(6.4, 5.6), layout="constrained")
    axis = figure.subplots()
    grid, tprs = np.linspace(0, 1, 201), []
    for k, name in enumerate(class_names):
        if not np.isfinite(aucs[k]):
            axis.plot([], [], label=f"{name}: no positive/negative test image")
            continue
        fpr, tpr, _ = roc_curve(onehot[:, k], probabilities[:, k])
        tprs.append(np.interp(grid, fpr, tpr))
        axis.plot(fpr, tpr, linewidth=1.2, label=f"{name} (AUC {aucs[k]:.3f})")
    fpr, tpr, _ = roc_curve(onehot.ravel(), probabilities.ravel())
    axis.plot(fpr, tpr, "k:", linewidth=2, label=f"micro-average (AUC {auc(fpr, tpr):.3f})")
    if tprs:
        mean_tpr = np.mean(tprs, axis=0)
        mean_tpr[0] = 0.0
        axis.plot(grid, mean_tpr, "k--", linewidth=2, label=f"macro-average (mean AUC {np.nanmean(aucs):.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, alpha=0.6)
    axis.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (1 − specificity)",
             ylabel="true positive rate (sensitivity)", title=title or "one-vs-rest ROC")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small", loc="lower right")
    return finish(figure, save_to)


def class_gradcam_figure(images, heatmaps, true_labels, predicted_labels, class_names, alpha=0.4, title=None,
                         save_to=None):
    """Grad-CAM by true class: one row per class, each sample as the image and its heatmap overlay.

    Titles give the true and the predicted class (green when they agree, red otherwise).

    Args:
        images: images ``(n, h, w, c)`` in [0, 1].
        heatmaps: Grad-CAM maps ``(n, h, w)`` in [0, 1] (e.g. from `labkit.gradcam.grad_cam`).
        true_labels, predicted_labels: class indices ``(n,)``.
        class_names: names of the classes; rows follow their order, classes without samples are left out.
        alpha: opacity of the heatmap in the overlay.
        title: figure title.

    Returns:
        A `Figure` with a row per class present and two columns per sample.

    Example:
        >>> class_gradcam_figure(images, [grad_cam(model, im) for im in images], labels, predicted, CLASSES)
    """
    true_labels, predicted_labels = np.asarray(true_labels), np.asarray(predicted_labels)
    present = [k for k in range(len(class_names)) if (true_labels == k).any()]
    columns = max(int((true_labels == k).sum()) for k in present) if present else 1
    figure = Figure(figsize=(2.0 * 2 * columns, 2.2 * max(1, len(present))), layout="constrained")
    axes = figure.subplots(max(1, len(present)), 2 * columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for row, k in enumerate(present):
        for j, i in enumerate(np.flatnonzero(true_labels == k)):
            image = np.asarray(images[i])
            axes[row, 2 * j].imshow(np.squeeze(image), cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
            axes[row, 2 * j + 1].imshow(overlay_heatmap(image, np.asarray(heatmaps[i]), alpha))
            right = predicted_labels[i] == k
            axes[row, 2 * j].set_title(f"true {class_names[k]}", fontsize="small")
            axes[row, 2 * j + 1].set_title(f"pred {class_names[predicted_labels[i]]}", fontsize="small",
                                           color="green" if right else "red")
    return finish(figure, save_to, title)
