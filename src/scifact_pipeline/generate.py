"""``scifact-generate``: write SciFact-format claims and corpus of a requested size.

The output is made of copies ``k = 0, 1, 2, ...`` of the real corpus and claims (train and dev).
Copy ``k`` gives every record a new integer id ``k * STRIDE + original id``, where ``STRIDE`` is the
smallest power of ten above the largest real id (one stride for doc ids, one for claim ids), so
ids stay unique across copies and splits, read as "copy k, original id" and fit int64 for up to
about 9e9 copies. A copied claim's ``evidence`` keys and ``cited_doc_ids`` get the ids of the docs
of the same copy; sentence indices are unchanged and so stay valid.

Copies are not byte-identical: each copy emits its docs and its claims in an order shuffled with a
generator seeded by ``(seed, stream, copy)``. The text itself is never altered.

The size counts the uncompressed JSON-lines bytes of all files (corpus + claims). Whole copies are
written while they fit; the last copy is partial: a prefix of its shuffled docs, and only the
claims all of whose cited and evidence docs are in that prefix. The claims-per-doc ratio thus
stays that of the real data, and the reached size falls short of the target by less than one
abstract and its claims.

Records are pre-serialised once (``json.dumps`` defaults, as the release files) into literal
pieces with id slots; a copy is rendered by string joins only. The output is planned as shards
(each at most ``shard_bytes`` uncompressed) that a process pool writes independently, so memory
does not depend on the size asked and the bytes only depend on the source and the seed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import gzip
import json
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .records import parse_line, validate_claim, validate_doc
from .util import DataError, MissingInputError, atomic_dir

PROG = "scifact-generate"
DEFAULT_SOURCE = Path("/work/shared/data/scifact")
DEFAULT_SHARD_BYTES = 256 * 10**6
GZIP_LEVEL = 1
CHUNK_CHARS = 4 << 20  # characters rendered before each write
STREAMS = ("corpus", "claims_train", "claims_dev")  # the stream number seeds the shuffles
DOC, CLAIM = 0, 1  # kinds of id slots
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Parse a byte size: plain bytes or a number with a unit, e.g. ``100MB``, ``0.1GB``, ``2GiB``.

    KB/MB/GB/TB (or K/M/G/T) are powers of 1000, KiB/MiB/GiB/TiB powers of 1024. Raises
    ValueError with a one-line reason for anything else or a size below one byte.
    """
    m = _SIZE_RE.match(str(text))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(
            f"invalid size {str(text)!r}: expected a number with an optional unit "
            "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB, e.g. 100MB or 0.1GB"
        )
    size = int(float(m.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"invalid size {str(text)!r}: must be at least 1 byte")
    return size


# --------------------------------------------------------------------------- source templates


@dataclass
class Stream:
    """The pre-serialised records of one output stream (the corpus or one claims split).

    Record ``i`` renders as ``pieces[i][0] + id(slots[i][0]) + pieces[i][1] + ...``; a slot is
    ``(kind, original id)``. The numpy arrays give each record's rendered length for any copy.
    """

    pieces: list[tuple[str, ...]]
    slots: list[tuple[tuple[int, int], ...]]
    base: np.ndarray  # characters of the literal pieces (ASCII, so bytes too)
    doc_slots: np.ndarray  # number of doc-id slots
    claim_slots: np.ndarray  # number of claim-id slots
    zero_digits: np.ndarray  # characters of all ids in copy 0 (the original ids)
    ref_claim: np.ndarray  # claims only: (claim index, corpus index) of every doc a claim refers to
    ref_doc: np.ndarray

    def lengths(self, copy: int, doc_power: int, claim_power: int) -> np.ndarray:
        """Rendered length of every record in copy ``copy`` (ids ``copy * 10**power + id``)."""
        if copy == 0:
            return self.base + self.zero_digits
        digits = len(str(copy))
        return self.base + self.doc_slots * (digits + doc_power) + self.claim_slots * (digits + claim_power)


@dataclass
class Source:
    """The real data as templates, with the id strides (``10**power``) of the copies."""

    streams: dict[str, Stream]
    doc_power: int
    claim_power: int

    def lengths(self, name: str, copy: int) -> np.ndarray:
        """Rendered length of every record of stream ``name`` in copy ``copy``."""
        return self.streams[name].lengths(copy, self.doc_power, self.claim_power)


Template = tuple[tuple[str, ...], tuple[tuple[int, int], ...]]  # (literal pieces, id slots)


def _template(rec: dict[str, Any], id_key: str, id_kind: int) -> Template:
    """Serialise ``rec`` like ``json.dumps`` does, leaving slots for its ids."""
    pieces = ["{"]
    slots: list[tuple[int, int]] = []

    def slot(kind: int, orig: int) -> None:
        slots.append((kind, orig))
        pieces.append("")

    for n, (key, value) in enumerate(rec.items()):
        pieces[-1] += (", " if n else "") + json.dumps(key) + ": "
        if key == id_key:
            slot(id_kind, value)
        elif id_kind == CLAIM and key == "evidence":
            pieces[-1] += "{"
            for j, (doc, sets) in enumerate(value.items()):
                pieces[-1] += ', "' if j else '"'
                slot(DOC, int(doc))
                pieces[-1] += '": ' + json.dumps(sets)
            pieces[-1] += "}"
        elif id_kind == CLAIM and key == "cited_doc_ids":
            pieces[-1] += "["
            for j, doc in enumerate(value):
                if j:
                    pieces[-1] += ", "
                slot(DOC, doc)
            pieces[-1] += "]"
        else:
            pieces[-1] += json.dumps(value)
    pieces[-1] += "}\n"
    return tuple(pieces), tuple(slots)


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed record)``; blank lines are skipped, bad JSON raises DataError."""
    if not path.is_file():
        raise MissingInputError(f"{path}: source file not found")
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.strip():
                try:
                    yield lineno, parse_line(raw)
                except ValueError as exc:
                    raise DataError(f"{path}:{lineno}: {exc}") from None


def _stream(templates: list[Template], refs: list[list[int]]) -> Stream:
    """Build a :class:`Stream` from templates and, for claims, the corpus indices each refers to."""
    pieces = [t[0] for t in templates]
    slots = [t[1] for t in templates]
    ref_pairs = [(c, d) for c, docs in enumerate(refs) for d in docs]
    return Stream(
        pieces=pieces,
        slots=slots,
        base=np.array([sum(map(len, p)) for p in pieces], dtype=np.int64),
        doc_slots=np.array([sum(1 for k, _ in s if k == DOC) for s in slots], dtype=np.int64),
        claim_slots=np.array([sum(1 for k, _ in s if k == CLAIM) for s in slots], dtype=np.int64),
        zero_digits=np.array([sum(len(str(i)) for _, i in s) for s in slots], dtype=np.int64),
        ref_claim=np.array([c for c, _ in ref_pairs], dtype=np.int64),
        ref_doc=np.array([d for _, d in ref_pairs], dtype=np.int64),
    )


def load_source(source: Path) -> Source:
    """Read and validate ``corpus.jsonl``, ``claims_train.jsonl`` and ``claims_dev.jsonl``.

    Every record must pass :func:`validate_doc` / :func:`validate_claim` with evidence, ids must be
    non-negative and unique, and every cited or evidence doc must exist with valid sentence indices.
    """
    if not source.is_dir():
        raise MissingInputError(f"{source}: source directory not found")
    doc_templates = []
    doc_index: dict[int, int] = {}
    n_sentences: list[int] = []
    path = source / "corpus.jsonl"
    for lineno, rec in _read_jsonl(path):
        try:
            doc = validate_doc(rec)
            if doc["doc_id"] < 0 or doc["doc_id"] in doc_index:
                raise ValueError(f"doc_id {doc['doc_id']} is negative or repeated")
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: {exc}") from None
        doc_index[doc["doc_id"]] = len(doc_templates)
        n_sentences.append(len(doc["abstract"]))
        doc_templates.append(_template(rec, "doc_id", DOC))
    if not doc_templates:
        raise DataError(f"{path}: no documents")
    streams = {"corpus": _stream(doc_templates, [])}
    max_claim = 0
    claim_ids: set[int] = set()
    for name in STREAMS[1:]:
        path = source / f"{name}.jsonl"
        templates = []
        refs: list[list[int]] = []
        for lineno, rec in _read_jsonl(path):
            try:
                claim = validate_claim(rec, require_evidence=True)
                if claim["claim_id"] < 0 or claim["claim_id"] in claim_ids:
                    raise ValueError(f"claim id {claim['claim_id']} is negative or repeated")
                docs = set(claim["cited_doc_ids"]) | set(claim["evidence"])
                missing = sorted(d for d in docs if d not in doc_index)
                if missing:
                    raise ValueError(f"doc_id {missing[0]} is not in the corpus")
                for doc_id, sets in claim["evidence"].items():
                    top = max(i for s in sets for i in s["sentences"])
                    if top >= n_sentences[doc_index[doc_id]]:
                        raise ValueError(f"evidence for doc {doc_id}: sentence {top} is out of range")
            except ValueError as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from None
            claim_ids.add(claim["claim_id"])
            max_claim = max(max_claim, claim["claim_id"])
            refs.append(sorted(doc_index[d] for d in docs))
            templates.append(_template(rec, "id", CLAIM))
        streams[name] = _stream(templates, refs)
    return Source(streams, len(str(max(doc_index))), len(str(max_claim)))


# --------------------------------------------------------------------------- copy orders and plan


def _rng(seed: int, name: str, copy: int) -> np.random.Generator:
    """The generator of the shuffle of stream ``name`` in copy ``copy``."""
    return np.random.default_rng([seed, STREAMS.index(name), copy])


def copy_order(src: Source, name: str, copy: int, docs_kept: int, seed: int) -> np.ndarray:
    """Indices of the records of stream ``name`` that copy ``copy`` writes, in writing order.

    ``docs_kept`` is the number of the copy's (shuffled) docs written: all of them for a whole
    copy. A claim is kept only when every doc it refers to is among them.
    """
    stream = src.streams[name]
    n_docs = len(src.streams["corpus"].pieces)
    order = _rng(seed, name, copy).permutation(len(stream.pieces))
    if name == "corpus":
        return order[:docs_kept]
    if docs_kept >= n_docs:
        return order
    return order[_ready(src, name, copy, seed)[order] <= docs_kept]


def _ready(src: Source, name: str, copy: int, seed: int) -> np.ndarray:
    """For each claim of ``name``: how many of copy ``copy``'s shuffled docs it needs written."""
    stream = src.streams[name]
    doc_order = _rng(seed, "corpus", copy).permutation(len(src.streams["corpus"].pieces))
    position = np.empty_like(doc_order)
    position[doc_order] = np.arange(len(doc_order))
    ready = np.zeros(len(stream.pieces), dtype=np.int64)
    np.maximum.at(ready, stream.ref_claim, position[stream.ref_doc] + 1)
    return ready


