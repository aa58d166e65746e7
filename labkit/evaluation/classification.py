"""Multi-class classification scores and reports from true labels and predicted probabilities (scikit-learn).

Definitions (they differ between libraries and papers):

* accuracy: the fraction of images whose arg-max class is the true class.
* balanced accuracy: the mean over classes of the per-class recall (sensitivity), ``mean_k TP_k / (TP_k + FN_k)``
  over the classes present in the truth — the official ISIC 2018 Task 3 score (scikit-learn's
  `balanced_accuracy_score`). Unlike accuracy it does not reward predicting the majority class.
* per-class AUC: the area under the one-vs-rest ROC curve of class k's probability; macro AUC is their unweighted
  mean over the classes that have both positives and negatives in the truth (a class absent from the test split has
  no ROC curve: its AUC is NaN and it is left out of the mean, never counted as 0 or 1).
* precision, recall, F1 and support per class, and their macro and support-weighted averages: scikit-learn's
  `classification_report` with ``zero_division=0`` (a class never predicted has precision 0).
"""

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report, confusion_matrix,
                             roc_auc_score)

from labkit.errors import require


def as_labels(y):
    """Class indices from integer labels ``(n,)`` or one-hot / probability rows ``(n, k)`` (by arg-max)."""
    y = np.asarray(y)
    return y.argmax(axis=-1) if y.ndim == 2 else y.astype(np.int64)


def _check(y_true, probabilities, class_names):
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = as_labels(y_true)
    require(probabilities.ndim == 2 and probabilities.shape[1] == len(class_names),
            f"probabilities must have shape (n, {len(class_names)}), got {probabilities.shape}")
    require(len(y_true) == len(probabilities) > 0,
            f"{len(y_true)} labels but {len(probabilities)} rows of probabilities")
    require(y_true.min() >= 0 and y_true.max() < len(class_names),
            f"labels must be in [0, {len(class_names)}), got {y_true.min()}…{y_true.max()}")
    return y_true, probabilities


def per_class_auc(y_true, probabilities):
    """One-vs-rest ROC AUC of each class (NaN for a class with no positive or no negative image).

    Example:
        >>> per_class_auc([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
        array([1., 1.])
    """
    y_true, probabilities = as_labels(y_true), np.asarray(probabilities, dtype=np.float64)
    aucs = np.full(probabilities.shape[1], np.nan)
    for k in range(probabilities.shape[1]):
        positives = y_true == k
        if 0 < positives.sum() < len(y_true):
            aucs[k] = roc_auc_score(positives, probabilities[:, k])
    return aucs


def classification_scores(y_true, probabilities, class_names):
    """The headline numbers and per-class scores of a multi-class prediction.

    Args:
        y_true: true class indices ``(n,)`` or one-hot rows ``(n, k)``.
        probabilities: predicted class probabilities ``(n, k)``; the prediction is their arg-max.
        class_names: the `k` class names, in index order.

    Returns:
        A dict with ``accuracy``, ``balanced_accuracy``, ``macro_auc``, ``macro_f1``, ``images`` and ``per_class``
        ``{name: {precision, recall, f1, support, auc}}`` (definitions in the module docstring).

    Example:
        >>> scores = classification_scores(labels, model.predict(test), CLASSES)
        >>> scores["balanced_accuracy"]
        0.71
    """
    y_true, probabilities = _check(y_true, probabilities, class_names)
    y_pred = probabilities.argmax(axis=1)
    report = classification_report(y_true, y_pred, labels=range(len(class_names)), target_names=list(class_names),
                                   output_dict=True, zero_division=0)
    aucs = per_class_auc(y_true, probabilities)
    return {
        "images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "per_class": {
            name: {"precision": report[name]["precision"], "recall": report[name]["recall"],
                   "f1": report[name]["f1-score"], "support": int(report[name]["support"]), "auc": float(aucs[k])}
            for k, name in enumerate(class_names)
        },
    }


def classification_report_text(y_true, probabilities, class_names, digits=4):
    """scikit-learn's text `classification_report` (per-class precision, recall, F1, support; accuracy, macro and
    weighted averages) of the arg-max prediction."""
    y_true, probabilities = _check(y_true, probabilities, class_names)
    return classification_report(y_true, probabilities.argmax(axis=1), labels=range(len(class_names)),
                                 target_names=list(class_names), digits=digits, zero_division=0)


def classification_report_rows(y_true, probabilities, class_names):
    """scikit-learn's `classification_report` as table rows, for ``report.csv``.

    Returns:
        One dict per class, then ``accuracy``, ``macro avg`` and ``weighted avg``, each with keys ``class``,
        ``precision``, ``recall``, ``f1``, ``support`` (the accuracy row has the accuracy under ``f1``, as the text
        report prints it, and the total support).
    """
    y_true, probabilities = _check(y_true, probabilities, class_names)
    report = classification_report(y_true, probabilities.argmax(axis=1), labels=range(len(class_names)),
                                   target_names=list(class_names), output_dict=True, zero_division=0)
    rows = []
    for key in (*class_names, "accuracy", "macro avg", "weighted avg"):
        if key == "accuracy":
            rows.append({"class": key, "precision": "", "recall": "", "f1": report[key], "support": len(y_true)})
            continue
        entry = report[key]
        rows.append({"class": key, "precision": entry["precision"], "recall": entry["recall"],
                     "f1": entry["f1-score"], "support": int(entry["support"])})
    return rows


def confusion_counts(y_true, probabilities, n_class):
    """The ``(n_class, n_class)`` confusion matrix of the arg-max prediction: rows true class, columns predicted."""
    return confusion_matrix(as_labels(y_true), as_labels(probabilities), labels=range(n_class))


def prediction_rows(names, y_true, probabilities, class_names):
    """One row per image for ``predictions.csv``: its name, true and predicted (arg-max) class, and the probability
    of every class (rounded to 6 decimals)."""
    y_true, probabilities = _check(y_true, probabilities, class_names)
    return [{"image": name, "true": class_names[t], "predicted": class_names[int(p.argmax())],
             **{c: round(float(v), 6) for c, v in zip(class_names, p)}}
            for name, t, p in zip(names, y_true, probabilities)]


def write_classification_report(run, names, y_true, probabilities, class_names):
    """Write a classifier's evaluation files into a `labkit.run_folder.RunFolder`: ``report.txt`` and ``report.csv``
    (scikit-learn's classification report) and ``predictions.csv`` (`prediction_rows`, one row per image of `names`).

    Returns:
        `classification_scores` of the images.
    """
    run.write_text("report.txt", classification_report_text(y_true, probabilities, class_names))
    run.write_csv("report.csv", classification_report_rows(y_true, probabilities, class_names))
    run.write_csv("predictions.csv", prediction_rows(names, y_true, probabilities, class_names))
    return classification_scores(y_true, probabilities, class_names)
