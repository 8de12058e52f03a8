"""Tests for scifact_pipeline.records: block splitting, line numbers, validation and inputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers import CORPUS, DEV_CLAIMS, TRAIN_CLAIMS, edited_line, jsonl_bytes, write_jsonl

from scifact_pipeline.records import (
    BadRecordError,
    Block,
    expand_inputs,
    iter_block_lines,
    line_number,
    parse_line,
    plan_blocks,
    read_records,
)

# --------------------------------------------------------------------------- blocks


def _lines_with_positions(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    for line in data.splitlines(keepends=True):
        out.append((pos, line))
        pos += len(line)
    return out


# lines of many lengths, some shorter and some much longer than the block, an empty line, and a
# last line without a newline
RAW = b"a\nbb\n\nccccccccccccccccc\nd\n0123456\n01234567\nxyz\n" + b"q" * 30 + b"\nlast"


@pytest.mark.parametrize("blocksize", [1, 2, 3, 7, 8, 64, 10_000])
def test_blocks_read_every_line_once_in_order(tmp_path: Path, blocksize: int) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(RAW)
    blocks = plan_blocks([str(path)], blocksize)
    assert [b.offset for b in blocks] == list(range(0, len(RAW), blocksize))
    assert sum(b.length for b in blocks) == len(RAW)
    got = [item for b in blocks for item in iter_block_lines(b)]
    assert got == _lines_with_positions(RAW)
    for pos, line in got:
        assert RAW[pos : pos + len(line)] == line


def test_block_owns_lines_starting_inside_it(tmp_path: Path) -> None:
    # lines start at 0, 4, 8 and 15
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"aaa\nbbb\ncccccc\ndd\n")
    blocks = plan_blocks([str(path)], 7)
    assert blocks == [Block(str(path), 0, 7), Block(str(path), 7, 7), Block(str(path), 14, 4)]
    assert [list(iter_block_lines(b)) for b in blocks] == [
        [(0, b"aaa\n"), (4, b"bbb\n")],
        [(8, b"cccccc\n")],
        [(15, b"dd\n")],
    ]


def test_block_starting_exactly_at_a_line_start_owns_it(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"abc\ndef\ngh\n")
    blocks = plan_blocks([str(path)], 4)
    assert [list(iter_block_lines(b)) for b in blocks] == [[(0, b"abc\n")], [(4, b"def\n")], [(8, b"gh\n")]]


def test_gzip_file_is_one_block(tmp_path: Path) -> None:
    data = jsonl_bytes(CORPUS)
    path = write_jsonl(tmp_path / "corpus.jsonl.gz", CORPUS, gz=True)
    blocks = plan_blocks([str(path)], 7)
    assert blocks == [Block(str(path), 0, None)]
    # positions are those of the decompressed stream
    assert list(iter_block_lines(blocks[0])) == _lines_with_positions(data)


def test_empty_file_is_one_block_with_no_lines(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    blocks = plan_blocks([str(path)], 7)
    assert blocks == [Block(str(path), 0, None)]
    assert list(iter_block_lines(blocks[0])) == []


def test_several_files_keep_their_order(tmp_path: Path) -> None:
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_bytes(b"1\n22\n")
    b.write_bytes(b"333\n")
    blocks = plan_blocks([str(a), str(b)], 3)
    assert [(blk.path, blk.offset) for blk in blocks] == [(str(a), 0), (str(a), 3), (str(b), 0), (str(b), 3)]
    assert [(blk.path, pos, line) for blk in blocks for pos, line in iter_block_lines(blk)] == [
        (str(a), 0, b"1\n"),
        (str(a), 2, b"22\n"),
        (str(b), 0, b"333\n"),
    ]


def test_line_number(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(RAW)
    for n, (pos, _) in enumerate(_lines_with_positions(RAW), start=1):
        assert line_number(str(path), pos) == n


def test_line_number_of_gzip_uses_decompressed_positions(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(RAW)
    for n, (pos, _) in enumerate(_lines_with_positions(RAW), start=1):
        assert line_number(str(path), pos) == n


# --------------------------------------------------------------------------- read_records


def _claims_file(tmp_path: Path, bad_line: bytes, index: int = 2, name: str = "claims.jsonl") -> tuple[Path, int]:
    """Good claims with ``bad_line`` inserted after ``index`` rows (and a blank line before it).

    Returns the path and the 1-based line number of the bad line.
    """
    good = [json.dumps(c).encode() + b"\n" for c in TRAIN_CLAIMS]
    lines = good[:index] + [b"\n", bad_line + b"\n"] + good[index:]
    path = tmp_path / name
    path.write_bytes(b"".join(lines))
    return path, index + 2


def _corpus_file(tmp_path: Path, bad_line: bytes, index: int = 3) -> tuple[Path, int]:
    good = [json.dumps(d).encode() + b"\n" for d in CORPUS]
    lines = good[:index] + [bad_line + b"\n"] + good[index:]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"".join(lines))
    return path, index + 1


def _whole(path: Path) -> Block:
    return plan_blocks([str(path)], 1 << 20)[0]


def _claim(**changes: object) -> bytes:
    return edited_line(TRAIN_CLAIMS[0], **changes)


def _doc(**changes: object) -> bytes:
    return edited_line(CORPUS[0], **changes)


BAD_CLAIMS = {
    "invalid_json": (b'{"id": 99, "claim": "x", ', "not valid JSON"),
    "non_utf8": (b'{"id": 99, "claim": "caf\xe9 \xff", "evidence": {}, "cited_doc_ids": []}', "not valid UTF-8"),
    "missing_claim": (_claim(claim=None), "missing required field 'claim'"),
    "label_neutral": (
        _claim(evidence={"10": [{"sentences": [0], "label": "NEUTRAL"}]}),
        "label 'NEUTRAL' is not SUPPORT or CONTRADICT",
    ),
    "evidence_key_not_int": (
        _claim(evidence={"abc": [{"sentences": [0], "label": "SUPPORT"}]}),
        "evidence key 'abc' is not an integer doc_id",
    ),
    "string_id": (_claim(id="1"), "field 'id' must be an integer"),
    "not_an_object": (b"[1, 2]", "expected a JSON object"),
    "mixed_labels": (
        _claim(evidence={"10": [{"sentences": [0], "label": "SUPPORT"}, {"sentences": [1], "label": "CONTRADICT"}]}),
        "disagree on the label",
    ),
    "empty_sentences": (_claim(evidence={"10": [{"sentences": [], "label": "SUPPORT"}]}), "'sentences'"),
}

BAD_DOCS = {
    "string_doc_id": (_doc(doc_id="10"), "field 'doc_id' must be an integer, got str"),
    "abstract_string": (_doc(abstract="One sentence. Another."), "field 'abstract' must be a list"),
    "empty_abstract": (_doc(abstract=[]), "field 'abstract' is empty"),
    "missing_abstract": (_doc(abstract=None), "missing required field 'abstract'"),
    "invalid_json": (b'{"doc_id": 7, "abstract": ["a"]', "not valid JSON"),
}


def _assert_names_file_and_line(tmp_path: Path, kind: str, write, raw: bytes, problem: str) -> None:
    path, line = write(tmp_path, raw)
    with pytest.raises(BadRecordError) as err:
        read_records(_whole(path), kind)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert problem in msg
    assert "\n" not in msg


@pytest.mark.parametrize("case", sorted(BAD_CLAIMS))
def test_bad_claim_error_names_file_and_line(tmp_path: Path, case: str) -> None:
    _assert_names_file_and_line(tmp_path, "claims", _claims_file, *BAD_CLAIMS[case])


@pytest.mark.parametrize("case", sorted(BAD_DOCS))
def test_bad_doc_error_names_file_and_line(tmp_path: Path, case: str) -> None:
    _assert_names_file_and_line(tmp_path, "corpus", _corpus_file, *BAD_DOCS[case])


def test_bad_line_in_a_later_block_has_the_file_line_number(tmp_path: Path) -> None:
    path, line = _claims_file(tmp_path, b"{oops", index=3)
    blocks = plan_blocks([str(path)], 7)
    with pytest.raises(BadRecordError, match=rf"^{path}:{line}: not valid JSON"):
        for b in blocks:
            read_records(b, "claims")


def test_bad_line_in_gzip_file(tmp_path: Path) -> None:
    plain, line = _claims_file(tmp_path, b"{oops", index=1)
    path = tmp_path / "claims.jsonl.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(BadRecordError, match=rf"^{path}:{line}: not valid JSON"):
        read_records(_whole(path), "claims")


def test_skip_mode_returns_bad_rows_and_keeps_good_ones(tmp_path: Path) -> None:
    good = [json.dumps(c) for c in TRAIN_CLAIMS]
    lines = [good[0], "{broken", good[1], _claim(claim=None).decode(), "", good[2], good[3]]
    path = tmp_path / "claims.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows, bad = read_records(_whole(path), "claims", on_bad_record="skip")
    assert rows.claim_id.tolist() == [c["id"] for c in TRAIN_CLAIMS]
    assert list(bad.columns) == ["file", "pos", "problem"]
    assert len(bad) == 2
    assert [line_number(f, p) for f, p in zip(bad.file, bad.pos)] == [2, 4]
    assert "not valid JSON" in bad.problem.iloc[0]
    assert "missing required field 'claim'" in bad.problem.iloc[1]


def test_good_claims_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "claims.jsonl", TRAIN_CLAIMS)
    rows, bad = read_records(_whole(path), "claims")
    assert len(bad) == 0
    assert rows.claim_id.tolist() == [1, 2, 3, 4]
    assert [line_number(f, p) for f, p in zip(rows.file, rows.pos)] == [1, 2, 3, 4]
    ev = json.loads(rows.evidence.iloc[1])
    assert ev == {"40": [{"sentences": [1], "label": "SUPPORT"}, {"sentences": [3, 4], "label": "SUPPORT"}]}
    assert json.loads(rows.evidence.iloc[3]) == {}
    assert json.loads(rows.cited.iloc[3]) == [10, 50]
    assert str(rows.pos.dtype) == "int64"


def test_good_corpus_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    rows, bad = read_records(_whole(path), "corpus")
    assert len(bad) == 0
    assert rows.doc_id.tolist() == [d["doc_id"] for d in CORPUS]
    assert [json.loads(s) for s in rows.sentences] == [d["abstract"] for d in CORPUS]


def test_unlabeled_claims_need_no_evidence(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "claims_test.jsonl", [{"id": 1, "claim": "x"}, {"id": 2, "claim": "y"}])
    rows, _ = read_records(_whole(path), "claims_unlabeled")
    assert rows.claim_id.tolist() == [1, 2]
    with pytest.raises(BadRecordError, match=r":1: missing required field 'evidence'"):
        read_records(_whole(path), "claims")


def test_rationale_sentences_are_sorted_and_deduplicated(tmp_path: Path) -> None:
    rec = dict(DEV_CLAIMS[2], evidence={"10": [{"sentences": [3, 1, 3], "label": "SUPPORT"}]})
    path = write_jsonl(tmp_path / "claims.jsonl", [rec])
    rows, _ = read_records(_whole(path), "claims")
    assert json.loads(rows.evidence.iloc[0]) == {"10": [{"sentences": [1, 3], "label": "SUPPORT"}]}


# --------------------------------------------------------------------------- expand_inputs


def test_expand_inputs_single_path(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "a.jsonl", [])
    assert expand_inputs(str(p)) == [str(p)]


def test_expand_inputs_glob_is_sorted(tmp_path: Path) -> None:
    for name in ("part-2.jsonl", "part-0.jsonl", "part-1.jsonl", "other.txt"):
        (tmp_path / name).write_text("")
    assert expand_inputs(str(tmp_path / "part-*.jsonl")) == [str(tmp_path / f"part-{i}.jsonl") for i in range(3)]


def test_expand_inputs_comma_list_keeps_order(tmp_path: Path) -> None:
    b = write_jsonl(tmp_path / "b.jsonl", [])
    a = write_jsonl(tmp_path / "a.jsonl", [])
    assert expand_inputs(f"{b}, {a}") == [str(b), str(a)]
    assert expand_inputs([str(b), str(a)]) == [str(b), str(a)]


def test_expand_inputs_missing_file(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [])
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        expand_inputs(f"{a},{missing}")
    with pytest.raises(FileNotFoundError, match="no input file matches"):
        expand_inputs(str(tmp_path / "nothing-*.jsonl"))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"doc_id": 1, "title": "cut', "not valid JSON (Unterminated string starting at column 24)"),
        (b'{"doc_id": 1,', "not valid JSON (Expecting property name enclosed in double quotes at column 14)"),
    ],
)
def test_json_error_reads_as_one_phrase(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_line(raw)
    assert str(err.value) == reason
