"""Abstract retrieval for verifying claims: TF-IDF (as published), BM25, or gold (oracle).

TF-IDF follows VeriSci: title + abstract, English stop words, unigrams and bigrams, cosine
similarity, top k. BM25 uses the same tokenisation with the usual k1/b weighting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

RETRIEVERS = ("tfidf", "bm25", "oracle")


def doc_text(doc: dict[str, Any]) -> str:
    """The text a retriever indexes: title and abstract sentences."""
    return " ".join([doc.get("title", ""), *doc["abstract"]])


@dataclass
class Retriever:
    """Rank corpus abstracts for claims. ``method``: tfidf, bm25 or oracle (gold abstracts)."""

    doc_ids: Sequence[int]
    texts: Sequence[str]
    method: str = "tfidf"
    k1: float = 1.2
    b: float = 0.75
    _vec: Any = field(default=None, init=False, repr=False)
    _mat: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in RETRIEVERS:
            raise ValueError(f"retrieval must be one of {RETRIEVERS}, got {self.method!r}")
        if self.method == "tfidf":
            self._vec = TfidfVectorizer(stop_words="english", ngram_range=(1, 2))
            self._mat = self._vec.fit_transform(self.texts)
        elif self.method == "bm25":
            self._vec = CountVectorizer(stop_words="english", ngram_range=(1, 2))
            tf = self._vec.fit_transform(self.texts).tocsr().astype(np.float64)
            n_docs = tf.shape[0]
            df = np.bincount(tf.indices, minlength=tf.shape[1])
            idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            lengths = np.asarray(tf.sum(axis=1)).ravel()
            norm = self.k1 * (1 - self.b + self.b * lengths / max(lengths.mean(), 1e-9))
            rows = np.repeat(np.arange(n_docs), np.diff(tf.indptr))
            data = tf.data * (self.k1 + 1) / (tf.data + norm[rows])
            weights = sparse.csr_matrix((data, tf.indices, tf.indptr), shape=tf.shape)
            self._mat = weights @ sparse.diags(idf)

    def top_k(self, claims: Sequence[str], k: int, gold: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
        """The ``k`` best doc_ids for each claim (oracle: the gold doc_ids given in ``gold``)."""
        if self.method == "oracle":
            if gold is None:
                raise ValueError("oracle retrieval needs labelled claims (gold evidence abstracts)")
            return [list(g) for g in gold]
        q = self._vec.transform(claims)
        if self.method == "bm25":
            q.data[:] = 1.0  # each query term counts once
        scores = (q @ self._mat.T).toarray()
        k = min(k, scores.shape[1])
        out = []
        for row in scores:
            idx = np.argpartition(-row, k - 1)[:k]
            idx = idx[np.lexsort((idx, -row[idx]))]
            out.append([int(self.doc_ids[i]) for i in idx])
        return out


def retrieval_metrics(retrieved: Sequence[Sequence[int]], gold: Sequence[Sequence[int]]) -> dict[str, float]:
    """Hit-one (share of claims with evidence where a gold abstract is retrieved) and recall@k."""
    with_evidence = [(set(r), set(g)) for r, g in zip(retrieved, gold) if g]
    if not with_evidence:
        return {"hit_one": 0.0, "recall": 0.0, "claims": 0}
    hits = sum(1 for r, g in with_evidence if r & g)
    found = sum(len(r & g) for r, g in with_evidence)
    total = sum(len(g) for _, g in with_evidence)
    return {"hit_one": hits / len(with_evidence), "recall": found / total, "claims": len(with_evidence)}
