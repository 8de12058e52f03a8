"""Reading SciFact JSON-lines files: block splitting, validation and one-line errors.

Every parsed row keeps the file and the byte position of its line, so that a problem found
later (for example a ``doc_id`` absent from the corpus) can still name the file and line.
Line numbers are only counted when an error is reported, never on the hot path.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
from fsspec.utils import infer_compression

from .util import DataError, InputError, MissingInputError

LABELS_EVIDENCE = ("SUPPORT", "CONTRADICT")
ON_BAD_RECORD = ("error", "skip")
# The longest line parsed (64 MiB, far above any real abstract); a longer one is a bad record,
# read in bounded chunks instead of being loaded whole.
MAX_LINE_BYTES = 64 << 20


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


def _read_line(fh: Any) -> tuple[bytes, int]:
    """Read one line of at most :data:`MAX_LINE_BYTES` (+1) bytes; return it and its full length.

    A longer line is returned cut to ``MAX_LINE_BYTES + 1`` bytes (so it still reads as too long)
    and the rest of it is consumed in 1 MiB chunks, so memory stays bounded whatever the input.
    """
    line = fh.readline(MAX_LINE_BYTES + 1)
    length = len(line)
    if length > MAX_LINE_BYTES and not line.endswith(b"\n"):
        while True:
            rest = fh.readline(1 << 20)
            length += len(rest)
            if not rest or rest.endswith(b"\n"):
                break
    return line, length


def iter_block_lines(block: Block) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte position, raw line)`` for each line starting inside ``block``.

    A line longer than :data:`MAX_LINE_BYTES` is yielded cut to ``MAX_LINE_BYTES + 1`` bytes
    (see :func:`_read_line`); positions always count its full length.
    """
    with fsspec.open(block.path, "rb", compression="infer") as fh:
        if block.length is None:
            pos, end = 0, None
        else:
            end = block.offset + block.length
            if block.offset > 0:
                fh.seek(block.offset - 1)
                _read_line(fh)  # finish the line that started before this block
            pos = fh.tell()
        while end is None or pos < end:
            line, length = _read_line(fh)
            if not line:
                break
            yield pos, line
            pos += length


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
    """An integer that fits the int64 columns the rows are stored in (a bool is no integer)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < (1 << 63)


def _show(v: Any) -> str:
    """What a rejected id is: its type, or the integer itself when it does not fit 64 bits."""
    return f"{v} (beyond 64 bits)" if isinstance(v, int) and not isinstance(v, bool) else type(v).__name__


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
        raise ValueError(f"field 'id' must be an integer, got {_show(cid)}")
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
        # digits only: int() would also take " 10", "1_0" or non-ASCII digits, so two spellings
        # of one doc could overwrite each other
        if not (key.isascii() and key.isdigit() and _is_int(int(key))):
            raise ValueError(f"evidence key {key!r} is not an integer doc_id")
        doc_id = int(key)
        if doc_id in clean:
            raise ValueError(f"evidence names doc {doc_id} twice ({key!r})")
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
        raise ValueError(f"field 'doc_id' must be an integer, got {_show(doc_id)}")
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
        # some of json's messages already end in "at" ("Unterminated string starting at")
        where = "column" if exc.msg.endswith(" at") else "at column"
        raise ValueError(f"not valid JSON ({exc.msg} {where} {exc.colno})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None


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


def _whole_file(block: Block) -> bool:
    """Whether ``block`` covers its whole file."""
    return block.length is None or (block.offset == 0 and block.length >= os.path.getsize(block.path))


def read_records(block: Block, kind: str, on_bad_record: str = "error") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse and validate the lines of one block.

    ``kind`` is ``"claims"`` (with evidence), ``"claims_unlabeled"`` or ``"corpus"``. Returns the
    valid rows and, in ``skip`` mode, the rejected ones (file, pos, problem). In ``error`` mode the
    first bad line raises :class:`BadRecordError` naming file and line. Blank lines are ignored; a
    line longer than :data:`MAX_LINE_BYTES` is a bad record. A file with no line at all (empty,
    blank lines only) raises :class:`~scifact_pipeline.util.DataError` naming it, in both modes:
    an input that holds nothing is never what was meant.
    """
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    seen = False
    for pos, raw in iter_block_lines(block):
        if not raw.strip():
            continue
        seen = True
        try:
            if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
                raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes (not parsed)")
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
    if not seen and _whole_file(block):
        raise DataError(f"{block.path}: file is empty (no JSON lines)")
    columns = DOC_COLUMNS if kind == "corpus" else CLAIM_COLUMNS
    return frame(rows, columns), frame(bad, ERROR_COLUMNS)


