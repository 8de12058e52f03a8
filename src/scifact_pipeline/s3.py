"""S3 access for the pipeline: one shared boto3 client and two download helpers.

Settings come from the luigi config section ``[s3]`` (all optional)::

    [s3]
    endpoint_url = http://127.0.0.1:9000     ; any S3-compatible server (path-style addressing)
    region_name = us-west-2
    aws_access_key_id = ...
    aws_secret_access_key = ...
    aws_session_token = ...
    max_attempts = 5                         ; retries of each request after the first try
    connect_timeout = 10
    read_timeout = 60
    download_attempts = 3                    ; tries of each object download (first try included)
    backoff_base = 0.5                       ; seconds; the n-th retry waits rand(0, base * 2**(n-1))
    backoff_max = 20                         ; seconds; cap of that wait

Anything not set there falls back to boto3's own resolution (environment variables such as
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, the shared config files, ...). The
region defaults to ``us-west-2`` (where the official SciFact bucket lives) when none resolves.
When no credentials resolve at all, requests are sent unsigned: the SciFact bucket is public.

Faults are handled in two layers. Each request (HEAD, GET, LIST) is retried by botocore
("standard" mode) on connection errors, timeouts, 5xx and throttling answers (``max_attempts``
retries, backoff ``rand(0, 1) * 2**n`` s up to 20 s). Each object download is then checked: the
file's size must equal the object's ``ContentLength`` and, when the ETag is a plain MD5
(single-part upload, no KMS/customer-key encryption), the file's MD5 must equal it. A body that
breaks off (reset, truncation, read timeout) or fails the check is downloaded again, up to
``download_attempts`` tries with exponential backoff and full jitter (``backoff_base``,
``backoff_max``). Access denied (403) and not found (404) are never retried. The download goes
to a temp file beside the destination and is renamed into place only once verified.

Every failure is raised as :class:`S3Error`, whose message is one line naming the ``s3://`` URL
and the problem (never credentials).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import posixpath
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import botocore
from boto3.exceptions import RetriesExceededError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    IncompleteReadError,
    ResponseStreamingError,
)
from s3transfer.exceptions import RetriesExceededError as TransferRetriesExceededError

from .util import DataError, InputError

DEFAULT_REGION = "us-west-2"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_DOWNLOAD_ATTEMPTS = 3
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_MAX = 20.0

logger = logging.getLogger(__name__)

# One try per transfer: a broken-off body is retried by _download_object, with backoff.
_TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=64 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
    num_download_attempts=1,
    use_threads=True,
)

# A transfer that failed after its response began; worth downloading the object again.
_BROKEN_BODY = (
    RetriesExceededError,
    TransferRetriesExceededError,
    IncompleteReadError,
    ResponseStreamingError,
    FlexibleChecksumError,
)

_ACCESS_DENIED = "access denied (a bucket that cannot be listed also answers 403 for a missing key)"


class S3Error(InputError, RuntimeError):
    """A failed S3 operation. ``str(err)`` is one line naming the ``s3://`` URL and the problem."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(_one_line(message))


