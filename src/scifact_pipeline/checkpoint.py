"""Atomic training checkpoints: model, optimizer, scheduler, RNG states and position.

Weights are stored with ``save_pretrained`` (safetensors) and the rest with ``torch.save``;
loading uses ``weights_only=True`` so a checkpoint can never run pickled code.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .util import DataError, atomic_dir, one_line, restore_interrupted_swap

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
    """The JSON state of a checkpoint, or None when there is no complete checkpoint.

    An unreadable state (not JSON, not an object) raises :class:`DataError` naming the file.
    A checkpoint that a kill left only as ``<path>.old`` (mid-replacement) is restored first.
    """
    restore_interrupted_swap(path)
    f = path / STATE_FILE
    if not f.is_file():
        return None
    try:
        state = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{f}: corrupt checkpoint state ({one_line(exc)}); delete {path} to start over") from None
    if not isinstance(state, dict):
        raise DataError(f"{f}: corrupt checkpoint state (not a JSON object); delete {path} to start over")
    return state


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG states in place; return the JSON state.

    Nothing in a checkpoint can run code: weights are safetensors and ``trainer.pt`` is read with
    ``torch.load(weights_only=True)``, which refuses any pickled object other than tensors and
    plain containers. A refused, truncated or mismatching file raises :class:`DataError` naming it.
    """
    state = read_state(path)
    if state is None:
        raise FileNotFoundError(f"{path}: no checkpoint state")
    weights_file = path / "model.safetensors"
    try:
        weights = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"{weights_file}: corrupt checkpoint weights ({one_line(exc)}); delete {path} to start over") from None
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # save_pretrained drops tied weights; anything else missing means a broken checkpoint
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or (set(missing) - tied):
        raise DataError(f"{path}: checkpoint weights do not match the model ({len(missing)} missing)")
    trainer_file = path / TRAINER_FILE
    try:
        trainer = torch.load(trainer_file, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{trainer_file}: refused: holds pickled objects other than tensors ({one_line(exc)})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise DataError(f"{trainer_file}: corrupt checkpoint ({one_line(exc)}); delete {path} to start over") from None
    try:
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        torch.set_rng_state(trainer["torch_rng"])
        py = random.getstate()
        random.setstate((py[0], tuple(trainer["python_rng"]), py[2]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"{trainer_file}: checkpoint does not match the optimizer ({one_line(exc)})") from None
    return state
