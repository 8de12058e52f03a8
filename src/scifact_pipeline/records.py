"""Reading SciFact JSON-lines files: block splitting, validation and one-line errors.

Every parsed row keeps the file and the byte position of its line, so that a problem found
later (for example a ``doc_id`` absent from the corpus) can still name the file and line.
Line numbers are only counted when an error is reported, never on the hot path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

import fsspec
import pandas as pd
from fsspec.utils import infer_compression

from .util import InputError, MissingInputError

LABELS_EVIDENCE = ("SUPPORT", "CONTRADICT")
ON_BAD_RECORD = ("error", "skip")


class BadRecordError(InputError, ValueError):
    """A JSON-lines record that is invalid; the message names file, line and problem."""


@dataclass(frozen=True)
class Block:
    """A byte range of one input file; it owns the lines that *start* inside the range."""

    path: str
    offset: int
    length: int | None  # None: the whole (possibly compressed) file


def expand_inputs(spec: str | list[str]) -> list[str]:
    """Expand a path, a comma-separated list, a glob or a list of those into sorted files."""
    items = spec if isinstance(spec, list) else [s for s in str(spec).split(",") if s.strip()]
    files: list[str] = []
    for item in items:
        item = item.strip()
        fs, _, paths = fsspec.get_fs_token_paths(item)
        found = sorted(paths) if any(ch in item for ch in "*?[") else [item]
        if not found:
            raise MissingInputError(f"{item}: no input file matches")
        for p in found:
            if not fs.exists(p):
                raise MissingInputError(f"{p}: input file not found")
            files.append(p)
    return files


def plan_blocks(files: list[str], blocksize: int) -> list[Block]:
    """Split uncompressed files into ``blocksize`` byte ranges; compressed files stay whole."""
    blocks: list[Block] = []
    for path in files:
        if infer_compression(path) is not None:
            blocks.append(Block(path, 0, None))
            continue
        size = os.path.getsize(path)
        if size == 0:
            blocks.append(Block(path, 0, None))
            continue
        for off in range(0, size, blocksize):
            blocks.append(Block(path, off, min(blocksize, size - off)))
    return blocks


def iter_block_lines(block: Block) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte position, raw line)`` for each line starting inside ``block``."""
    with fsspec.open(block.path, "rb", compression="infer") as fh:
        if block.length is None:
            pos = 0
            for line in fh:
                yield pos, line
                pos += len(line)
            return
        end = block.offset + block.length
        if block.offset > 0:
            fh.seek(block.offset - 1)
            fh.readline()  # finish the line that started before this block
        pos = fh.tell()
        while pos < end:
            line = fh.readline()
            if not line:
                break
            yield pos, line
            pos += len(line)


