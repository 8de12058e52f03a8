"""Tests for scifact_pipeline.preprocess on hand-made fixtures (and once on the real data)."""

from __future__ import annotations

import copy
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from helpers import (
    CORPUS,
    DEV_CLAIMS,
    EXPECTED,
    TRAIN_CLAIMS,
    C,
    N,
    S,
    total,
    write_jsonl,
    write_scifact,
)

from scifact_pipeline import preprocess as preprocess_module
from scifact_pipeline.examples import label_examples, pair_rng, rationale_examples
from scifact_pipeline.preprocess import (
    CLAIM_BLOCK_DIVISOR,
    default_buckets,
    doc_partition,
    partition_dirs,
    preprocess,
    read_bucket,
    read_partition,
    write_buckets,
)
from scifact_pipeline.records import BadRecordError, plan_blocks

PARTITIONS = 7
SEED = 13
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


def run(
    tmp_path: Path,
    name: str = "out",
    corpus: list[dict[str, Any]] | None = None,
    train: list[dict[str, Any]] | None = None,
    dev: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], Path, dict[str, Path]]:
    files = write_scifact(tmp_path / f"{name}-in", corpus=corpus, train=train, dev=dev)
    out = tmp_path / name
    kwargs.setdefault("partitions", PARTITIONS)
    kwargs.setdefault("seed", SEED)
    manifest = preprocess(
        claims={"train": str(files["train"]), "dev": str(files["dev"])},
        corpus=str(files["corpus"]),
        out_dir=out,
        **kwargs,
    )
    return manifest, out, files


def counts(manifest: dict[str, Any]) -> dict[str, dict[str, dict[int, int]]]:
    return {
        kind: {split: dict(v["by_label"]) for split, v in splits.items()} for kind, splits in manifest["examples"].items()
    }


def load_all(out: Path, kind: str, split: str, partitions: int = PARTITIONS) -> pd.DataFrame:
    frames = [read_partition(p) for p in partition_dirs(out, kind, split, partitions)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def as_set(df: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, df.astype(str).itertuples(index=False)))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    manifest, out, _ = run(tmp_path_factory.mktemp("pre"))
    return manifest, out


# --------------------------------------------------------------------------- counts and layout


def test_manifest_counts_follow_the_recipe(base: tuple[dict[str, Any], Path]) -> None:
    manifest, _ = base
    assert counts(manifest) == EXPECTED
    assert manifest["examples"]["rationale"]["train"]["total"] == 18
    assert manifest["examples"]["rationale"]["dev"]["total"] == 11
    assert manifest["examples"]["label"]["train"]["total"] == 15
    assert manifest["examples"]["label"]["dev"]["total"] == 9
    assert manifest["skipped"] == {"count": 0, "first": []}
    assert manifest["partitions"] == PARTITIONS and manifest["seed"] == SEED
    json.dumps(manifest)  # serialisable as written by the Luigi task


@pytest.mark.parametrize("kind", ["rationale", "label"])
@pytest.mark.parametrize("split", ["train", "dev"])
def test_every_example_in_exactly_one_partition(base: tuple[dict[str, Any], Path], kind: str, split: str) -> None:
    _, out = base
    folders = sorted(p.name for p in (out / kind / split).iterdir())
    assert set(folders) <= {f"part={i}" for i in range(PARTITIONS)}
    seen: Counter[int] = Counter()
    for i, path in enumerate(partition_dirs(out, kind, split, PARTITIONS)):
        df = read_partition(path)
        if not path.exists():
            assert len(df) == 0
            continue
        assert len(df) > 0  # a folder exists only for a non-empty partition
        assert doc_partition(df.doc_id, SEED, PARTITIONS) == [i] * len(df)
        assert len(list(path.glob("*.parquet"))) == 1  # each partition is written once
        assert df.key.is_monotonic_increasing  # stable order
        seen.update(df.key.tolist())
    assert sum(seen.values()) == total(kind, split)
    assert all(v == 1 for v in seen.values())


