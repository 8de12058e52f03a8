"""Atomic training checkpoints: model, optimizer, scheduler, RNG states and position.

Weights are stored with ``save_pretrained`` (safetensors) and the rest with ``torch.save``;
loading uses ``weights_only=True`` so a checkpoint can never run pickled code.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .util import atomic_dir

STATE_FILE = "state.json"
TRAINER_FILE = "trainer.pt"


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    """Write a checkpoint folder atomically (a killed write leaves the previous one intact)."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": list(random.getstate()[1]),
            },
            tmp / TRAINER_FILE,
        )
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")


def read_state(path: Path) -> dict[str, Any] | None:
    """The JSON state of a checkpoint, or None when there is no complete checkpoint."""
    f = path / STATE_FILE
    if not f.is_file():
        return None
    return json.loads(f.read_text(encoding="utf-8"))


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states in place; return the JSON state."""
    state = read_state(path)
    if state is None:
        raise FileNotFoundError(f"{path}: no checkpoint state")
    weights = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # save_pretrained drops tied weights; anything else missing means a broken checkpoint
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or (set(missing) - tied):
        raise ValueError(f"{path}: checkpoint weights do not match the model ({len(missing)} missing)")
    trainer = torch.load(path / TRAINER_FILE, weights_only=True)
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["torch_rng"])
    py = random.getstate()
    random.setstate((py[0], tuple(trainer["python_rng"]), py[2]))
    return state
