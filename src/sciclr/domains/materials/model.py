"""The materials contrastive model: crystal GNN, composition / XRD MLPs and projection heads.

Pairings (``model.pairing``, a name or a list of names; every listed view is a positive of
every other, CMC-style — Tian, Krishnan & Isola, "Contrastive Multiview Coding", ECCV 2020):

* ``augment``: two augmented views of the crystal graph (GraphCL-style);
* ``composition``: the graph against an MLP of its element fractions (with
  ``composition_input: descriptors`` also their Magpie statistics, so that compositions of
  similar elements start close) — pulls the embedding towards chemistry (formation energy is
  largely a function of composition);
* ``xrd``: the graph against an MLP of its powder XRD pattern — the pattern encodes the
  lattice and its symmetry, which local graph features alone barely see.

``embed`` returns the pooled GNN output of the unaugmented crystal (before the head), with the
lattice branch's output appended (``lattice: true``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sciclr.data.crystal_batch import CrystalBatch
from sciclr.data.elements import composition_descriptors, element_descriptors
from sciclr.domains.base import ContrastiveModel
from sciclr.encoders.crystals import CrystalGNN
from sciclr.encoders.heads import MLP, ProjectionHead
from sciclr.views import drawing_views
from sciclr.views.crystals import (
    CrystalViewConfig,
    augment_graph,
    composition_view,
    xrd_view,
)

__all__ = ["CrystalContrastiveModel", "build_model"]


def _pairing(value: str | Sequence[str]) -> list[str]:
    """``model.pairing`` (a name or a list, as the schema allows) as a list without repeats."""
    return list(dict.fromkeys([value] if isinstance(value, str) else value))


class CrystalContrastiveModel(ContrastiveModel):
    """GNN + projection head, plus composition / XRD MLPs for the cross-modal pairings."""

    def __init__(
        self,
        gnn: CrystalGNN,
        views: CrystalViewConfig,
        pairing: Sequence[str],
        n_elements: int,
        xrd_bins: int,
        side_hidden: int = 256,
        side_layers: int = 2,
        proj_hidden: int = 256,
        proj_dim: int = 128,
        composition_input: str = "fractions",
    ) -> None:
        super().__init__()
        self.gnn, self.views, self.pairing = gnn, views, list(pairing)
        self.composition_input = composition_input
        if composition_input == "descriptors":
            table = torch.from_numpy(np.array(element_descriptors()[1:]))
            self.register_buffer("elements", table, persistent=False)
            n_elements += 4 * table.shape[1]
        self.head = ProjectionHead(gnn.out_dim, proj_hidden, proj_dim)
        self.side = nn.ModuleDict()
        if "composition" in self.pairing:
            self.side["composition"] = MLP(n_elements, side_hidden, proj_dim, side_layers)
        if "xrd" in self.pairing:
            self.side["xrd"] = MLP(xrd_bins, side_hidden, proj_dim, side_layers)

    def forward(
        self, batch: CrystalBatch, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Projections (V, N, proj_dim): graph view(s) first, then composition, then XRD."""
        n_graph = 2 if "augment" in self.pairing else 1
        # every view first (the generator's draws in the same order as view by view)
        with drawing_views():
            graphs = [augment_graph(batch, self.views, generator) for _ in range(n_graph)]
            comp = x = None
            if "composition" in self.side:
                comp = composition_view(batch.composition, self.views.composition_noise, generator)
                if self.composition_input == "descriptors":
                    comp = torch.cat([comp, composition_descriptors(comp, self.elements)], dim=1)
            if "xrd" in self.side:
                x = xrd_view(batch.xrd, self.views.xrd_shift, self.views.xrd_noise, generator)
        out = [self.head(self.gnn(g)) for g in graphs]
        if comp is not None:
            out.append(self.side["composition"](comp))
        if x is not None:
            out.append(self.side["xrd"](x))
        return torch.stack(out)

    def embed(self, batch: CrystalBatch) -> torch.Tensor:
        """Frozen representation (N, gnn.out_dim) of the unaugmented crystals."""
        return self.gnn(batch)


def build_model(payload: Mapping[str, Any], cfg: Mapping[str, Any]) -> CrystalContrastiveModel:
    """A freshly initialised model for a data set's filled config (seeded by the caller)."""
    model = cfg["model"]
    gnn = CrystalGNN(
        hidden=model["hidden"],
        layers=model["layers"],
        n_rbf=model["n_rbf"],
        cutoff=float(payload["meta"]["cutoff"]),
        pooling=model["pooling"],
        norm=model["norm"],
        readout=model["readout"],
        angular=model["angular"],
        element_features=model["element_features"],
        lattice=model["lattice"],
    )
    return CrystalContrastiveModel(
        gnn,
        CrystalViewConfig.from_cfg(cfg["views"]),
        _pairing(model["pairing"]),
        n_elements=int(payload["composition"].shape[1]),
        xrd_bins=int(payload["xrd"].shape[1]),
        side_hidden=model["side_hidden"],
        side_layers=model["side_layers"],
        proj_hidden=model["proj_hidden"],
        proj_dim=model["proj_dim"],
        composition_input=model["composition_input"],
    )
