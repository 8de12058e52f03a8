"""Stage metrics used to pick the best epoch (DESIGN.md §4, "Stage metrics").

* Rationale selection on gold abstracts: a selected sentence is correct only when a whole gold
  rationale set containing it is selected; precision over selected, recall over gold sentences.
* Label prediction: accuracy, macro-F1 and the confusion matrix.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence


def prf(correct: int, retrieved: int, relevant: int) -> dict[str, float]:
    """Precision, recall and F1 (0 when undefined)."""
    p = correct / retrieved if retrieved else 0.0
    r = correct / relevant if relevant else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def selection_counts(selected: set[int], gold_sets: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    """(correct, selected, gold) sentence counts of one (claim, abstract) pair."""
    complete = [set(s) for s in gold_sets if set(s) <= selected]
    correct = len(selected & set().union(*complete)) if complete else 0
    gold = len({i for s in gold_sets for i in s})
    return correct, len(selected), gold


def rationale_metrics(
    rows: Iterable[tuple[int, int, int, float, Sequence[Sequence[int]]]], threshold: float = 0.5
) -> dict[str, float]:
    """Sentence-level P/R/F1 on gold abstracts.

    ``rows``: ``(claim_id, doc_id, sentence index, P(rationale), gold rationale sets of the pair)``.
    """
    selected: dict[tuple[int, int], set[int]] = defaultdict(set)
    gold: dict[tuple[int, int], Sequence[Sequence[int]]] = {}
    for claim_id, doc_id, idx, prob, sets in rows:
        key = (claim_id, doc_id)
        gold[key] = sets
        if prob >= threshold:
            selected[key].add(idx)
    correct = retrieved = relevant = 0
    for key, sets in gold.items():
        c, s, g = selection_counts(selected.get(key, set()), sets)
        correct, retrieved, relevant = correct + c, retrieved + s, relevant + g
    out = prf(correct, retrieved, relevant)
    out.update(correct=correct, selected=retrieved, gold=relevant, threshold=threshold)
    return out


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> list[list[int]]:
    """``m[true][pred]`` counts."""
    m = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(y_true, y_pred):
        m[t][p] += 1
    return m


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str]
) -> dict[str, object]:
    """Accuracy, macro-F1, per-class P/R/F1 and the confusion matrix."""
    n = len(names)
    m = confusion_matrix(y_true, y_pred, n)
    per_class = {}
    for c, name in enumerate(names):
        tp = m[c][c]
        per_class[name] = prf(tp, sum(m[r][c] for r in range(n)), sum(m[c]))
    total = len(y_true)
    return {
        "accuracy": sum(m[c][c] for c in range(n)) / total if total else 0.0,
        "macro_f1": sum(v["f1"] for v in per_class.values()) / n if n else 0.0,
        "per_class": per_class,
        "confusion_matrix": m,
        "labels": list(names),
        "count": total,
    }
