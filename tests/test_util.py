"""Atomic outputs, signatures and the one-line error log filter."""

from __future__ import annotations

import logging
import sys

import pytest

from scifact_pipeline.records import BadRecordError
from scifact_pipeline.util import OneLineErrors, atomic_dir, signature


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord("luigi-interface", logging.ERROR, __file__, 1, "Worker failed %s", ("Task()",), info)


def test_input_errors_are_logged_as_one_line_and_others_keep_their_traceback():
    rec = _record(BadRecordError("corpus.jsonl:2: field 'abstract' is empty"))
    assert OneLineErrors().filter(rec)
    assert rec.getMessage() == "Worker failed Task(): BadRecordError: corpus.jsonl:2: field 'abstract' is empty"
    assert rec.exc_info is None
    bug = _record(KeyError("x"))
    assert OneLineErrors().filter(bug)
    assert bug.exc_info is not None and bug.getMessage() == "Worker failed Task()"


def test_atomic_dir_leaves_nothing_on_error_and_replaces_on_success(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(final) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_signature_is_stable_and_order_independent():
    assert signature({"a": 1, "b": [1, 2]}) == signature({"b": [1, 2], "a": 1})
    assert signature({"a": 1}) != signature({"a": 2})
