"""The official SciFact metrics: exact on the official fixtures, strict on malformed predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scifact_pipeline.scorer import PredictionError, check_predictions, main, read_jsonl, score

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact-evaluator"


@pytest.mark.skipif(not EVAL.is_dir(), reason="../shared/data/scifact-evaluator is missing")
def test_reproduces_official_fixture_exactly():
    metrics = score(read_jsonl(EVAL / "gold_small.jsonl"), read_jsonl(EVAL / "predictions_small.jsonl"))
    expected = json.loads((EVAL / "expected_metrics_small.json").read_text())
    assert metrics == expected  # exact floats, same keys


GOLD = [
    {"id": 1, "claim": "a", "evidence": {"10": [{"sentences": [0, 1], "label": "SUPPORT"}, {"sentences": [4], "label": "SUPPORT"}]}},
    {"id": 2, "claim": "b", "evidence": {}},
    {"id": 3, "claim": "c", "evidence": {"30": [{"sentences": [2], "label": "CONTRADICT"}]}},
]


def test_hand_computed_counts():
    preds = [
        # doc 10: sentence 0 alone (its set {0,1} incomplete) + sentence 4 (complete set) + 7 (wrong)
        {"id": 1, "evidence": {"10": {"sentences": [7, 0, 4], "label": "SUPPORT"}}},
        {"id": 2, "evidence": {"99": {"sentences": [1], "label": "SUPPORT"}}},
        # right sentence, wrong label
        {"id": 3, "evidence": {"30": {"sentences": [2], "label": "SUPPORT"}}},
    ]
    m = score(GOLD, preds)
    # abstracts: retrieved 3, relevant 2; label-only correct: doc 10 only
    assert m["abstract_label_only_precision"] == pytest.approx(1 / 3)
    assert m["abstract_label_only_recall"] == pytest.approx(1 / 2)
    # rationalized: first max(3, 1)=3 sentences of doc 10 are [7, 0, 4] and contain the set {4}
    assert m["abstract_rationalized_precision"] == pytest.approx(1 / 3)
    # sentences: retrieved 5, gold 4; selection correct: 4 (doc 10) and 2 (doc 30)
    assert m["sentence_selection_precision"] == pytest.approx(2 / 5)
    assert m["sentence_selection_recall"] == pytest.approx(2 / 4)
    # selection+label: only sentence 4
    assert m["sentence_label_precision"] == pytest.approx(1 / 5)
    assert m["sentence_label_recall"] == pytest.approx(1 / 4)


def test_rationalized_needs_the_set_within_the_first_three():
    preds = [
        {"id": 1, "evidence": {"10": {"sentences": [7, 8, 9, 4], "label": "SUPPORT"}}},
        {"id": 2, "evidence": {}},
        {"id": 3, "evidence": {}},
    ]
    m = score(GOLD, preds)
    assert m["abstract_label_only_precision"] == 1.0
    assert m["abstract_rationalized_precision"] == 0.0


@pytest.mark.parametrize(
    "preds, message",
    [
        ([{"id": 1, "evidence": {}}], "1 predictions for 3 gold claims"),
        ([{"id": 2, "evidence": {}}, {"id": 1, "evidence": {}}, {"id": 3, "evidence": {}}], "predictions:1: claim id 2"),
        (
            [{"id": 1, "evidence": {"10": {"sentences": [0], "label": "NOINFO"}}}, {"id": 2, "evidence": {}}, {"id": 3, "evidence": {}}],
            "label 'NOINFO' is not SUPPORT or CONTRADICT",
        ),
    ],
)
def test_bad_predictions_are_errors(preds, message):
    with pytest.raises(PredictionError, match=message):
        check_predictions(GOLD, preds)


def test_command_prints_metrics_and_fails_cleanly(tmp_path, capsys):
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(g) + "\n" for g in GOLD))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": g["id"], "evidence": {}}) + "\n" for g in GOLD))
    assert main([str(gold), str(pred), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sentence_label_f1"] == 0.0
    pred.write_text('{"id": 1, "evidence": {}}\nnot json\n')
    assert main([str(gold), str(pred)]) == 2
    assert f"{pred}:2: not valid JSON" in capsys.readouterr().err
