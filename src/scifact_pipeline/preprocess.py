"""Preprocessing stage: Dask reads claims and corpus JSON lines and writes example partitions.

Two passes, so that no process ever holds more than one input block or one bucket::

    pass 1 (per input block)                       pass 2 (per bucket b)
    claims blocks ─ pairs ──┐                      ┌─ read bucket b of every block
                            ├─ exchange/*.parquet ─┤  join pairs ⋈ abstracts on doc_id
    corpus blocks ─ docs ───┘  (row group per      └─ build ─ rationale|label / train|dev
                                bucket)                       parquet, partition_on=part

Every example gets the partition of its abstract, ``part = stable_hash("part", seed, doc_id) %
partitions``, and lands under ``<kind>/<split>/part=<n>/`` (hive layout: a partition with no
example has no folder). Bucket ``b`` holds the partitions with ``part % buckets == b``, so each
partition is written by exactly one task, as one file. Training later reads one partition
folder at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import dask
import dask.dataframe as dd
import fsspec
import luigi
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import scifact
from .download import DEFAULT_DATA_SOURCE, DownloadData, data_inputs
from .examples import label_examples, pair_rng, stable_hash
from .records import (
    CLAIM_COLUMNS,
    ERROR_COLUMNS,
    ON_BAD_RECORD,
    BadRecordError,
    Block,
    describe,
    empty_frame,
    expand_inputs,
    frame,
    plan_blocks,
    read_corpus_block,
    read_records,
)
from .util import DataError, atomic_dir, signature, write_json

KINDS = ("rationale", "label")
SPLITS = ("train", "dev")
SCHEDULERS = ("threads", "processes", "synchronous")

# A claims line becomes Python objects (the evidence map has doc ids as keys, which Arrow cannot
# type) worth about six times its bytes; an abstract goes into Arrow at about its size. Claims are
# read in blocks this many times smaller, so that both kinds of block take similar memory.
CLAIM_BLOCK_DIVISOR = 8

# one row per (exchange file, bucket): where pass 2 finds the rows of a bucket
INDEX_COLUMNS = {"file": "object", "bucket": "int64", "row_group": "int64", "rows": "int64"}
# what the claim-id exchange keeps of each claim: enough to name a duplicate's line
ID_COLUMNS = ("split", "claim_id", "file", "pos")
ID_SCHEMA = pa.schema(
    [("split", pa.string()), ("claim_id", pa.int64()), ("file", pa.string()), ("pos", pa.int64()), ("part", pa.int64())]
)
# what each pass-2 task reports: example counts per (kind, split, label)
SUMMARY_COLUMNS = {"kind": "object", "split": "object", "label": "int64", "count": "int64"}

PAIR_COLUMNS = {
    "split": "object",
    "claim_id": "int64",
    "doc_id": "int64",
    "slot": "int64",  # position of the doc in the claim's evidence / cited list
    "claim": "object",
    "sets": "object",  # JSON: rationale sets of this pair ([] for an NEI claim's cited doc)
    "file": "object",
    "pos": "int64",
}
EXAMPLE_COLUMNS: dict[str, dict[str, str]] = {
    "rationale": {
        "split": "object",
        "claim_id": "int64",
        "doc_id": "int64",
        "sent_idx": "int64",
        "claim": "object",
        "evidence": "object",
        "label": "int64",
        "gold_sets": "object",  # JSON list of the pair's rationale sets (for dev metrics)
        "key": "int64",
        "part": "int64",
    },
    "label": {
        "split": "object",
        "claim_id": "int64",
        "doc_id": "int64",
        "kind": "object",
        "sentence_ids": "object",  # JSON list
        "claim": "object",
        "evidence": "object",
        "label": "int64",
        "key": "int64",
        "part": "int64",
    },
}
# the columns of a partition file (the split is in the path, the partition in the folder name)
FILE_SCHEMA: dict[str, pa.Schema] = {
    kind: pa.schema(
        [(c, pa.int64() if t == "int64" else pa.string()) for c, t in cols.items() if c not in ("split", "part")]
    )
    for kind, cols in EXAMPLE_COLUMNS.items()
}


# --------------------------------------------------------------------------- pure functions


_MALLOC_ARENAS_SET = False
M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas in this process at ``arenas`` (default: the usable cores), once.

    glibc gives threads that allocate at the same time arenas of their own (up to 8 per core),
    and each arena keeps the high-water mark of what was freed in it. Preprocessing runs Dask's
    and Arrow's threads over hundreds of blocks, so the freed-but-kept memory grew with the
    input: at 10 GB, capping the arenas at 2 lowered pass 2's peak RSS from 0.93–1.0 to 0.67 GB.
    Only arenas created after the call are affected. Returns False where there is no glibc.
    """
    global _MALLOC_ARENAS_SET
    if _MALLOC_ARENAS_SET:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not arenas:
        arenas = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _MALLOC_ARENAS_SET = bool(mallopt(M_ARENA_MAX, max(1, int(arenas))))
    return _MALLOC_ARENAS_SET