def line_number(path: str, pos: int) -> int:
    """1-based number of the line starting at byte ``pos`` (of the decompressed stream)."""
    count = 0
    with fsspec.open(path, "rb", compression="infer") as fh:
        remaining = pos
        while remaining > 0:
            chunk = fh.read(min(remaining, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count + 1


def describe(path: str, pos: int, problem: str) -> str:
    """The one-line error text: ``file:line: problem``."""
    return f"{path}:{line_number(path, pos)}: {problem}"


# --------------------------------------------------------------------------- validation


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need(rec: dict[str, Any], key: str) -> Any:
    if key not in rec:
        raise ValueError(f"missing required field {key!r}")
    return rec[key]


def validate_claim(rec: Any, require_evidence: bool) -> dict[str, Any]:
    """Check one claims record; return the fields the pipeline uses. Raises ValueError."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    cid = _need(rec, "id")
    if not _is_int(cid):
        raise ValueError(f"field 'id' must be an integer, got {type(cid).__name__}")
    claim = _need(rec, "claim")
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("field 'claim' must be a non-empty string")
    out: dict[str, Any] = {"claim_id": cid, "claim": claim, "evidence": {}, "cited_doc_ids": []}
    if not require_evidence:
        return out
    evidence = _need(rec, "evidence")
    if not isinstance(evidence, dict):
        raise ValueError(f"field 'evidence' must be an object, got {type(evidence).__name__}")
    cited = _need(rec, "cited_doc_ids")
    if not isinstance(cited, list) or not all(_is_int(d) for d in cited):
        raise ValueError("field 'cited_doc_ids' must be a list of integers")
    clean: dict[int, list[dict[str, Any]]] = {}
    for key, sets in evidence.items():
        try:
            doc_id = int(key)
        except ValueError:
            raise ValueError(f"evidence key {key!r} is not an integer doc_id") from None
        if not isinstance(sets, list) or not sets:
            raise ValueError(f"evidence for doc {key} must be a non-empty list of rationale sets")
        labels = set()
        clean_sets = []
        for s in sets:
            if not isinstance(s, dict):
                raise ValueError(f"evidence for doc {key}: a rationale set must be an object")
            sents = s.get("sentences")
            label = s.get("label")
            if not isinstance(sents, list) or not sents or not all(_is_int(i) and i >= 0 for i in sents):
                raise ValueError(f"evidence for doc {key}: 'sentences' must be a non-empty list of indices")
            if label not in LABELS_EVIDENCE:
                raise ValueError(f"evidence for doc {key}: label {label!r} is not SUPPORT or CONTRADICT")
            labels.add(label)
            clean_sets.append({"sentences": sorted(set(sents)), "label": label})
        if len(labels) > 1:
            raise ValueError(f"evidence for doc {key}: rationale sets disagree on the label")
        clean[doc_id] = clean_sets
    out["evidence"] = clean
    out["cited_doc_ids"] = list(cited)
    return out


def validate_doc(rec: Any) -> dict[str, Any]:
    """Check one corpus record; return the fields the pipeline uses. Raises ValueError."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    doc_id = _need(rec, "doc_id")
    if not _is_int(doc_id):
        raise ValueError(f"field 'doc_id' must be an integer, got {type(doc_id).__name__}")
    abstract = _need(rec, "abstract")
    if not isinstance(abstract, list) or not all(isinstance(s, str) for s in abstract):
        raise ValueError("field 'abstract' must be a list of sentence strings")
    if not abstract:
        raise ValueError("field 'abstract' is empty")
    title = rec.get("title", "")
    if not isinstance(title, str):
        raise ValueError("field 'title' must be a string")
    return {"doc_id": doc_id, "title": title, "abstract": abstract}


def parse_line(raw: bytes) -> Any:
    """Decode and parse one JSON line (ValueError with a short reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None


# --------------------------------------------------------------------------- block readers

CLAIM_COLUMNS = {
    "claim_id": "int64",
    "claim": "object",
    "evidence": "object",  # JSON text: {"doc_id": [{"sentences": [...], "label": ...}]}
    "cited": "object",  # JSON text: [doc_id, ...]
    "file": "object",
    "pos": "int64",
}
DOC_COLUMNS = {
    "doc_id": "int64",
    "title": "object",
    "sentences": "object",  # JSON text: ["sentence", ...]
    "file": "object",
    "pos": "int64",
}
ERROR_COLUMNS = {"file": "object", "pos": "int64", "problem": "object"}


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame with the given column dtypes (used as Dask ``meta``)."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})


def frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """Rows → a frame with exactly ``columns`` and their dtypes."""
    if not rows:
        return empty_frame(columns)
    df = pd.DataFrame.from_records(rows, columns=list(columns))
    return df.astype(columns)


def read_records(block: Block, kind: str, on_bad_record: str = "error") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse and validate the lines of one block.

    ``kind`` is ``"claims"`` (with evidence), ``"claims_unlabeled"`` or ``"corpus"``. Returns the
    valid rows and, in ``skip`` mode, the rejected ones (file, pos, problem). In ``error`` mode the
    first bad line raises :class:`BadRecordError` naming file and line. Blank lines are ignored.
    """
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for pos, raw in iter_block_lines(block):
        if not raw.strip():
            continue
        try:
            rec = parse_line(raw)
            if kind == "corpus":
                d = validate_doc(rec)
                rows.append(
                    {
                        "doc_id": d["doc_id"],
                        "title": d["title"],
                        "sentences": json.dumps(d["abstract"]),
                        "file": block.path,
                        "pos": pos,
                    }
                )
            else:
                c = validate_claim(rec, require_evidence=(kind == "claims"))
                rows.append(
                    {
                        "claim_id": c["claim_id"],
                        "claim": c["claim"],
                        "evidence": json.dumps({str(k): v for k, v in c["evidence"].items()}),
                        "cited": json.dumps(c["cited_doc_ids"]),
                        "file": block.path,
                        "pos": pos,
                    }
                )
        except ValueError as exc:
            if on_bad_record != "skip":
                raise BadRecordError(describe(block.path, pos, str(exc))) from None
            bad.append({"file": block.path, "pos": pos, "problem": str(exc)})
    columns = DOC_COLUMNS if kind == "corpus" else CLAIM_COLUMNS
    return frame(rows, columns), frame(bad, ERROR_COLUMNS)
