"""Tests for scifact_pipeline.s3 (moto in-process mock and a real rclone S3 server)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import boto3
import botocore
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from scifact_pipeline import s3
from scifact_pipeline.s3 import S3Error, download_file, download_prefix, is_s3_url, parse_s3_url

needs_rclone = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone not installed")

BUCKET = "test-bucket"


@pytest.fixture
def moto_s3(aws_env, luigi_config):
    """A moto-mocked S3 with one bucket; yields a client created after the mock started."""
    with mock_aws():
        s3.reset_client()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    s3.reset_client()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _no_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- URLs ---------------------------------------------------------------------------------


def test_is_s3_url():
    assert is_s3_url("s3://b/k")
    assert is_s3_url("S3://b/k")
    assert not is_s3_url("/tmp/s3://x")
    assert not is_s3_url("https://b.s3.amazonaws.com/k")
    assert not is_s3_url(None)


def test_parse_s3_url():
    assert parse_s3_url("s3://scifact/release/latest/data.tar.gz") == ("scifact", "release/latest/data.tar.gz")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/") == ("bucket", "")
    for bad in ("s3://", "s3:///key", "http://b/k", "s3://bad bucket/k"):
        with pytest.raises(ValueError) as info:
            parse_s3_url(bad)
        assert "\n" not in str(info.value)


# --- client settings -------------------------------------------------------------------------


def test_client_defaults_to_us_west_2_and_unsigned_without_credentials(aws_env, luigi_config, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    s3.reset_client()
    client = s3.get_client()
    assert client.meta.region_name == "us-west-2"
    assert client.meta.config.signature_version is botocore.UNSIGNED
    assert client.meta.config.retries["mode"] == "standard"
    assert s3.get_client() is client  # cached


def test_client_reads_luigi_s3_section(aws_env, luigi_config):
    luigi_config.set("s3", "endpoint_url", "http://127.0.0.1:9")
    luigi_config.set("s3", "region_name", "eu-central-1")
    luigi_config.set("s3", "max_attempts", "2")
    s3.reset_client()
    client = s3.get_client()
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.config.signature_version is not botocore.UNSIGNED
    assert client.meta.config.retries["total_max_attempts"] == 3  # botocore: retries after the first try


def test_client_honours_env_endpoint(aws_env, luigi_config, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    s3.reset_client()
    client = s3.get_client()
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.config.s3["addressing_style"] == "path"


# --- download_file (moto) --------------------------------------------------------------------


def test_download_file_round_trip(moto_s3, tmp_path):
    payload = os.urandom(70_000)
    moto_s3.put_object(Bucket=BUCKET, Key="a/b/blob.bin", Body=payload)
    dest = tmp_path / "sub" / "blob.bin"
    assert download_file(f"s3://{BUCKET}/a/b/blob.bin", dest) == dest
    assert dest.read_bytes() == payload
    assert _no_leftovers(dest.parent) == ["blob.bin"]


def test_download_file_replaces_existing(moto_s3, tmp_path):
    moto_s3.put_object(Bucket=BUCKET, Key="k", Body=b"new")
    dest = tmp_path / "k"
    dest.write_bytes(b"old content")
    download_file(f"s3://{BUCKET}/k", dest)
    assert dest.read_bytes() == b"new"


def test_download_file_missing_key(moto_s3, tmp_path):
    dest = tmp_path / "x.bin"
    with pytest.raises(S3Error) as info:
        download_file(f"s3://{BUCKET}/no/such/key", dest)
    assert str(info.value) == f"s3://{BUCKET}/no/such/key: object not found"
    assert _no_leftovers(tmp_path) == []


def test_download_file_missing_bucket(moto_s3, tmp_path):
    with pytest.raises(S3Error, match=r"^s3://no-such-bucket/k: (bucket|object) not found$"):
        download_file("s3://no-such-bucket/k", tmp_path / "k")
    assert _no_leftovers(tmp_path) == []


def test_download_file_size_mismatch(moto_s3, tmp_path, monkeypatch):
    moto_s3.put_object(Bucket=BUCKET, Key="k", Body=b"0123456789")
    client = s3.get_client()
    real = client.download_file

    def truncated(bucket, key, filename, **kwargs):
        real(bucket, key, filename, **kwargs)
        with open(filename, "r+b") as fh:
            fh.truncate(4)

    monkeypatch.setattr(client, "download_file", truncated)
    dest = tmp_path / "k"
    with pytest.raises(S3Error) as info:
        download_file(f"s3://{BUCKET}/k", dest)
    assert str(info.value) == f"s3://{BUCKET}/k: incomplete download: got 4 bytes, expected 10"
    assert _no_leftovers(tmp_path) == []


def test_download_file_access_denied(moto_s3, tmp_path, monkeypatch):
    client = s3.get_client()

    def forbidden(**kwargs):
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadObject")

    monkeypatch.setattr(client, "head_object", forbidden)
    with pytest.raises(S3Error) as info:
        download_file("s3://scifact/release/latest/missing.tar.gz", tmp_path / "m.tar.gz")
    msg = str(info.value)
    assert msg.startswith("s3://scifact/release/latest/missing.tar.gz: access denied")
    assert "403 for a missing key" in msg and "\n" not in msg
    assert _no_leftovers(tmp_path) == []


def test_download_file_rejects_folder_url(moto_s3, tmp_path):
    with pytest.raises(ValueError):
        download_file(f"s3://{BUCKET}/folder/", tmp_path / "x")


def test_unreachable_endpoint(aws_env, luigi_config, tmp_path):
    port = _closed_port()
    luigi_config.set("s3", "endpoint_url", f"http://127.0.0.1:{port}")
    luigi_config.set("s3", "max_attempts", "0")
    luigi_config.set("s3", "connect_timeout", "1")
    luigi_config.set("s3", "read_timeout", "1")
    s3.reset_client()
    with pytest.raises(S3Error) as info:
        download_file("s3://bucket/some/key.tar.gz", tmp_path / "key.tar.gz")
    msg = str(info.value)
    assert msg.startswith(f"s3://bucket/some/key.tar.gz: cannot reach endpoint http://127.0.0.1:{port}: ")
    assert "\n" not in msg and "testing" not in msg
    assert _no_leftovers(tmp_path) == []
    with pytest.raises(S3Error, match=r"^s3://bucket/pre/: cannot reach endpoint"):
        download_prefix("s3://bucket/pre", tmp_path / "d")


# --- download_prefix (moto) ------------------------------------------------------------------


def test_download_prefix(moto_s3, tmp_path):
    moto_s3.put_object(Bucket=BUCKET, Key="models/m1/config.json", Body=b"{}")
    moto_s3.put_object(Bucket=BUCKET, Key="models/m1/sub/vocab.txt", Body=b"a\nb\n")
    moto_s3.put_object(Bucket=BUCKET, Key="models/m1/", Body=b"")  # folder marker
    moto_s3.put_object(Bucket=BUCKET, Key="models/m10/other.json", Body=b"no")  # not under m1/
    dest = tmp_path / "m1"
    got = download_prefix(f"s3://{BUCKET}/models/m1", dest)
    assert got == sorted([dest / "config.json", dest / "sub" / "vocab.txt"])
    assert (dest / "sub" / "vocab.txt").read_bytes() == b"a\nb\n"
    assert not (dest / "other.json").exists()


def test_download_prefix_empty(moto_s3, tmp_path):
    with pytest.raises(S3Error) as info:
        download_prefix(f"s3://{BUCKET}/nothing/here/", tmp_path / "d")
    assert str(info.value) == f"no objects under s3://{BUCKET}/nothing/here/"


def test_download_prefix_rejects_escaping_keys(moto_s3, tmp_path):
    moto_s3.put_object(Bucket=BUCKET, Key="p/ok.txt", Body=b"ok")
    moto_s3.put_object(Bucket=BUCKET, Key="p/../../evil.txt", Body=b"evil")
    dest = tmp_path / "d"
    with pytest.raises(S3Error, match="escapes the destination folder"):
        download_prefix(f"s3://{BUCKET}/p/", dest)
    assert not (tmp_path / "evil.txt").exists()
    assert not (dest / "ok.txt").exists()  # checked before anything is downloaded


def test_download_prefix_listing_denied(moto_s3, tmp_path, monkeypatch):
    client = s3.get_client()

    class DeniedPaginator:
        def paginate(self, **kwargs):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                "ListObjectsV2",
            )

    monkeypatch.setattr(client, "get_paginator", lambda name: DeniedPaginator())
    with pytest.raises(S3Error, match=r"^s3://scifact/release/: access denied listing objects"):
        download_prefix("s3://scifact/release", tmp_path / "d")


# --- a real S3-compatible server ------------------------------------------------------------


@needs_rclone
def test_rclone_server_serves_objects(rclone_s3):
    rclone_s3.put("smoke", "hello/world.txt", b"hello")
    body = rclone_s3.client().get_object(Bucket="smoke", Key="hello/world.txt")["Body"].read()
    assert body == b"hello"


@needs_rclone
def test_download_via_rclone(rclone_s3, aws_env, luigi_config, tmp_path):
    payload = os.urandom(300_000)
    rclone_s3.put("bkt", "dir/blob.bin", payload)
    rclone_s3.put("bkt", "dir/nested/x.txt", b"x")
    rclone_s3.configure(luigi_config)
    assert download_file("s3://bkt/dir/blob.bin", tmp_path / "blob.bin").read_bytes() == payload
    got = download_prefix("s3://bkt/dir/", tmp_path / "all")
    assert [p.relative_to(tmp_path / "all").as_posix() for p in got] == ["blob.bin", "nested/x.txt"]
    with pytest.raises(S3Error, match=r"^s3://bkt/dir/missing: object not found$"):
        download_file("s3://bkt/dir/missing", tmp_path / "missing")


@needs_rclone
def test_wrong_secret_is_access_denied(rclone_s3, aws_env, luigi_config, tmp_path):
    rclone_s3.put("bkt", "secret.txt", b"s")
    rclone_s3.configure(luigi_config)
    luigi_config.set("s3", "aws_secret_access_key", "wrong-secret-value")
    luigi_config.set("s3", "max_attempts", "0")
    s3.reset_client()
    with pytest.raises(S3Error) as info:
        download_file("s3://bkt/secret.txt", tmp_path / "secret.txt")
    msg = str(info.value)
    assert msg.startswith("s3://bkt/secret.txt: access denied")
    assert "wrong-secret-value" not in msg and rclone_s3.key not in msg
    assert _no_leftovers(tmp_path) == []