def configure_allocators() -> None:
    """Set this process's allocators for preprocessing: cap malloc's arenas, Arrow's system pool.

    Arrow's default pool (mimalloc or jemalloc) keeps freed pages for reuse, so a process that
    parses block after block keeps the high-water mark of the largest ones. The system allocator
    returns large buffers at once: on 1 GB of input, the peak RSS of preprocessing fell from 0.81
    to 0.64 GB. For the arenas see :func:`limit_malloc_arenas`. Every Dask task calls this (the
    first call in a process does the work), so workers of any scheduler do the same.
    """
    limit_malloc_arenas()
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def read_blocks(block_split: tuple[Block, str], kind: str, on_bad_record: str) -> pd.DataFrame:
    """Parse one (block, split); valid rows have ``problem`` null, skipped rows carry the problem."""
    configure_allocators()
    block, split = block_split
    rows, bad = read_records(block, kind, on_bad_record)
    rows = rows.assign(split=split, problem=None)
    bad = bad.assign(split=split)
    return pd.concat([rows, bad], ignore_index=True) if len(bad) else rows


def claims_to_pairs(claims: pd.DataFrame) -> pd.DataFrame:
    """Explode claims into the (claim, abstract) pairs the recipe uses.

    Claims with evidence → their evidence abstracts; NEI claims → their cited abstracts.
    """
    rows: list[dict[str, Any]] = []
    for r in claims.itertuples(index=False):
        evidence = json.loads(r.evidence)
        if evidence:
            docs = [(int(d), sets) for d, sets in evidence.items()]
        else:
            # every entry of cited_doc_ids, as the recipe does (a doc cited twice counts twice)
            docs = [(int(d), []) for d in json.loads(r.cited)]
        for slot, (doc_id, sets) in enumerate(docs):
            rows.append(
                {
                    "split": r.split,
                    "claim_id": r.claim_id,
                    "doc_id": doc_id,
                    "slot": slot,
                    "claim": r.claim,
                    "sets": json.dumps(sets),
                    "file": r.file,
                    "pos": r.pos,
                }
            )
    return frame(rows, PAIR_COLUMNS)


def pair_problem(sentences: Any, sets: list[dict[str, Any]], doc_id: int) -> str | None:
    """Why a merged pair cannot give examples (missing doc, bad sentence index), else None."""
    if sentences is None or isinstance(sentences, float):  # null after the left join
        return f"doc_id {doc_id} is not in the corpus"
    n = len(sentences)
    for s in sets:
        for i in s["sentences"]:
            if not 0 <= i < n:
                return f"evidence for doc {doc_id}: sentence index {i} out of range (the abstract has {n} sentences)"
    return None


def example_keys(pair_keys: np.ndarray, index: np.ndarray) -> np.ndarray:
    """A 63-bit key per example: splitmix64 of its pair's key and its index within the pair."""
    with np.errstate(over="ignore"):
        z = pair_keys.astype(np.uint64) + (index.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(1)).astype(np.int64)


def _pair_keys(pairs: pd.DataFrame, kind: str, seed: int) -> np.ndarray:
    return np.array(
        [stable_hash(kind, seed, c, d, sl) for c, d, sl in zip(pairs.claim_id, pairs.doc_id, pairs.slot)], dtype=np.uint64
    )


