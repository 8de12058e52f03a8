"""Fault tolerance of scifact_pipeline.s3 against a real S3 server (rclone) behind a fault proxy.

Every test scripts faults into :class:`faultproxy.FaultProxy` and asserts, through the proxy's
record, that they happened; the download must then either recover (bytes equal the original) or
fail with one line naming the s3:// URL.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
from faultproxy import Fault, FaultProxy
from helpers import write_scifact

from scifact_pipeline import s3
from scifact_pipeline.download import DATA_FILES, DownloadData
from scifact_pipeline.s3 import S3Error, download_file, download_prefix

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")

BUCKET = "faults"
MAX_ATTEMPTS = 2  # botocore retries of each request
DOWNLOAD_ATTEMPTS = 3  # tries of each object download


@pytest.fixture
def proxy(rclone_s3) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's rclone server; stalls last 3 s."""
    with FaultProxy(rclone_s3.endpoint, stall_s=3.0) as p:
        yield p


@pytest.fixture
def via_proxy(rclone_s3, proxy, aws_env, luigi_config):
    """``[s3]`` pointing at the proxy, with small timeouts and quick backoff; returns the config."""
    rclone_s3.configure(luigi_config)
    for name, value in {
        "endpoint_url": proxy.endpoint,
        "max_attempts": MAX_ATTEMPTS,
        "connect_timeout": 1,
        "read_timeout": 1,
        "download_attempts": DOWNLOAD_ATTEMPTS,
        "backoff_base": 0.05,
        "backoff_max": 0.2,
    }.items():
        luigi_config.set("s3", name, str(value))
    s3.reset_client()
    return luigi_config


@pytest.fixture
def blob(rclone_s3, request) -> tuple[str, str, bytes]:
    """A 200 kB random object private to the test: ``(s3 URL, proxy path, bytes)``."""
    key = f"{request.node.name.replace('[', '-').rstrip(']')}/blob.bin"
    payload = os.urandom(200_000)
    rclone_s3.put(BUCKET, key, payload)
    return f"s3://{BUCKET}/{key}", f"/{BUCKET}/{key}", payload


def faults(proxy: FaultProxy) -> list[tuple[str, str, Fault]]:
    """The proxy's record of injected faults as ``(method, path, fault)``."""
    return [(e.method, e.path, e.fault) for e in proxy.injected()]