# --------------------------------------------------------------------------- fast corpus path

CORPUS_JSON_SCHEMA = pa.schema([("doc_id", pa.int64()), ("abstract", pa.list_(pa.string())), ("title", pa.string())])
# what the pipeline keeps of each abstract: its sentences, and where its line is
DOC_TABLE_SCHEMA = pa.schema(
    [("doc_id", pa.int64()), ("sentences", pa.list_(pa.string())), ("file", pa.string()), ("pos", pa.int64())]
)


def block_bytes(block: Block) -> tuple[int, bytes]:
    """The raw bytes of the lines starting inside ``block`` and the position of the first one."""
    with fsspec.open(block.path, "rb", compression="infer") as fh:
        if block.length is None:
            return 0, fh.read()
        start = block.offset
        if start > 0:
            fh.seek(start - 1)
            _read_line(fh)  # finish the line that started before this block
            start = fh.tell()
        end = block.offset + block.length
        data = fh.read(max(0, end - start))
        if data and not data.endswith(b"\n"):
            data += _read_line(fh)[0]  # complete the last line (cut when over the limit)
        return start, data


def line_starts(data: bytes, start: int) -> tuple[np.ndarray, int]:
    """Byte positions (offset by ``start``) of the non-empty lines of ``data``, and the longest length."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    keep = ends > starts
    longest = int((ends - starts).max()) if len(starts) else 0
    return starts[keep].astype(np.int64) + start, longest


def fast_corpus_table(block: Block) -> pa.Table | None:
    """Parse a corpus block with Arrow's JSON reader; ``None`` when any line needs a closer look.

    Accepts the block only when every non-empty line gave exactly one row with an integer
    ``doc_id`` and a non-empty list of sentence strings. Anything else (bad JSON, a wrong type,
    a missing field, two objects on a line, a whitespace-only line, a line over
    :data:`MAX_LINE_BYTES`, an empty file) returns ``None`` so that
    :func:`read_records` parses the block line by line and names the exact file and line.
    """
    start, data = block_bytes(block)
    positions, longest = line_starts(data, start)
    if longest > MAX_LINE_BYTES or (not len(positions) and _whole_file(block)):
        return None  # the line-by-line reader names the long line or the empty file
    if not len(positions):
        return DOC_TABLE_SCHEMA.empty_table()
    try:
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1)),
            parse_options=pajson.ParseOptions(explicit_schema=CORPUS_JSON_SCHEMA, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    abstract = table.column("abstract")
    if (
        table.num_rows != len(positions)
        or table.column("doc_id").null_count
        or abstract.null_count
        or pc.min(pc.list_value_length(abstract)).as_py() == 0
        or pc.list_flatten(abstract).null_count
    ):
        return None
    return pa.table(
        {
            "doc_id": table.column("doc_id"),
            "sentences": abstract,
            "file": pa.array([block.path] * table.num_rows, pa.string()),
            "pos": pa.array(positions, pa.int64()),
        },
        schema=DOC_TABLE_SCHEMA,
    )


def read_corpus_block(block: Block, on_bad_record: str = "error") -> tuple[pa.Table, pd.DataFrame]:
    """The abstracts of one corpus block as an Arrow table, plus the skipped lines (skip mode).

    Clean blocks take the Arrow fast path; a block with any bad line is re-read line by line
    (:func:`read_records`), which raises or skips with the file and line named.
    """
    table = fast_corpus_table(block)
    if table is not None:
        return table, frame([], ERROR_COLUMNS)
    rows, bad = read_records(block, "corpus", on_bad_record)
    table = pa.table(
        {
            "doc_id": pa.array(rows.doc_id.tolist(), pa.int64()),
            "sentences": pa.array([json.loads(s) for s in rows.sentences], pa.list_(pa.string())),
            "file": pa.array(rows.file.tolist(), pa.string()),
            "pos": pa.array(rows.pos.tolist(), pa.int64()),
        },
        schema=DOC_TABLE_SCHEMA,
    )
    return table, bad
