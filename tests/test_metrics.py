"""Tests for scifact_pipeline.metrics: rationale selection P/R/F1 and label classification."""

from __future__ import annotations

import pytest

from scifact_pipeline.examples import LABEL_NAMES
from scifact_pipeline.metrics import (
    classification_metrics,
    confusion_matrix,
    prf,
    rationale_metrics,
    selection_counts,
)


def _rows(claim_id: int, doc_id: int, probs: list[float], sets: list[list[int]]) -> list[tuple]:
    return [(claim_id, doc_id, i, p, sets) for i, p in enumerate(probs)]


def test_prf() -> None:
    assert prf(2, 4, 5) == pytest.approx({"precision": 0.5, "recall": 0.4, "f1": 2 * 0.5 * 0.4 / 0.9})
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert prf(0, 3, 2) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_selection_counts_credit_only_whole_sets() -> None:
    sets = [[1, 2], [4]]
    assert selection_counts({1}, sets) == (0, 1, 3)  # half a set earns nothing
    assert selection_counts({1, 2}, sets) == (2, 2, 3)
    assert selection_counts({1, 2, 3}, sets) == (2, 3, 3)  # 3 is not gold
    assert selection_counts({1, 4, 0}, sets) == (1, 3, 3)  # only the complete set {4}
    assert selection_counts(set(), sets) == (0, 0, 3)
    # overlapping sets: the gold count is over distinct sentences
    assert selection_counts({2, 3}, [[1, 2], [2, 3]]) == (2, 2, 3)


def test_rationale_metrics_hand_computed() -> None:
    rows = (
        # pair A: gold sets {0, 2} and {3}; selected 0, 2, 4 -> {0, 2} whole: 2 correct of 3 selected
        _rows(1, 10, [0.9, 0.1, 0.6, 0.4, 0.7], [[0, 2], [3]])
        # pair B: gold set {1, 3}; selected 1 and 2 -> the set is incomplete: 0 correct of 2
        + _rows(2, 40, [0.2, 0.8, 0.55, 0.3], [[1, 3]])
        # pair C: gold set {0}; nothing selected (0.49 < 0.5) -> 0 of 0, 1 gold
        + _rows(3, 20, [0.49, 0.0], [[0]])
    )
    m = rationale_metrics(rows)
    # correct 2, selected 5, gold 3 + 2 + 1 = 6
    assert (m["correct"], m["selected"], m["gold"]) == (2, 5, 6)
    p, r = 2 / 5, 2 / 6
    assert m["precision"] == pytest.approx(p)
    assert m["recall"] == pytest.approx(r)
    assert m["f1"] == pytest.approx(2 * p * r / (p + r))
    assert m["threshold"] == 0.5


def test_rationale_metrics_threshold_is_inclusive_and_adjustable() -> None:
    rows = _rows(1, 10, [0.5, 0.3, 0.2], [[0, 1]])
    assert rationale_metrics(rows)["correct"] == 0  # only sentence 0 (p == 0.5) selected
    assert rationale_metrics(rows, threshold=0.3)["correct"] == 2
    m = rationale_metrics(rows, threshold=0.25)
    assert (m["correct"], m["selected"], m["gold"]) == (2, 2, 2)
    assert m["f1"] == pytest.approx(1.0)


def test_rationale_metrics_same_doc_for_two_claims_kept_apart() -> None:
    rows = _rows(1, 10, [0.9, 0.1], [[0]]) + _rows(2, 10, [0.1, 0.9], [[0]])
    m = rationale_metrics(rows)
    assert (m["correct"], m["selected"], m["gold"]) == (1, 2, 2)


def test_rationale_metrics_empty() -> None:
    m = rationale_metrics([])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)


Y_TRUE = [0, 0, 1, 1, 1, 2, 2, 2, 2, 1]
Y_PRED = [0, 1, 1, 1, 2, 2, 2, 0, 2, 1]


def test_confusion_matrix_hand() -> None:
    assert confusion_matrix(Y_TRUE, Y_PRED, 3) == [
        [1, 1, 0],
        [0, 3, 1],
        [1, 0, 3],
    ]


def test_classification_metrics_hand() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED, LABEL_NAMES)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["count"] == 10
    assert m["labels"] == list(LABEL_NAMES)
    # CONTRADICT: tp 1, predicted 2, true 2 -> P .5 R .5 F .5
    # NOINFO:     tp 3, predicted 4, true 4 -> P .75 R .75 F .75
    # SUPPORT:    tp 3, predicted 4, true 4 -> P .75 R .75 F .75
    assert m["per_class"]["CONTRADICT"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert m["per_class"]["NOINFO"]["f1"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.75 + 0.75) / 3)


def test_classification_metrics_unbalanced_hand() -> None:
    y_true = [2, 2, 2, 2, 0, 1]
    y_pred = [2, 2, 2, 2, 2, 2]
    m = classification_metrics(y_true, y_pred, LABEL_NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # SUPPORT P 4/6 R 1 F 0.8; the two classes never predicted get F1 0
    assert m["macro_f1"] == pytest.approx(0.8 / 3)
    assert m["confusion_matrix"] == [[0, 0, 1], [0, 0, 1], [0, 0, 4]]


def test_classification_metrics_empty() -> None:
    m = classification_metrics([], [], LABEL_NAMES)
    assert m["accuracy"] == 0.0 and m["count"] == 0 and m["macro_f1"] == 0.0


@pytest.mark.parametrize(
    "y_true,y_pred",
    [(Y_TRUE, Y_PRED), ([2, 2, 2, 2, 0, 1], [2] * 6), ([0, 1, 2, 0, 1, 2, 2], [1, 1, 2, 0, 0, 2, 1])],
)
def test_classification_metrics_match_sklearn(y_true: list[int], y_pred: list[int]) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    m = classification_metrics(y_true, y_pred, LABEL_NAMES)
    labels = [0, 1, 2]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    assert m["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for c, name in enumerate(LABEL_NAMES):
        assert m["per_class"][name] == pytest.approx({"precision": p[c], "recall": r[c], "f1": f[c]})
