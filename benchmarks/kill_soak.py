"""Kill soak: SIGKILL the whole TrainAll pipeline at many seeded points, re-run, check invariants.

Runs ``--points`` kill points from the catalogue in ``tests/crashkit.py`` (interleaved so that
the first ones cover every stage: download, extraction, Dask preprocessing, tokenization,
mid-epoch training, checkpoint writing, model saving, report writing, and double kills), each in
a fresh output folder, against a real ``rclone serve s3`` on loopback (some points use the local
archive). One uninterrupted reference run gives the metrics every re-run must equal exactly; it
is run again only when the package sources change under the soak (a point that overlapped such a
change is repeated).
Prints a table (kill point, stage actually hit, elapsed, re-run result, metrics equal?, debris)
and a summary line; exits 1 when any point was not survived::

    python benchmarks/kill_soak.py --points 20 --seed 0
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import crashkit


def schedule(points: int, rng: random.Random) -> list[crashkit.KillPoint]:
    """``points`` kill points: the catalogue's stages round-robin (each stage before any repeat)."""
    by_stage: dict[str, list[crashkit.KillPoint]] = {}
    for p in crashkit.kill_points():
        by_stage.setdefault(p.stage, []).append(p)
    for group in by_stage.values():
        rng.shuffle(group)
    ordered: list[crashkit.KillPoint] = []
    while len(ordered) < points:
        for i in range(max(len(g) for g in by_stage.values())):
            ordered += [g[i] for g in by_stage.values() if i < len(g)]
    return ordered[:points]


# the part of crashkit.classify_stage's answer that means a kill point's intended stage was hit
AIMED = {
    "download": ": download",
    "extraction": ": extraction",
    "preprocess": "Preprocess: dask",
    "tokenization": "model load/tokenization",
    "training": "mid-epoch training",
    "checkpoint": "checkpoint writing",
    "model saving": "model saving",
    "report": "TrainAll: report",
}


def on_target(point: crashkit.KillPoint, stages: list[str]) -> bool:
    """Whether every kill happened (no window missed) and, for single kills, in the aimed stage."""
    if len(stages) != len(point.triggers) or any(s.startswith("missed") for s in stages):
        return False
    return point.stage not in AIMED or AIMED[point.stage] in stages[0]


def summarize(present: list[str]) -> str:
    """Final outputs by kind, e.g. ``data 1, pretrained 2, examples 1``."""
    counts: dict[str, int] = {}
    for path in present:
        kind = path.split("/")[0]
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "none"


def main(argv: list[str] | None = None) -> int:
    """Run the soak; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=25, help="number of kill points (>= 8 covers every stage)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill-point order and kill delays")
    ap.add_argument("--workdir", type=Path, default=None, help="where to put the runs (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the run folders")
    args = ap.parse_args(argv)
    if not crashkit.ARCHIVE.is_file():
        print(f"missing {crashkit.ARCHIVE}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kill-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with crashkit.RcloneServer(work / "s3root") as endpoint:
        s3_cfg = crashkit.RunConfig(s3=endpoint)
        local_cfg = replace(s3_cfg, s3=None)
        references = 0

        def fresh_reference() -> tuple[str, dict[str, Any]]:
            nonlocal references
            references += 1
            t = time.monotonic()
            digest = crashkit.source_digest()
            metrics = crashkit.reference_run(work / f"reference-{references}", s3_cfg)
            print(f"reference run {references} (uninterrupted, S3, src {digest[:10]}): {time.monotonic() - t:.0f} s", flush=True)
            return digest, metrics

        digest, reference = fresh_reference()
        header = f"{'#':>3}  {'kill point':<24} {'aimed at':<13} {'src':<5} {'stage actually hit':<58} {'elapsed':>8}  {'re-run':<7} {'metrics':<8} debris"
        print(header)
        print("-" * len(header), flush=True)
        outcomes = []
        points = schedule(args.points, rng)
        for i, point in enumerate(points, 1):
            cfg = s3_cfg if point.s3 else local_cfg
            while True:
                if crashkit.source_digest() != digest:  # another change to src/: new reference
                    print("     src/ changed: running the reference again", flush=True)
                    digest, reference = fresh_reference()
                shutil.rmtree(work / f"{i:02d}-{point.name}", ignore_errors=True)
                o = crashkit.run_kill_point(point, work / f"{i:02d}-{point.name}", cfg, reference, rng)
                if crashkit.source_digest() == digest:
                    break
                print(f"     src/ changed during {point.name}: repeating it", flush=True)
            outcomes.append(o)
            rerun = "exit 0" if o.final_rc == 0 else f"exit {o.final_rc}"
            debris = ", ".join(o.debris) or "none"
            print(
                f"{i:>3}  {point.name:<24} {point.stage:<13} {'s3' if point.s3 else 'local':<5} {' → '.join(o.stages_hit):<58} "
                f"{o.elapsed:>7.0f}s  {rerun:<7} {'equal' if o.metrics_equal else 'DIFFER':<8} {debris}",
                flush=True,
            )
            for k, present in enumerate(o.outputs_after_kills, 1):
                print(f"     final outputs after kill {k}: {summarize(present)}", flush=True)
            for problem in o.partial:
                print(f"     PARTIAL FINAL OUTPUT: {problem}", flush=True)
            if o.final_rc != 0:
                print("     " + o.log_tail.replace("\n", "\n     "), flush=True)
            if not args.keep and o.survived:
                shutil.rmtree(work / f"{i:02d}-{point.name}", ignore_errors=True)
    survived = sum(o.survived for o in outcomes)
    killed = sum(not any(s.startswith("missed") for s in o.stages_hit) for o in outcomes)
    aimed = sum(on_target(p, o.stages_hit) for p, o in zip(points, outcomes))
    print(
        f"summary: {survived}/{len(outcomes)} kill points survived; {killed} killed as planned "
        f"({aimed} in the aimed stage), {len(outcomes) - killed} missed their window; seed {args.seed}; "
        f"total {time.monotonic() - t0:.0f} s; runs under {work}"
    )
    if not args.keep and survived == len(outcomes):
        shutil.rmtree(work, ignore_errors=True)
    return 0 if survived == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