def _expected_examples(kind: str, split: str, seed: int = SEED) -> pd.DataFrame:
    """The examples of the recipe functions called pair by pair (the partition-free reference)."""
    docs = {d["doc_id"]: d["abstract"] for d in CORPUS}
    rows = []
    for c in TRAIN_CLAIMS if split == "train" else DEV_CLAIMS:
        pairs = [(int(d), s) for d, s in c["evidence"].items()] or [(d, []) for d in c["cited_doc_ids"]]
        for slot, (doc_id, sets) in enumerate(pairs):
            if kind == "rationale":
                if sets:
                    for ex in rationale_examples(c["id"], c["claim"], doc_id, docs[doc_id], sets):
                        rows.append((ex["claim_id"], ex["doc_id"], ex["sent_idx"], ex["evidence"], ex["label"], json.dumps(ex["gold_sets"])))
            else:
                rng = pair_rng(seed, c["id"], doc_id, slot)
                for ex in label_examples(c["id"], c["claim"], doc_id, docs[doc_id], sets, rng):
                    rows.append((ex["claim_id"], ex["doc_id"], ex["kind"], json.dumps(ex["sentence_ids"]), ex["evidence"], ex["label"]))
    return rows


@pytest.mark.parametrize("kind", ["rationale", "label"])
@pytest.mark.parametrize("split", ["train", "dev"])
def test_union_of_partitions_is_all_examples(base: tuple[dict[str, Any], Path], kind: str, split: str) -> None:
    _, out = base
    df = load_all(out, kind, split)
    if kind == "rationale":
        got = list(zip(df.claim_id, df.doc_id, df.sent_idx, df.evidence, df.label, df.gold_sets))
    else:
        got = list(zip(df.claim_id, df.doc_id, df.kind, df.sentence_ids, df.evidence, df.label))
    got = [tuple(int(x) if not isinstance(x, str) else x for x in row) for row in got]
    assert Counter(got) == Counter(_expected_examples(kind, split))


def test_examples_content(base: tuple[dict[str, Any], Path]) -> None:
    _, out = base
    lab = load_all(out, "label", "dev")
    # the NEI claim citing doc 30 twice gives two NOINFO examples (one per citation)
    nei = lab[lab.claim_id == 5]
    assert nei.kind.tolist() == ["noinfo", "noinfo"] and set(nei.label) == {N}
    assert nei.doc_id.tolist() == [30, 30]
    assert nei.key.nunique() == 2
    # claim 7: two sets on doc 10, their union in document order
    c7 = lab[(lab.claim_id == 7) & (lab.kind != "noinfo")].sort_values("kind")
    assert sorted(map(json.loads, c7.sentence_ids)) == [[1], [1, 3], [3]]
    assert set(c7.label) == {S}
    rat = load_all(out, "rationale", "train")
    c3 = rat[rat.claim_id == 3].sort_values(["doc_id", "sent_idx"])
    assert list(zip(c3.doc_id, c3.sent_idx, c3.label)) == [
        (20, 0, 0), (20, 1, 1), (20, 2, 0), (20, 3, 0), (30, 0, 0), (30, 1, 0), (30, 2, 1)
    ]
    assert set(rat.claim_id) == {1, 2, 3}  # the NEI claim adds no rationale example
    lab_train = load_all(out, "label", "train")
    assert Counter(lab_train[lab_train.claim_id == 3].label) == {C: 4, N: 2}


# --------------------------------------------------------------------------- determinism


def _partitions(out: Path, kind: str, split: str, partitions: int = PARTITIONS) -> list[pd.DataFrame]:
    return [read_partition(p) for p in partition_dirs(out, kind, split, partitions)]


def assert_same_partitions(out1: Path, out2: Path) -> None:
    """Every partition of every example set holds the same rows in the same order."""
    for kind in ("rationale", "label"):
        for split in ("train", "dev"):
            for a, b in zip(_partitions(out1, kind, split), _partitions(out2, kind, split)):
                pd.testing.assert_frame_equal(a, b)