def plan_copies(src: Source, size_bytes: int, seed: int) -> tuple[int, int, int]:
    """``(whole copies, docs of the partial copy, bytes)`` of the largest output within ``size_bytes``."""
    total = 0
    copies = 0
    while True:
        size = sum(int(src.lengths(name, copies).sum()) for name in STREAMS)
        if total + size > size_bytes:
            break
        total += size
        copies += 1
    doc_order = _rng(seed, "corpus", copies).permutation(len(src.streams["corpus"].pieces))
    n = len(doc_order)
    by_docs = np.zeros(n + 1, dtype=np.int64)
    by_docs[1:] = np.cumsum(src.lengths("corpus", copies)[doc_order])
    for name in STREAMS[1:]:
        added = np.bincount(_ready(src, name, copies, seed), weights=src.lengths(name, copies), minlength=n + 1)
        by_docs += np.cumsum(added).astype(np.int64)
    docs_kept = int(np.searchsorted(by_docs, size_bytes - total, side="right")) - 1
    return copies, docs_kept, total + int(by_docs[docs_kept])


@dataclass(frozen=True)
class Shard:
    """One output file: ``segments`` are ``(copy, docs kept, start, stop)`` slices of copy orders."""

    name: str
    index: int
    segments: tuple[tuple[int, int, int, int], ...]
    nbytes: int
    records: int

    def path(self, gz: bool) -> str:
        """Path relative to the output directory."""
        return f"{self.name}/{self.name}-{self.index:05d}.jsonl" + (".gz" if gz else "")


