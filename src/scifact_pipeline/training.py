"""Training stage: partition-by-partition fine-tuning of the two classifiers.

The loop is backbone-agnostic: any ``AutoModelForSequenceClassification`` checkpoint works; the
new classification head is told apart from the pretrained encoder through ``model.base_model``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import luigi
import numpy as np
import torch
from tqdm.auto import tqdm

from .batching import (
    epoch_rng,
    partition_order,
    pool_partitions,
    shuffled_batches,
    sorted_batches,
    stream_partitions,
)
from .checkpoint import load_checkpoint, read_state, save_checkpoint
from .config import scifact
from .download import DEFAULT_DATA_SOURCE, DEFAULT_MODEL, DownloadModel, check_model_folder
from .metrics import classification_metrics, rationale_metrics
from .preprocess import Preprocess, partition_dirs, read_partition_table
from .records import ON_BAD_RECORD
from .tokenization import ENCODERS, PairEncoder
from .util import DataError, atomic_dir, one_line, signature, write_json

log = logging.getLogger("luigi-interface")

MODEL_FILES_IGNORE = ("trainer.pt", "state.json")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that changes what a training run produces."""

    epochs: int = 3
    batch_size: int = 16
    lr_encoder: float = 1e-4
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 256
    claim_first: bool = True
    buffer_size: int = 2048
    max_grad_norm: float = 1.0
    threshold: float = 0.5
    seed: int = 13


# --------------------------------------------------------------------------- model helpers


