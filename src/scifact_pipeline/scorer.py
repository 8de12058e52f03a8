"""The official SciFact metrics (allenai/scifact-evaluator), as pure functions and a command.

* Abstract level — every predicted abstract counts as retrieved; gold = all evidence abstracts.
  *Label-only*: the abstract is a gold evidence abstract and the label matches.
  *Label+Rationale*: also, the first ``max(3, shortest gold set)`` predicted sentences contain
  a whole gold rationale set.
* Sentence level — retrieved = all predicted sentences; gold = all gold rationale sentences.
  *Selection*: a predicted sentence belongs to a gold set all of whose sentences were predicted.
  *Selection+Label*: the same, and the abstract's label matches.

Run ``scifact-score GOLD.jsonl PREDICTIONS.jsonl`` to score predictions made elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from .metrics import prf
from .util import InputError

VALID_LABELS = ("SUPPORT", "CONTRADICT")
METRIC_NAMES = ("abstract_label_only", "abstract_rationalized", "sentence_selection", "sentence_label")


class PredictionError(InputError, ValueError):
    """A predictions file that does not fit the gold file (one line naming file and line)."""


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a bad line raises ValueError naming the file and line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return out


def check_predictions(gold: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]], where: str = "predictions") -> None:
    """Predictions must cover exactly the gold claims, in order, with SUPPORT/CONTRADICT labels."""
    if len(predictions) != len(gold):
        raise PredictionError(f"{where}: {len(predictions)} predictions for {len(gold)} gold claims")
    for n, (g, p) in enumerate(zip(gold, predictions), 1):
        if p.get("id") != g["id"]:
            raise PredictionError(f"{where}:{n}: claim id {p.get('id')!r} where gold has {g['id']} (same order required)")
        evidence = p.get("evidence")
        if not isinstance(evidence, dict):
            raise PredictionError(f"{where}:{n}: 'evidence' must be an object")
        for doc, ev in evidence.items():
            if not isinstance(ev, dict) or ev.get("label") not in VALID_LABELS:
                label = ev.get("label") if isinstance(ev, dict) else ev
                raise PredictionError(f"{where}:{n}: doc {doc}: label {label!r} is not SUPPORT or CONTRADICT")
            if not isinstance(ev.get("sentences"), list):
                raise PredictionError(f"{where}:{n}: doc {doc}: 'sentences' must be a list")


def _sentence_correct(sentence: int, predicted: Iterable[int], gold_sets: Sequence[dict[str, Any]]) -> bool:
    """The official rule: the first gold set holding the sentence must be wholly predicted."""
    predicted = set(predicted)
    for s in gold_sets:
        if sentence in s["sentences"]:
            return all(x in predicted for x in s["sentences"])
    return False


def _contains_rationale(predicted: Sequence[int], gold_sets: Sequence[dict[str, Any]]) -> bool:
    shortest = min(len(s["sentences"]) for s in gold_sets)
    top = set(predicted[: max(3, shortest)])
    return any(set(s["sentences"]) <= top for s in gold_sets)


def score(gold: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The four official metrics (precision, recall, F1 each) as a flat dict."""
    check_predictions(gold, predictions)
    counts = {name: {"correct": 0, "retrieved": 0, "relevant": 0} for name in METRIC_NAMES}
    for g, p in zip(gold, predictions):
        gold_ev = {str(k): v for k, v in (g.get("evidence") or {}).items()}
        for sets in gold_ev.values():
            counts["abstract_label_only"]["relevant"] += 1
            counts["abstract_rationalized"]["relevant"] += 1
            n_gold = sum(len(s["sentences"]) for s in sets)
            counts["sentence_selection"]["relevant"] += n_gold
            counts["sentence_label"]["relevant"] += n_gold
        for doc, ev in p["evidence"].items():
            doc = str(doc)
            sentences = list(ev["sentences"])
            counts["abstract_label_only"]["retrieved"] += 1
            counts["abstract_rationalized"]["retrieved"] += 1
            counts["sentence_selection"]["retrieved"] += len(sentences)
            counts["sentence_label"]["retrieved"] += len(sentences)
            sets = gold_ev.get(doc)
            if not sets:
                continue
            label_ok = ev["label"] == sets[0]["label"]
            if label_ok:
                counts["abstract_label_only"]["correct"] += 1
                if _contains_rationale(sentences, sets):
                    counts["abstract_rationalized"]["correct"] += 1
            for s in sentences:
                if _sentence_correct(s, sentences, sets):
                    counts["sentence_selection"]["correct"] += 1
                    if label_ok:
                        counts["sentence_label"]["correct"] += 1
    out: dict[str, float] = {}
    for name, c in counts.items():
        for k, v in prf(c["correct"], c["retrieved"], c["relevant"]).items():
            out[f"{name}_{k}"] = v
    return out


def format_metrics(metrics: dict[str, float]) -> str:
    """A small table: one row per metric, P / R / F1."""
    lines = [f"{'metric':<24} {'precision':>9} {'recall':>9} {'f1':>9}"]
    for name in METRIC_NAMES:
        p, r, f = (metrics[f"{name}_{k}"] for k in ("precision", "recall", "f1"))
        lines.append(f"{name:<24} {p:9.4f} {r:9.4f} {f:9.4f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``scifact-score GOLD PREDICTIONS [--json]``: print the official metrics."""
    ap = argparse.ArgumentParser(prog="scifact-score", description="Score SciFact predictions with the official metrics.")
    ap.add_argument("gold", help="labelled claims (JSON lines with id and evidence)")
    ap.add_argument("predictions", help="predictions (JSON lines: id, evidence {doc: {sentences, label}})")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    try:
        gold = read_jsonl(args.gold)
        preds = read_jsonl(args.predictions)
        check_predictions(gold, preds, where=args.predictions)
        metrics = score(gold, preds)
    except (OSError, ValueError) as exc:
        print(f"scifact-score: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
