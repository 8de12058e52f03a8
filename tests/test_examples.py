"""Tests for scifact_pipeline.examples: the VeriSci recipe, made deterministic."""

from __future__ import annotations

from collections import Counter

import pytest
from helpers import C, N, S, claim, doc

from scifact_pipeline.examples import (
    LABEL_IDS,
    LABEL_NAMES,
    label_examples,
    pair_rng,
    rationale_examples,
    stable_hash,
)


def _sets(claim_id: int, doc_id: int) -> list[dict]:
    return claim(claim_id)["evidence"].get(str(doc_id), [])


def _rationale(claim_id: int, doc_id: int) -> list[dict]:
    return rationale_examples(claim_id, claim(claim_id)["claim"], doc_id, doc(doc_id)["abstract"], _sets(claim_id, doc_id))


def _label(claim_id: int, doc_id: int, seed: int = 13, slot: int = 0) -> list[dict]:
    return label_examples(
        claim_id,
        claim(claim_id)["claim"],
        doc_id,
        doc(doc_id)["abstract"],
        _sets(claim_id, doc_id),
        pair_rng(seed, claim_id, doc_id, slot),
    )


def test_label_ids_are_alphabetical() -> None:
    assert LABEL_NAMES == ("CONTRADICT", "NOINFO", "SUPPORT")
    assert (LABEL_IDS["CONTRADICT"], LABEL_IDS["NOINFO"], LABEL_IDS["SUPPORT"]) == (C, N, S)


# --------------------------------------------------------------------------- rationale


def test_rationale_one_example_per_sentence() -> None:
    exs = _rationale(1, 10)  # set [0, 2] on a 5-sentence abstract
    assert [e["sent_idx"] for e in exs] == [0, 1, 2, 3, 4]
    assert [e["label"] for e in exs] == [1, 0, 1, 0, 0]
    assert [e["evidence"] for e in exs] == doc(10)["abstract"]
    assert all(e["claim"] == "Aspirin relieves headache." and e["claim_id"] == 1 and e["doc_id"] == 10 for e in exs)
    assert all(e["gold_sets"] == [[0, 2]] for e in exs)


def test_rationale_two_sets_on_one_doc() -> None:
    exs = _rationale(2, 40)  # sets [1] and [3, 4] on 6 sentences
    assert len(exs) == 6
    assert [e["label"] for e in exs] == [0, 1, 0, 1, 1, 0]
    assert exs[0]["gold_sets"] == [[1], [3, 4]]


def test_rationale_strips_sentences() -> None:
    exs = rationale_examples(1, "c", 9, ["  padded sentence.  ", "b"], [{"sentences": [0], "label": "SUPPORT"}])
    assert exs[0]["evidence"] == "padded sentence."


@pytest.mark.parametrize("bad", [5, -1])
def test_rationale_out_of_range_index(bad: int) -> None:
    with pytest.raises(ValueError, match=f"sentence index {bad} out of range"):
        rationale_examples(1, "c", 10, doc(10)["abstract"], [{"sentences": [0, bad], "label": "SUPPORT"}])


# --------------------------------------------------------------------------- label


def test_label_one_set() -> None:
    exs = _label(1, 10)  # SUPPORT, set [0, 2]
    assert [e["kind"] for e in exs] == ["rationale", "union", "noinfo"]
    assert [e["label"] for e in exs] == [S, S, N]
    assert exs[0]["sentence_ids"] == [0, 2]
    abstract = doc(10)["abstract"]
    assert exs[0]["evidence"] == f"{abstract[0]} {abstract[2]}"
    assert exs[1]["sentence_ids"] == [0, 2]
    noinfo = exs[2]["sentence_ids"]
    assert 1 <= len(noinfo) <= 2 and set(noinfo) <= {1, 3, 4}
    assert noinfo == sorted(noinfo)
    assert exs[2]["evidence"] == " ".join(abstract[i] for i in noinfo)


def test_label_two_sets_on_one_doc() -> None:
    exs = _label(2, 40)  # SUPPORT sets [1] and [3, 4]
    assert [e["kind"] for e in exs] == ["rationale", "rationale", "union", "noinfo"]
    assert [e["label"] for e in exs] == [S, S, S, N]
    assert [e["sentence_ids"] for e in exs[:3]] == [[1], [3, 4], [1, 3, 4]]
    abstract = doc(40)["abstract"]
    assert exs[2]["evidence"] == " ".join(abstract[i] for i in (1, 3, 4))
    assert 1 <= len(exs[3]["sentence_ids"]) <= 2 and set(exs[3]["sentence_ids"]) <= {0, 2, 5}


