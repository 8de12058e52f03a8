"""Prediction speed on the SciFact dev claims (target: 300 claims < 2 min after loading models).

Prints the wall time of ``verify`` (TF-IDF k=3, rationale selection, label prediction) for all dev
claims, and a ratio against a VeriSci-style baseline run in the same process on the first
``--baseline-claims`` claims: one abstract at a time, micro-batches of 8, every batch padded to
512 tokens (as the research code does), no length grouping.

    python benchmarks/predict_dev.py --report output/reports/train_all-<hash>.json
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
import torch  # noqa: E402

from scifact_pipeline.examples import LABEL_NAMES  # noqa: E402
from scifact_pipeline.predict import Verifier, load_corpus, select, verify  # noqa: E402
from scifact_pipeline.retrieval import Retriever, doc_text  # noqa: E402
from scifact_pipeline.scorer import read_jsonl, score  # noqa: E402
from scifact_pipeline.training import set_threads  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def baseline_verify(claims, corpus, retrieved, v: Verifier, threshold: float = 0.5):
    """VeriSci-style inference: per abstract, batches of 8 padded to 512 tokens."""
    preds = []
    with torch.inference_mode():
        for c, docs in zip(claims, retrieved):
            ev = {}
            for d in docs:
                sents = corpus[d]["abstract"]
                probs = []
                for i in range(0, len(sents), 8):
                    enc = v.rationale_encoder.tokenizer(
                        [c["claim"]] * len(sents[i : i + 8]), [s.strip() for s in sents[i : i + 8]],
                        padding="max_length", truncation="only_second", max_length=512, return_tensors="pt",
                    )
                    probs += torch.softmax(v.rationale_model(**enc).logits, -1)[:, 1].tolist()
                kept = select(np.array(probs), threshold)
                if not kept:
                    continue
                enc = v.label_encoder.tokenizer(
                    [c["claim"]], [" ".join(sents[i].strip() for i in sorted(kept))],
                    padding="max_length", truncation="only_second", max_length=512, return_tensors="pt",
                )
                label = LABEL_NAMES[int(v.label_model(**enc).logits.argmax())]
                if label != "NOINFO":
                    ev[str(d)] = {"sentences": kept, "label": label}
            preds.append({"id": c["id"], "evidence": ev})
    return preds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True, help="TrainAll report JSON (gives the model folders)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-claims", type=int, default=30)
    args = ap.parse_args()
    set_threads(args.threads)
    report = json.loads(Path(args.report).read_text())
    t0 = time.time()
    v = Verifier.load(report["models_dir"]["rationale"], report["models_dir"]["label"])
    print(f"model load: {time.time() - t0:.1f} s")
    corpus = load_corpus(DATA / "corpus.jsonl")
    claims = read_jsonl(DATA / "claims_dev.jsonl")
    t0 = time.time()
    retriever = Retriever(list(corpus), [doc_text(d) for d in corpus.values()], "tfidf")
    retrieved = retriever.top_k([c["claim"] for c in claims], 3)
    print(f"TF-IDF index + retrieval of {len(claims)} claims: {time.time() - t0:.1f} s")

    t0 = time.time()
    preds, _ = verify(claims, corpus, retrieved, v, progress=False)
    ours = time.time() - t0
    m = score(claims, preds)
    print(f"verify {len(claims)} dev claims: {ours:.1f} s ({len(claims) / ours:.1f} claims/s); "
          f"Sel+Label F1 {100 * m['sentence_label_f1']:.1f}, Label+Rationale F1 {100 * m['abstract_rationalized_f1']:.1f}")

    n = args.baseline_claims
    t0 = time.time()
    ours_n, _ = verify(claims[:n], corpus, retrieved[:n], v, progress=False)
    ours_small = time.time() - t0
    t0 = time.time()
    base_n = baseline_verify(claims[:n], corpus, retrieved[:n], v)
    base_small = time.time() - t0
    same = sum(a == b for a, b in zip(ours_n, base_n))
    print(f"first {n} claims: ours {ours_small:.1f} s, VeriSci-style baseline {base_small:.1f} s, "
          f"speed-up x{base_small / ours_small:.1f}; identical predictions for {same}/{n} claims")


if __name__ == "__main__":
    main()
