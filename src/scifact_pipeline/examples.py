"""The published (VeriSci) recipe for building training examples, made deterministic.

Pure functions over one (claim, abstract) pair. Randomness comes from a generator seeded by
``(seed, claim_id, doc_id)``, so the examples do not depend on how the data is partitioned or in
which order pairs are processed.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence

LABEL_NAMES: tuple[str, ...] = ("CONTRADICT", "NOINFO", "SUPPORT")
LABEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LABEL_NAMES)}
RATIONALE_NAMES: tuple[str, ...] = ("NOT_RATIONALE", "RATIONALE")

RationaleSets = Sequence[dict[str, Any]]  # [{"sentences": [int, ...], "label": str}, ...]


def stable_hash(*parts: int | str) -> int:
    """A platform-independent 63-bit hash of ``parts`` (not Python's salted ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def pair_rng(seed: int, claim_id: int, doc_id: int, slot: int = 0) -> random.Random:
    """The random generator of one (claim, abstract) pair (``slot``: its place in the claim's list)."""
    return random.Random(stable_hash("pair", seed, claim_id, doc_id, slot))


def check_sentence_indices(sets: RationaleSets, n_sentences: int, doc_id: int) -> None:
    """Raise ValueError when a rationale names a sentence the abstract does not have."""
    for s in sets:
        for i in s["sentences"]:
            if not 0 <= i < n_sentences:
                raise ValueError(
                    f"evidence for doc {doc_id}: sentence index {i} out of range "
                    f"(the abstract has {n_sentences} sentences)"
                )


def rationale_examples(
    claim_id: int, claim: str, doc_id: int, sentences: Sequence[str], sets: RationaleSets
) -> list[dict[str, Any]]:
    """One example per sentence of an evidence abstract: label 1 if it is in any rationale set."""
    check_sentence_indices(sets, len(sentences), doc_id)
    gold = {i for s in sets for i in s["sentences"]}
    gold_sets = [list(s["sentences"]) for s in sets]
    return [
        {
            "claim_id": claim_id,
            "doc_id": doc_id,
            "sent_idx": i,
            "claim": claim,
            "evidence": sentence.strip(),
            "label": int(i in gold),
            "gold_sets": gold_sets,
        }
        for i, sentence in enumerate(sentences)
    ]


def _join(sentences: Sequence[str], idx: Sequence[int]) -> str:
    return " ".join(sentences[i].strip() for i in sorted(idx))


def label_examples(
    claim_id: int,
    claim: str,
    doc_id: int,
    sentences: Sequence[str],
    sets: RationaleSets,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Label-prediction examples of one pair, following the VeriSci recipe.

    Evidence abstract (``sets`` non-empty): one example per rationale set, one with the union of
    all rationale sentences (document order) and one NOINFO example of 1–2 random non-rationale
    sentences. NEI claim's cited abstract (``sets`` empty): one NOINFO example of 1–2 random
    sentences. Random draws use ``rng`` on sorted candidate lists (reproducible on every Python).
    """
    check_sentence_indices(sets, len(sentences), doc_id)
    out: list[dict[str, Any]] = []

    def add(kind: str, idx: Sequence[int], label: str) -> None:
        out.append(
            {
                "claim_id": claim_id,
                "doc_id": doc_id,
                "kind": kind,
                "sentence_ids": sorted(idx),
                "claim": claim,
                "evidence": _join(sentences, idx),
                "label": LABEL_IDS[label],
            }
        )

    if sets:
        label = sets[0]["label"]
        for s in sets:
            add("rationale", s["sentences"], label)
        union = sorted({i for s in sets for i in s["sentences"]})
        add("union", union, label)
        candidates = [i for i in range(len(sentences)) if i not in set(union)]
    else:
        candidates = list(range(len(sentences)))
    if candidates:
        k = min(rng.randint(1, 2), len(candidates))
        add("noinfo", rng.sample(candidates, k), "NOINFO")
    return out
