"""The materials domain: crystal ingest, periodic graphs, crystal views, CGCNN-style encoder.

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

from sciclr.data.crystal_batch import CrystalBatch, CrystalSource
from sciclr.data.crystals import merge as merge_crystals
from sciclr.data.crystals import preprocess_shard as preprocess_crystals
from sciclr.data.elements import composition_descriptors, element_descriptors
from sciclr.data.lattice import lattice_invariants
from sciclr.domains.base import ContrastiveModel, Processed, config_section
from sciclr.encoders.crystals import CrystalGNN
from sciclr.encoders.heads import MLP, ProjectionHead
from sciclr.errors import SciclrError
from sciclr.views.crystals import (
    CrystalViewConfig,
    augment_graph,
    composition_view,
    xrd_view,
)

__all__ = ["DOMAIN", "MODEL_DEFAULTS", "VIEW_DEFAULTS", "CrystalContrastiveModel"]

PAIRINGS = ("augment", "composition", "xrd")

VIEW_DEFAULTS: dict[str, Any] = {
    "atom_mask": 0.1,  # probability of masking an atom's element
    "edge_drop": 0.1,  # probability of dropping an edge
    "coord_noise": 0.05,  # Å, σ of the Gaussian displacement of every atom
    "xrd_shift": 2,  # XRD view: random shift of up to this many bins
    "xrd_noise": 0.05,  # XRD view: σ of log-normal intensity noise
    "composition_noise": 0.0,  # composition view: σ of log-normal fraction noise
}

MODEL_DEFAULTS: dict[str, Any] = {
    "pairing": ["composition", "xrd"],  # augment | composition | xrd, or a list of them
    "hidden": 128,  # GNN width = embedding size
    "layers": 3,  # CGCNN convolutions
    "n_rbf": 32,  # Gaussian RBFs on [0, cutoff]
    "pooling": "mean",  # mean | attention
    "readout": "concat",  # concat (every layer, embedding = hidden·(layers+1)) | last
    "norm": "batch",  # batch | layer (inside each convolution)
    "angular": 6,  # Steinhardt q_1..q_l atom features + Legendre edge features; 0 = distances only
    "lattice": True,  # append an MLP of basis-free lattice descriptors to the embedding
    "element_features": False,  # add physical element descriptors to the learned embeddings
    "composition_input": "descriptors",  # composition MLP: fractions | descriptors (+ Magpie)
    "side_hidden": 256,  # composition / XRD MLP width
    "side_layers": 2,
    "proj_hidden": 256,  # projection head
    "proj_dim": 128,
}


def _pairing(value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else list(value)
    bad = [p for p in names if p not in PAIRINGS]
    if bad or not names:
        raise SciclrError(f"model.pairing must be one or more of {list(PAIRINGS)}, got {value!r}")
    return list(dict.fromkeys(names))


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
        if composition_input not in ("fractions", "descriptors"):
            raise SciclrError(
                f"model.composition_input must be 'fractions' or 'descriptors', "
                f"got {composition_input!r}"
            )
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
        out = [
            self.head(self.gnn(augment_graph(batch, self.views, generator))) for _ in range(n_graph)
        ]
        if "composition" in self.side:
            comp = composition_view(batch.composition, self.views.composition_noise, generator)
            if self.composition_input == "descriptors":
                comp = torch.cat([comp, composition_descriptors(comp, self.elements)], dim=1)
            out.append(self.side["composition"](comp))
        if "xrd" in self.side:
            x = xrd_view(batch.xrd, self.views.xrd_shift, self.views.xrd_noise, generator)
            out.append(self.side["xrd"](x))
        return torch.stack(out)

    def embed(self, batch: CrystalBatch) -> torch.Tensor:
        """Frozen representation (N, gnn.out_dim) of the unaugmented crystals."""
        return self.gnn(batch)


class MaterialsDomain:
    """The :class:`sciclr.domains.base.Domain` implementation for crystal structures."""

    name = "materials"

    def preprocess_shard(self, cfg: Mapping[str, Any], shard: int, n_shards: int) -> Processed:
        return preprocess_crystals(cfg, shard, n_shards)

    def merge(self, parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
        return merge_crystals(parts, cfg)

    def data_source(self, payload: Mapping[str, Any]) -> CrystalSource:
        return CrystalSource(payload)

    def baseline_features(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        """``element_fractions`` (n, 118) float32: column Z - 1 holds the atom fraction of Z;
        ``lattice`` (n, 37): the basis-free lattice descriptors the GNN's lattice branch reads
        (:mod:`sciclr.data.lattice`), so the report shows what the cell alone tells."""
        comp = payload["composition"]
        comp = comp.numpy() if isinstance(comp, torch.Tensor) else np.asarray(comp)
        lattice = torch.as_tensor(payload["lattice"])
        n_atoms = torch.diff(torch.as_tensor(payload["atom_ptr"]))
        return {
            "element_fractions": comp.astype(np.float32),
            "lattice": lattice_invariants(lattice, n_atoms).numpy(),
        }

    def build_model(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> CrystalContrastiveModel:
        mcfg = config_section(cfg, "model", MODEL_DEFAULTS)
        views = CrystalViewConfig.from_cfg(config_section(cfg, "views", VIEW_DEFAULTS))
        meta = payload.get("meta", {})
        gnn = CrystalGNN(
            hidden=int(mcfg["hidden"]),
            layers=int(mcfg["layers"]),
            n_rbf=int(mcfg["n_rbf"]),
            cutoff=float(meta.get("cutoff", 6.0)),
            pooling=str(mcfg["pooling"]),
            norm=str(mcfg["norm"]),
            readout=str(mcfg["readout"]),
            angular=int(mcfg["angular"]),
            element_features=bool(mcfg["element_features"]),
            lattice=bool(mcfg["lattice"]),
        )
        return CrystalContrastiveModel(
            gnn,
            views,
            _pairing(mcfg["pairing"]),
            n_elements=int(payload["composition"].shape[1]),
            xrd_bins=int(payload["xrd"].shape[1]),
            side_hidden=int(mcfg["side_hidden"]),
            side_layers=int(mcfg["side_layers"]),
            proj_hidden=int(mcfg["proj_hidden"]),
            proj_dim=int(mcfg["proj_dim"]),
            composition_input=str(mcfg["composition_input"]),
        )


DOMAIN = MaterialsDomain()
