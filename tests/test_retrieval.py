"""Abstract retrieval: TF-IDF and BM25 rank the right abstract first; oracle returns gold."""

from __future__ import annotations

import pytest

from scifact_pipeline.predict import select
from scifact_pipeline.retrieval import Retriever, doc_text, retrieval_metrics

DOCS = [
    {"doc_id": 11, "title": "Aspirin and heart attacks", "abstract": ["Aspirin lowers the risk of myocardial infarction.", "A trial."]},
    {"doc_id": 22, "title": "Vitamin D", "abstract": ["Vitamin D deficiency is common in winter.", "Sunlight matters."]},
    {"doc_id": 33, "title": "Malaria vaccines", "abstract": ["The RTS,S vaccine reduces malaria cases in children."]},
]


@pytest.mark.parametrize("method", ["tfidf", "bm25"])
def test_ranks_matching_abstract_first(method):
    r = Retriever([d["doc_id"] for d in DOCS], [doc_text(d) for d in DOCS], method)
    top = r.top_k(["aspirin reduces myocardial infarction", "malaria vaccine for children"], k=2)
    assert [t[0] for t in top] == [11, 33]
    assert all(len(t) == 2 for t in top)


def test_k_larger_than_corpus_and_oracle():
    r = Retriever([d["doc_id"] for d in DOCS], [doc_text(d) for d in DOCS], "tfidf")
    assert sorted(r.top_k(["vitamin"], k=10)[0]) == [11, 22, 33]
    oracle = Retriever([d["doc_id"] for d in DOCS], [doc_text(d) for d in DOCS], "oracle")
    assert oracle.top_k(["x"], 3, gold=[[22]]) == [[22]]
    with pytest.raises(ValueError, match="labelled claims"):
        oracle.top_k(["x"], 3)
    with pytest.raises(ValueError, match="retrieval must be one of"):
        Retriever([1], ["a"], "dense")


def test_retrieval_metrics_count_only_claims_with_evidence():
    m = retrieval_metrics([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 10], [], [99]])
    assert m == {"hit_one": 0.5, "recall": 1 / 3, "claims": 2}


def test_select_orders_by_score_and_applies_threshold():
    import numpy as np

    assert select(np.array([0.2, 0.9, 0.5, 0.7]), 0.5) == [1, 3, 2]
    assert select(np.array([0.1, 0.2]), 0.5) == []