class _TransferError(S3Error):
    """A download whose body broke off or failed the size/MD5 check; retried with backoff."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def is_s3_url(s: Any) -> bool:
    """True when ``s`` is a string that starts with ``s3://``."""
    return isinstance(s, str) and s[:5].lower() == "s3://"


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty (``s3://bucket/``).

    Raises ValueError (one line) when ``url`` is not an ``s3://`` URL or has no valid bucket name.
    """
    if not is_s3_url(url):
        raise DataError(f"not an S3 URL: {url!r} (expected s3://bucket/key)")
    rest = url[5:]
    bucket, _, key = rest.partition("/")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", bucket):
        raise DataError(f"malformed S3 URL {url!r}: missing or invalid bucket name (expected s3://bucket/key)")
    return bucket, key


def _config_value(name: str) -> str | None:
    import luigi.configuration

    try:
        value = luigi.configuration.get_config().get("s3", name, None)
    except Exception:  # noqa: BLE001 - an unreadable config must not break boto3's own resolution
        return None
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _config_number(name: str, default: float, minimum: float = 0.0) -> float:
    value = _config_value(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"[s3] {name} must be a number, got {value!r}") from None
    if not number >= minimum:
        raise DataError(f"[s3] {name} must be at least {minimum:g}, got {value!r}")
    return number


@functools.lru_cache(maxsize=1)
def get_client() -> Any:
    """The shared boto3 S3 client (created once; :func:`reset_client` drops it).

    Settings: luigi config ``[s3]`` first, then boto3's own resolution; region defaults to
    ``us-west-2``; unsigned requests when no credentials resolve; "standard" retries;
    path-style addressing when a custom endpoint is configured.
    """
    session = boto3.session.Session(
        aws_access_key_id=_config_value("aws_access_key_id"),
        aws_secret_access_key=_config_value("aws_secret_access_key"),
        aws_session_token=_config_value("aws_session_token"),
        region_name=_config_value("region_name"),
    )
    region = session.region_name or DEFAULT_REGION
    endpoint_url = _config_value("endpoint_url")
    custom_endpoint = bool(
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": int(_config_number("max_attempts", DEFAULT_MAX_ATTEMPTS))},
        "connect_timeout": _config_number("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        "read_timeout": _config_number("read_timeout", DEFAULT_READ_TIMEOUT),
    }
    if custom_endpoint:
        options["s3"] = {"addressing_style": "path"}
    if session.get_credentials() is None:
        options["signature_version"] = botocore.UNSIGNED
    return session.client("s3", region_name=region, endpoint_url=endpoint_url, config=Config(**options))


def reset_client() -> None:
    """Forget the shared client so the next :func:`get_client` re-reads the settings (tests)."""
    get_client.cache_clear()


def _endpoint(client: Any) -> str:
    """The client's endpoint without any user:password part."""
    try:
        parts = urlsplit(client.meta.endpoint_url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except Exception:  # noqa: BLE001
        return "<unknown endpoint>"


def _short_reason(exc: BaseException) -> str:
    texts = [str(exc)]
    inner = getattr(exc, "kwargs", {}).get("error") if hasattr(exc, "kwargs") else None
    if inner is not None:
        texts.insert(0, str(inner))
    for text in texts:
        m = re.search(r"\[Errno -?\d+\]\s*([^)\]\"']+)", text)
        if m:
            return m.group(1).strip().rstrip(".")
    names = {
        "ConnectTimeoutError": "connection timed out",
        "ReadTimeoutError": "read timed out",
        "ConnectionClosedError": "connection closed by the server",
        "ProxyConnectionError": "cannot connect to the proxy",
        "SSLError": "TLS/SSL error",
        "IncompleteReadError": "the body ended early",
        "ResponseStreamingError": "the connection broke while reading the body",
    }
    for cls in type(exc).__mro__:
        if cls.__name__ in names:
            return names[cls.__name__]
    return type(exc).__name__


def _translate(exc: BaseException, url: str, client: Any, listing: bool = False) -> S3Error:
    """Turn a botocore/s3transfer exception into a one-line S3Error naming ``url``."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        code = str(err.get("Code", "") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(err.get("Message", "") or "")
        if code == "NoSuchBucket":
            return S3Error(f"{url}: bucket not found", url)
        if code in ("404", "NoSuchKey", "NotFound") or status == 404:
            return S3Error(f"{url}: object not found", url)
        if code in ("403", "AccessDenied", "Forbidden", "AllAccessDisabled") or status == 403:
            if listing:
                return S3Error(f"{url}: access denied listing objects (the bucket may not allow listing)", url)
            detail = f" [{code}]" if code not in ("403", "AccessDenied", "Forbidden") else ""
            return S3Error(f"{url}: {_ACCESS_DENIED}{detail}", url)
        detail = f": {message}" if message else ""
        return S3Error(f"{url}: S3 error {code or '?'} (HTTP {status}){detail}", url)
    if isinstance(exc, (IncompleteReadError, ResponseStreamingError)):
        return S3Error(f"{url}: transfer interrupted: {_short_reason(exc)}", url)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return S3Error(f"{url}: no AWS credentials found", url)
    if isinstance(
        exc,
        (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.HTTPClientError,
            botocore.exceptions.ConnectionError,
        ),
    ):
        return S3Error(f"{url}: cannot reach endpoint {_endpoint(client)}: {_short_reason(exc)}", url)
    if isinstance(exc, BotoCoreError):
        return S3Error(f"{url}: {type(exc).__name__}: {exc}", url)
    # s3transfer's own errors (e.g. RetriesExceededError wraps the last connection error)
    last = getattr(exc, "last_exception", None)
    if last is not None:
        return _translate(last, url, client, listing)
    return S3Error(f"{url}: {type(exc).__name__}: {exc}", url)


def _is_s3_failure(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return isinstance(exc, (BotoCoreError, ClientError)) or module.startswith(("s3transfer", "botocore", "boto3"))


def _plain_md5(head: dict[str, Any]) -> str | None:
    """The object's MD5 from a HEAD answer when its ETag is one (single-part, no KMS/SSE-C); else None."""
    etag = str(head.get("ETag", "")).strip('"').lower()
    if not re.fullmatch(r"[0-9a-f]{32}", etag):
        return None  # multipart ("...-N") or not an MD5 at all
    if head.get("SSECustomerAlgorithm") or str(head.get("ServerSideEncryption", "")).startswith("aws:kms"):
        return None  # the ETag of an encrypted object is not the MD5 of its content
    return etag


def _file_md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def _verify(path: Path, head: dict[str, Any], url: str) -> None:
    """Raise :class:`_TransferError` unless ``path`` has the object's size and (when known) MD5."""
    expected = int(head["ContentLength"])
    got = path.stat().st_size
    if got != expected:
        raise _TransferError(f"{url}: incomplete download: got {got} bytes, expected {expected}", url)
    md5 = _plain_md5(head)
    if md5 is not None and _file_md5(path) != md5:
        raise _TransferError(f"{url}: corrupt download: MD5 differs from the object's ETag {md5}", url)


def _download_once(client: Any, bucket: str, key: str, dest: Path) -> None:
    """One try: HEAD, download to a temp file beside ``dest``, verify, rename into place."""
    url = f"s3://{bucket}/{key}"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            client.download_file(bucket, key, str(tmp), Config=_TRANSFER_CONFIG)
        except Exception as exc:
            if not _is_s3_failure(exc):
                raise
            error = _translate(exc, url, client)
            if isinstance(exc, _BROKEN_BODY):
                raise _TransferError(str(error), url) from exc
            raise error from exc
        _verify(tmp, head, url)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _download_object(client: Any, bucket: str, key: str, dest: Path) -> Path:
    """Download one object to ``dest``, retrying broken or unverified transfers with backoff.

    Tries ``[s3] download_attempts`` times; before try n+1 it sleeps a random time up to
    ``min(backoff_max, backoff_base * 2**(n-1))`` seconds. The last failure is raised.
    """
    attempts = int(_config_number("download_attempts", DEFAULT_DOWNLOAD_ATTEMPTS, minimum=1))
    base = _config_number("backoff_base", DEFAULT_BACKOFF_BASE)
    cap = _config_number("backoff_max", DEFAULT_BACKOFF_MAX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        try:
            _download_once(client, bucket, key, dest)
            return dest
        except _TransferError as exc:
            if attempt >= attempts:
                raise
            delay = random.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))
            logger.warning("%s (try %d of %d); retrying in %.2f s", exc, attempt, attempts, delay)
            time.sleep(delay)
            attempt += 1


def download_file(url: str, dest: str | os.PathLike[str]) -> Path:
    """Download the object at ``url`` (``s3://bucket/key``) to ``dest``; return ``dest``.

    Uses boto3's managed transfer into a temp file beside ``dest``, checks the size against the
    object's ``ContentLength`` and the MD5 against a plain-MD5 ETag, and renames into place, so
    ``dest`` is never left half-written; a broken or unverified transfer is retried (see the
    module docstring). Raises :class:`S3Error` (not found, access denied, unreachable endpoint,
    a transfer that still fails after ``download_attempts`` tries).
    """
    bucket, key = parse_s3_url(url)
    if not key or key.endswith("/"):
        raise DataError(f"malformed S3 URL {url!r}: expected s3://bucket/key naming one object")
    client = get_client()
    return _download_object(client, bucket, key, Path(dest))


def _relative_key(prefix: str, key: str, dest_dir: Path, bucket: str) -> str | None:
    """The path of ``key`` below ``prefix``; None for folder markers; S3Error if it escapes."""
    rel = key[len(prefix) :]
    if rel == "" or rel.endswith("/"):
        return None
    norm = posixpath.normpath(rel)
    if rel.startswith("/") or norm == ".." or norm.startswith("../") or "\\" in rel or "\x00" in rel:
        raise S3Error(f"s3://{bucket}/{key}: key escapes the destination folder {dest_dir}", f"s3://{bucket}/{key}")
    return norm


def download_prefix(url: str, dest_dir: str | os.PathLike[str]) -> list[Path]:
    """Download every object under the folder prefix ``url`` into ``dest_dir``, keeping relative paths.

    ``url`` is treated as a folder (a trailing ``/`` is added). Keys whose relative path would
    escape ``dest_dir`` are rejected before anything is downloaded. Returns the written paths,
    sorted. Raises :class:`S3Error` when nothing is under the prefix or a request fails; files
    written by a failed call are removed again.
    """
    bucket, key = parse_s3_url(url)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    folder_url = f"s3://{bucket}/{prefix}"
    dest_dir = Path(dest_dir)
    client = get_client()
    objects: list[str] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            objects.extend(obj["Key"] for obj in page.get("Contents", []) or [])
    except Exception as exc:
        if _is_s3_failure(exc):
            raise _translate(exc, folder_url, client, listing=True) from exc
        raise
    planned: list[tuple[str, Path]] = []
    for obj_key in objects:
        rel = _relative_key(prefix, obj_key, dest_dir, bucket)
        if rel is not None:
            planned.append((obj_key, dest_dir.joinpath(*rel.split("/"))))
    if not planned:
        raise S3Error(f"no objects under {folder_url}", folder_url)
    written: list[Path] = []
    try:
        for obj_key, target in planned:
            written.append(_download_object(client, bucket, obj_key, target))
    except BaseException:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    return sorted(written)
