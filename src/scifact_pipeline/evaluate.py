"""Prediction and evaluation stage: ``Predict`` and ``EvaluateAll``.

``Predict`` verifies a claims file (a split of the downloaded data or any file of
``{"id", "claim"}`` lines) with the models trained by ``TrainAll``. ``EvaluateAll`` scores the
dev predictions with the official metrics, adds the stage metrics (retrieval, rationale selection
and label prediction on gold abstracts) and writes a report with plots.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import luigi
import numpy as np
from luigi.util import inherits

from .config import scifact
from .download import DownloadData, source_fingerprint
from .examples import LABEL_NAMES
from .metrics import rationale_metrics
from .predict import Verifier, load_corpus, predict_file, write_jsonl
from .preprocess import partition_dirs
from .report import TrainAll
from .retrieval import RETRIEVERS, retrieval_metrics
from .scorer import METRIC_NAMES, read_jsonl, score
from .training import evaluate, set_threads
from .util import atomic_dir, signature, write_json

# DESIGN.md §5: dev, open setting (TF-IDF k=3), F1 × 100
REFERENCE = [
    ("VeriSci RoBERTa-large, SciFact only", 32.4, 41.3),
    ("VeriSci released (label model pre-trained on FEVER)", 42.7, 48.6),
    ("VeriSci with gold abstracts", 60.8, 72.5),
    ("VerT5erini (T5-3B)", 58.2, 62.4),
]
THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]


def claims_path(data_dir: Path, claims: str) -> Path:
    """A split name (train, dev, test) of the downloaded data, or a path to a claims file."""
    if claims in ("train", "dev", "test"):
        return data_dir / f"claims_{claims}.jsonl"
    return Path(claims)


@inherits(TrainAll)
class Predict(luigi.Task):
    """Verify the claims of a split or file with the trained models (leaderboard format)."""

    claims = luigi.Parameter(default="dev", description="train, dev, test, or a path to a claims JSON-lines file")
    retrieval = luigi.ChoiceParameter(default="tfidf", choices=RETRIEVERS, description="tfidf, bm25 or oracle")
    k = luigi.IntParameter(default=3, description="Abstracts retrieved per claim")
    threshold = luigi.FloatParameter(default=0.5, description="Keep sentences with P(rationale) >= threshold")
    max_length = luigi.IntParameter(default=256, significant=False)
    batch_size = luigi.IntParameter(default=64, significant=False)

    def requires(self) -> dict[str, luigi.Task]:
        return {"models": self.clone(TrainAll), "data": DownloadData(source=self.data_source)}

    def _claims_file(self) -> Path:
        return claims_path(Path(self.input()["data"].path), self.claims)

    def output(self) -> luigi.LocalTarget:
        sig = signature(
            {
                "models": self.input()["models"]["json"].path,
                "claims": source_fingerprint(str(self._claims_file())),
                "retrieval": self.retrieval,
                "k": self.k,
                "threshold": self.threshold,
            }
        )
        name = self.claims if self.claims in ("train", "dev", "test") else Path(self.claims).stem
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "predictions" / f"{name}-{sig}"))

    def run(self) -> None:
        set_threads(scifact().threads)
        report = json.loads(Path(self.input()["models"]["json"].path).read_text(encoding="utf-8"))
        t0 = time.time()
        verifier = Verifier.load(report["models_dir"]["rationale"], report["models_dir"]["label"], self.max_length, batch_size=self.batch_size)
        load_seconds = time.time() - t0
        self.set_status_message(f"Verifying {self._claims_file()}")
        preds, raw = predict_file(
            self._claims_file(),
            Path(self.input()["data"].path) / "corpus.jsonl",
            verifier,
            self.retrieval,
            self.k,
            self.threshold,
        )
        info: dict[str, Any] = {
            "claims": str(self._claims_file()),
            "n_claims": len(preds),
            "retrieval": self.retrieval,
            "k": self.k,
            "threshold": self.threshold,
            "model_load_seconds": round(load_seconds, 2),
            "index_seconds": raw["index_seconds"],
            "predict_seconds": raw["predict_seconds"],
        }
        if any(raw["gold_docs"]):
            info["retrieval_metrics"] = retrieval_metrics(raw["retrieved"], raw["gold_docs"])
        with atomic_dir(self.output().path) as tmp:
            write_jsonl(tmp / "predictions.jsonl", preds)
            write_json(tmp / "info.json", info)


def gold_sentence_rows(verifier: Verifier, gold: list[dict[str, Any]], corpus: dict[int, dict[str, Any]]) -> list[tuple[int, int, int, float, list[list[int]]]]:
    """``(claim, doc, sentence, P(rationale), gold sets)`` for every sentence of every gold abstract."""
    pairs = [(c, int(d), sets) for c in gold for d, sets in (c.get("evidence") or {}).items()]
    scores = verifier.sentence_scores([c["claim"] for c, _, _ in pairs], [[corpus[d]["abstract"]] for _, d, _ in pairs], progress=False)
    rows = [
        (c["id"], d, i, float(p), [s["sentences"] for s in sets])
        for (c, d, sets), sc in zip(pairs, scores)
        for i, p in enumerate(sc[0])
    ]
    return rows


def plot_report(out: Path, trainings: dict[str, Any], confusion: list[list[int]], sweep: list[dict[str, float]], threshold: float) -> list[str]:
    """Write the report's PNG plots; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        names.append(name)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (kind, t) in zip(axes, trainings.items()):
        epochs = [h["epoch"] for h in t["history"]]
        ax.plot(epochs, [h["train_loss"] for h in t["history"]], "o-", label="train loss")
        ax.plot(epochs, [h["dev_metric"] for h in t["history"]], "s-", label="dev " + ("sentence F1" if kind == "rationale" else "macro-F1"))
        ax.set_title(f"{kind} model")
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs)
        ax.legend()
        ax.grid(alpha=0.3)
    save(fig, "training_curves.png")

    fig, ax = plt.subplots(figsize=(5, 4.4))
    m = np.array(confusion)
    ax.imshow(m, cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(LABEL_NAMES)), LABEL_NAMES)
    ax.set_yticks(range(len(LABEL_NAMES)), LABEL_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Label prediction on dev (gold abstracts)")
    save(fig, "label_confusion.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("precision", "recall", "f1"):
        ax.plot(THRESHOLDS, [s[key] for s in sweep], "o-", label=key, markersize=3)
    ax.axvline(threshold, color="grey", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("P(rationale) threshold")
    ax.set_title("Rationale selection on dev gold abstracts")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "rationale_threshold_sweep.png")
    return names


def evaluation_markdown(ev: dict[str, Any]) -> str:
    """The readable report."""
    m = ev["official"]
    lines = [
        f"# Evaluation on {ev['claims']} ({ev['retrieval']}, k={ev['k']}, threshold {ev['threshold']})",
        "",
        "## Official metrics",
        "",
        "| metric | precision | recall | F1 |",
        "|---|---|---|---|",
    ]
    for name in METRIC_NAMES:
        lines.append(f"| {name} | {m[name + '_precision']:.4f} | {m[name + '_recall']:.4f} | {m[name + '_f1']:.4f} |")
    lines += [
        "",
        "## Against published systems (dev, F1 × 100)",
        "",
        "| system | Sentence Selection+Label | Abstract Label+Rationale |",
        "|---|---|---|",
        f"| **this run** ({ev['retrieval']}, k={ev['k']}) | **{100 * m['sentence_label_f1']:.1f}** | **{100 * m['abstract_rationalized_f1']:.1f}** |",
    ]
    lines += [f"| {name} | {a} | {b} |" for name, a, b in REFERENCE]
    r = ev.get("retrieval_metrics")
    lines += ["", "## Stage metrics", ""]
    if r:
        lines.append(f"- retrieval: hit-one {r['hit_one']:.4f}, recall@{ev['k']} {r['recall']:.4f} ({r['claims']} claims with evidence)")
    rs = ev["rationale_selection"]
    lines.append(f"- rationale selection on gold abstracts (threshold {rs['threshold']}): P {rs['precision']:.4f} R {rs['recall']:.4f} F1 {rs['f1']:.4f}")
    lp = ev["label_prediction"]
    lines.append(f"- label prediction on gold abstracts (incl. NEI): accuracy {lp['accuracy']:.4f}, macro-F1 {lp['macro_f1']:.4f}")
    lines += ["", "Confusion matrix (rows gold, columns predicted):", "", "| | " + " | ".join(LABEL_NAMES) + " |", "|---|---|---|---|"]
    for name, row in zip(LABEL_NAMES, lp["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(map(str, row)) + " |")
    lines += ["", f"Prediction: {ev['n_claims']} claims in {ev['predict_seconds']:.1f} s after loading the models.", ""]
    lines += [f"![{p}]({p})" for p in ev["plots"]]
    return "\n".join(lines) + "\n"


@inherits(Predict)
class EvaluateAll(luigi.Task):
    """Train (if needed), predict a labelled split and write the evaluation report with plots."""

    def requires(self) -> dict[str, luigi.Task]:
        return {"models": self.clone(TrainAll), "predictions": self.clone(Predict), "data": DownloadData(source=self.data_source)}

    def output(self) -> luigi.LocalTarget:
        name = Path(self.input()["predictions"].path).name
        return luigi.LocalTarget(str(Path(scifact().output_dir) / "evaluations" / name))

    def run(self) -> None:
        set_threads(scifact().threads)
        data = Path(self.input()["data"].path)
        gold_path = claims_path(data, self.claims)
        gold = read_jsonl(gold_path)
        if not any("evidence" in c for c in gold):
            raise ValueError(f"{gold_path}: claims have no evidence; evaluation needs a labelled split")
        pred_dir = Path(self.input()["predictions"].path)
        preds = read_jsonl(pred_dir / "predictions.jsonl")
        info = json.loads((pred_dir / "info.json").read_text(encoding="utf-8"))
        report = json.loads(Path(self.input()["models"]["json"].path).read_text(encoding="utf-8"))
        trainings = report["models"]
        verifier = Verifier.load(report["models_dir"]["rationale"], report["models_dir"]["label"], self.max_length, batch_size=self.batch_size)
        corpus = load_corpus(data / "corpus.jsonl")
        self.set_status_message("Stage metrics on gold abstracts")
        rows = gold_sentence_rows(verifier, gold, corpus)
        sweep = [rationale_metrics(rows, t) for t in THRESHOLDS]
        examples_dir = Path(json.loads((Path(report["models_dir"]["label"]) / "training.json").read_text())["params"]["examples"])
        label_dev = evaluate("label", verifier.label_model, verifier.label_encoder, partition_dirs(examples_dir, "label", "dev", self.partitions), self.threshold)
        ev: dict[str, Any] = {
            **info,
            "official": score(gold, preds),
            "rationale_selection": rationale_metrics(rows, self.threshold),
            "rationale_threshold_sweep": sweep,
            "label_prediction": label_dev,
            "training": trainings,
        }
        with atomic_dir(self.output().path) as tmp:
            ev["plots"] = plot_report(tmp, trainings, label_dev["confusion_matrix"], sweep, self.threshold)
            (tmp / "evaluation.md").write_text(evaluation_markdown(ev), encoding="utf-8")
            write_json(tmp / "evaluation.json", ev)
