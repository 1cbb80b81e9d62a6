"""The materials domain: crystal ingest, periodic graphs, crystal views, CGCNN-style encoder.

This module is the domain's light facade (the Snakefile asks it for baseline names and stages
while it builds the job graph; that must not import torch and pymatgen, 3 s per
``snakemake -n``); the heavy parts load on first use. Payload layout: :mod:`sciclr.data.crystals`;
pairings and model: :mod:`sciclr.domains.materials.model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from sciclr.data.crystal_batch import CrystalSource
    from sciclr.data.processed import Processed
    from sciclr.domains.materials.model import CrystalContrastiveModel

__all__ = ["DOMAIN", "MaterialsDomain"]

BASELINES = ("element_fractions", "lattice")


class MaterialsDomain:
    """The :class:`sciclr.domains.base.Domain` implementation for crystal structures."""

    name = "materials"
    parse_stage = True  # CIF parsing is the slow part: its arrays are a step's output

    def baseline_names(self, cfg: Mapping[str, Any]) -> list[str]:
        """``element_fractions`` and ``lattice`` (see :meth:`baseline_features`)."""
        return list(BASELINES)

    def parse_shard(self, cfg: Mapping[str, Any], shard: int, n_shards: int) -> dict[str, Any]:
        from sciclr.data.crystals import parse_shard

        return parse_shard(cfg, shard, n_shards)

    def preprocess_shard(
        self,
        cfg: Mapping[str, Any],
        shard: int,
        n_shards: int,
        parsed: Mapping[str, Any] | None = None,
    ) -> Processed:
        from sciclr.data.crystals import preprocess_shard

        return preprocess_shard(cfg, shard, n_shards, parsed)

    def merge(self, parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
        from sciclr.data.crystals import merge

        return merge(parts, cfg)

    def data_source(self, payload: Mapping[str, Any]) -> CrystalSource:
        from sciclr.data.crystal_batch import CrystalSource

        return CrystalSource(payload)

    def baseline_features(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any], names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """``element_fractions`` (n, 118) float32: column Z - 1 holds the atom fraction of Z;
        ``lattice`` (n, 37): the basis-free lattice descriptors the GNN's lattice branch reads
        (:mod:`sciclr.data.lattice`), so the report shows what the cell alone tells."""
        import numpy as np
        import torch

        from sciclr.data.lattice import lattice_invariants

        out = {}
        if "element_fractions" in names:
            out["element_fractions"] = np.asarray(payload["composition"], dtype=np.float32)
        if "lattice" in names:
            n_atoms = torch.diff(torch.as_tensor(payload["atom_ptr"]))
            lattice = torch.as_tensor(payload["lattice"])
            out["lattice"] = lattice_invariants(lattice, n_atoms).numpy()
        return out

    def build_model(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> CrystalContrastiveModel:
        from sciclr.domains.materials.model import build_model

        return build_model(payload, cfg)


DOMAIN = MaterialsDomain()
