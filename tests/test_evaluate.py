"""Predict and EvaluateAll on a small slice of the real data (local source, tiny training)."""

from __future__ import annotations

import json
from pathlib import Path

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"

pytestmark = pytest.mark.skipif(not (SHARED / "data.tar.gz").is_file(), reason="../shared/data/scifact is missing")

COMMON = dict(data_source=str(SHARED / "data.tar.gz"), max_claims=16, partitions=8)


@pytest.fixture
def configured(luigi_config):
    for task in ("TrainRationale", "TrainLabel"):
        luigi_config.set(task, "epochs", "1")
        luigi_config.set(task, "max_length", "96")
    return luigi_config


def _head(src: Path, dest: Path, n: int) -> Path:
    dest.write_text("".join(src.read_text().splitlines(keepends=True)[:n]))
    return dest


def test_evaluate_all_writes_report_and_plots(configured, tmp_path):
    from pipeline import EvaluateAll, Predict

    dev = _head(SHARED / "claims_dev.jsonl", tmp_path / "dev12.jsonl", 12)
    task = EvaluateAll(claims=str(dev), **COMMON)
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text

    out = Path(task.output().path)
    ev = json.loads((out / "evaluation.json").read_text())
    for name in ("abstract_label_only", "abstract_rationalized", "sentence_selection", "sentence_label"):
        for k in ("precision", "recall", "f1"):
            assert 0.0 <= ev["official"][f"{name}_{k}"] <= 1.0
    assert ev["n_claims"] == 12 and ev["k"] == 3 and ev["retrieval"] == "tfidf"
    assert 0.0 <= ev["retrieval_metrics"]["recall"] <= 1.0
    assert len(ev["rationale_threshold_sweep"]) == 19
    assert sum(map(sum, ev["label_prediction"]["confusion_matrix"])) == ev["label_prediction"]["count"] > 0
    for png in ("training_curves.png", "label_confusion.png", "rationale_threshold_sweep.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "evaluation.md").read_text()
    assert "VeriSci released" in md and "**this run**" in md

    # the predictions are in the leaderboard format, one line per claim, in input order
    pred = Path(Predict(claims=str(dev), **COMMON).output().path) / "predictions.jsonl"
    rows = [json.loads(line) for line in pred.read_text().splitlines()]
    assert [r["id"] for r in rows] == [json.loads(line)["id"] for line in dev.read_text().splitlines()]
    for r in rows:
        for ev_doc in r["evidence"].values():
            assert ev_doc["label"] in ("SUPPORT", "CONTRADICT") and ev_doc["sentences"]

    # the official scorer, used alone, agrees with the report
    from scifact_pipeline.scorer import main

    assert main([str(dev), str(pred), "--json"]) == 0


def test_predict_unlabelled_test_split_and_bm25(configured, tmp_path):
    from pipeline import Predict

    test = _head(SHARED / "claims_test.jsonl", tmp_path / "test5.jsonl", 5)
    task = Predict(claims=str(test), retrieval="bm25", k=2, threshold=0.3, **COMMON)
    assert luigi.build([task], local_scheduler=True)
    rows = [json.loads(line) for line in (Path(task.output().path) / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(len(r["evidence"]) <= 2 for r in rows)
    info = json.loads((Path(task.output().path) / "info.json").read_text())
    assert "retrieval_metrics" not in info and info["retrieval"] == "bm25"
