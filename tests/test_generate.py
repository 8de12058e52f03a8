"""Tests for scifact_pipeline.generate (the scale-data generator), on the real SciFact data.

The real data is read from ``../shared/data/scifact`` beside the repository; a reduced source
(a few claims and the docs they cite, plus some others) is built from it in a temp folder so that
a few MB hold several copies.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from scifact_pipeline.generate import STREAMS, generate, load_source, main, parse_size
from scifact_pipeline.records import validate_claim, validate_doc

REAL_DATA = Path(__file__).resolve().parents[2] / "shared/data/scifact"
SOURCE_FILES = ("corpus.jsonl", "claims_train.jsonl", "claims_dev.jsonl")
pytestmark = pytest.mark.skipif(
    not all((REAL_DATA / f).is_file() for f in SOURCE_FILES),
    reason=f"real SciFact data not found under {REAL_DATA}",
)
MB = 10**6


def read_lines(path: Path) -> list[str]:
    """The lines of a (possibly gzipped) JSON-lines file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="ascii") as fh:
        return fh.read().splitlines(keepends=True)


def check_dataset(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Check what :func:`generate` wrote under ``out`` against ``manifest``; return the records.

    Every record validates, ids are unique, every evidence or cited doc is in the written corpus
    with sentence indices in range, each file is at most the shard size, and the manifest's
    files, counts and sizes are those on disk.
    """
    gz = manifest["gzip"]
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted([f["path"] for f in manifest["files"]] + ["generate.json"])
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in STREAMS}
    total = 0
    for f in manifest["files"]:
        path = out / f["path"]
        assert path.name.endswith(".jsonl.gz" if gz else ".jsonl")
        lines = read_lines(path)
        nbytes = sum(len(line) for line in lines)
        assert nbytes == f["bytes"] <= manifest["shard_bytes"]
        assert f["stored_bytes"] == path.stat().st_size
        assert len(lines) == f["records"]
        total += nbytes
        records[path.parent.name] += [json.loads(line) for line in lines]
    assert total == manifest["size_reached"]
    assert {name: len(recs) for name, recs in records.items()} == manifest["counts"]

    sentences: dict[int, int] = {}
    for rec in records["corpus"]:
        doc = validate_doc(rec)
        assert doc["doc_id"] not in sentences, f"duplicate doc_id {doc['doc_id']}"
        sentences[doc["doc_id"]] = len(doc["abstract"])
    claim_ids: set[int] = set()
    for name in STREAMS[1:]:
        for rec in records[name]:
            claim = validate_claim(rec, require_evidence=True)
            assert claim["claim_id"] not in claim_ids, f"duplicate claim id {claim['claim_id']}"
            claim_ids.add(claim["claim_id"])
            assert all(d in sentences for d in claim["cited_doc_ids"])
            for doc_id, sets in claim["evidence"].items():
                assert doc_id in claim["cited_doc_ids"]
                assert all(0 <= i < sentences[doc_id] for s in sets for i in s["sentences"])
    return records


def source_lines(source: Path) -> dict[str, set[str]]:
    """The lines of each source file, by stream name."""
    return {name: set(read_lines(source / f"{name}.jsonl")) for name in STREAMS}


def dataset_bytes(out: Path) -> dict[str, bytes]:
    """Every data file under ``out`` (not the manifest), by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl*"))}


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reduced source: 40 train and 15 dev claims, the docs they cite, and 100 other docs."""
    folder = tmp_path_factory.mktemp("small-source")
    claims = {
        "claims_train": read_lines(REAL_DATA / "claims_train.jsonl")[:40],
        "claims_dev": read_lines(REAL_DATA / "claims_dev.jsonl")[:15],
    }
    cited = {d for lines in claims.values() for line in lines for d in json.loads(line)["cited_doc_ids"]}
    corpus = [line for line in read_lines(REAL_DATA / "corpus.jsonl") if json.loads(line)["doc_id"] in cited]
    corpus += [line for line in read_lines(REAL_DATA / "corpus.jsonl")[:200] if line not in corpus][:100]
    (folder / "corpus.jsonl").write_text("".join(corpus), encoding="ascii")
    for name, lines in claims.items():
        (folder / f"{name}.jsonl").write_text("".join(lines), encoding="ascii")
    return folder


def copy_bytes(source: Path, copy: int) -> int:
    """Uncompressed bytes of one whole copy of ``source``."""
    src = load_source(source)
    return sum(int(src.lengths(name, copy).sum()) for name in STREAMS)


# --------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100MB", 10**8),
        ("0.1GB", 10**8),
        ("10GB", 10**10),
        ("256MB", 256 * 10**6),
        ("12345", 12345),
        ("1.5 kb", 1500),
        ("2G", 2 * 10**9),
        ("2GiB", 2 * 2**30),
        ("512KiB", 512 * 1024),
        (".5MB", 500_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10XB", "-1MB", "0", "0.1B", "1e3", "10 GB GB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid size '.*': ") as info:
        parse_size(text)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- real source


@pytest.mark.parametrize(
    ("size", "shard", "gz"),
    [(2 * MB, 512 * 10**3, False), (3 * MB, MB, True)],
    ids=["plain-2MB", "gzip-3MB"],
)
def test_real_source(tmp_path: Path, size: int, shard: int, gz: bool) -> None:
    out = tmp_path / "data"
    manifest = generate(REAL_DATA, out, size, shard_bytes=shard, gzip=gz, seed=0, workers=1)
    assert manifest == json.loads((out / "generate.json").read_text(encoding="utf-8"))
    records = check_dataset(out, manifest)
    assert 0.99 * size <= manifest["size_reached"] <= size
    assert manifest["copies"]["whole"] == 0 and manifest["copies"]["partial_docs"] == manifest["counts"]["corpus"]
    assert len(manifest["files"]) >= size // shard  # the corpus was cut into shards
    # copy 0 keeps the original ids: its lines are lines of the source, in a shuffled order
    src = source_lines(REAL_DATA)
    for name, recs in records.items():
        lines = [json.dumps(r) + "\n" for r in recs]
        assert set(lines) <= src[name]
    original = [json.loads(line)["doc_id"] for line in read_lines(REAL_DATA / "corpus.jsonl")]
    written = [r["doc_id"] for r in records["corpus"]]
    assert written != [d for d in original if d in set(written)]
    # the partial copy keeps about the claims-per-doc ratio of the real data
    ratio = (manifest["counts"]["claims_train"] + manifest["counts"]["claims_dev"]) / manifest["counts"]["corpus"]
    assert 0.8 * (1109 / 5183) < ratio < 1.1 * (1109 / 5183)
    assert list(tmp_path.iterdir()) == [out]  # no temp folder left


# --------------------------------------------------------------------------- several copies


def test_copies_consistent(tmp_path: Path, small_source: Path) -> None:
    out = tmp_path / "data"
    size = 2 * MB
    manifest = generate(small_source, out, size, shard_bytes=200 * 10**3, gzip=False, seed=0, workers=1)
    records = check_dataset(out, manifest)
    whole = manifest["copies"]["whole"]
    assert whole >= 3 and manifest["copies"]["partial_docs"] > 0
    assert 0.99 * size <= manifest["size_reached"] <= size
    src = {name: [json.loads(line) for line in read_lines(small_source / f"{name}.jsonl")] for name in STREAMS}
    doc_stride, claim_stride = manifest["ids"]["doc_stride"], manifest["ids"]["claim_stride"]
    assert doc_stride == 10 ** len(str(max(d["doc_id"] for d in src["corpus"])))
    assert claim_stride == 10 ** len(str(max(c["id"] for name in STREAMS[1:] for c in src[name])))
    by_id = {d["doc_id"]: d for d in src["corpus"]}
    orders: dict[int, list[int]] = {}
    for rec in records["corpus"]:
        copy, orig = divmod(rec["doc_id"], doc_stride)
        assert {**rec, "doc_id": orig} == by_id[orig]  # text unchanged
        orders.setdefault(copy, []).append(orig)
    assert sorted(orders) == list(range(whole + 1))
    assert all(sorted(orders[k]) == sorted(by_id) for k in range(whole))
    assert len({tuple(v) for v in orders.values()}) == len(orders)  # each copy in its own order
    for name in STREAMS[1:]:
        claims = {c["id"]: c for c in src[name]}
        per_copy = Counter()
        for rec in records[name]:
            copy, orig = divmod(rec["id"], claim_stride)
            per_copy[copy] += 1
            expected = claims[orig]
            assert rec["claim"] == expected["claim"]
            assert rec["cited_doc_ids"] == [copy * doc_stride + d for d in expected["cited_doc_ids"]]
            assert rec["evidence"] == {str(copy * doc_stride + int(d)): s for d, s in expected["evidence"].items()}
            assert all(d in orders[copy] for d in expected["cited_doc_ids"])  # the copy's docs were written
        assert all(per_copy[k] == len(claims) for k in range(whole))
        assert per_copy[whole] < len(claims)


def test_same_seed_same_bytes(tmp_path: Path, small_source: Path) -> None:
    def run(name: str, seed: int, workers: int) -> dict[str, bytes]:
        generate(small_source, tmp_path / name, MB, shard_bytes=300 * 10**3, gzip=True, seed=seed, workers=workers)
        return dataset_bytes(tmp_path / name)

    first = run("a", 7, 1)
    assert len(first) > 3
    assert run("b", 7, 2) == first
    other = run("c", 8, 1)
    assert other.keys() == first.keys() and other != first


def test_errors(tmp_path: Path, small_source: Path) -> None:
    with pytest.raises(ValueError, match="too small"):
        generate(small_source, tmp_path / "a", 100, seed=0, workers=1)
    with pytest.raises(ValueError, match="shard size 1000 is below the largest corpus record"):
        generate(small_source, tmp_path / "b", MB, shard_bytes=1000, seed=0, workers=1)
    with pytest.raises(FileNotFoundError, match="source directory not found"):
        generate(tmp_path / "missing", tmp_path / "c", MB)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in SOURCE_FILES:
        (bad / name).write_bytes((small_source / name).read_bytes())
    with open(bad / "claims_dev.jsonl", "a", encoding="ascii") as fh:
        fh.write(json.dumps({"id": 9999, "claim": "x", "evidence": {}, "cited_doc_ids": [123]}) + "\n")
    with pytest.raises(ValueError, match=r"claims_dev.jsonl:16: doc_id 123 is not in the corpus"):
        generate(bad, tmp_path / "d", MB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scifact_pipeline.generate`` with ``args``."""
    return subprocess.run(
        [sys.executable, "-m", "scifact_pipeline.generate", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli(tmp_path: Path, small_source: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()  # an empty folder is fine
    done = cli("--out", str(out), "--size", "0.5MB", "--source", str(small_source), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{out}: ") and done.stdout.count("\n") == 1
    manifest = json.loads((out / "generate.json").read_text(encoding="utf-8"))
    assert manifest["size_asked"] == 500_000 and manifest["gzip"] is False
    before = dataset_bytes(out)

    refused = cli("--out", str(out), "--size", "0.5MB", "--source", str(small_source), "--gzip")
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "not empty" in refused.stderr
    assert dataset_bytes(out) == before


def test_main(tmp_path: Path, small_source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    bad_args = (["--size", "12XB"], ["--size", "1MB", "--shard-size", "big"], ["--size", "1MB", "--workers", "0"])
    for args in bad_args:
        assert main(["--out", str(out), "--source", str(small_source), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("scifact-generate: error: ")
    with pytest.raises(SystemExit) as info:
        main(["--size", "1MB"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == "scifact-generate: error: the following arguments are required: --out (see --help)\n"
    assert not out.exists()

    common = ["--out", str(out), "--size", "0.5MB", "--source", str(small_source), "--workers", "1"]
    assert main(common) == 0
    assert main([*common, "--gzip"]) == 2
    assert main([*common, "--gzip", "--force"]) == 0
    assert all(p.endswith(".jsonl.gz") for p in dataset_bytes(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# --------------------------------------------------------------------------- preprocessing


def test_preprocess_scales_with_copies(tmp_path: Path, small_source: Path) -> None:
    from scifact_pipeline.preprocess import preprocess

    one = copy_bytes(small_source, 0)
    totals = []
    for copies, size in ((1, one), (2, one + copy_bytes(small_source, 1))):
        d = tmp_path / f"copies-{copies}"
        manifest = generate(small_source, d, size, shard_bytes=150 * 10**3, gzip=True, seed=0, workers=1)
        assert manifest["size_reached"] == size and manifest["copies"]["whole"] == copies
        result = preprocess(
            claims={"train": str(d / "claims_train/*.jsonl.gz"), "dev": str(d / "claims_dev/*.jsonl.gz")},
            corpus=str(d / "corpus/*.jsonl.gz"),
            out_dir=tmp_path / f"ex-{copies}",
            partitions=16,
            seed=13,
        )
        assert len(result["inputs"]["corpus"]) > 1  # several shards were read
        totals.append({kind: {s: v["total"] for s, v in splits.items()} for kind, splits in result["examples"].items()})
    assert all(n > 0 for splits in totals[0].values() for n in splits.values())
    assert totals[0]["rationale"]["train"] > 0
    # whole copies: every claim and doc is there twice, so the examples double exactly
    assert totals[1] == {kind: {s: 2 * n for s, n in splits.items()} for kind, splits in totals[0].items()}
