"""Collating crystal graphs into PyG-style batches by pure indexing (no per-graph loop)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from sciclr.data.lattice import lattice_invariants

__all__ = ["CrystalBatch", "CrystalSource", "segment_arange"]


@dataclass
class CrystalBatch:
    """A batch of ``num_graphs`` crystals, PyG naming.

    z: (A,) int64 atomic numbers (0 = masked);  batch: (A,) graph of each atom;
    edge_index: (2, E) int64 [source = neighbour, target = centre], batch-global atom indices;
    edge_vec: (E, 3) float32 Å;  edge_dist: (E,) float32 Å;
    composition: (B, 118) element fractions;  xrd: (B, bins) binned powder pattern;
    cell: (B, F) basis-free descriptors of the lattice (:mod:`sciclr.data.lattice`).
    """

    z: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    edge_vec: torch.Tensor
    edge_dist: torch.Tensor
    composition: torch.Tensor
    xrd: torch.Tensor
    cell: torch.Tensor
    num_graphs: int

    @property
    def device(self) -> torch.device:
        return self.z.device

    def to(self, device: torch.device | str) -> CrystalBatch:
        return replace(
            self,
            **{
                f.name: getattr(self, f.name).to(device)
                for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )


def segment_arange(counts: torch.Tensor) -> torch.Tensor:
    """``cat([arange(c) for c in counts])`` without a Python loop."""
    starts = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(starts, counts)


class CrystalSource:
    """Random access to a preprocessed crystal payload; tensors are moved to a device once."""

    _KEYS = (
        "atom_ptr",
        "edge_ptr",
        "z",
        "edge_index",
        "edge_vec",
        "edge_dist",
        "composition",
        "xrd",
    )

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        self._cache: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.payload["atom_ptr"]) - 1

    def _on(self, device: torch.device) -> dict[str, torch.Tensor]:
        key = str(device)
        if key not in self._cache:
            p = self.payload
            t = {k: p[k].to(device) for k in self._KEYS}
            t["z"] = t["z"].long()
            t["edge_index"] = t["edge_index"].long()
            # the lattice is never augmented: its descriptors are computed once per source
            t["cell"] = lattice_invariants(p["lattice"].to(device), torch.diff(t["atom_ptr"]))
            self._cache[key] = t
        return self._cache[key]

    def batch(self, idx: torch.Tensor, device: torch.device | str = "cpu") -> CrystalBatch:
        """Collate graphs ``idx`` (int64) on ``device``: segment gathers over flat arrays."""
        device = torch.device(device)
        t = self._on(device)
        idx = idx.to(device).long()
        a_ptr, e_ptr = t["atom_ptr"], t["edge_ptr"]
        a_cnt = a_ptr[idx + 1] - a_ptr[idx]
        e_cnt = e_ptr[idx + 1] - e_ptr[idx]
        graph = torch.arange(len(idx), device=device)
        atom_graph = torch.repeat_interleave(graph, a_cnt)
        atoms = a_ptr[idx][atom_graph] + segment_arange(a_cnt)
        edge_graph = torch.repeat_interleave(graph, e_cnt)
        edges = e_ptr[idx][edge_graph] + segment_arange(e_cnt)
        new_start = torch.cumsum(a_cnt, 0) - a_cnt
        return CrystalBatch(
            z=t["z"][atoms],
            batch=atom_graph,
            edge_index=t["edge_index"][:, edges] + new_start[edge_graph],
            edge_vec=t["edge_vec"][edges],
            edge_dist=t["edge_dist"][edges],
            composition=t["composition"][idx],
            xrd=t["xrd"][idx],
            cell=t["cell"][idx],
            num_graphs=len(idx),
        )