def plan_shards(src: Source, name: str, copies: int, docs_kept: int, shard_bytes: int, seed: int) -> Iterator[Shard]:
    """Cut stream ``name`` (whole copies, then the partial one) into shards of ≤ ``shard_bytes``."""
    n_docs = len(src.streams["corpus"].pieces)
    index = 0
    segments: list[tuple[int, int, int, int]] = []
    nbytes = records = 0
    layout = [(k, n_docs) for k in range(copies)] + ([(copies, docs_kept)] if docs_kept else [])
    for copy, kept in layout:
        lengths = src.lengths(name, copy)[copy_order(src, name, copy, kept, seed)]
        if len(lengths) and lengths.max() > shard_bytes:
            raise ValueError(f"shard size {shard_bytes} is below the largest {name} record ({lengths.max()} bytes)")
        cum = np.concatenate(([0], np.cumsum(lengths)))
        pos = 0
        while pos < len(lengths):
            stop = int(np.searchsorted(cum, cum[pos] + shard_bytes - nbytes, side="right")) - 1
            if stop > pos:
                segments.append((copy, kept, pos, stop))
                nbytes += int(cum[stop] - cum[pos])
                records += stop - pos
                pos = stop
            if pos < len(lengths):  # the shard is full
                yield Shard(name, index, tuple(segments), nbytes, records)
                index += 1
                segments, nbytes, records = [], 0, 0
    if segments or index == 0:  # every stream gets at least one (maybe empty) file
        yield Shard(name, index, tuple(segments), nbytes, records)


