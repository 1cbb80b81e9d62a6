"""Checkpoint files, all written atomically and read with ``weights_only=True``.

``last.pt``: everything needed to continue bit-for-bit (model, loss state such as a learned
temperature or a queue, optimizer, scheduler, GradScaler, global RNG states, step, metrics so
far, val evaluations, best epoch) plus a fingerprint of the config and data it belongs to; a
fingerprint mismatch means "a different run": start fresh.
``best.pt``: the model state of the best val epoch so far.
``checkpoint.pt``: the final model (best or last) with the config it was trained with; its
presence marks a finished training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "fingerprint",
    "load_checkpoint",
    "load_resume",
    "model_state",
    "save_resume",
]

CHECKPOINT_FORMAT = 1


def fingerprint(*parts: Any) -> str:
    """SHA-256 of JSON-serialised ``parts`` (bytes/str/paths of data files hashed by content)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()


def _load(path: Path) -> dict[str, Any]:
    try:
        obj = load_torch(path)
    except Exception as exc:  # a foreign or damaged file: say which and why
        raise SciclrError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise SciclrError(f"{path}: not a sciclr checkpoint (format {CHECKPOINT_FORMAT})")
    return obj


def save_resume(path: Path, state: Mapping[str, Any]) -> None:
    save_torch(path, {"format": CHECKPOINT_FORMAT, **state})


def load_resume(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The resume state at ``path``, or None when absent or from another config/data."""
    if not path.exists():
        return None
    state = _load(path)
    if state.get("fingerprint") != expected_fingerprint:
        return None
    return state


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A final ``checkpoint.pt`` (keys ``model``, ``cfg``, ``epoch``, ``step``, ``selection``)."""
    path = Path(path)
    if not path.exists():
        raise SciclrError(f"{path}: checkpoint not found")
    state = _load(path)
    if "model" not in state or "cfg" not in state:
        raise SciclrError(f"{path}: checkpoint lacks the model state or its config")
    return state


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the state dict (safe to keep while training continues)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
