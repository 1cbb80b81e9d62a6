"""Crystal views, drawn on the batch's device from a ``torch.Generator`` (pure, batched).

Graph augmentations follow graph contrastive learning practice (You et al., "Graph
Contrastive Learning with Augmentations", NeurIPS 2020: attribute masking, edge perturbation)
plus a physically meaningful coordinate noise: every atom is displaced by an isotropic
Gaussian and the periodic edge vectors are updated consistently
(``vec_ij' = vec_ij + δ_j - δ_i``), which is what a thermally displaced crystal looks like.
A uniform strain (``strain``: σ of the log scale factor) scales every cell and bond of a crystal
by one factor: the symmetry of the cell is exactly preserved, so views that differ by it share
the crystal system while the encoder learns not to rely on absolute size (a pressure change).
The second modalities (composition, powder XRD) are computed in preprocessing; their views add
mild noise so that the other encoder cannot match by exact lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from sciclr.data.crystal_batch import CrystalBatch
from sciclr.data.lattice import scale_invariants

__all__ = [
    "CrystalViewConfig",
    "augment_graph",
    "composition_view",
    "displace_atoms",
    "drop_edges",
    "mask_atoms",
    "strain_cells",
    "xrd_view",
]

MASK_TOKEN = 0  # atomic number 0 = "unknown element"


@dataclass(frozen=True)
class CrystalViewConfig:
    """Augmentation strengths (probabilities per atom/edge, σ in Å, XRD shift in bins).

    No defaults here: the config schema's ``views`` section of the materials domain is the one
    source of them, and :meth:`from_cfg` reads every field from the (schema-filled) mapping.
    """

    atom_mask: float
    edge_drop: float
    coord_noise: float
    xrd_shift: int
    xrd_noise: float
    composition_noise: float
    strain: float

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> CrystalViewConfig:
        """Every field from ``cfg`` (other keys are ignored); a missing one is a KeyError."""
        if not isinstance(cfg, Mapping):
            raise TypeError(
                f"CrystalViewConfig.from_cfg needs the views mapping, got {type(cfg).__name__}"
            )
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in cfg]
        if missing:
            raise KeyError(
                f"views: missing key(s) {missing}; the config schema fills every views key"
            )
        return cls(**{k: cfg[k] for k in names})


def _rand(shape: tuple[int, ...], gen: torch.Generator | None, device: torch.device):
    return torch.rand(shape, generator=gen, device=device)


def mask_atoms(z: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Replace each atomic number by :data:`MASK_TOKEN` with probability ``p``: (A,) -> (A,)."""
    if p <= 0:
        return z
    return torch.where(_rand(z.shape, gen, z.device) < p, torch.zeros_like(z), z)


def drop_edges(n_edges: int, p: float, device: torch.device, gen: torch.Generator | None = None):
    """Boolean keep-mask (E,) that drops each directed edge with probability ``p``."""
    return _rand((n_edges,), gen, device) >= p


def displace_atoms(
    edge_vec: torch.Tensor,
    edge_index: torch.Tensor,
    n_atoms: int,
    sigma: float,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian displacement δ (A, 3) of every atom; returns the new ``edge_vec`` (E, 3) and
    ``edge_dist`` (E,). A periodic image moves with its atom, so the crystal stays periodic."""
    delta = torch.randn((n_atoms, 3), generator=gen, device=edge_vec.device) * sigma
    vec = edge_vec + delta[edge_index[0]] - delta[edge_index[1]]
    return vec, vec.norm(dim=-1)


def strain_cells(
    batch: CrystalBatch, sigma: float, gen: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale each crystal uniformly by ``exp(s)``, ``s ~ N(0, sigma)`` per crystal: returns the
    new ``edge_vec`` (E, 3), ``edge_dist`` (E,) and cell descriptors (B, F) (symmetry kept)."""
    s = torch.randn((batch.num_graphs,), generator=gen, device=batch.edge_vec.device) * sigma
    factor = torch.exp(s)[batch.batch[batch.edge_index[1]]]  # the centre's crystal per edge
    return (
        batch.edge_vec * factor.unsqueeze(1),
        batch.edge_dist * factor,
        scale_invariants(batch.cell, s),
    )


def augment_graph(
    batch: CrystalBatch, cfg: CrystalViewConfig, gen: torch.Generator | None = None
) -> CrystalBatch:
    """One random graph view: uniform strain, masking, edge dropping and coordinate noise."""
    z = mask_atoms(batch.z, cfg.atom_mask, gen)
    vec, dist, index, cell = batch.edge_vec, batch.edge_dist, batch.edge_index, batch.cell
    if cfg.strain > 0:
        vec, dist, cell = strain_cells(batch, cfg.strain, gen)
    if cfg.coord_noise > 0:
        vec, dist = displace_atoms(vec, index, len(z), cfg.coord_noise, gen)
    if cfg.edge_drop > 0:
        keep = drop_edges(len(dist), cfg.edge_drop, dist.device, gen)
        vec, dist, index = vec[keep], dist[keep], index[:, keep]
    return batch.replace(z=z, edge_vec=vec, edge_dist=dist, edge_index=index, cell=cell)


def xrd_view(
    xrd: torch.Tensor, shift: int, noise: float, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Powder pattern view (B, bins): a random shift of up to ``shift`` bins per pattern (a
    small lattice strain / zero offset) and multiplicative log-normal intensity noise."""
    b, n = xrd.shape
    out = xrd
    if shift > 0:
        s = torch.randint(-shift, shift + 1, (b, 1), generator=gen, device=xrd.device)
        idx = torch.arange(n, device=xrd.device).unsqueeze(0) - s
        valid = (idx >= 0) & (idx < n)
        out = torch.where(valid, out.gather(1, idx.clamp(0, n - 1)), torch.zeros_like(out))
    if noise > 0:
        out = out * torch.exp(torch.randn(out.shape, generator=gen, device=xrd.device) * noise)
    return out


def composition_view(
    comp: torch.Tensor, noise: float, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Element fractions (B, 118) with optional multiplicative noise, renormalised."""
    if noise <= 0:
        return comp
    out = comp * torch.exp(torch.randn(comp.shape, generator=gen, device=comp.device) * noise)
    return out / out.sum(dim=1, keepdim=True).clamp(min=1e-12)