def test_same_seed_gives_identical_partitions(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    _, out1 = base
    _, out2, _ = run(tmp_path, "again")
    assert_same_partitions(out1, out2)


def test_other_seed_changes_assignment_not_counts(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    manifest, out1 = base
    manifest2, out2, _ = run(tmp_path, "seed", seed=SEED + 1)
    assert counts(manifest2) == counts(manifest)
    assert set(load_all(out1, "label", "train").key) != set(load_all(out2, "label", "train").key)


def test_partition_count_does_not_change_the_examples(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    manifest, out1 = base
    manifest3, out3, _ = run(tmp_path, "three", partitions=3)
    manifest1, out_one, _ = run(tmp_path, "one", partitions=1)
    assert counts(manifest3) == counts(manifest) == counts(manifest1)
    for kind in ("rationale", "label"):
        for split in ("train", "dev"):
            ref = as_set(load_all(out1, kind, split))
            assert as_set(load_all(out3, kind, split, 3)) == ref
            assert as_set(load_all(out_one, kind, split, 1)) == ref
            assert len(ref) == total(kind, split)
    assert [p.name for p in (out_one / "label" / "train").iterdir()] == ["part=0"]


def test_small_blocks_give_the_same_examples(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    manifest, out1 = base
    manifest2, out2, files = run(tmp_path, "blocks", blocksize=97)
    assert counts(manifest2) == counts(manifest)
    # claims are read in blocks CLAIM_BLOCK_DIVISOR times smaller than the corpus blocks
    claim_blocks = len(plan_blocks([str(files["train"]), str(files["dev"])], 97 // CLAIM_BLOCK_DIVISOR))
    assert manifest2["dask"]["blocks"] == claim_blocks + len(plan_blocks([str(files["corpus"])], 97))
    assert claim_blocks > len(plan_blocks([str(files["train"]), str(files["dev"])], 97))
    assert pa.default_memory_pool().backend_name == "system"  # the tasks switched Arrow's allocator
    if sys.platform.startswith("linux"):
        assert preprocess_module._MALLOC_ARENAS_SET  # and capped glibc's malloc arenas
    for kind in ("rationale", "label"):
        for split in ("train", "dev"):
            assert as_set(load_all(out2, kind, split)) == as_set(load_all(out1, kind, split))


@pytest.mark.parametrize("buckets", [2, 5, 7])
def test_bucket_count_does_not_change_the_partitions(tmp_path: Path, base: tuple[dict[str, Any], Path], buckets: int) -> None:
    manifest, out1 = base
    manifest2, out2, _ = run(tmp_path, f"b{buckets}", buckets=buckets, blocksize=200)
    assert manifest2["dask"]["buckets"] == buckets and manifest2["dask"]["blocks"] > 3
    assert counts(manifest2) == counts(manifest)
    assert_same_partitions(out1, out2)
    assert not (out2 / ".exchange").exists()


def test_write_buckets_one_row_group_per_bucket(tmp_path: Path) -> None:
    table = pa.table({"doc_id": [5, 6, 7, 8, 9], "part": [3, 0, 4, 1, 3]})
    index = write_buckets(table, str(tmp_path / "x.parquet"), buckets=3)
    assert index[["bucket", "row_group", "rows"]].values.tolist() == [[0, 0, 3], [1, 1, 2]]  # bucket 2 is empty
    got = read_bucket([(str(tmp_path / "x.parquet"), 1)])
    assert got.column("doc_id").to_pylist() == [7, 8]
    assert read_bucket([]) is None
    empty = write_buckets(table.slice(0, 0), str(tmp_path / "e.parquet"), buckets=3)
    assert empty.empty and (tmp_path / "e.parquet").is_file() and not (tmp_path / "e.parquet.tmp").exists()


def test_default_buckets() -> None:
    assert default_buckets(0, 64, 10) == 1
    assert default_buckets(65, 64, 10) == 2
    assert default_buckets(10**12, 64 << 20, 10000) == 10000


def test_doc_partition_is_stable_and_spread() -> None:
    parts = doc_partition(range(2000), SEED, 10)
    assert parts == doc_partition(range(2000), SEED, 10)
    assert set(parts) == set(range(10)) and max(Counter(parts).values()) < 260
    assert parts != doc_partition(range(2000), SEED + 1, 10)


def test_duplicate_doc_id_in_another_block_and_bucket(tmp_path: Path) -> None:
    corpus = copy.deepcopy(CORPUS) + [dict(CORPUS[0], title="again")]
    with pytest.raises(BadRecordError) as err:
        run(tmp_path, corpus=corpus, blocksize=64, buckets=3)
    assert str(err.value) == f"{tmp_path / 'out-in' / 'corpus.jsonl'}:6: duplicate doc_id {CORPUS[0]['doc_id']}"


def test_distributed_local_cluster(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    """The cluster path: a LocalCluster on loopback, given to preprocess as a scheduler address."""
    distributed = pytest.importorskip("distributed")
    manifest, out1 = base
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        manifest2, out2, _ = run(tmp_path, "cluster", scheduler=cluster.scheduler_address, blocksize=200, buckets=3)
        with distributed.Client(cluster) as client:
            assert len(client.scheduler_info()["workers"]) == 2
    assert manifest2["dask"]["scheduler"] == cluster.scheduler_address
    assert counts(manifest2) == counts(manifest)
    assert_same_partitions(out1, out2)


def test_processes_scheduler_and_unknown_scheduler(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    manifest, out1 = base
    manifest2, out2, _ = run(tmp_path, "proc", scheduler="processes", num_workers=2, blocksize=200)
    assert manifest2["dask"]["scheduler"] == "processes"
    assert counts(manifest2) == counts(manifest)
    assert_same_partitions(out1, out2)
    with pytest.raises(ValueError, match="scheduler"):
        run(tmp_path, "bad", scheduler="gpu")


# --------------------------------------------------------------------------- inputs


def test_glob_of_shards_and_gzip_give_the_same_counts(tmp_path: Path, base: tuple[dict[str, Any], Path]) -> None:
    manifest, out1 = base
    inp = tmp_path / "in"
    write_jsonl(inp / "train-0.jsonl", TRAIN_CLAIMS[:2])
    write_jsonl(inp / "train-1.jsonl", TRAIN_CLAIMS[2:])
    write_jsonl(inp / "dev-0.jsonl.gz", DEV_CLAIMS[:1], gz=True)
    write_jsonl(inp / "dev-1.jsonl.gz", DEV_CLAIMS[1:], gz=True)
    write_jsonl(inp / "corpus.jsonl.gz", CORPUS, gz=True)
    m = preprocess(
        claims={"train": str(inp / "train-*.jsonl"), "dev": f"{inp / 'dev-0.jsonl.gz'},{inp / 'dev-1.jsonl.gz'}"},
        corpus=str(inp / "corpus.jsonl.gz"),
        out_dir=tmp_path / "out",
        partitions=PARTITIONS,
        seed=SEED,
        blocksize=64,
    )
    assert counts(m) == counts(manifest)
    assert m["inputs"]["claims"]["train"] == [str(inp / "train-0.jsonl"), str(inp / "train-1.jsonl")]
    for kind in ("rationale", "label"):
        for split in ("train", "dev"):
            assert as_set(load_all(tmp_path / "out", kind, split)) == as_set(load_all(out1, kind, split))


def test_max_claims_keeps_the_first_claims_of_each_split(tmp_path: Path) -> None:
    manifest, out, _ = run(tmp_path, max_claims=2, blocksize=64)
    # train: claims 1 (5 sentences, 2 gold; S, S, N) and 2 (6 sentences, 3 gold; S, S, S, N)
    # dev:   claims 5 (N, N) and 6 (6 sentences, 1 gold; C, C, N)
    assert counts(manifest) == {
        "rationale": {"train": {0: 6, 1: 5}, "dev": {0: 5, 1: 1}},
        "label": {"train": {S: 5, N: 2}, "dev": {C: 2, N: 3}},
    }
    assert manifest["max_claims"] == 2
    assert set(load_all(out, "label", "train").claim_id) == {1, 2}
    assert set(load_all(out, "label", "dev").claim_id) == {5, 6}


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_record"):
        run(tmp_path, "a", on_bad_record="ignore")
    with pytest.raises(ValueError, match="partitions"):
        run(tmp_path, "b", partitions=0)


def test_missing_input_file(tmp_path: Path) -> None:
    files = write_scifact(tmp_path / "in")
    with pytest.raises(FileNotFoundError, match="claims_nope.jsonl"):
        preprocess(
            claims={"train": str(files["train"]), "dev": str(tmp_path / "claims_nope.jsonl")},
            corpus=str(files["corpus"]),
            out_dir=tmp_path / "out",
            partitions=3,
            seed=SEED,
        )


# --------------------------------------------------------------------------- bad records


def _with_missing_doc(claim_index: int) -> list[dict[str, Any]]:
    train = copy.deepcopy(TRAIN_CLAIMS)
    c = train[claim_index]
    if c["evidence"]:
        sets = c["evidence"].pop("30")
        c["evidence"]["99"] = sets
        c["cited_doc_ids"] = [20, 99]
    else:
        c["cited_doc_ids"] = [10, 99]
    return train


@pytest.mark.parametrize("claim_index", [2, 3], ids=["evidence_doc", "nei_cited_doc"])
def test_missing_doc_names_claims_file_and_line(tmp_path: Path, claim_index: int) -> None:
    train = _with_missing_doc(claim_index)
    with pytest.raises(BadRecordError) as err:
        run(tmp_path, train=train)
    path = tmp_path / "out-in" / "claims_train.jsonl"
    assert str(err.value) == f"{path}:{claim_index + 1}: doc_id 99 is not in the corpus"


def test_missing_doc_skipped_and_counted(tmp_path: Path) -> None:
    manifest, out, files = run(tmp_path, train=_with_missing_doc(2), on_bad_record="skip")
    assert manifest["skipped"]["count"] == 1
    assert manifest["skipped"]["first"] == [f"{files['train']}:3: doc_id 99 is not in the corpus"]
    # only the bad (claim 3, doc 99) pair is dropped: doc 30's 3 sentences and C, C, N
    expected = copy.deepcopy(EXPECTED)
    expected["rationale"]["train"] = {0: 9, 1: 6}
    expected["label"]["train"] = {C: 2, N: 5, S: 5}
    assert counts(manifest) == expected
    assert 99 not in set(load_all(out, "label", "train").doc_id)


def test_out_of_range_sentence_index_names_claims_line(tmp_path: Path) -> None:
    dev = copy.deepcopy(DEV_CLAIMS)
    dev[2]["evidence"]["10"][1]["sentences"] = [7]  # doc 10 has 5 sentences
    with pytest.raises(BadRecordError, match=re.escape("claims_dev.jsonl:3: evidence for doc 10: sentence index 7 out of range")):
        run(tmp_path, dev=dev)
    manifest, _, _ = run(tmp_path, "skip", dev=dev, on_bad_record="skip")
    assert manifest["skipped"]["count"] == 1
    assert manifest["examples"]["rationale"]["dev"]["total"] == total("rationale", "dev") - 5


def test_malformed_lines_error_and_skip(tmp_path: Path) -> None:
    files = write_scifact(tmp_path / "in")
    lines = files["train"].read_text().splitlines(keepends=True)
    lines.insert(1, '{"id": 77, "claim": "broken"\n')
    files["train"].write_text("".join(lines))
    corpus_lines = files["corpus"].read_text().splitlines(keepends=True)
    corpus_lines.insert(4, json.dumps({"doc_id": 60, "abstract": []}) + "\n")
    files["corpus"].write_text("".join(corpus_lines))
    kw = dict(
        claims={"train": str(files["train"]), "dev": str(files["dev"])},
        corpus=str(files["corpus"]),
        partitions=PARTITIONS,
        seed=SEED,
    )
    with pytest.raises(BadRecordError, match=rf"^({re.escape(str(files['train']))}:2: not valid JSON|{re.escape(str(files['corpus']))}:5: field 'abstract' is empty)"):
        preprocess(out_dir=tmp_path / "err", **kw)
    manifest = preprocess(out_dir=tmp_path / "skip", on_bad_record="skip", **kw)
    assert counts(manifest) == EXPECTED
    assert manifest["skipped"]["count"] == 2
    first = manifest["skipped"]["first"]
    assert f"{files['corpus']}:5: field 'abstract' is empty" in first
    assert any(m.startswith(f"{files['train']}:2: not valid JSON (") for m in first)


def test_duplicate_claim_id(tmp_path: Path) -> None:
    train = copy.deepcopy(TRAIN_CLAIMS)
    train[3]["id"] = 2
    with pytest.raises(BadRecordError) as err:
        run(tmp_path, train=train)
    assert str(err.value) == f"{tmp_path / 'out-in' / 'claims_train.jsonl'}:4: duplicate claim id 2"


def test_duplicate_claim_id_in_another_block_is_found_in_its_bucket(tmp_path: Path) -> None:
    """Claim ids are exchanged by ``claim_id % buckets``: copies in different blocks still meet."""
    train = copy.deepcopy(TRAIN_CLAIMS)
    train[-1]["id"] = train[0]["id"]  # first and last line: with 64-byte blocks, different blocks
    with pytest.raises(BadRecordError) as err:
        run(tmp_path, train=train, blocksize=64, buckets=3)
    line = len(train)
    assert str(err.value) == f"{tmp_path / 'out-in' / 'claims_train.jsonl'}:{line}: duplicate claim id {train[0]['id']}"


def test_same_claim_id_in_two_splits_is_allowed_and_duplicate_is_named(tmp_path: Path) -> None:
    train = copy.deepcopy(TRAIN_CLAIMS)
    dev = copy.deepcopy(DEV_CLAIMS)
    dev[0]["id"] = 1  # claim 1 of train: another split, not a duplicate
    manifest, _, _ = run(tmp_path, "ok", train=train, dev=dev)
    assert counts(manifest) == EXPECTED
    dev[1]["id"] = 1  # now twice in dev
    inp = tmp_path / "in"
    # the train file sorts before the dev file: the dev line 2 is still the one named
    write_jsonl(inp / "a_train.jsonl", train)
    write_jsonl(inp / "b_dev.jsonl", dev)
    write_jsonl(inp / "corpus.jsonl", CORPUS)
    with pytest.raises(BadRecordError) as err:
        preprocess(
            claims={"train": str(inp / "a_train.jsonl"), "dev": str(inp / "b_dev.jsonl")},
            corpus=str(inp / "corpus.jsonl"),
            out_dir=tmp_path / "out",
            partitions=PARTITIONS,
            seed=SEED,
        )
    assert str(err.value) == f"{inp / 'b_dev.jsonl'}:2: duplicate claim id 1"


def test_duplicate_doc_id(tmp_path: Path) -> None:
    corpus = copy.deepcopy(CORPUS) + [dict(CORPUS[1], title="The same doc_id again")]
    with pytest.raises(BadRecordError) as err:
        run(tmp_path, corpus=corpus, blocksize=100)
    # the second occurrence is the bad line
    assert str(err.value) == f"{tmp_path / 'out-in' / 'corpus.jsonl'}:6: duplicate doc_id 20"


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (REAL_DATA / "corpus.jsonl").is_file(), reason="SciFact data not available")
def test_real_data_counts(tmp_path: Path) -> None:
    manifest = preprocess(
        claims={s: str(REAL_DATA / f"claims_{s}.jsonl") for s in ("train", "dev")},
        corpus=str(REAL_DATA / "corpus.jsonl"),
        out_dir=tmp_path / "out",
        partitions=20,
        seed=SEED,
    )
    ex = manifest["examples"]
    assert ex["label"]["train"]["total"] == 2415  # 957 + 564 + 564 + 330
    assert ex["label"]["dev"]["total"] == 870  # 338 + 209 + 209 + 114
    assert ex["rationale"]["train"]["total"] == 5494
    assert ex["rationale"]["dev"]["total"] == 2031
    assert ex["rationale"]["dev"]["by_label"][1] == 366  # dev rationale sentences (DESIGN.md §1)
    assert ex["label"]["dev"]["by_label"][N] == 209 + 114
    assert manifest["skipped"]["count"] == 0


@pytest.mark.skipif(not (REAL_DATA / "corpus.jsonl").is_file(), reason="SciFact data not available")
def test_preprocess_task_on_a_generated_sharded_gzip_data_set(tmp_path: Path, luigi_config: Any) -> None:
    """Generated data (sharded, gzip) through DownloadData and the Preprocess task on a LocalCluster."""
    import luigi

    distributed = pytest.importorskip("distributed")
    from scifact_pipeline.generate import generate
    from scifact_pipeline.preprocess import Preprocess

    data = tmp_path / "gen"
    gen = generate(REAL_DATA, data, 6_000_000, shard_bytes=1_500_000, gzip=True, workers=1)
    assert len(list((data / "corpus").glob("*.jsonl.gz"))) >= 3
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        task = Preprocess(data_source=str(data), partitions=64, dask_scheduler=cluster.scheduler_address, blocksize=1 << 20)
        assert luigi.build([task], local_scheduler=True)
    out = Path(task.output().path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dask"]["scheduler"] == cluster.scheduler_address
    assert len(manifest["inputs"]["corpus"]) == len(list((data / "corpus").glob("*.jsonl.gz")))
    copies = gen["copies"]["whole"] + gen["copies"]["partial_docs"] / gen["copies"]["source_docs"]
    assert manifest["examples"]["rationale"]["train"]["total"] > 5494 * (copies - 1)
    assert manifest["skipped"]["count"] == 0
    assert not list(out.rglob(".exchange"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_arenas_are_capped_once() -> None:
    assert preprocess_module.limit_malloc_arenas() is True
    assert preprocess_module.limit_malloc_arenas(1) is True  # already set: a no-op, still True
