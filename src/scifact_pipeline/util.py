"""Small shared helpers: atomic outputs and parameter signatures."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping


def signature(params: Mapping[str, Any], length: int = 10) -> str:
    """A short stable hash of ``params`` (JSON with sorted keys) for output paths."""
    blob = json.dumps(params, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def one_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (transformers and torch write paragraphs)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _tmp_prefix(final: Path) -> str:
    return f".{final.name}.tmp-"


def clean_stale_temps(final: Path) -> None:
    """Remove temp siblings left by a killed run that was writing ``final``."""
    parent = final.parent
    if not parent.is_dir():
        return
    for p in parent.glob(_tmp_prefix(final) + "*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def restore_interrupted_swap(final: Path) -> None:
    """Put ``final`` back from ``<final>.old`` when a kill fell between atomic_dir's two renames.

    :func:`atomic_dir` replaces an existing ``final`` by renaming it to ``.old`` and then the temp
    folder to ``final``; between the two, only ``.old`` (a complete former ``final``) exists.
    """
    old = final.with_name(final.name + ".old")
    if old.is_dir() and not final.exists():
        os.replace(old, final)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp directory beside ``final``; rename it into place when the block succeeds.

    On error the temp directory is removed; ``final`` is never seen half-written. An existing
    ``final`` is replaced (callers only write when the output is missing or stale).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final), dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(final.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temp file beside ``final`` and rename it into place when the block succeeds.

    Temp siblings left by a killed earlier write of ``final`` are removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(final), dir=final.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(path, encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


class InputError(Exception):
    """Bad input or an unavailable source; its message is one line naming the file or URL.

    Luigi logs a failed task with its traceback; :class:`OneLineErrors` shows these errors as
    that one line instead, since the traceback says nothing the message does not.
    """


class DataError(InputError, ValueError):
    """Input that cannot be used (bad archive, bad model folder, bad claims file)."""


class MissingInputError(InputError, FileNotFoundError):
    """An input file, folder or archive member that does not exist."""


class OneLineErrors(logging.Filter):
    """Log filter: a record carrying an :class:`InputError` becomes one line, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, InputError):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def install_one_line_errors(logger_name: str = "luigi-interface") -> None:
    """Attach :class:`OneLineErrors` to Luigi's logger (once)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, OneLineErrors) for f in logger.filters):
        logger.addFilter(OneLineErrors())
