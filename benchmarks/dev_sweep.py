"""Tune the inference knobs on dev: retrieval (tfidf/bm25), k and the rationale threshold.

Sentence scores and label probabilities depend only on (claim, abstract, kept sentences), so the
script scores every sentence of the top-``max_k`` abstracts once per retriever and re-runs only
the cheap label step per threshold. Prints the official Sel+Label and Label+Rationale F1 (×100).

    python benchmarks/dev_sweep.py --report output/reports/train_all-<hash>.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from scifact_pipeline.examples import LABEL_NAMES  # noqa: E402
from scifact_pipeline.predict import Verifier, load_corpus, select  # noqa: E402
from scifact_pipeline.retrieval import Retriever, doc_text  # noqa: E402
from scifact_pipeline.scorer import read_jsonl, score  # noqa: E402
from scifact_pipeline.training import set_threads  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True)
    ap.add_argument("--max-k", type=int, default=5)
    ap.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--ks", default="1,2,3,4,5")
    args = ap.parse_args()
    set_threads(2)
    report = json.loads(Path(args.report).read_text())
    v = Verifier.load(report["models_dir"]["rationale"], report["models_dir"]["label"])
    corpus = load_corpus(DATA / "corpus.jsonl")
    claims = read_jsonl(DATA / "claims_dev.jsonl")
    texts = [c["claim"] for c in claims]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    label_cache: dict[tuple[int, int, tuple[int, ...]], str] = {}
    rows = []
    for method in ("tfidf", "bm25"):
        t0 = time.time()
        retrieved = Retriever(list(corpus), [doc_text(d) for d in corpus.values()], method).top_k(texts, args.max_k)
        scores = v.sentence_scores(texts, [[corpus[d]["abstract"] for d in docs] for docs in retrieved], progress=False)
        print(f"{method}: scored {sum(len(s) for sc in scores for s in sc)} sentences in {time.time() - t0:.0f} s", flush=True)
        for thr in thresholds:
            todo = []
            for ci, docs in enumerate(retrieved):
                for di, d in enumerate(docs):
                    kept = tuple(select(scores[ci][di], thr))
                    if kept and (ci, d, kept) not in label_cache:
                        todo.append((ci, d, kept))
            if todo:
                probs = v.label_probs([texts[ci] for ci, _, _ in todo], [" ".join(corpus[d]["abstract"][i].strip() for i in sorted(k)) for _, d, k in todo])
                for key, p in zip(todo, probs):
                    label_cache[key] = LABEL_NAMES[int(np.argmax(p))]
            for k in ks:
                preds = []
                for ci, docs in enumerate(retrieved):
                    ev = {}
                    for di, d in enumerate(docs[:k]):
                        kept = tuple(select(scores[ci][di], thr))
                        if kept and label_cache[(ci, d, kept)] != "NOINFO":
                            ev[str(d)] = {"sentences": list(kept), "label": label_cache[(ci, d, kept)]}
                    preds.append({"id": claims[ci]["id"], "evidence": ev})
                m = score(claims, preds)
                rows.append((method, k, thr, 100 * m["sentence_label_f1"], 100 * m["abstract_rationalized_f1"]))
    print(f"{'retrieval':<9} {'k':>2} {'thr':>5} {'Sel+Label F1':>13} {'Label+Rat F1':>13}")
    for r in sorted(rows, key=lambda r: -r[3]):
        print(f"{r[0]:<9} {r[1]:>2} {r[2]:>5.2f} {r[3]:>13.1f} {r[4]:>13.1f}")


if __name__ == "__main__":
    main()
