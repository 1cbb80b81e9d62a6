"""Row operations on a crystal payload: take rows, stack shards, element fractions.

A payload stores every crystal's atoms and edges in flat arrays with offsets (``atom_ptr``,
``edge_ptr``; layout in :mod:`sciclr.data.crystals`); taking rows is a vectorised segment gather.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sciclr.data.xrd import MAX_Z
from sciclr.ragged import ragged_positions

__all__ = [
    "ATOM_KEYS",
    "EDGE_KEYS",
    "LIST_KEYS",
    "ROW_KEYS",
    "composition",
    "concat",
    "take",
    "take_atoms",
]

ATOM_KEYS = ("z", "pos")
EDGE_KEYS = ("edge_vec", "edge_dist", "edge_image")
ROW_KEYS = ("lattice", "composition", "xrd")
LIST_KEYS = ("ids", "sources")


def take_atoms(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New offsets and flat atom indices of structures ``rows``."""
    counts = ptr[rows + 1] - ptr[rows]
    return (
        np.r_[0, np.cumsum(counts)].astype(np.int64),
        ragged_positions(ptr[rows], counts),
    )


def composition(z: torch.Tensor, atom_ptr: torch.Tensor) -> torch.Tensor:
    """Element fractions (n, 118), column ``Z - 1``, from flat atomic numbers."""
    n = len(atom_ptr) - 1
    counts = torch.diff(atom_ptr)
    graph = torch.repeat_interleave(torch.arange(n), counts)
    out = torch.zeros(n * MAX_Z, dtype=torch.float64)
    out.index_add_(0, graph * MAX_Z + z.long() - 1, torch.ones(len(z), dtype=torch.float64))
    out = out.view(n, MAX_Z) / counts.clamp(min=1).unsqueeze(1)
    return out.float()


def take(payload: Mapping[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """Rows ``rows`` of a payload (vectorised segment gather); ``meta`` is carried over."""
    rows = rows.long()
    r = rows.tolist()
    out: dict[str, Any] = {key: [payload[key][i] for i in r] for key in LIST_KEYS}
    for ptr_key, keys in (("atom_ptr", ATOM_KEYS), ("edge_ptr", ("edge_index", *EDGE_KEYS))):
        ptr = payload[ptr_key]
        counts = ptr[rows + 1] - ptr[rows]
        idx = torch.from_numpy(ragged_positions(ptr[rows].numpy(), counts.numpy()))
        out[ptr_key] = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
        for key in keys:
            t = payload[key]
            out[key] = t[:, idx] if key == "edge_index" else t[idx]
    for key in ROW_KEYS:
        out[key] = payload[key][rows]
    out["meta"] = dict(payload.get("meta", {}))
    return out


def concat(payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack payloads (shards) one after another."""
    out: dict[str, Any] = {key: [i for p in payloads for i in p[key]] for key in LIST_KEYS}
    for ptr_key in ("atom_ptr", "edge_ptr"):
        offs, pieces = 0, [torch.zeros(1, dtype=torch.int64)]
        for p in payloads:
            pieces.append(p[ptr_key][1:] + offs)
            offs += int(p[ptr_key][-1])
        out[ptr_key] = torch.cat(pieces)
    for key in (*ATOM_KEYS, *EDGE_KEYS, *ROW_KEYS):
        out[key] = torch.cat([p[key] for p in payloads])
    out["edge_index"] = torch.cat([p["edge_index"] for p in payloads], dim=1)
    out["meta"] = dict(payloads[0].get("meta", {})) if payloads else {}
    return out