# --------------------------------------------------------------------------- writing

_WORKER_SOURCE: Source | None = None


def _init_worker(src: Source) -> None:
    """Pool initialiser: keep the source templates (pickled once per worker)."""
    global _WORKER_SOURCE
    _WORKER_SOURCE = src


def _render(src: Source, name: str, copy: int, indices: np.ndarray) -> Iterator[str]:
    """The JSON lines of records ``indices`` of stream ``name`` in copy ``copy``."""
    stream = src.streams[name]
    offset = (copy * 10**src.doc_power, copy * 10**src.claim_power)
    for i in indices.tolist():
        pieces = stream.pieces[i]
        parts = [pieces[0]]
        for (kind, orig), piece in zip(stream.slots[i], pieces[1:]):
            parts.append(str(offset[kind] + orig))
            parts.append(piece)
        yield "".join(parts)


def write_shard(src: Source, shard: Shard, out: Path, gz: bool, seed: int) -> dict[str, Any]:
    """Write one shard to a temp name, rename it into place and describe it for the manifest."""
    final = out / shard.path(gz)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    written = 0
    with open(tmp, "wb") as raw:
        fh = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0) if gz else raw
        for copy, kept, start, stop in shard.segments:
            indices = copy_order(src, shard.name, copy, kept, seed)[start:stop]
            buf: list[str] = []
            chars = 0
            for line in _render(src, shard.name, copy, indices):
                buf.append(line)
                chars += len(line)
                if chars >= CHUNK_CHARS:
                    written += fh.write("".join(buf).encode("ascii"))
                    buf, chars = [], 0
            written += fh.write("".join(buf).encode("ascii"))
        if gz:
            fh.close()
    if written != shard.nbytes:
        raise RuntimeError(f"{final}: wrote {written} bytes, planned {shard.nbytes}")
    os.replace(tmp, final)
    return {"path": shard.path(gz), "records": shard.records, "bytes": written, "stored_bytes": final.stat().st_size}


def _pool_write(shard: Shard, out: Path, gz: bool, seed: int) -> dict[str, Any]:
    """Pool task: :func:`write_shard` with the worker's source."""
    assert _WORKER_SOURCE is not None, "worker not initialised"
    return write_shard(_WORKER_SOURCE, shard, out, gz, seed)


