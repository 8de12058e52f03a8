"""Preprocessing stage: Dask reads claims and corpus JSON lines and writes example partitions.

Graph (one pass over the corpus for both splits and both example kinds)::

    claims blocks ─┐                                  ┌─ rationale/train ─┐
                   ├─ pairs ─ merge(doc_id) ─ build ──┼─ rationale/dev   ─┼─ parquet, partition_on=part
    corpus blocks ─┘                                  ├─ label/train     ─┤
                                                      └─ label/dev       ─┘

Every example gets ``part = stable_hash(seed, claim, doc, index) % partitions``; Dask writes it
under ``<kind>/<split>/part=<n>/`` (hive layout: a partition with no example has no folder).
Training later reads one partition folder at a time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

import dask
import dask.dataframe as dd
import luigi
import pandas as pd
import pyarrow as pa

from .config import scifact
from .download import DEFAULT_DATA_SOURCE, DownloadData
from .examples import label_examples, pair_rng, rationale_examples, stable_hash
from .records import (
    CLAIM_COLUMNS,
    DOC_COLUMNS,
    ERROR_COLUMNS,
    ON_BAD_RECORD,
    BadRecordError,
    Block,
    describe,
    empty_frame,
    expand_inputs,
    frame,
    plan_blocks,
    read_records,
)
from .util import atomic_dir, signature, write_json

KINDS = ("rationale", "label")
SPLITS = ("train", "dev")

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
PARQUET_SCHEMA: dict[str, pa.Schema] = {
    kind: pa.schema(
        [
            (c, pa.int64() if t == "int64" else pa.string())
            for c, t in cols.items()
            if c != "split"
        ]
    )
    for kind, cols in EXAMPLE_COLUMNS.items()
}


# --------------------------------------------------------------------------- pure functions


def read_blocks(block_split: tuple[Block, str], kind: str, on_bad_record: str) -> pd.DataFrame:
    """Parse one (block, split); valid rows have ``problem`` null, skipped rows carry the problem."""
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
    if not isinstance(sentences, str):
        return f"doc_id {doc_id} is not in the corpus"
    n = len(json.loads(sentences))
    for s in sets:
        for i in s["sentences"]:
            if not 0 <= i < n:
                return f"evidence for doc {doc_id}: sentence index {i} out of range (the abstract has {n} sentences)"
    return None


def build_examples(merged: pd.DataFrame, kind: str, seed: int, partitions: int, on_bad_record: str) -> pd.DataFrame:
    """Build the ``kind`` examples of every pair in ``merged`` and assign each a partition."""
    rows: list[dict[str, Any]] = []
    for r in merged.itertuples(index=False):
        sets = json.loads(r.sets)
        problem = pair_problem(r.sentences, sets, r.doc_id)
        if problem is not None:
            if on_bad_record == "skip":
                continue
            raise BadRecordError(describe(r.file, r.pos, problem))
        sentences = json.loads(r.sentences)
        if kind == "rationale":
            if not sets:
                continue
            exs = rationale_examples(r.claim_id, r.claim, r.doc_id, sentences, sets)
            for ex in exs:
                ex["gold_sets"] = json.dumps(ex["gold_sets"])
        else:
            exs = label_examples(
                r.claim_id, r.claim, r.doc_id, sentences, sets, pair_rng(seed, r.claim_id, r.doc_id, r.slot)
            )
            for ex in exs:
                ex["sentence_ids"] = json.dumps(ex["sentence_ids"])
        for i, ex in enumerate(exs):
            key = stable_hash(kind, seed, r.claim_id, r.doc_id, r.slot, i)
            ex.update(split=r.split, key=key, part=key % partitions)
            rows.append(ex)
    return frame(rows, EXAMPLE_COLUMNS[kind])


def pair_problems(merged: pd.DataFrame) -> pd.DataFrame:
    """The merged pairs that cannot give examples, as (file, pos, problem) rows."""
    rows = []
    for r in merged.itertuples(index=False):
        problem = pair_problem(r.sentences, json.loads(r.sets), r.doc_id)
        if problem is not None:
            rows.append({"file": r.file, "pos": r.pos, "problem": problem})
    return frame(rows, ERROR_COLUMNS)


def _first_duplicate(df: dd.DataFrame, column: str, dups: Iterable[int], what: str) -> str:
    rows = df[df[column].isin(list(dups))][[column, "file", "pos"]].compute()
    second = rows.sort_values(["file", "pos"]).loc[lambda x: x[column].duplicated()].iloc[0]
    return describe(second["file"], int(second["pos"]), f"duplicate {what} {int(second[column])}")


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
) -> dict[str, Any]:
    """Build rationale and label examples for each split in ``claims`` and write partitions.

    ``claims`` maps a split name (``train``, ``dev``) to its input files (path, list or glob);
    ``corpus`` is the corpus input. Writes ``out_dir/<kind>/<split>/part=<n>/*.parquet`` and
    returns a manifest (counts per kind, split and label; skipped records; timing).
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record must be one of {ON_BAD_RECORD}, got {on_bad_record!r}")
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    t0 = time.time()
    claim_blocks = [(b, split) for split, spec in claims.items() for b in plan_blocks(expand_inputs(spec), blocksize)]
    corpus_files = expand_inputs(corpus)
    doc_blocks = [(b, "corpus") for b in plan_blocks(corpus_files, blocksize)]

    claim_meta = empty_frame({**CLAIM_COLUMNS, "split": "object", "problem": "object"})
    doc_meta = empty_frame({**DOC_COLUMNS, "split": "object", "problem": "object"})
    raw_claims = dd.from_map(read_blocks, claim_blocks, kind="claims", on_bad_record=on_bad_record, meta=claim_meta, enforce_metadata=False)
    raw_docs = dd.from_map(read_blocks, doc_blocks, kind="corpus", on_bad_record=on_bad_record, meta=doc_meta, enforce_metadata=False)
    claims_df = raw_claims[raw_claims.problem.isna()]
    docs_df = raw_docs[raw_docs.problem.isna()]
    if max_claims:
        claims_df = dd.concat(
            [claims_df[claims_df.split == s].head(max_claims, npartitions=-1, compute=False) for s in claims]
        )
    pairs = claims_df.map_partitions(claims_to_pairs, meta=empty_frame(PAIR_COLUMNS))
    merged = pairs.merge(docs_df[["doc_id", "sentences"]], on="doc_id", how="left")

    writes = []
    counts = {}
    for kind in KINDS:
        examples = merged.map_partitions(
            build_examples, kind, seed, partitions, on_bad_record, meta=empty_frame(EXAMPLE_COLUMNS[kind])
        )
        for split in claims:
            sub = examples[examples.split == split].drop(columns=["split"])
            writes.append(
                sub.to_parquet(
                    str(out_dir / kind / split),
                    partition_on=["part"],
                    write_index=False,
                    schema=PARQUET_SCHEMA[kind],
                    compute=False,
                    write_metadata_file=False,
                )
            )
            counts[(kind, split)] = sub.label.value_counts()
    bad_records = dd.concat([raw_claims[~raw_claims.problem.isna()], raw_docs[~raw_docs.problem.isna()]])[
        ["file", "pos", "problem"]
    ]
    bad_pairs = merged.map_partitions(pair_problems, meta=empty_frame(ERROR_COLUMNS))
    claim_ids = claims_df.groupby(["split", "claim_id"]).size()
    dup_claims = claim_ids[claim_ids > 1]
    doc_counts = docs_df.doc_id.value_counts()
    dup_docs = doc_counts[doc_counts > 1]

    config: dict[str, Any] = {"scheduler": scheduler}
    if num_workers and scheduler in ("threads", "processes"):
        config["num_workers"] = num_workers
    keys = list(counts)
    results = dask.compute(*writes, *counts.values(), bad_records, bad_pairs, dup_claims, dup_docs, **config)
    count_values = results[len(writes) : len(writes) + len(keys)]
    bad_records_df, bad_pairs_df, dup_claims_s, dup_docs_s = results[len(writes) + len(keys) :]
    if len(dup_docs_s):
        raise BadRecordError(_first_duplicate(docs_df, "doc_id", dup_docs_s.index, "doc_id"))
    if len(dup_claims_s):
        split, cid = dup_claims_s.index[0]  # ids are unique per split: look in that split only
        raise BadRecordError(_first_duplicate(claims_df[claims_df.split == split], "claim_id", [cid], "claim id"))

    skipped = pd.concat([bad_records_df, bad_pairs_df], ignore_index=True)
    manifest: dict[str, Any] = {
        "partitions": partitions,
        "seed": seed,
        "max_claims": max_claims,
        "inputs": {"claims": {s: expand_inputs(v) for s, v in claims.items()}, "corpus": corpus_files},
        "examples": {},
        "skipped": {
            "count": int(len(skipped)),
            "first": [describe(r.file, int(r.pos), r.problem) for r in skipped.head(20).itertuples()],
        },
        "seconds": round(time.time() - t0, 2),
    }
    for (kind, split), vc in zip(keys, count_values):
        by_label = {int(k): int(v) for k, v in vc.items()}
        manifest["examples"].setdefault(kind, {})[split] = {"total": sum(by_label.values()), "by_label": by_label}
    return manifest


def partition_dirs(examples_dir: Path, kind: str, split: str, partitions: int) -> list[Path]:
    """The folder of each of the ``partitions`` partitions (a missing folder is an empty partition)."""
    return [examples_dir / kind / split / f"part={i}" for i in range(partitions)]


def read_partition(path: Path) -> pd.DataFrame:
    """Load one partition (every parquet file of its folder), in a stable order."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else []
    if not files:
        return pd.DataFrame()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.sort_values("key", kind="stable").reset_index(drop=True)


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

    def requires(self) -> luigi.Task:
        return DownloadData(source=self.data_source)

    def params_signature(self) -> dict[str, Any]:
        return {
            "data": self.input().path,
            "partitions": self.partitions,
            "max_claims": self.max_claims,
            "on_bad_record": self.on_bad_record,
            "seed": scifact().seed,
            "recipe": 1,
        }

    def output(self) -> luigi.LocalTarget:
        sig = signature(self.params_signature())
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "examples" / sig))

    def run(self) -> None:
        data = Path(self.input().path)
        self.set_status_message("Reading JSON and building examples with Dask")
        with atomic_dir(self.output().path) as tmp:
            manifest = preprocess(
                claims={s: str(data / f"claims_{s}.jsonl") for s in SPLITS},
                corpus=str(data / "corpus.jsonl"),
                out_dir=tmp,
                partitions=self.partitions,
                seed=scifact().seed,
                on_bad_record=self.on_bad_record,
                max_claims=self.max_claims,
                blocksize=self.blocksize,
                num_workers=scifact().threads,
            )
            manifest["params"] = self.params_signature()
            write_json(tmp / "manifest.json", manifest)
        self.set_status_message(f"Wrote examples: {json.dumps(manifest['examples'])}")
