"""The materials domain: crystal ingest, periodic graphs, crystal views, CGCNN-style encoder.

This module is the domain's light facade (the Snakefile asks it for baseline names and stages
while it builds the job graph; that must not import torch and pymatgen, 3 s per
``snakemake -n``); the heavy parts load on first use. Payload layout: :mod:`sciclr.data.crystals`;
pairings and model: :mod:`sciclr.domains.materials.model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
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

    def check_inputs(self, cfg: Mapping[str, Any], where: str, base: Path) -> None:
        """Every input is a structure table, file or folder (names and first bytes only); a
        table has the CIF column; ``where`` prefixes errors."""
        from sciclr.data.crystal_io import input_kind
        from sciclr.data.records import read_table_header
        from sciclr.errors import SciclrError

        for p in cfg["input"]:
            try:
                kind = input_kind(base / p, cfg["format"])
            except SciclrError as exc:
                raise SciclrError(f"{where}.input: {exc}") from None
            if kind != "table":
                continue
            header = read_table_header(base / p)
            for key in ("id_column", "cif_column"):
                if cfg[key] not in header:
                    raise SciclrError(
                        f"{where}.{key}: column {cfg[key]!r} is not in the header of {p} "
                        f"(columns: {header[:20]})"
                    )

    def label_tables(self, cfg: Mapping[str, Any]) -> list[str]:
        """Table inputs carry their own labels, row by row (when ``labels:`` is not set)."""
        from sciclr.data.crystal_io import TABLE_SUFFIXES

        return [p for p in cfg["input"] if Path(p).suffix.lower() in TABLE_SUFFIXES]

    def describe_pairing(self, cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
        """What the views of each configured pairing share: what the embedding can keep (the
        optimal InfoNCE critic estimates the density ratio of the paired views)."""
        pairing = cfg["model"]["pairing"]
        names = [pairing] if isinstance(pairing, str) else list(dict.fromkeys(pairing))
        views = cfg["views"]
        strain = f", uniform strain σ {views['strain']:g}" if views["strain"] else ""
        text = {
            "augment": (
                "graph ↔ graph",
                f"two perturbed copies of the crystal graph (masked atoms {views['atom_mask']:g}, "
                f"dropped edges {views['edge_drop']:g}, displacements {views['coord_noise']:g} Å"
                f"{strain}): they share composition, bonding topology, local environments and "
                "the cell's symmetry",
            ),
            "composition": (
                "graph ↔ composition",
                "the graph and its element fractions (with their Magpie statistics when "
                "composition_input is descriptors): they share the composition only — not the "
                "structure, not the lattice",
            ),
            "xrd": (
                "graph ↔ powder XRD",
                "the graph and its powder diffraction pattern: they share the lattice metric "
                "and its symmetry (peak positions) and the arrangement of the scatterers "
                "(intensities)",
            ),
        }
        return [text[n] for n in names]

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
        self,
        payload: Mapping[str, Any],
        cfg: Mapping[str, Any],
        names: Sequence[str],
        start: int = 0,
        stop: int | None = None,
    ) -> dict[str, np.ndarray]:
        """``element_fractions`` (m, 118) float32 of the structures ``start:stop``: column
        Z - 1 holds the atom fraction of Z; ``lattice`` (m, 37): the basis-free lattice
        descriptors the GNN's lattice branch reads (:mod:`sciclr.data.lattice`), so the
        report shows what the cell alone tells."""
        import numpy as np
        import torch

        from sciclr.data.lattice import lattice_invariants

        rows = slice(start, stop)
        out = {}
        if "element_fractions" in names:
            out["element_fractions"] = np.asarray(payload["composition"][rows], dtype=np.float32)
        if "lattice" in names:
            n_atoms = torch.diff(torch.as_tensor(payload["atom_ptr"]))[rows]
            lattice = torch.as_tensor(payload["lattice"])[rows]
            out["lattice"] = lattice_invariants(lattice, n_atoms).numpy()
        return out

    def build_model(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> CrystalContrastiveModel:
        from sciclr.domains.materials.model import build_model

        return build_model(payload, cfg)


DOMAIN = MaterialsDomain()