def _check_out(out: Path, force: bool) -> None:
    """Refuse an output path that is a file, or a non-empty directory unless ``force``."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out}: output directory exists and is not empty (use --force to replace it)")


def generate(
    source: Path,
    out: Path,
    size_bytes: int,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    gzip: bool = False,
    seed: int = 0,
    workers: int = 2,
    force: bool = False,
) -> dict[str, Any]:
    """Write a data set of ``size_bytes`` uncompressed bytes under ``out``; return its manifest.

    The output is built in ``.<out>.tmp-*`` beside ``out`` (:func:`~scifact_pipeline.util.atomic_dir`:
    a killed run's temp folder is removed by the next) and renamed to ``out`` at the end. An
    existing non-empty ``out`` is refused (FileExistsError) unless ``force``, which replaces it.
    """
    t0 = time.time()
    if size_bytes < 1 or shard_bytes < 1:
        raise ValueError("size and shard size must be at least 1 byte")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    source, out = Path(source), Path(out)
    _check_out(out, force)
    src = load_source(source)
    copies, docs_kept, reached = plan_copies(src, size_bytes, seed)
    if reached == 0:
        raise ValueError(f"size {size_bytes} bytes is too small for a single abstract of the source")
    shards = [s for name in STREAMS for s in plan_shards(src, name, copies, docs_kept, shard_bytes, seed)]
    with atomic_dir(out) as tmp:  # a killed run's temp folder is removed by the next run
        n_workers = min(workers, len(shards))
        if n_workers == 1:
            files = [write_shard(src, s, tmp, gzip, seed) for s in shards]
        else:
            with concurrent.futures.ProcessPoolExecutor(
                n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(src,)
            ) as pool:
                files = list(pool.map(functools.partial(_pool_write, out=tmp, gz=gzip, seed=seed), shards))
        counts = {name: sum(s.records for s in shards if s.name == name) for name in STREAMS}
        reached = sum(f["bytes"] for f in files)
        manifest = {
            "source": str(source),
            "seed": seed,
            "size_asked": size_bytes,
            "size_reached": reached,
            "size_reached_fraction": round(reached / size_bytes, 6),
            "stored_bytes": sum(f["stored_bytes"] for f in files),
            "shard_bytes": shard_bytes,
            "gzip": gzip,
            "gzip_level": GZIP_LEVEL if gzip else None,
            "copies": {"whole": copies, "partial_docs": docs_kept, "source_docs": len(src.streams["corpus"].pieces)},
            "ids": {
                "scheme": "copy * stride + original id",
                "doc_stride": 10**src.doc_power,
                "claim_stride": 10**src.claim_power,
            },
            "counts": counts,
            "files": files,
            "workers": n_workers,
            "seconds": round(time.time() - t0, 3),
        }
        (tmp / "generate.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


# --------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a one-line summary, or one error line and exits 2."""
    ap = _Parser(prog=PROG, description="Write SciFact corpus and claims of a given size from copies of the real data.")
    ap.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist or be empty)")
    ap.add_argument("--size", required=True, help="target uncompressed bytes of all files: 100MB, 0.1GB, 10GB, 1234")
    ap.add_argument(
        "--source",
        default=str(DEFAULT_SOURCE),
        metavar="DIR",
        help=f"folder with corpus.jsonl, claims_train.jsonl, claims_dev.jsonl (default: {DEFAULT_SOURCE})",
    )
    ap.add_argument("--shard-size", default="256MB", metavar="SIZE", help="max uncompressed bytes per file (default: 256MB)")
    ap.add_argument("--gzip", action="store_true", help=f"gzip the files (level {GZIP_LEVEL})")
    ap.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the per-copy shuffles (default: 0)")
    ap.add_argument("--workers", type=int, default=2, metavar="N", help="processes writing shards (default: 2)")
    ap.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    args = ap.parse_args(argv)
    try:
        manifest = generate(
            Path(args.source),
            Path(args.out),
            parse_size(args.size),
            parse_size(args.shard_size),
            gzip=args.gzip,
            seed=args.seed,
            workers=args.workers,
            force=args.force,
        )
    except (OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    c = manifest["counts"]
    print(
        f"{args.out}: {manifest['size_reached']} bytes ({manifest['size_reached_fraction']:.4f} of asked), "
        f"{c['corpus']} docs, {c['claims_train']} train + {c['claims_dev']} dev claims, "
        f"{len(manifest['files'])} files, {manifest['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