def rationale_frame(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The rationale-selection examples of valid evidence pairs, built column-wise.

    The same examples as :func:`~scifact_pipeline.examples.rationale_examples` (one per sentence,
    label 1 when the sentence is in a rationale set), without a Python dict per example.
    """
    pairs = pairs[pairs.sets != "[]"]
    if not len(pairs):
        return empty_frame(EXAMPLE_COLUMNS["rationale"])
    lengths = np.fromiter((len(x) for x in pairs.sentences), dtype=np.int64, count=len(pairs))
    parent = np.repeat(np.arange(len(pairs)), lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sent_idx = np.arange(int(lengths.sum()), dtype=np.int64) - offsets[parent]
    label = np.zeros(len(parent), dtype=np.int64)
    gold_json = []
    for row, text in enumerate(pairs.sets):
        sets = json.loads(text)
        gold_json.append(json.dumps([list(x["sentences"]) for x in sets]))
        gold = sorted({i for x in sets for i in x["sentences"]})
        label[offsets[row] + np.array(gold, dtype=np.int64)] = 1
    return pd.DataFrame(
        {
            "split": pairs.split.to_numpy()[parent],
            "claim_id": pairs.claim_id.to_numpy()[parent],
            "doc_id": pairs.doc_id.to_numpy()[parent],
            "sent_idx": sent_idx,
            "claim": pairs.claim.to_numpy()[parent],
            "evidence": [x.strip() for sentences in pairs.sentences for x in sentences],
            "label": label,
            "gold_sets": np.array(gold_json, dtype=object)[parent],
            "key": example_keys(_pair_keys(pairs, "rationale", seed)[parent], sent_idx),
            "part": pairs.part.to_numpy()[parent],
        }
    ).astype(EXAMPLE_COLUMNS["rationale"])


def label_frame(pairs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The label-prediction examples of valid pairs (the recipe's random choices are per pair)."""
    rows: list[dict[str, Any]] = []
    owner: list[int] = []  # the row of ``pairs`` each example comes from
    index: list[int] = []  # its index within its pair
    for n, r in enumerate(pairs.itertuples(index=False)):
        exs = label_examples(
            r.claim_id, r.claim, r.doc_id, list(r.sentences), json.loads(r.sets), pair_rng(seed, r.claim_id, r.doc_id, r.slot)
        )
        for i, ex in enumerate(exs):
            ex.update(sentence_ids=json.dumps(ex["sentence_ids"]), split=r.split, part=r.part)
            rows.append(ex)
            owner.append(n)
            index.append(i)
    keys = example_keys(_pair_keys(pairs, "label", seed)[np.array(owner, dtype=np.int64)], np.array(index, dtype=np.int64))
    for ex, key in zip(rows, keys.tolist()):
        ex["key"] = key
    return frame(rows, EXAMPLE_COLUMNS["label"])


def split_valid_pairs(merged: pd.DataFrame, on_bad_record: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The merged pairs that can give examples, and the others as (file, pos, problem) rows.

    A pair whose abstract is missing or whose evidence names a sentence the abstract lacks
    stops the run (``error``) naming the claim's line, or gives no examples (``skip``). Each
    pair is checked once, for both kinds of example.
    """
    problems = [
        pair_problem(sents, json.loads(sets), d)
        for sents, sets, d in zip(merged.sentences, merged.sets.tolist(), merged.doc_id.tolist())
    ]
    bad = np.array([p is not None for p in problems], dtype=bool)
    if bad.any() and on_bad_record != "skip":
        first = int(np.flatnonzero(bad)[0])
        raise BadRecordError(describe(merged.file.iloc[first], int(merged.pos.iloc[first]), problems[first]))
    rejected = merged[bad] if len(merged) else merged
    rows = [
        {"file": f, "pos": pos, "problem": problems[i]}
        for i, f, pos in zip(np.flatnonzero(bad).tolist(), rejected.file.tolist(), rejected.pos.tolist())
    ]
    return (merged[~bad] if len(merged) else merged), frame(rows, ERROR_COLUMNS)


def build_examples(pairs: pd.DataFrame, kind: str, seed: int) -> pd.DataFrame:
    """Build the ``kind`` examples of valid merged pairs; each keeps its pair's partition."""
    return rationale_frame(pairs, seed) if kind == "rationale" else label_frame(pairs, seed)


def doc_partition(doc_ids: Iterable[int], seed: int, partitions: int) -> list[int]:
    """The partition of every example of an abstract: ``stable_hash("part", seed, doc_id) % partitions``.

    All examples of one abstract share a partition, so the claims that cite it and the abstract
    itself meet in the same exchange bucket, and every partition is written by exactly one task.
    """
    return [stable_hash("part", seed, int(d)) % partitions for d in doc_ids]


def with_partition(df: pd.DataFrame, seed: int, partitions: int) -> pd.DataFrame:
    """``df`` (with a ``doc_id`` column) plus its ``part`` column."""
    return df.assign(part=pd.Series(doc_partition(df["doc_id"], seed, partitions), index=df.index, dtype="int64"))


def write_buckets(table: pa.Table, path: str, buckets: int) -> pd.DataFrame:
    """Write ``table`` (with a ``part`` column) to one parquet file, one row group per bucket.

    The bucket of a row is ``part % buckets``. Returns the index of the file: one row
    ``(file, bucket, row_group, rows)`` per non-empty bucket. A retried task rewrites the same
    file (written under a temporary name, then renamed), so retries are harmless.
    """
    bucket = np.asarray(table.column("part")) % buckets if table.num_rows else np.zeros(0, np.int64)
    order = bucket.argsort(kind="stable")
    table = table.take(pa.array(order))
    sorted_buckets = bucket[order]
    rows = []
    tmp = f"{path}.tmp"
    with pq.ParquetWriter(tmp, table.schema) as writer:
        start = 0
        for b in np.unique(sorted_buckets).tolist():
            stop = int(sorted_buckets.searchsorted(b, side="right"))
            writer.write_table(table.slice(start, stop - start), row_group_size=stop - start)
            rows.append({"file": path, "bucket": b, "row_group": len(rows), "rows": stop - start})
            start = stop
    os.replace(tmp, path)
    return frame(rows, INDEX_COLUMNS)


def exchange_claims(
    claims: pd.DataFrame, folder: str, buckets: int, seed: int, partitions: int, partition_info: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Dask task of pass 1: one block of valid claims to the exchange, in two files.

    ``pairs-<n>.parquet`` holds the block's pairs by the bucket of their abstract;
    ``ids-<n>.parquet`` holds each claim's ``(split, claim_id, file, pos)`` by the bucket of its
    id (``claim_id % buckets``), so every copy of a claim id meets in one pass-2 task, which
    finds duplicates without any task holding all ids. Returns both files' index rows
    (``table`` is ``pairs`` or ``ids``).
    """
    configure_allocators()
    number = partition_info["number"] if partition_info else 0
    pairs = with_partition(claims_to_pairs(claims), seed, partitions)
    pair_index = write_buckets(
        pa.Table.from_pandas(pairs, preserve_index=False), os.path.join(folder, f"pairs-{number:06d}.parquet"), buckets
    )
    ids = claims[list(ID_COLUMNS)].assign(part=claims.claim_id.astype("int64"))
    id_index = write_buckets(
        pa.Table.from_pandas(ids, schema=ID_SCHEMA, preserve_index=False),
        os.path.join(folder, f"ids-{number:06d}.parquet"),
        buckets,
    )
    return pd.concat([pair_index.assign(table="pairs"), id_index.assign(table="ids")], ignore_index=True)


def first_duplicate(rows: pd.DataFrame, keys: list[str], what: str) -> str | None:
    """``file:line: duplicate <what> <id>`` for the first repeat (in file and line order), or None.

    ``rows`` has the ``keys`` columns (the last one is the id named), ``file`` and ``pos``.
    """
    repeated = rows.duplicated(keys, keep=False)
    if not repeated.any():
        return None
    dups = rows[repeated].sort_values(["file", "pos"], kind="stable")
    second = dups[dups.duplicated(keys)].iloc[0]
    return describe(second["file"], int(second["pos"]), f"duplicate {what} {int(second[keys[-1]])}")


def check_claim_ids(groups: list[tuple[str, int]]) -> None:
    """Raise :class:`BadRecordError` at the second line of a claim id repeated within a split.

    ``groups`` are one bucket's row groups of the ``ids-*`` exchange files: all copies of an id.
    """
    table = read_bucket(groups)
    if table is not None:
        problem = first_duplicate(table.select(list(ID_COLUMNS)).to_pandas(), ["split", "claim_id"], "claim id")
        if problem:
            raise BadRecordError(problem)


def exchange_corpus(
    task: tuple[int, Block], folder: str, buckets: int, seed: int, partitions: int, on_bad_record: str
) -> pd.DataFrame:
    """Dask task of pass 1: parse one corpus block and write its abstracts by bucket.

    Returns the file's index rows and, in ``skip`` mode, the skipped lines (``problem`` set).
    """
    configure_allocators()
    number, block = task
    table, bad = read_corpus_block(block, on_bad_record)
    part = np.array(doc_partition(table.column("doc_id").to_pylist(), seed, partitions), dtype=np.int64)
    table = table.append_column("part", pa.array(part, pa.int64()))
    index = write_buckets(table, os.path.join(folder, f"docs-{number:06d}.parquet"), buckets)
    return pd.concat([index, bad], ignore_index=True)


def read_bucket(groups: list[tuple[str, int]]) -> pa.Table | None:
    """Read the row groups ``(file, row_group)`` of one bucket into one table (``None``: no rows)."""
    if not groups:
        return None
    return pa.concat_tables([pq.ParquetFile(f).read_row_group(rg) for f, rg in groups])


BucketTask = tuple[int, list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]


def join_bucket(task: BucketTask) -> pd.DataFrame:
    """Join the pairs of one bucket with the abstracts of the same bucket.

    Every abstract of the corpus passes through exactly one bucket, so a duplicate ``doc_id`` is
    found here (named at its second occurrence). Only the abstracts some pair cites are turned
    into Python objects. Pairs whose abstract is missing keep a null ``sentences`` and are
    reported (or skipped) when the examples are built.
    """
    _, pair_groups, doc_groups, _ = task
    pairs_table = read_bucket(pair_groups)
    pairs = pairs_table.to_pandas() if pairs_table is not None else empty_frame({**PAIR_COLUMNS, "part": "int64"})
    docs = read_bucket(doc_groups)
    if docs is None:
        return pairs.assign(sentences=None)
    ids = np.asarray(docs.column("doc_id"))
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dups = docs.filter(pc.is_in(docs.column("doc_id"), pa.array(uniq[counts > 1]))).select(["doc_id", "file", "pos"])
        raise BadRecordError(str(first_duplicate(dups.to_pandas(), ["doc_id"], "doc_id")))
    cited = docs.filter(pc.is_in(docs.column("doc_id"), pa.array(pairs.doc_id.unique(), pa.int64())))
    cited_df = cited.select(["doc_id", "sentences"]).to_pandas()
    merged = pairs.merge(cited_df, on="doc_id", how="left", sort=False)
    return merged.sort_values(["split", "claim_id", "slot"], kind="stable").reset_index(drop=True)


def write_partitions(examples: pd.DataFrame, folder: str, kind: str, bucket: int) -> None:
    """Write ``examples`` (one kind and split) as ``folder/part=<n>/bucket-<b>.parquet``, one file a partition.

    The task of bucket ``b`` owns its partitions, so each file is written by exactly one task.
    """
    if not len(examples):
        return
    examples = examples.sort_values(["part", "key"], kind="stable")
    parts = examples["part"].to_numpy()
    table = pa.Table.from_pandas(examples.drop(columns=["part"]), schema=FILE_SCHEMA[kind], preserve_index=False)
    bounds = parts.searchsorted(np.unique(parts), side="left").tolist() + [len(parts)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        target = os.path.join(folder, f"part={int(parts[start])}")
        os.makedirs(target, exist_ok=True)
        pq.write_table(table.slice(start, stop - start), os.path.join(target, f"bucket-{bucket:06d}.parquet"))


def process_bucket(
    task: BucketTask,
    out_dir: str,
    splits: list[str],
    seed: int,
    on_bad_record: str,
) -> pd.DataFrame:
    """Dask task of pass 2: join one bucket, build both kinds of examples, write their partitions.

    The task ``(bucket, pair groups, doc groups, claim-id groups)`` first checks the claim ids
    of its bucket (:func:`check_claim_ids`). Returns what the manifest needs: one row per (kind,
    split, label) with its count, and one row per pair that gave no examples (``problem`` set,
    in ``skip`` mode).
    """
    configure_allocators()
    check_claim_ids(task[3])
    pairs, problems = split_valid_pairs(join_bucket(task), on_bad_record)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        examples = build_examples(pairs, kind, seed)
        for split in splits:
            sub = examples[examples.split == split].drop(columns=["split"])
            write_partitions(sub, os.path.join(out_dir, kind, split), kind, task[0])
            for label, n in sub.label.value_counts().items():
                rows.append({"kind": kind, "split": split, "label": int(label), "count": int(n)})
    summary = frame(rows, SUMMARY_COLUMNS)
    skipped = problems.assign(kind="skipped", split="", label=-1, count=1)
    return pd.concat([summary, skipped], ignore_index=True)


def _groups(index: pd.DataFrame, buckets: int) -> list[list[tuple[str, int]]]:
    out: list[list[tuple[str, int]]] = [[] for _ in range(buckets)]
    for r in index.sort_values(["file", "row_group"]).itertuples(index=False):
        out[int(r.bucket)].append((r.file, int(r.row_group)))
    return out


def input_bytes(files: list[str]) -> int:
    """Total size on disk of the input files (compressed files count as stored)."""
    return sum(fsspec.filesystem("file").size(f) if "://" not in f else 0 for f in files)


def default_buckets(total_bytes: int, blocksize: int, partitions: int) -> int:
    """Enough exchange buckets for each to hold about one input block, at most one per partition."""
    return max(1, min(partitions, -(-total_bytes // blocksize)))


@contextmanager
def dask_scheduler(scheduler: str, workers: int | None) -> Iterator[dict[str, Any]]:
    """The ``dask.compute`` keywords for ``scheduler``; an address connects a distributed Client.

    ``threads``/``processes``/``synchronous`` run on this machine (``processes`` with one pool of
    spawned workers kept for both passes); ``tcp://host:port`` (or any ``scheme://``) is a
    ``dask.distributed`` scheduler, whose workers must see the input files and the output folder
    at the same paths.
    """
    if "://" in scheduler:
        from distributed import Client

        with Client(scheduler, set_as_default=False) as client:
            yield {"scheduler": client}
        return
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS} or a scheduler address, got {scheduler!r}")
    config: dict[str, Any] = {"scheduler": scheduler}
    if workers and scheduler in ("threads", "processes"):
        config["num_workers"] = workers
    if scheduler != "processes":
        yield config
        return
    with ProcessPoolExecutor(workers or os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
        yield {**config, "pool": pool}


def _run_passes(
    out_dir: Path,
    exchange_dir: Path,
    claim_index: dd.DataFrame,
    doc_index: dd.DataFrame,
    bad_claims: dd.DataFrame,
    claims_per_split: dd.Series,
    claim_files: dict[str, list[str]],
    corpus_files: list[str],
    buckets: int,
    splits: list[str],
    seed: int,
    on_bad_record: str,
    config: dict[str, Any],
    timing: dict[str, float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute both passes of :func:`preprocess`; return pass 2's summary and the skipped records.

    The wall time of each pass goes to ``timing``.
    """
    # pass 1: parse, exchange by bucket
    t0 = time.time()
    claim_ix, doc_out, bad_claims_df, per_split = dask.compute(
        claim_index, doc_index, bad_claims, claims_per_split, **config
    )
    doc_ix = doc_out[doc_out.bucket.notna()].astype({"bucket": "int64", "row_group": "int64", "rows": "int64"})
    bad_records_df = pd.concat([bad_claims_df, doc_out[doc_out.problem.notna()][list(ERROR_COLUMNS)]])
    if not int(doc_ix["rows"].sum()):
        raise DataError(f"{', '.join(corpus_files)}: no valid abstract in the corpus")
    for split in splits:
        if not int(per_split.get(split, 0)):
            raise DataError(f"{', '.join(claim_files[split])}: no valid claim in the {split} split")
    # pass 2: check claim ids, join per bucket, build the examples, write each partition once
    pair_ix, id_ix = (claim_ix[claim_ix.table == t] for t in ("pairs", "ids"))
    tasks = list(zip(range(buckets), _groups(pair_ix, buckets), _groups(doc_ix, buckets), _groups(id_ix, buckets)))
    summaries = dd.from_map(
        process_bucket, tasks, out_dir=str(out_dir), splits=splits, seed=seed,
        on_bad_record=on_bad_record, meta=empty_frame({**SUMMARY_COLUMNS, **ERROR_COLUMNS}), enforce_metadata=False,
    )
    t1 = time.time()
    (summary,) = dask.compute(summaries, **config)
    timing.update(pass1_seconds=round(t1 - t0, 2), pass2_seconds=round(time.time() - t1, 2))
    return summary, bad_records_df


def preprocess(
    claims: dict[str, str | list[str]],
    corpus: str | list[str],
    out_dir: Path,
    partitions: int,
    seed: int,
    on_bad_record: str = "error",
    max_claims: int = 0,
    blocksize: int = 64 << 20,
    scheduler: str = "threads",
    num_workers: int | None = None,
    buckets: int = 0,
) -> dict[str, Any]:
    """Build rationale and label examples for each split in ``claims`` and write partitions.

    ``claims`` maps a split name (``train``, ``dev``) to its input files (path, list or glob);
    ``corpus`` is the corpus input. Writes ``out_dir/<kind>/<split>/part=<n>/*.parquet`` and
    returns a manifest (counts per kind, split and label; skipped records; timing).

    Two Dask passes, each holding one input block or one bucket per task in memory:

    1. parse the claims and corpus blocks; every (claim, abstract) pair and every abstract gets
       the partition of its abstract; each block is written to the exchange folder sorted by
       bucket (``part % buckets``), one parquet row group per bucket; each claim's id goes to
       the bucket ``claim_id % buckets`` of a second file;
    2. per bucket, check its claim ids for duplicates, read its row groups of every block, join
       pairs with abstracts, build the examples and write one file per partition — each
       partition lies in exactly one bucket, so it is written once.
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record must be one of {ON_BAD_RECORD}, got {on_bad_record!r}")
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    configure_allocators()  # before Dask's and Arrow's threads allocate
    t0 = time.time()
    claim_files = {split: expand_inputs(spec) for split, spec in claims.items()}
    corpus_files = expand_inputs(corpus)
    claim_blocksize = max(1, blocksize // CLAIM_BLOCK_DIVISOR)
    claim_blocks = [(b, split) for split, files in claim_files.items() for b in plan_blocks(files, claim_blocksize)]
    doc_blocks = [(b, "corpus") for b in plan_blocks(corpus_files, blocksize)]
    all_files = corpus_files + [f for files in claim_files.values() for f in files]
    total_bytes = input_bytes(all_files)
    buckets = buckets or default_buckets(total_bytes, blocksize, partitions)

    claim_meta = empty_frame({**CLAIM_COLUMNS, "split": "object", "problem": "object"})
    raw_claims = dd.from_map(read_blocks, claim_blocks, kind="claims", on_bad_record=on_bad_record, meta=claim_meta, enforce_metadata=False)
    claims_df = raw_claims[raw_claims.problem.isna()]
    if max_claims:
        claims_df = dd.concat(
            [claims_df[claims_df.split == s].head(max_claims, npartitions=-1, compute=False) for s in claims]
        )
    exchange_dir = out_dir / ".exchange"
    exchange_dir.mkdir(parents=True, exist_ok=True)
    claim_index = claims_df.map_partitions(
        exchange_claims, str(exchange_dir), buckets, seed, partitions, meta=empty_frame({**INDEX_COLUMNS, "table": "object"})
    )
    doc_index = dd.from_map(
        exchange_corpus, list(enumerate(b for b, _ in doc_blocks)), folder=str(exchange_dir), buckets=buckets,
        seed=seed, partitions=partitions, on_bad_record=on_bad_record,
        meta=empty_frame({**INDEX_COLUMNS, **ERROR_COLUMNS}), enforce_metadata=False,
    )
    bad_claims = raw_claims[~raw_claims.problem.isna()][list(ERROR_COLUMNS)]
    claims_per_split = claims_df.split.value_counts()

    timing: dict[str, float] = {}
    try:
        with dask_scheduler(scheduler, num_workers) as config:
            summary, bad_records_df = _run_passes(
                out_dir, exchange_dir, claim_index, doc_index, bad_claims, claims_per_split,
                claim_files, corpus_files, buckets, list(claims), seed, on_bad_record, config, timing,
            )
    finally:
        shutil.rmtree(exchange_dir, ignore_errors=True)
    bad_pairs_df = summary[summary.kind == "skipped"][list(ERROR_COLUMNS)]
    skipped = pd.concat([bad_records_df, bad_pairs_df], ignore_index=True).sort_values(["file", "pos"], kind="stable")
    manifest: dict[str, Any] = {
        "partitions": partitions,
        "seed": seed,
        "max_claims": max_claims,
        "inputs": {"claims": claim_files, "corpus": corpus_files},
        "examples": {},
        "skipped": {
            "count": int(len(skipped)),
            "first": [describe(r.file, int(r.pos), r.problem) for r in skipped.head(20).itertuples()],
        },
        "dask": {"scheduler": scheduler, "blocks": len(claim_blocks) + len(doc_blocks), "buckets": buckets, **timing},
        "seconds": round(time.time() - t0, 2),
    }
    counted = summary[summary.kind != "skipped"].groupby(["kind", "split", "label"])["count"].sum()
    for kind in KINDS:
        for split in claims:
            by_label = {int(lab): int(n) for (k, sp, lab), n in counted.items() if k == kind and sp == split}
            manifest["examples"].setdefault(kind, {})[split] = {"total": sum(by_label.values()), "by_label": by_label}
    return manifest


def partition_dirs(examples_dir: Path, kind: str, split: str, partitions: int) -> list[Path]:
    """The folder of each of the ``partitions`` partitions (a missing folder is an empty partition)."""
    return [examples_dir / kind / split / f"part={i}" for i in range(partitions)]


def read_partition_table(path: Path) -> pa.Table | None:
    """Load one partition (every parquet file of its folder) as an Arrow table sorted by ``key``.

    ``None`` for an empty partition (no folder, or no file in it). Called once per partition per
    epoch, so it avoids needless work: a folder is listed with one ``scandir``, the rows (written
    sorted by ``key``) are only sorted again when they are not, and nothing is converted to
    pandas here (see :func:`~scifact_pipeline.batching.pool_partitions`).
    """
    try:
        files = sorted(e.path for e in os.scandir(path) if e.name.endswith(".parquet"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not files:
        return None
    tables = [pq.ParquetFile(f).read(use_threads=False) for f in files]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    keys = table.column("key").to_numpy()
    if len(keys) > 1 and bool((keys[1:] < keys[:-1]).any()):
        table = table.sort_by("key")  # Arrow's sort is stable
    return table if table.num_rows else None


def read_partition(path: Path) -> pd.DataFrame:
    """One partition as a pandas frame sorted by ``key`` (an empty frame for an empty partition)."""
    table = read_partition_table(path)
    return pd.DataFrame() if table is None else table.to_pandas()


# --------------------------------------------------------------------------- luigi task


class Preprocess(luigi.Task):
    """Build the rationale-selection and label-prediction examples of train and dev with Dask."""

    data_source = luigi.Parameter(
        default=DEFAULT_DATA_SOURCE, description="s3:// URL or local path of the data"
    )
    partitions = luigi.IntParameter(default=10000, description="Number of partitions of each example set.")
    max_claims = luigi.IntParameter(default=0, description="Use only the first N claims of each split (0: all).")
    on_bad_record = luigi.ChoiceParameter(
        default="error", choices=ON_BAD_RECORD, description="error: stop at the first bad line; skip: count and skip."
    )
    blocksize = luigi.IntParameter(default=64 << 20, description="Bytes per Dask input block.", significant=False)
    buckets = luigi.IntParameter(
        default=0, significant=False, description="Exchange buckets of the join (0: one per input block, at most one per partition)."
    )
    dask_scheduler = luigi.Parameter(
        default="threads",
        significant=False,
        description="Dask scheduler: threads (Arrow parsing and parquet I/O release the GIL), processes, "
        "synchronous, or a dask.distributed scheduler address (tcp://host:8786).",
    )
    dask_workers = luigi.IntParameter(
        default=0, significant=False, description="Local Dask workers (0: [scifact] threads); ignored for an address."
    )

    def requires(self) -> luigi.Task:
        return DownloadData(source=self.data_source)

    def params_signature(self) -> dict[str, Any]:
        return {
            "data": self.input().path,
            "partitions": self.partitions,
            "max_claims": self.max_claims,
            "on_bad_record": self.on_bad_record,
            "seed": scifact().seed,
            "recipe": 2,  # 2: partition of the abstract, column-wise rationale examples
        }

    def output(self) -> luigi.LocalTarget:
        sig = signature(self.params_signature())
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "examples" / sig))

    def run(self) -> None:
        claims, corpus = data_inputs(self.input().path)
        self.set_status_message("Reading JSON and building examples with Dask")
        with atomic_dir(self.output().path) as tmp:
            manifest = preprocess(
                claims=claims,
                corpus=corpus,
                out_dir=tmp,
                partitions=self.partitions,
                seed=scifact().seed,
                on_bad_record=self.on_bad_record,
                max_claims=self.max_claims,
                blocksize=self.blocksize,
                scheduler=self.dask_scheduler,
                num_workers=self.dask_workers or scifact().threads,
                buckets=self.buckets,
            )
            manifest["params"] = self.params_signature()
            write_json(tmp / "manifest.json", manifest)
        self.set_status_message(f"Wrote examples: {json.dumps(manifest['examples'])}")
