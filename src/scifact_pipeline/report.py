"""Final stage: ``TrainAll`` trains both models and writes the training report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi

from .config import scifact
from .download import DEFAULT_DATA_SOURCE, DEFAULT_MODEL
from .records import ON_BAD_RECORD
from .training import TrainLabel, TrainRationale
from .util import atomic_file, signature, write_json


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def build_report(trainings: dict[str, dict[str, Any]], preprocess_manifest: dict[str, Any]) -> dict[str, Any]:
    """The TrainAll report (JSON-ready) from each model's ``training.json`` and the example manifest."""
    models = {}
    for kind, t in trainings.items():
        best = t["best_dev"]
        dev = {k: best[k] for k in ("precision", "recall", "f1") if k in best}
        dev.update({k: best[k] for k in ("accuracy", "macro_f1", "confusion_matrix", "labels") if k in best})
        models[kind] = {
            "dev": dev,
            "metric": best["metric"],
            "best_epoch": t["best_epoch"],
            "epochs": len(t["history"]),
            "history": [
                {"epoch": h["epoch"], "train_loss": h["train_loss"], "dev_metric": h["dev"]["metric"]} for h in t["history"]
            ],
            "examples": t["examples"],
            "partitions": t["partitions"],
            "wall_seconds": t["wall_seconds"],
            "train_seconds": t["train_seconds"],
            "examples_per_second": t["examples_per_second"],
            "resumed": t.get("resumed", 0),
            "settings": t["settings"],
        }
    return {
        "models": models,
        "preprocess": {
            "seconds": preprocess_manifest.get("seconds"),
            "partitions": preprocess_manifest.get("partitions"),
            "skipped": preprocess_manifest.get("skipped"),
        },
    }


def report_markdown(report: dict[str, Any]) -> str:
    """A readable table of the report."""
    lines = [
        "# TrainAll report",
        "",
        "| model | dev metric | value | best epoch / epochs | train examples | dev examples | partitions | wall s | examples/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"rationale": "sentence F1 (gold abstracts)", "label": "macro-F1"}
    for kind, m in report["models"].items():
        lines.append(
            f"| {kind} | {names.get(kind, 'metric')} | {_fmt(m['metric'])} | {m['best_epoch']} / {m['epochs']} "
            f"| {m['examples']['train']['total']} | {m['examples']['dev']['total']} | {m['partitions']} "
            f"| {m['wall_seconds']:.0f} | {m['examples_per_second']:.1f} |"
        )
    lines += ["", "## Dev metrics of the best epoch", ""]
    for kind, m in report["models"].items():
        shown = {k: v for k, v in m["dev"].items() if not isinstance(v, list)}
        lines.append(f"- **{kind}**: " + ", ".join(f"{k} {_fmt(v)}" for k, v in shown.items()))
    lines += ["", "## Per epoch", "", "| model | epoch | train loss | dev metric |", "|---|---|---|---|"]
    for kind, m in report["models"].items():
        for h in m["history"]:
            lines.append(f"| {kind} | {h['epoch']} | {_fmt(h['train_loss'])} | {_fmt(h['dev_metric'])} |")
    skipped = report["preprocess"].get("skipped") or {}
    lines += ["", f"Skipped input records: {skipped.get('count', 0)}"]
    lines += [f"- {s}" for s in skipped.get("first", [])]
    return "\n".join(lines) + "\n"


class TrainAll(luigi.Task):
    """The main job: download, preprocess, train both models and write the report."""

    data_source = luigi.Parameter(default=DEFAULT_DATA_SOURCE, description="s3:// URL or local path of data.tar.gz")
    rationale_model = luigi.Parameter(default=DEFAULT_MODEL, description="Pretrained model of the rationale selector.")
    label_model = luigi.Parameter(default=DEFAULT_MODEL, description="Pretrained model of the label predictor.")
    partitions = luigi.IntParameter(default=10000, description="Partitions of each example set.")
    max_claims = luigi.IntParameter(default=0, description="Use only the first N claims of each split (0: all).")
    on_bad_record = luigi.ChoiceParameter(default="error", choices=ON_BAD_RECORD)

    def requires(self) -> dict[str, luigi.Task]:
        common = dict(
            data_source=self.data_source,
            partitions=self.partitions,
            max_claims=self.max_claims,
            on_bad_record=self.on_bad_record,
        )
        return {
            "rationale": TrainRationale(model_source=self.rationale_model, **common),
            "label": TrainLabel(model_source=self.label_model, **common),
        }

    def output(self) -> dict[str, luigi.LocalTarget]:
        sig = signature({k: v.path for k, v in self.input().items()})
        base = Path(scifact().output_dir) / "reports" / f"train_all-{sig}"
        return {"json": luigi.LocalTarget(f"{base}.json"), "markdown": luigi.LocalTarget(f"{base}.md")}

    def run(self) -> None:
        trainings = {
            kind: json.loads((Path(t.path) / "training.json").read_text(encoding="utf-8"))
            for kind, t in self.input().items()
        }
        manifest_path = Path(trainings["rationale"]["params"]["examples"]) / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        report = build_report(trainings, manifest)
        report["models_dir"] = {kind: t.path for kind, t in self.input().items()}
        with atomic_file(self.output()["markdown"].path, encoding="utf-8") as fh:
            fh.write(report_markdown(report))
        write_json(self.output()["json"].path, report)  # written last: the completion marker
        self.set_status_message(report_markdown(report))
