"""``scifact-verify``: verify a few claims typed on the command line with trained models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence


def _latest_report(output_dir: Path) -> Path:
    reports = sorted((output_dir / "reports").glob("train_all-*.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        raise FileNotFoundError(f"{output_dir / 'reports'}: no TrainAll report; run TrainAll first or pass --report")
    return reports[-1]


def main(argv: Sequence[str] | None = None) -> int:
    """Print one prediction line per claim (leaderboard format, plus the claim text)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ap = argparse.ArgumentParser(prog="scifact-verify", description="Verify claims against the corpus with trained models.")
    ap.add_argument("claims", nargs="+", help="claim texts")
    ap.add_argument("--output-dir", default="output", help="the pipeline's output_dir (default: output)")
    ap.add_argument("--report", help="a TrainAll report JSON (default: the newest under OUTPUT_DIR/reports)")
    ap.add_argument("--corpus", help="corpus.jsonl (default: the one downloaded under OUTPUT_DIR/data)")
    ap.add_argument("--retrieval", default="tfidf", choices=("tfidf", "bm25"))
    ap.add_argument("-k", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from .predict import Verifier, load_corpus, verify
    from .retrieval import Retriever, doc_text
    from .training import set_threads

    try:
        out = Path(args.output_dir)
        report = json.loads(Path(args.report or _latest_report(out)).read_text(encoding="utf-8"))
        corpus_path = Path(args.corpus) if args.corpus else None
        if corpus_path is None:
            found = sorted((out / "data").glob("*/corpus.jsonl"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise FileNotFoundError(f"{out / 'data'}: no downloaded corpus; pass --corpus")
            corpus_path = found[-1]
        set_threads(args.threads)
        corpus = load_corpus(corpus_path)
        verifier = Verifier.load(report["models_dir"]["rationale"], report["models_dir"]["label"])
        retriever = Retriever(list(corpus), [doc_text(d) for d in corpus.values()], args.retrieval)
        claims = [{"id": i, "claim": c} for i, c in enumerate(args.claims, 1)]
        retrieved = retriever.top_k(args.claims, args.k)
        preds, _ = verify(claims, corpus, retrieved, verifier, args.threshold, progress=False)
    except (OSError, ValueError, KeyError) as exc:
        print(f"scifact-verify: error: {exc}", file=sys.stderr)
        return 2
    for c, p in zip(claims, preds):
        print(json.dumps({**p, "claim": c["claim"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