def listing(folder: Path) -> list[str]:
    """The sorted names in ``folder`` ([] when it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- single objects: each fault recovered from ------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Fault.RESET, Fault.RESET_MID_BODY, Fault.HTTP_500, Fault.HTTP_503, Fault.TRUNCATE],
)
def test_transient_fault_is_retried(via_proxy, proxy, blob, tmp_path, fault):
    url, path, payload = blob
    proxy.script(fault, path, times=2)
    dest = tmp_path / "blob.bin"
    assert download_file(url, dest) == dest
    assert dest.read_bytes() == payload
    assert faults(proxy) == [("GET", path, fault)] * 2
    assert len(proxy.requests("GET", path)) == 3  # two faults, then the good answer
    assert listing(tmp_path) == ["blob.bin"]  # no temp files left


def test_truncated_body_is_never_accepted(via_proxy, proxy, blob, tmp_path, caplog):
    url, path, payload = blob
    proxy.script(Fault.TRUNCATE, path, times=DOWNLOAD_ATTEMPTS - 1)
    with caplog.at_level(logging.WARNING, logger="scifact_pipeline.s3"):
        download_file(url, tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin").read_bytes() == payload
    retries = [r.getMessage() for r in caplog.records if r.name == "scifact_pipeline.s3"]
    assert len(retries) == DOWNLOAD_ATTEMPTS - 1
    assert all(m.startswith(f"{url}: ") and "retrying in" in m for m in retries)


def test_corrupt_body_fails_the_md5_check_and_is_retried(via_proxy, proxy, blob, tmp_path, caplog):
    url, path, payload = blob
    proxy.script(Fault.CORRUPT, path, times=1)
    download_file(url, tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin").read_bytes() == payload
    assert faults(proxy) == [("GET", path, Fault.CORRUPT)]
    assert f"{url}: corrupt download: MD5 differs from the object's ETag" in caplog.text


def test_slow_answer_beyond_read_timeout_is_retried(via_proxy, proxy, blob, tmp_path):
    url, path, payload = blob
    proxy.script(Fault.STALL, path, times=1)
    start = time.monotonic()
    download_file(url, tmp_path / "blob.bin")
    elapsed = time.monotonic() - start
    assert (tmp_path / "blob.bin").read_bytes() == payload
    assert faults(proxy) == [("GET", path, Fault.STALL)]
    assert 1.0 <= elapsed < proxy.stall_s + 1  # gave up on the stalled answer after read_timeout


def test_fault_on_head_is_retried(via_proxy, proxy, blob, tmp_path):
    url, path, payload = blob
    proxy.script(Fault.HTTP_503, path, times=1, method="HEAD")
    proxy.script(Fault.RESET, path, times=1, method="HEAD")
    download_file(url, tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin").read_bytes() == payload
    assert faults(proxy) == [("HEAD", path, Fault.HTTP_503), ("HEAD", path, Fault.RESET)]


# --- persistent faults: bounded attempts, one line naming the URL -----------------------------


@pytest.mark.parametrize(
    ("fault", "gets", "problem"),
    [
        (Fault.HTTP_503, MAX_ATTEMPTS + 1, "S3 error SlowDown (HTTP 503): Please reduce your request rate."),
        (Fault.RESET, MAX_ATTEMPTS + 1, "cannot reach endpoint"),
        (Fault.TRUNCATE, DOWNLOAD_ATTEMPTS, "transfer interrupted: the connection broke while reading the body"),
        (Fault.RESET_MID_BODY, DOWNLOAD_ATTEMPTS, "transfer interrupted: the connection broke while reading the body"),
    ],
)
def test_persistent_fault_fails_with_one_line(via_proxy, proxy, blob, tmp_path, fault, gets, problem):
    url, path, _ = blob
    proxy.script(fault, path, times=100)
    dest = tmp_path / "blob.bin"
    with pytest.raises(S3Error) as info:
        download_file(url, dest)
    msg = str(info.value)
    assert msg.startswith(f"{url}: ") and problem in msg and "\n" not in msg
    assert info.value.url == url
    assert len(proxy.requests("GET", path)) == gets == len(proxy.injected())
    assert listing(tmp_path) == []  # neither dest nor a partial temp file


# --- 403 / 404 fail fast ----------------------------------------------------------------------


def _slow_retry_settings(cfg) -> None:
    """Settings under which any retry would be slow and show in the proxy's record."""
    cfg.set("s3", "max_attempts", "5")
    cfg.set("s3", "download_attempts", "5")
    cfg.set("s3", "backoff_base", "2")
    s3.reset_client()


def test_access_denied_fails_fast(via_proxy, proxy, blob, rclone_s3, tmp_path):
    url, path, _ = blob
    via_proxy.set("s3", "aws_secret_access_key", "not-the-secret")
    _slow_retry_settings(via_proxy)
    s3.get_client()  # created outside the timing
    start = time.monotonic()
    with pytest.raises(S3Error) as info:
        download_file(url, tmp_path / "blob.bin")
    assert time.monotonic() - start < 1.0
    assert str(info.value).startswith(f"{url}: access denied")
    assert [(e.method, e.path) for e in proxy.log] == [("HEAD", path)]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("url", ["s3://faults/no/such/key.bin", "s3://no-such-bucket/key.bin"])
def test_not_found_fails_fast(via_proxy, proxy, tmp_path, url):
    _slow_retry_settings(via_proxy)
    s3.get_client()  # created outside the timing
    start = time.monotonic()
    with pytest.raises(S3Error, match=rf"^{re.escape(url)}: (object|bucket) not found$"):
        download_file(url, tmp_path / "key.bin")
    assert time.monotonic() - start < 1.0
    assert len(proxy.log) == 1
    assert listing(tmp_path) == []


# --- download_prefix -------------------------------------------------------------------------


