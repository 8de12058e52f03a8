"""Fast SIGKILL crash subset: kill the real pipeline mid-stage, re-run, check the invariants.

Three kill points of the catalogue in :mod:`crashkit` (the long soak is
``benchmarks/kill_soak.py``): during Dask preprocessing, mid-epoch training (after a
checkpoint), and in the narrow window of a checkpoint write. Each runs the documented command
against a real S3 server on loopback (the ``rclone_s3`` fixture), SIGKILLs it, checks that no
final output is partial, re-runs it to completion and compares the report's metrics with one
uninterrupted reference run of the session.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import crashkit
import pytest

pytestmark = pytest.mark.skipif(not crashkit.ARCHIVE.is_file(), reason="../shared/data/scifact is missing")

FAST_POINTS = {p.name: p for p in crashkit.kill_points() if p.name in ("preprocess-mid", "train-rationale", "ckpt-label")}


@pytest.fixture(scope="session")
def s3_config(rclone_s3: Any) -> crashkit.RunConfig:
    """The small run configuration, reading data and the rationale model from the S3 fixture."""
    crashkit.seed_s3_root(rclone_s3.root)
    return crashkit.RunConfig(s3=crashkit.S3Endpoint(rclone_s3.endpoint, rclone_s3.key, rclone_s3.secret))


@pytest.fixture(scope="session")
def reference(s3_config: crashkit.RunConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Metrics of one uninterrupted run (cached for the session)."""
    return crashkit.reference_run(tmp_path_factory.mktemp("crash-reference"), s3_config)


@pytest.mark.parametrize("name", sorted(FAST_POINTS))
def test_sigkill_then_rerun(name: str, s3_config: crashkit.RunConfig, reference: dict[str, Any], tmp_path: Path) -> None:
    """SIGKILL at the kill point, re-run: exit 0, same metrics, nothing partial, no debris."""
    point = FAST_POINTS[name]
    cfg = s3_config if point.s3 else crashkit.RunConfig(s3=None)
    outcome = crashkit.run_kill_point(point, tmp_path / name, cfg, reference, random.Random(f"ci-{name}"))
    assert not any(s.startswith("missed") for s in outcome.stages_hit), outcome.stages_hit
    assert outcome.partial == [], outcome.partial
    assert outcome.final_rc == 0, outcome.log_tail
    assert outcome.metrics_equal, f"metrics after resume differ from the uninterrupted run ({outcome.stages_hit})"
    assert outcome.debris == [], outcome.debris


def test_debris_and_partial_outputs_are_detected(tmp_path: Path) -> None:
    """The checks themselves: temp names count as debris, a half-written final output is reported."""
    out = tmp_path / "out"
    (out / "data" / ".abc.tmp-x1" / ".work").mkdir(parents=True)
    (out / "models" / "label-1.work" / "checkpoint").mkdir(parents=True)
    (out / "reports").mkdir()
    (out / "reports" / ".train_all-1.md.tmp-y").write_text("# TrainAll")
    (out / "reports" / "train_all-1.json").write_text('{"models": {"rationale"')  # truncated JSON
    (out / "examples" / "e1").mkdir(parents=True)  # no manifest
    assert crashkit.find_debris(out) == ["data/.abc.tmp-x1", "models/label-1.work", "reports/.train_all-1.md.tmp-y"]
    present, problems = crashkit.check_final_outputs(out)
    assert present == ["examples/e1", "reports/train_all-1.json"]
    assert len(problems) == 2 and "manifest.json" in problems[0] and "JSONDecodeError" in problems[1]


def test_checkpoint_left_mid_replacement_is_restored(tmp_path: Path) -> None:
    """A kill between atomic_dir's two renames leaves only ``checkpoint.old``: resume uses it."""
    from scifact_pipeline.checkpoint import read_state

    old = tmp_path / "checkpoint.old"
    old.mkdir()
    (old / "state.json").write_text('{"epoch": 0, "step": 4}')
    (tmp_path / ".checkpoint.tmp-k1").mkdir()  # the newer, possibly incomplete, checkpoint
    assert read_state(tmp_path / "checkpoint") == {"epoch": 0, "step": 4}
    assert (tmp_path / "checkpoint" / "state.json").is_file() and not old.exists()


def test_temp_file_left_by_a_killed_write_is_removed(tmp_path: Path) -> None:
    """The report's Markdown temp file that a kill left is removed when the report is written."""
    from scifact_pipeline.util import atomic_file

    stale = tmp_path / ".train_all-1.md.tmp-killed"
    stale.write_text("# TrainAll rep")
    with atomic_file(tmp_path / "train_all-1.md", encoding="utf-8") as fh:
        fh.write("# TrainAll report\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_all-1.md"]


def test_observation_walk_survives_a_folder_that_vanishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The soak found it: a temp folder renamed away during the trigger's walk crashed the harness."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "done.json").write_text("{}")
    obs = crashkit.Observation(tmp_path, [], since=0.0)
    real_glob = Path.glob
    calls = {"n": 0}

    def vanishing_glob(self: Path, pattern: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FileNotFoundError(2, "No such file or directory", str(self / ".tmp-x" / ".work"))
        return real_glob(self, pattern)

    monkeypatch.setattr(Path, "glob", vanishing_glob)
    assert obs.fresh("models/*.json") == [tmp_path / "models" / "done.json"]
    assert calls["n"] == 2
