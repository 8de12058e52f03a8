"""Verifying claims: retrieve abstracts, select rationale sentences, predict labels.

Inference is batched across every claim and abstract with dynamic padding and
``torch.inference_mode()``. Output follows the official leaderboard format: one line per claim
in input order, ``{"id", "evidence": {doc_id: {"sentences": [...], "label": ...}}}``, sentences
ordered by score (best first), NOINFO abstracts left out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .examples import LABEL_NAMES
from .retrieval import Retriever, doc_text
from .scorer import read_jsonl
from .tokenization import LabelEncoder, PairEncoder, RationaleEncoder
from .download import check_model_folder
from .training import load_tokenizer, predict_proba, quiet_transformers
from .util import DataError


@dataclass
class Verifier:
    """The two trained models with their tokenization classes."""

    rationale_model: torch.nn.Module
    rationale_encoder: PairEncoder
    label_model: torch.nn.Module
    label_encoder: PairEncoder
    batch_size: int = 64

    @classmethod
    def load(cls, rationale_dir: str | Path, label_dir: str | Path, max_length: int = 256, claim_first: bool = True, batch_size: int = 64) -> "Verifier":
        """Load both ``save_pretrained`` folders (model and tokenizer in each).

        Each folder is checked first (:func:`~scifact_pipeline.download.check_model_folder`): a
        missing or corrupt file is one line naming it; weights load as safetensors or with
        ``weights_only`` (a pickle is never run).
        """
        from transformers import AutoModelForSequenceClassification

        quiet_transformers()
        models = []
        for d, enc_cls in ((rationale_dir, RationaleEncoder), (label_dir, LabelEncoder)):
            model = AutoModelForSequenceClassification.from_pretrained(str(check_model_folder(d))).eval()
            models += [model, enc_cls(load_tokenizer(d), max_length=max_length, claim_first=claim_first)]
        return cls(*models, batch_size=batch_size)

    def _items(self, encoder: PairEncoder, pairs: Sequence[tuple[str, str]], metas: Sequence[Any], chunk: int = 4096) -> Iterator[tuple[dict[str, Any], Any]]:
        for i in range(0, len(pairs), chunk):
            part = pairs[i : i + chunk]
            feats = encoder.encode([c for c, _ in part], [e for _, e in part])
            yield from zip(feats, metas[i : i + chunk])

    def sentence_scores(self, claims: Sequence[str], abstracts: Sequence[Sequence[Sequence[str]]], progress: bool = True) -> list[list[np.ndarray]]:
        """P(rationale) of every sentence: ``out[claim][doc]`` is an array over its sentences."""
        pairs, metas = [], []
        for ci, (claim, docs) in enumerate(zip(claims, abstracts)):
            for di, sentences in enumerate(docs):
                for si, s in enumerate(sentences):
                    pairs.append((claim, s.strip()))
                    metas.append((ci, di, si))
        out = [[np.zeros(len(s)) for s in docs] for docs in abstracts]
        bar = tqdm(total=len(pairs), desc="rationale selection", unit="sent", mininterval=5, disable=not progress)
        for (ci, di, si), p in predict_proba(self.rationale_model, self.rationale_encoder, self._items(self.rationale_encoder, pairs, metas), self.batch_size):
            out[ci][di][si] = p[1]
            bar.update(1)
        bar.close()
        return out

    def label_probs(self, claims: Sequence[str], evidences: Sequence[str]) -> np.ndarray:
        """Class probabilities (CONTRADICT, NOINFO, SUPPORT) for each (claim, evidence)."""
        out = np.zeros((len(claims), len(LABEL_NAMES)))
        items = self._items(self.label_encoder, list(zip(claims, evidences)), list(range(len(claims))))
        for i, p in predict_proba(self.label_model, self.label_encoder, items, self.batch_size):
            out[i] = p
        return out


def select(scores: np.ndarray, threshold: float) -> list[int]:
    """Indices with score ≥ threshold, best first (ties by index)."""
    kept = [i for i in range(len(scores)) if scores[i] >= threshold]
    return sorted(kept, key=lambda i: (-scores[i], i))


def verify(
    claims: Sequence[dict[str, Any]],
    corpus: dict[int, dict[str, Any]],
    retrieved: Sequence[Sequence[int]],
    verifier: Verifier,
    threshold: float = 0.5,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Predictions in the leaderboard format, plus the raw sentence scores (for analysis)."""
    texts = [c["claim"] for c in claims]
    abstracts = [[corpus[d]["abstract"] for d in docs] for docs in retrieved]
    scores = verifier.sentence_scores(texts, abstracts, progress=progress)
    jobs = []  # (claim index, doc_id, kept sentences best first)
    for ci, docs in enumerate(retrieved):
        for di, doc_id in enumerate(docs):
            kept = select(scores[ci][di], threshold)
            if kept:
                jobs.append((ci, doc_id, kept))
    evidences = [" ".join(corpus[d]["abstract"][i].strip() for i in sorted(kept)) for _, d, kept in jobs]
    probs = verifier.label_probs([texts[ci] for ci, _, _ in jobs], evidences) if jobs else np.zeros((0, 3))
    preds: list[dict[str, Any]] = [{"id": c["id"], "evidence": {}} for c in claims]
    for (ci, doc_id, kept), p in zip(jobs, probs):
        label = LABEL_NAMES[int(np.argmax(p))]
        if label != "NOINFO":
            preds[ci]["evidence"][str(doc_id)] = {"sentences": kept, "label": label}
    raw = {"scores": scores, "retrieved": [list(r) for r in retrieved]}
    return preds, raw


def load_corpus(path: str | Path) -> dict[int, dict[str, Any]]:
    """The corpus as ``{doc_id: record}``."""
    return {int(d["doc_id"]): d for d in read_jsonl(path)}


def predict_file(
    claims_path: str | Path,
    corpus_path: str | Path,
    verifier: Verifier,
    retrieval: str = "tfidf",
    k: int = 3,
    threshold: float = 0.5,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Verify every claim of a claims file (``{"id", "claim"}`` lines; evidence optional)."""
    claims = read_jsonl(claims_path)
    for n, c in enumerate(claims, 1):
        if not isinstance(c.get("id"), int) or not isinstance(c.get("claim"), str):
            field = "id" if not isinstance(c.get("id"), int) else "claim"
            raise DataError(f"{claims_path}:{n}: a claim needs an integer 'id' and a string 'claim' (bad {field!r})")
    corpus = load_corpus(corpus_path)
    gold = [[int(d) for d in (c.get("evidence") or {})] for c in claims]
    t0 = time.time()
    retriever = Retriever(list(corpus), [doc_text(d) for d in corpus.values()], retrieval)
    retrieved = retriever.top_k([c["claim"] for c in claims], k, gold if retrieval == "oracle" else None)
    t1 = time.time()
    preds, raw = verify(claims, corpus, retrieved, verifier, threshold)
    raw.update(index_seconds=round(t1 - t0, 2), predict_seconds=round(time.time() - t1, 2), gold_docs=gold)
    return preds, raw


def write_jsonl(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as JSON lines, atomically."""
    from .util import atomic_file

    with atomic_file(path, encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
