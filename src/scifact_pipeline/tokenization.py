"""Tokenization classes: examples → model inputs, shared by training and prediction.

Each class fixes the pair order and truncates only the evidence side. A claim so long that it
would leave too little room for evidence is cut (at a token boundary) to ``max_claim_tokens``
first, so that no input can make tokenization fail. Nothing is padded here: batches are padded
dynamically by :meth:`PairEncoder.collate`.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from .examples import LABEL_NAMES, RATIONALE_NAMES

Features = dict[str, Any]


class PairEncoder:
    """Encode (claim, evidence) pairs for a sequence-pair classifier."""

    label_names: tuple[str, ...] = ()

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 256,
        claim_first: bool = True,
        max_claim_tokens: int | None = None,
    ) -> None:
        limit = getattr(tokenizer, "model_max_length", None) or max_length
        self.tokenizer = tokenizer
        self.max_length = min(max_length, limit) if limit < 1_000_000 else max_length
        self.claim_first = claim_first
        self.special = tokenizer.num_special_tokens_to_add(pair=True)
        self.max_claim_tokens = max_claim_tokens or (self.max_length - self.special) // 2
        if self.max_claim_tokens < 1 or self.max_claim_tokens + self.special >= self.max_length:
            raise ValueError(f"max_length {self.max_length} leaves no room for evidence")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def _clip_claims(self, claims: Sequence[str]) -> list[str]:
        enc = self.tokenizer(
            list(claims), add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False
        )
        out = []
        for text, offsets in zip(claims, enc["offset_mapping"]):
            if len(offsets) > self.max_claim_tokens:
                text = text[: offsets[self.max_claim_tokens - 1][1]]
            out.append(text)
        return out

    def encode(self, claims: Sequence[str], evidences: Sequence[str]) -> list[Features]:
        """Token ids for each pair (no padding); evidence truncated to fit ``max_length``."""
        if not len(claims):
            return []
        claims = self._clip_claims(claims)
        evidences = [e if e.strip() else self.tokenizer.unk_token or "" for e in evidences]
        first, second = (claims, evidences) if self.claim_first else (evidences, claims)
        enc = self.tokenizer(
            list(first),
            list(second),
            truncation="only_second" if self.claim_first else "only_first",
            max_length=self.max_length,
            return_attention_mask=False,
        )
        keys = list(enc.keys())
        return [{k: enc[k][i] for k in keys} for i in range(len(first))]

    def encode_frame(self, df: pd.DataFrame) -> list[Features]:
        """Encode an example frame (``claim``, ``evidence`` and, if present, ``label`` columns)."""
        feats = self.encode(df["claim"].tolist(), df["evidence"].tolist())
        if "label" in df:
            for f, y in zip(feats, df["label"].tolist()):
                f["labels"] = int(y)
        return feats

    def collate(self, features: Sequence[Features]) -> dict[str, torch.Tensor]:
        """Pad a batch to its longest member and stack it into tensors."""
        return self.tokenizer.pad(list(features), padding="longest", return_tensors="pt")


class RationaleEncoder(PairEncoder):
    """Rationale selection: (claim, abstract sentence) → rationale or not."""

    label_names = RATIONALE_NAMES


class LabelEncoder(PairEncoder):
    """Label prediction: (claim, evidence sentences joined) → CONTRADICT / NOINFO / SUPPORT."""

    label_names = LABEL_NAMES


ENCODERS: dict[str, type[PairEncoder]] = {"rationale": RationaleEncoder, "label": LabelEncoder}
