"""Classification evaluation: report numbers against scikit-learn, balanced accuracy and AUC by hand, and the
confusion-matrix, ROC and Grad-CAM figures."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import classification_report, roc_auc_score

from labkit.evaluation.classification import (classification_report_rows, classification_report_text,
                                              classification_scores, confusion_counts, per_class_auc,
                                              prediction_rows)
from labkit.plots import class_gradcam_figure, confusion_matrix_figure, roc_figure

NAMES = ("A", "B", "C")
# A fixed prediction: 7 images, recall A 3/4, B 1/2, C 1/1.
TRUTH = np.array([0, 0, 0, 0, 1, 1, 2])
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.6, 0.3, 0.1],
    [0.5, 0.1, 0.4],
    [0.2, 0.7, 0.1],   # A predicted as B
    [0.1, 0.8, 0.1],
    [0.5, 0.4, 0.1],   # B predicted as A
    [0.1, 0.2, 0.7],
])


def test_accuracy_and_balanced_accuracy_by_hand():
    scores = classification_scores(TRUTH, PROBS, NAMES)
    assert scores["accuracy"] == pytest.approx(5 / 7)
    assert scores["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)   # mean per-class recall
    assert [scores["per_class"][n]["recall"] for n in NAMES] == pytest.approx([3 / 4, 1 / 2, 1])
    # precision: A is predicted 4 times (3 right), B twice (1 right), C once (right)
    assert [scores["per_class"][n]["precision"] for n in NAMES] == pytest.approx([3 / 4, 1 / 2, 1])
    assert [scores["per_class"][n]["support"] for n in NAMES] == [4, 2, 1]
    assert scores["images"] == 7


def test_per_class_auc_by_hand():
    # Class C: the one positive (0.7) outranks every negative (0.1, 0.1, 0.4, 0.1, 0.1, 0.1) → AUC 1.
    # Class B: positives 0.8 and 0.4; negatives 0.2, 0.3, 0.1, 0.7, 0.2 → pairs won: 5 + 4 = 9 of 10.
    # Class A: positives 0.7, 0.6, 0.5, 0.2; negatives 0.1, 0.5, 0.1 → 3 + 3 + 2.5 (a tie counts half) + 2 = 10.5
    # of 12 pairs.
    assert per_class_auc(TRUTH, PROBS) == pytest.approx([10.5 / 12, 9 / 10, 1.0])
    assert classification_scores(TRUTH, PROBS, NAMES)["macro_auc"] == pytest.approx((10.5 / 12 + 0.9 + 1) / 3)


def test_macro_auc_equals_scikit_learns_one_vs_rest_macro_on_softmax_outputs():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 7))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.concatenate([np.arange(7), rng.integers(0, 7, 53)])
    expected = roc_auc_score(truth, probs, multi_class="ovr", average="macro")
    assert classification_scores(truth, probs, [str(k) for k in range(7)])["macro_auc"] == pytest.approx(expected)


def test_class_absent_from_the_truth_has_nan_auc_and_is_left_out_of_the_mean():
    truth = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    aucs = per_class_auc(truth, probs)
    # A: positives 0.8, 0.3 vs negatives 0.2, 0.4 win 3 of 4 pairs; B: 0.7, 0.5 vs 0.1, 0.6 also 3 of 4.
    assert np.isnan(aucs[2]) and aucs[:2] == pytest.approx([0.75, 0.75])
    scores = classification_scores(truth, probs, NAMES)
    assert scores["macro_auc"] == pytest.approx(0.75)  # not 0.5 (C as 0) nor 0.833 (C as 1)
    assert scores["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)  # recall over the classes present


def test_report_rows_and_text_equal_scikit_learns_report():
    reference = classification_report(TRUTH, PROBS.argmax(1), target_names=NAMES, output_dict=True, zero_division=0)
    rows = {row["class"]: row for row in classification_report_rows(TRUTH, PROBS, NAMES)}
    assert list(rows) == [*NAMES, "accuracy", "macro avg", "weighted avg"]
    for key in (*NAMES, "macro avg", "weighted avg"):
        assert [rows[key][k] for k in ("precision", "recall", "f1", "support")] == pytest.approx(
            [reference[key][k] for k in ("precision", "recall", "f1-score", "support")])
    assert rows["accuracy"]["f1"] == pytest.approx(reference["accuracy"]) and rows["accuracy"]["support"] == 7
    text = classification_report_text(TRUTH, PROBS, NAMES)
    assert text == classification_report(TRUTH, PROBS.argmax(1), target_names=NAMES, digits=4, zero_division=0)
    scores = classification_scores(TRUTH, PROBS, NAMES)
    assert scores["macro_f1"] == pytest.approx(reference["macro avg"]["f1-score"])


def test_a_class_never_predicted_reports_zero_precision_not_an_error():
    truth = np.array([0, 1, 2, 2])
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.2, 0.1, 0.7]])
    rows = {row["class"]: row for row in classification_report_rows(truth, probs, NAMES)}
    assert rows["B"]["precision"] == 0 and rows["B"]["recall"] == 0 and rows["B"]["support"] == 1


@pytest.mark.parametrize("probs, message", [
    (PROBS[:, :2], r"shape \(n, 3\)"),
    (PROBS[:5], r"7 labels but 5 rows"),
])
def test_mismatched_inputs_are_named(probs, message):
    from labkit.errors import LabkitInputError

    with pytest.raises(LabkitInputError, match=message):
        classification_scores(TRUTH, probs, NAMES)


def test_confusion_matrix_figure_shows_counts_and_row_normalised_values():
    counts = confusion_counts(TRUTH, PROBS, 3)
    assert counts.tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    figure = confusion_matrix_figure(TRUTH, PROBS, NAMES, title="test")
    assert isinstance(figure, Figure)
    counts_axis, normalised_axis = figure.axes[:2]
    assert [t.get_text() for t in counts_axis.texts] == [str(v) for v in counts.ravel()]
    assert [float(t.get_text()) for t in normalised_axis.texts] == pytest.approx(
        [0.75, 0.25, 0, 0.5, 0.5, 0, 0, 0, 1], abs=0.005)


def test_roc_figure_has_a_curve_per_class_with_its_auc_and_both_averages():
    figure = roc_figure(TRUTH, PROBS, NAMES)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    aucs = per_class_auc(TRUTH, PROBS)
    assert labels[:3] == [f"{n} (AUC {a:.3f})" for n, a in zip(NAMES, aucs)]
    assert labels[3].startswith("micro-average") and labels[4] == f"macro-average (mean AUC {aucs.mean():.3f})"


def test_roc_figure_marks_a_class_without_test_images():
    truth = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    labels = [t.get_text() for t in roc_figure(truth, probs, NAMES).axes[0].get_legend().get_texts()]
    assert labels[2] == "C: no positive/negative test image"


def test_class_gradcam_figure_has_a_row_per_class_present_and_names_true_and_predicted():
    images = np.random.default_rng(0).random((5, 16, 16, 3))
    heatmaps = np.random.default_rng(1).random((5, 16, 16))
    figure = class_gradcam_figure(images, heatmaps, [0, 0, 2, 2, 2], [0, 1, 2, 2, 0], NAMES)
    axes = np.array(figure.axes).reshape(2, 6)  # classes A and C; up to 3 samples × (image, overlay)
    assert [axes[0, k].get_title() for k in range(4)] == ["true A", "pred A", "true A", "pred B"]
    assert axes[0, 3].title.get_color() == "red" and axes[0, 1].title.get_color() == "green"
    assert [axes[1, k].get_title() for k in (0, 5)] == ["true C", "pred A"]
    assert axes[0, 4].get_title() == "" and not axes[0, 4].images  # class A has only two samples


def test_prediction_rows_name_each_image_with_its_true_and_arg_max_class():
    rows = prediction_rows(["a", "b"], [1, 0], [[0.25, 0.75, 0.0], [0.2, 0.3, 0.5]], ("x", "y", "z"))
    assert rows == [{"image": "a", "true": "y", "predicted": "y", "x": 0.25, "y": 0.75, "z": 0.0},
                    {"image": "b", "true": "x", "predicted": "z", "x": 0.2, "y": 0.3, "z": 0.5}]
