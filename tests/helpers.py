"""Hand-made SciFact fixtures shared by the tests (import with ``from helpers import ...``).

A corpus of 5 abstracts and 7 claims (4 train, 3 dev) covering the cases of the recipe:

* claim 1 (train): SUPPORT, one rationale set on doc 10;
* claim 2 (train): SUPPORT, two rationale sets on one doc (40);
* claim 3 (train): CONTRADICT on two evidence docs (20 and 30);
* claim 4 (train): NEI claim citing two docs (10 and 50);
* claim 5 (dev):   NEI claim citing the same doc (30) twice;
* claim 6 (dev):   CONTRADICT, one single-sentence set on doc 40;
* claim 7 (dev):   SUPPORT, two rationale sets on doc 10.

The expected example counts are worked out by hand in :data:`EXPECTED` (see the comments there),
not computed with the package's code.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterable

CORPUS: list[dict[str, Any]] = [
    {
        "doc_id": 10,
        "title": "Aspirin and headache",
        "abstract": [
            "Aspirin reduces headache pain in adults.",
            "The trial enrolled 400 patients.",
            "Pain scores fell by half within two hours.",
            "Side effects were rare.",
            "Funding came from a public grant.",
        ],
        "structured": False,
    },
    {
        "doc_id": 20,
        "title": "Vitamin C and colds",
        "abstract": [
            "Colds are common in winter.",
            "Vitamin C did not shorten colds.",
            "Participants took 1 g daily.",
            "The study lasted one year.",
        ],
        "structured": False,
    },
    {
        "doc_id": 30,
        "title": "Zinc lozenges",
        "abstract": [
            "Zinc lozenges were tested in children.",
            "No effect on cold duration was seen.",
            "Zinc had no benefit over placebo.",
        ],
        "structured": True,
    },
    {
        "doc_id": 40,
        "title": "Exercise and sleep",
        "abstract": [
            "Sleep quality matters for health.",
            "Exercise improved sleep quality.",
            "Sleep latency was measured.",
            "Exercisers fell asleep faster.",
            "The effect held in older adults.",
            "Limitations are discussed.",
        ],
        "structured": False,
    },
    {
        "doc_id": 50,
        "title": "Coffee",
        "abstract": ["Coffee is widely consumed.", "Its effects on sleep are debated."],
        "structured": False,
    },
]

TRAIN_CLAIMS: list[dict[str, Any]] = [
    {
        "id": 1,
        "claim": "Aspirin relieves headache.",
        "evidence": {"10": [{"sentences": [0, 2], "label": "SUPPORT"}]},
        "cited_doc_ids": [10],
    },
    {
        "id": 2,
        "claim": "Exercise improves sleep.",
        "evidence": {"40": [{"sentences": [1], "label": "SUPPORT"}, {"sentences": [3, 4], "label": "SUPPORT"}]},
        "cited_doc_ids": [40],
    },
    {
        "id": 3,
        "claim": "Vitamin C and zinc shorten colds.",
        "evidence": {
            "20": [{"sentences": [1], "label": "CONTRADICT"}],
            "30": [{"sentences": [2], "label": "CONTRADICT"}],
        },
        "cited_doc_ids": [20, 30],
    },
    {"id": 4, "claim": "Coffee causes headache.", "evidence": {}, "cited_doc_ids": [10, 50]},
]

DEV_CLAIMS: list[dict[str, Any]] = [
    {"id": 5, "claim": "Zinc prevents colds in adults.", "evidence": {}, "cited_doc_ids": [30, 30]},
    {
        "id": 6,
        "claim": "Exercise has no benefit for sleep.",
        "evidence": {"40": [{"sentences": [1], "label": "CONTRADICT"}]},
        "cited_doc_ids": [40],
    },
    {
        "id": 7,
        "claim": "Aspirin is a well tolerated trial drug.",
        "evidence": {"10": [{"sentences": [1], "label": "SUPPORT"}, {"sentences": [3], "label": "SUPPORT"}]},
        "cited_doc_ids": [10],
    },
]

# Label ids of the package (alphabetical): CONTRADICT 0, NOINFO 1, SUPPORT 2.
C, N, S = 0, 1, 2

# Worked out by hand from the recipe (DESIGN.md §2).
#
# Rationale examples = every sentence of every evidence abstract (NEI claims add nothing):
#   train: claim 1 doc 10: 5 (gold 0, 2); claim 2 doc 40: 6 (gold 1, 3, 4);
#          claim 3 doc 20: 4 (gold 1) + doc 30: 3 (gold 2)           -> 18, of which 7 rationale
#   dev:   claim 6 doc 40: 6 (gold 1); claim 7 doc 10: 5 (gold 1, 3) -> 11, of which 3 rationale
# Label examples = per evidence abstract: one per set + union + NOINFO; per NEI cited doc: NOINFO:
#   train: claim 1: S, S(union), N; claim 2: S, S, S(union), N;
#          claim 3: doc 20: C, C(union), N; doc 30: C, C(union), N; claim 4: N, N
#          -> S 5, C 4, N 6 = 15
#   dev:   claim 5: N, N (doc 30 cited twice); claim 6: C, C(union), N;
#          claim 7: S, S, S(union), N -> S 3, C 2, N 4 = 9
EXPECTED: dict[str, dict[str, dict[int, int]]] = {
    "rationale": {"train": {0: 11, 1: 7}, "dev": {0: 8, 1: 3}},
    "label": {"train": {C: 4, N: 6, S: 5}, "dev": {C: 2, N: 4, S: 3}},
}


def total(kind: str, split: str) -> int:
    return sum(EXPECTED[kind][split].values())


def jsonl_bytes(rows: Iterable[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def write_jsonl(path: Path, rows: Iterable[Any], gz: bool = False) -> Path:
    """Write ``rows`` as JSON lines (gzip-compressed when ``gz``)."""
    data = jsonl_bytes(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def write_scifact(
    root: Path,
    corpus: list[dict[str, Any]] | None = None,
    train: list[dict[str, Any]] | None = None,
    dev: list[dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write corpus.jsonl, claims_train.jsonl and claims_dev.jsonl under ``root``."""
    return {
        "corpus": write_jsonl(root / "corpus.jsonl", CORPUS if corpus is None else corpus),
        "train": write_jsonl(root / "claims_train.jsonl", TRAIN_CLAIMS if train is None else train),
        "dev": write_jsonl(root / "claims_dev.jsonl", DEV_CLAIMS if dev is None else dev),
    }


def doc(doc_id: int) -> dict[str, Any]:
    """The fixture corpus record with ``doc_id``."""
    return next(d for d in CORPUS if d["doc_id"] == doc_id)


def claim(claim_id: int) -> dict[str, Any]:
    """The fixture claim record with ``claim_id``."""
    return next(c for c in TRAIN_CLAIMS + DEV_CLAIMS if c["id"] == claim_id)


def edited_line(record: dict[str, Any], **changes: Any) -> bytes:
    """``record`` with ``changes`` applied (a value of None removes the field), as a JSON line."""
    rec = dict(record)
    for k, v in changes.items():
        if v is None:
            rec.pop(k, None)
        else:
            rec[k] = v
    return json.dumps(rec).encode()