def set_threads(threads: int) -> None:
    """Fix torch's thread count (call before any tensor work)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads > 0:
        torch.set_num_threads(threads)


def quiet_transformers() -> None:
    """Silence transformers' per-load reports and progress bars."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_model(path: str | Path, label_names: tuple[str, ...], seed: int) -> torch.nn.Module:
    """A sequence classifier from a ``save_pretrained`` folder; a new head is seeded by ``seed``.

    The folder is checked first (:func:`~scifact_pipeline.download.check_model_folder`): a
    missing config or weights file or a corrupt safetensors file raises a one-line
    :class:`~scifact_pipeline.util.DataError` naming the folder or file. ``pytorch_model.bin``
    weights are unpickled by transformers with ``torch.load(weights_only=True)``: a pickle that
    holds anything but tensors is refused, never run, and reported the same way.
    """
    from transformers import AutoModelForSequenceClassification

    folder = check_model_folder(path, tokenizer=False)
    quiet_transformers()
    torch.manual_seed(seed)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(folder),
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)},
            ignore_mismatched_sizes=True,
        )
    except pickle.UnpicklingError as exc:
        raise DataError(
            f"model folder {folder}: refused to unpickle pytorch_model*.bin: it holds more than tensors "
            f"(torch.load weights_only=True: {one_line(exc)})"
        ) from None
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise DataError(f"model folder {folder}: cannot load the model ({one_line(exc)})") from None


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved beside a model (the folder is checked first, see :func:`load_model`)."""
    from transformers import AutoTokenizer

    folder = check_model_folder(path, weights=False)
    quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise DataError(f"model folder {folder}: cannot load the tokenizer ({one_line(exc)})") from None


def param_groups(model: torch.nn.Module, lr_encoder: float, lr_head: float, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups: pretrained encoder vs new head, with and without weight decay."""
    encoder_ids = {id(p) for p in model.base_model.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        groups.setdefault((id(p) in encoder_ids, no_decay), []).append(p)
    return [
        {"params": ps, "lr": lr_encoder if enc else lr_head, "weight_decay": 0.0 if nd else weight_decay}
        for (enc, nd), ps in sorted(groups.items())
    ]


def build_optimizer(model: torch.nn.Module, s: TrainSettings, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over :func:`param_groups` and a linear warm-up / linear decay schedule."""
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(param_groups(model, s.lr_encoder, s.lr_head, s.weight_decay))
    warmup = int(round(s.warmup_ratio * total_steps))
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, max(total_steps, 1))


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    max_grad_norm: float,
) -> float:
    """One optimisation step on one padded batch; returns the loss."""
    model.train()
    loss = model(**batch).loss
    loss.backward()
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def predict_proba(
    model: torch.nn.Module, encoder: PairEncoder, items: Iterator[tuple[dict[str, Any], Any]], batch_size: int = 64
) -> Iterator[tuple[Any, np.ndarray]]:
    """Yield ``(meta, class probabilities)`` for ``(features, meta)`` items, batched by length."""
    model.eval()
    with torch.inference_mode():
        for batch in sorted_batches(items, batch_size, batch_size * 32, length=lambda it: len(it[0]["input_ids"])):
            feats = [{k: v for k, v in f.items() if k != "labels"} for f, _ in batch]
            probs = torch.softmax(model(**encoder.collate(feats)).logits.float(), dim=-1).numpy()
            for (_, meta), p in zip(batch, probs):
                yield meta, p


def _dev_items(kind: str, encoder: PairEncoder, paths: list[Path]) -> Iterator[tuple[dict[str, Any], Any]]:
    for df in pool_partitions(paths, range(len(paths)), read_partition_table):
        feats = encoder.encode_frame(df)
        if kind == "rationale":
            metas = zip(df.claim_id, df.doc_id, df.sent_idx, df.gold_sets, df.label)
        else:
            metas = zip(df.label)
        yield from zip(feats, metas)


def evaluate(kind: str, model: torch.nn.Module, encoder: PairEncoder, dev_paths: list[Path], threshold: float) -> dict[str, Any]:
    """Dev metrics of one model: rationale sentence-level F1 on gold abstracts, or label macro-F1."""
    preds = list(predict_proba(model, encoder, _dev_items(kind, encoder, dev_paths)))
    if kind == "rationale":
        rows = [(c, d, i, float(p[1]), json.loads(g)) for (c, d, i, g, _), p in preds]
        out: dict[str, Any] = rationale_metrics(rows, threshold)
        out["metric"] = out["f1"]
        return out
    y_true = [int(m[0]) for m, _ in preds]
    y_pred = [int(np.argmax(p)) for _, p in preds]
    out = classification_metrics(y_true, y_pred, encoder.label_names)
    out["metric"] = out["macro_f1"]
    return out


# --------------------------------------------------------------------------- the loop


def epoch_batches(
    encoder: PairEncoder, train_paths: list[Path], s: TrainSettings, epoch: int
) -> Iterator[list[dict[str, Any]]]:
    """The batches of one epoch, a pure function of the seed and the epoch number."""
    order = partition_order(len(train_paths), s.seed, epoch)
    items = stream_partitions(train_paths, order, read_partition_table, encoder.encode_frame)
    return shuffled_batches(items, s.batch_size, s.buffer_size, epoch_rng(s.seed, epoch))


def train_model(
    kind: str,
    pretrained: Path,
    examples_dir: Path,
    partitions: int,
    n_train: int,
    work_dir: Path,
    s: TrainSettings,
    checkpoint_every: int = 200,
    status: Callable[[str, float], None] | None = None,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Train ``kind`` ("rationale" or "label"); resume from ``work_dir/checkpoint`` if present.

    The best epoch by the dev metric is saved (``save_pretrained``, model and tokenizer) to
    ``work_dir/best``. Returns the run summary (history, best metrics, speed).
    ``stop_after_steps`` ends the run early (for tests of resumption).
    """
    torch.manual_seed(s.seed)
    tokenizer = load_tokenizer(pretrained)
    encoder = ENCODERS[kind](tokenizer, max_length=s.max_length, claim_first=s.claim_first)
    model = load_model(pretrained, encoder.label_names, s.seed)
    train_paths = partition_dirs(examples_dir, kind, "train", partitions)
    dev_paths = partition_dirs(examples_dir, kind, "dev", partitions)
    steps_per_epoch = math.ceil(n_train / s.batch_size)
    total_steps = steps_per_epoch * s.epochs
    optimizer, scheduler = build_optimizer(model, s, total_steps)

    run_sig = signature({"kind": kind, "settings": asdict(s), "examples": str(examples_dir), "model": str(pretrained)})
    ckpt_dir, best_dir = work_dir / "checkpoint", work_dir / "best"
    state: dict[str, Any] = {
        "signature": run_sig,
        "epoch": 0,
        "step": 0,
        "global_step": 0,
        "history": [],
        "best": None,
        "train_seconds": 0.0,
        "examples_seen": 0,
        "loss_sum": 0.0,
        "resumed": 0,
    }
    previous = read_state(ckpt_dir)
    if previous is not None and previous.get("signature") == run_sig:
        state = load_checkpoint(ckpt_dir, model, optimizer, scheduler)
        state["resumed"] = state.get("resumed", 0) + 1
        log.info("%s: resuming at epoch %d step %d", kind, state["epoch"] + 1, state["step"])
    elif previous is not None:
        shutil.rmtree(ckpt_dir, ignore_errors=True)

    run_start, wall_before = time.time(), state.get("wall_seconds", 0.0)

    def checkpoint() -> None:
        state["wall_seconds"] = wall_before + time.time() - run_start
        save_checkpoint(ckpt_dir, model, optimizer, scheduler, state)

    steps_this_run = 0
    while state["epoch"] < s.epochs:
        epoch = state["epoch"]
        t_epoch = time.time()
        bar = tqdm(total=steps_per_epoch, initial=state["step"], desc=f"{kind} epoch {epoch + 1}/{s.epochs}", unit="batch", mininterval=5, disable=False)
        seen_at_start = state["examples_seen"]
        for i, batch in enumerate(epoch_batches(encoder, train_paths, s, epoch)):
            if i < state["step"]:
                continue  # already trained before the resume
            t0 = time.time()
            loss = train_step(model, encoder.collate(batch), optimizer, scheduler, s.max_grad_norm)
            state["train_seconds"] += time.time() - t0
            state["step"] += 1
            state["global_step"] += 1
            state["examples_seen"] += len(batch)
            state["loss_sum"] += loss
            steps_this_run += 1
            bar.update(1)
            rate = state["examples_seen"] / max(state["train_seconds"], 1e-9)
            bar.set_postfix(loss=f"{loss:.3f}", ex_s=f"{rate:.1f}", refresh=False)
            if status and state["step"] % 10 == 0:
                status(
                    f"{kind}: epoch {epoch + 1}/{s.epochs} step {state['step']}/{steps_per_epoch} "
                    f"loss {state['loss_sum'] / state['step']:.4f} {rate:.1f} examples/s",
                    100.0 * state["global_step"] / total_steps,
                )
            if checkpoint_every and state["step"] % checkpoint_every == 0:
                checkpoint()
            if stop_after_steps is not None and steps_this_run >= stop_after_steps:
                bar.close()
                checkpoint()
                return {"stopped": True, "state": state}
        bar.close()
        t_eval = time.time()
        metrics = evaluate(kind, model, encoder, dev_paths, s.threshold)
        entry = {
            "epoch": epoch + 1,
            "train_loss": state["loss_sum"] / max(state["step"], 1),
            "train_examples": state["examples_seen"] - seen_at_start,
            "dev": metrics,
            "eval_seconds": round(time.time() - t_eval, 2),
            "epoch_seconds": round(time.time() - t_epoch, 2),
        }
        state["history"].append(entry)
        log.info("%s epoch %d: train loss %.4f, dev metric %.4f", kind, epoch + 1, entry["train_loss"], metrics["metric"])
        if state["best"] is None or metrics["metric"] > state["best"]["dev"]["metric"]:
            with atomic_dir(best_dir) as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
            state["best"] = entry
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0)
        checkpoint()
    return {
        "stopped": False,
        "kind": kind,
        "settings": asdict(s),
        "history": state["history"],
        "best_epoch": state["best"]["epoch"],
        "best_dev": state["best"]["dev"],
        "train_examples_per_epoch": n_train,
        "steps": state["global_step"],
        "train_seconds": round(state["train_seconds"], 2),
        "wall_seconds": round(state["wall_seconds"], 2),
        "examples_per_second": round(state["examples_seen"] / max(state["train_seconds"], 1e-9), 2),
        "resumed": state.get("resumed", 0),
    }


# --------------------------------------------------------------------------- luigi tasks


class TrainModel(luigi.Task):
    """Shared parameters of the two training tasks (use :class:`TrainRationale` / :class:`TrainLabel`)."""

    kind: str = ""
    data_source = luigi.Parameter(default=DEFAULT_DATA_SOURCE)
    partitions = luigi.IntParameter(default=10000)
    max_claims = luigi.IntParameter(default=0)
    on_bad_record = luigi.ChoiceParameter(default="error", choices=ON_BAD_RECORD)
    model_source = luigi.Parameter(default=DEFAULT_MODEL, description="Pretrained model: s3:// prefix or .tar.gz, local dir, or 'minilm'.")
    epochs = luigi.IntParameter(default=3, description="Passes over the training examples.")
    batch_size = luigi.IntParameter(default=16)
    lr_encoder = luigi.FloatParameter(default=1e-4)
    lr_head = luigi.FloatParameter(default=1e-3)
    weight_decay = luigi.FloatParameter(default=0.01)
    warmup_ratio = luigi.FloatParameter(default=0.06)
    max_length = luigi.IntParameter(default=256)
    claim_first = luigi.BoolParameter(default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING)
    buffer_size = luigi.IntParameter(default=2048, description="Shuffle buffer (examples).")
    max_grad_norm = luigi.FloatParameter(default=1.0)
    threshold = luigi.FloatParameter(default=0.5, description="Rationale probability threshold for dev metrics.")
    checkpoint_every = luigi.IntParameter(default=100, significant=False, description="Checkpoint every N steps.")

    def requires(self) -> dict[str, luigi.Task]:
        return {
            "examples": Preprocess(
                data_source=self.data_source,
                partitions=self.partitions,
                max_claims=self.max_claims,
                on_bad_record=self.on_bad_record,
            ),
            "model": DownloadModel(source=self.model_source),
        }

    def settings(self) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr_encoder=self.lr_encoder,
            lr_head=self.lr_head,
            weight_decay=self.weight_decay,
            warmup_ratio=self.warmup_ratio,
            max_length=self.max_length,
            claim_first=self.claim_first,
            buffer_size=self.buffer_size,
            max_grad_norm=self.max_grad_norm,
            threshold=self.threshold,
            seed=scifact().seed,
        )

    def signature_params(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "examples": self.input()["examples"].path,
            "model": self.input()["model"].path,
            "settings": asdict(self.settings()),
            "threads": scifact().threads,
        }

    def output(self) -> luigi.LocalTarget:
        sig = signature(self.signature_params())
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "models" / f"{self.kind}-{sig}"))

    def complete(self) -> bool:
        """Done once the model folder exists; a ``.work`` folder a kill left beside it is removed."""
        done = super().complete()
        if done:
            out = Path(self.output().path)
            shutil.rmtree(out.with_name(out.name + ".work"), ignore_errors=True)
        return done

    def run(self) -> None:
        set_threads(scifact().threads)
        out = Path(self.output().path)
        work = out.with_name(out.name + ".work")
        examples_dir = Path(self.input()["examples"].path)
        manifest = json.loads((examples_dir / "manifest.json").read_text(encoding="utf-8"))
        n_train = manifest["examples"][self.kind]["train"]["total"]
        if n_train == 0:
            raise ValueError(f"{examples_dir}: no {self.kind} training examples")

        def status(msg: str, pct: float) -> None:
            self.set_status_message(msg)
            self.set_progress_percentage(round(pct, 1))

        summary = train_model(
            self.kind,
            Path(self.input()["model"].path),
            examples_dir,
            self.partitions,
            n_train,
            work,
            self.settings(),
            checkpoint_every=self.checkpoint_every,
            status=status,
        )
        summary.update(
            params=self.signature_params(),
            examples=manifest["examples"][self.kind],
            partitions=self.partitions,
        )
        with atomic_dir(out) as tmp:
            for f in (work / "best").iterdir():
                shutil.copy2(f, tmp / f.name)
            write_json(tmp / "training.json", summary)
        shutil.rmtree(work, ignore_errors=True)


class TrainRationale(TrainModel):
    """Fine-tune the rationale-selection model: (claim, sentence) → evidence or not."""

    kind = "rationale"
    epochs = luigi.IntParameter(default=2, description="Passes over the training examples.")


class TrainLabel(TrainModel):
    """Fine-tune the label-prediction model: (claim, evidence) → CONTRADICT / NOINFO / SUPPORT."""

    kind = "label"
    epochs = luigi.IntParameter(default=5, description="Passes over the training examples.")