def test_label_union_is_in_document_order() -> None:
    sents = ["s0.", "s1.", "s2.", "s3.", "s4."]
    sets = [{"sentences": [3], "label": "CONTRADICT"}, {"sentences": [0, 2], "label": "CONTRADICT"}]
    exs = label_examples(1, "c", 9, sents, sets, pair_rng(13, 1, 9))
    union = next(e for e in exs if e["kind"] == "union")
    assert union["sentence_ids"] == [0, 2, 3]
    assert union["evidence"] == "s0. s2. s3."
    assert union["label"] == C


def test_label_contradict_claim_on_two_docs() -> None:
    exs = _label(3, 20) + _label(3, 30, slot=1)
    assert Counter(e["label"] for e in exs) == {C: 4, N: 2}
    assert [e["kind"] for e in exs] == ["rationale", "union", "noinfo"] * 2


def test_label_nei_cited_abstract_is_one_noinfo() -> None:
    for doc_id, slot in ((10, 0), (50, 1)):
        exs = _label(4, doc_id, slot=slot)
        assert len(exs) == 1
        assert exs[0]["kind"] == "noinfo" and exs[0]["label"] == N
        assert 1 <= len(exs[0]["sentence_ids"]) <= 2
        assert set(exs[0]["sentence_ids"]) <= set(range(len(doc(doc_id)["abstract"])))


def test_label_one_sentence_abstract_noinfo_has_one_sentence() -> None:
    for seed in range(20):
        exs = label_examples(1, "c", 9, ["only one."], [], pair_rng(seed, 1, 9))
        assert [e["sentence_ids"] for e in exs] == [[0]]


def test_label_noinfo_sizes_vary_between_one_and_two() -> None:
    sizes = Counter(len(_label(4, 10, seed=seed)[0]["sentence_ids"]) for seed in range(60))
    assert set(sizes) == {1, 2}


def test_label_all_sentences_rationale_gives_no_noinfo() -> None:
    sets = [{"sentences": [0, 1], "label": "SUPPORT"}]
    exs = label_examples(1, "c", 50, doc(50)["abstract"], sets, pair_rng(13, 1, 50))
    assert [e["kind"] for e in exs] == ["rationale", "union"]


@pytest.mark.parametrize("bad", [6, -1])
def test_label_out_of_range_index(bad: int) -> None:
    with pytest.raises(ValueError, match=f"evidence for doc 40: sentence index {bad} out of range"):
        label_examples(2, "c", 40, doc(40)["abstract"], [{"sentences": [bad], "label": "SUPPORT"}], pair_rng(13, 2, 40))


# --------------------------------------------------------------------------- determinism


def test_stable_hash_is_stable() -> None:
    assert stable_hash("pair", 13, 1, 10, 0) == stable_hash("pair", 13, 1, 10, 0)
    assert stable_hash("pair", 13, 1, 10, 0) != stable_hash("pair", 13, 1, 10, 1)
    assert 0 <= stable_hash("x") < 2**63


def test_pair_rng_same_seed_same_examples() -> None:
    for cid, did in ((1, 10), (2, 40), (4, 10), (4, 50)):
        assert _label(cid, did, seed=13) == _label(cid, did, seed=13)
    assert pair_rng(13, 1, 10).random() == pair_rng(13, 1, 10).random()


def test_pair_rng_other_seed_may_differ() -> None:
    base = _label(4, 10, seed=13)[0]["sentence_ids"]
    draws = {tuple(_label(4, 10, seed=seed)[0]["sentence_ids"]) for seed in range(30)}
    assert len(draws) > 1
    assert tuple(base) in draws
    # the generator depends on every part of the key
    streams = {
        tuple(pair_rng(*key).random() for _ in range(3))
        for key in ((13, 1, 10, 0), (14, 1, 10, 0), (13, 2, 10, 0), (13, 1, 11, 0), (13, 1, 10, 1))
    }
    assert len(streams) == 5


def test_label_examples_do_not_depend_on_global_random_state() -> None:
    import random

    random.seed(1)
    a = _label(4, 10)
    random.seed(2)
    b = _label(4, 10)
    assert a == b


def test_stable_hash_does_not_depend_on_python_hash_seed() -> None:
    import os
    import subprocess
    import sys

    code = "from scifact_pipeline.examples import stable_hash; print(stable_hash('pair', 13, 1, 10, 0))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env=dict(os.environ, PYTHONHASHSEED=str(hs)),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hs in (1, 2)
    }
    assert outs == {str(stable_hash("pair", 13, 1, 10, 0))}