def test_prefix_download_with_faults(via_proxy, proxy, rclone_s3, tmp_path):
    files = {f"model/{name}": os.urandom(50_000) for name in ("config.json", "weights.bin", "sub/vocab.txt")}
    for key, data in files.items():
        rclone_s3.put(BUCKET, key, data)
    proxy.script(Fault.HTTP_500, f"/{BUCKET}", times=1)  # the listing
    proxy.script(Fault.RESET_MID_BODY, f"/{BUCKET}/model/weights.bin", times=1)
    proxy.script(Fault.TRUNCATE, f"/{BUCKET}/model/sub/vocab.txt", times=1)
    dest = tmp_path / "model"
    got = download_prefix(f"s3://{BUCKET}/model/", dest)
    assert [p.relative_to(dest).as_posix() for p in got] == ["config.json", "sub/vocab.txt", "weights.bin"]
    for key, data in files.items():
        assert (tmp_path / key).read_bytes() == data
    assert faults(proxy) == [
        ("GET", f"/{BUCKET}", Fault.HTTP_500),
        ("GET", f"/{BUCKET}/model/sub/vocab.txt", Fault.TRUNCATE),
        ("GET", f"/{BUCKET}/model/weights.bin", Fault.RESET_MID_BODY),
    ]
    assert listing(dest) == ["config.json", "sub", "weights.bin"]


def test_prefix_download_persistent_fault_removes_written_files(via_proxy, proxy, rclone_s3, tmp_path):
    for name in ("a.txt", "b.txt"):
        rclone_s3.put(BUCKET, f"pre/{name}", os.urandom(10_000))
    proxy.script(Fault.TRUNCATE, f"/{BUCKET}/pre/b.txt", times=100)
    with pytest.raises(S3Error, match=rf"^s3://{BUCKET}/pre/b\.txt: transfer interrupted"):
        download_prefix(f"s3://{BUCKET}/pre", tmp_path / "pre")
    assert len(proxy.injected()) == DOWNLOAD_ATTEMPTS
    assert listing(tmp_path / "pre") == []  # a.txt was downloaded, then removed again


# --- the Luigi task and credentials ---------------------------------------------------------


def _put_data_archive(rclone_s3, tmp_path: Path, key: str) -> None:
    folder = tmp_path / "release" / "data"
    write_scifact(folder)
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname="data")
    rclone_s3.put(BUCKET, key, archive.read_bytes())


def test_download_data_task_recovers(via_proxy, proxy, rclone_s3, tmp_path):
    key = "release/recovers/data.tar.gz"
    _put_data_archive(rclone_s3, tmp_path, key)
    proxy.script(Fault.HTTP_503, f"/{BUCKET}/{key}", times=1)
    proxy.script(Fault.TRUNCATE, f"/{BUCKET}/{key}", times=1)
    task = DownloadData(source=f"s3://{BUCKET}/{key}")
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    assert result.scheduling_succeeded, result.summary_text
    assert set(listing(Path(task.output().path))) == (set(DATA_FILES) - {"claims_test.jsonl"}) | {"source.json"}
    assert faults(proxy) == [("GET", f"/{BUCKET}/{key}", Fault.HTTP_503), ("GET", f"/{BUCKET}/{key}", Fault.TRUNCATE)]


def test_credentials_never_leak(via_proxy, proxy, rclone_s3, blob, tmp_path, caplog, capfd):
    url, path, _ = blob
    key = "release/leak/data.tar.gz"
    _put_data_archive(rclone_s3, tmp_path, key)
    proxy.script(Fault.RESET_MID_BODY, path, times=100)
    proxy.script(Fault.HTTP_500, f"/{BUCKET}/{key}", times=100)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="scifact_pipeline")
    with pytest.raises(S3Error) as info:
        download_file(url, tmp_path / "blob.bin")
    task = DownloadData(source=f"s3://{BUCKET}/{key}")
    result = luigi.build([task], local_scheduler=True, detailed_summary=True)
    assert not result.scheduling_succeeded
    assert not Path(task.output().path).exists()
    out, err = capfd.readouterr()
    texts = {"S3Error": str(info.value), "logs": caplog.text, "luigi summary": result.summary_text, "output": out + err}
    assert f"s3://{BUCKET}/{key}" in caplog.text  # the failure was logged, naming the URL
    for secret in (rclone_s3.key, rclone_s3.secret):
        for where, text in texts.items():
            assert secret not in text, f"credential found in {where}"
