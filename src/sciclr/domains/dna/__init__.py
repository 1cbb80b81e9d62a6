"""The DNA domain: FASTA/GenBank ingest, batched views, strand-aware encoders, k-mer baselines.

This module is the domain's light facade: the Snakefile asks it for the baseline feature names
when it builds the job graph, which must not import torch (1.5 s per ``snakemake -n``); the
heavy parts (:mod:`sciclr.data.dna`, :mod:`sciclr.domains.dna.model`) load on first use.
Payload layout: :mod:`sciclr.data.dna`; pairings and model: :mod:`sciclr.domains.dna.model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from sciclr.data.dna.batch import DnaDataSource
    from sciclr.data.processed import Processed
    from sciclr.domains.dna.model import DnaContrastiveModel

__all__ = ["DOMAIN", "DnaDomain"]


class DnaDomain:
    """The :class:`sciclr.domains.base.Domain` implementation for DNA sequences."""

    name = "dna"
    parse_stage = False  # ingest is one step: no separately cached parse

    def check_inputs(self, cfg: Mapping[str, Any], where: str, base: Path) -> None:
        """Every input is a FASTA/GenBank file (first bytes only); ``where`` prefixes errors."""
        from sciclr.data.dna.files import check_file
        from sciclr.errors import SciclrError

        for p in cfg["input"]:
            try:
                check_file(base / p, cfg["format"])
            except SciclrError as exc:
                raise SciclrError(f"{where}.input: {exc}") from None

    def label_tables(self, cfg: Mapping[str, Any]) -> list[str]:
        """DNA inputs never carry labels: they come from ``labels:``."""
        return []

    def describe_pairing(self, cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
        """What the views of each configured pairing share: what the embedding can keep (the
        optimal InfoNCE critic estimates the density ratio of the paired views)."""
        views, pairing = cfg["views"], cfg["model"]["pairing"]
        crops = (
            f"{views['n_views']} disjoint crops of one fragment ({views['crop_min']}–"
            f"{views['crop_max']} bp, random strand, {views['mutation_rate']:g} point mutations "
            "per base)"
        )
        out = []
        if pairing in ("augment", "both"):
            out.append(
                (
                    "crop ↔ crop",
                    f"{crops}: they share the genome of origin — composition, codon usage, "
                    "oligonucleotide and strand patterns — but no position and no exact "
                    "substring, so the embedding keeps what is genome-wide",
                )
            )
        if pairing in ("kmer", "both"):
            out.append(
                (
                    "crop ↔ k-mer profile",
                    f"a crop and the canonical {views['kmer_k']}-mer profile of another crop: they "
                    f"share the fragment's {views['kmer_k']}-mer composition only, so the "
                    "embedding learns composition",
                )
            )
        return out

    def baseline_names(self, cfg: Mapping[str, Any]) -> list[str]:
        """``kmer{k}`` for every k of ``baselines.kmer_k``."""
        return [f"kmer{k}" for k in cfg["baselines"]["kmer_k"]]

    def preprocess_shard(
        self,
        cfg: Mapping[str, Any],
        shard: int,
        n_shards: int,
        parsed: Mapping[str, Any] | None = None,
    ) -> Processed:
        from sciclr.data.dna.ingest import preprocess_dna_shard

        return preprocess_dna_shard(cfg, shard, n_shards)

    def merge(self, parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
        from sciclr.data.dna.ingest import merge_dna

        return merge_dna(parts, cfg)

    def data_source(self, payload: Mapping[str, Any]) -> DnaDataSource:
        from sciclr.data.dna.batch import DnaDataSource

        return DnaDataSource(payload)

    def baseline_features(
        self,
        payload: Mapping[str, Any],
        cfg: Mapping[str, Any],
        names: Sequence[str],
        start: int = 0,
        stop: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Canonical k-mer frequency profiles of the full records ``start:stop``, ``kmer{k}``
        → ``(m, F)`` float32 (F = 136 for k=4, 2080 for k=6), for the requested ``names``."""
        import numpy as np

        from sciclr.data.dna.kmers import kmer_profiles_ragged

        offsets = np.asarray(payload["offsets"], dtype=np.int64)
        lo, hi, _ = slice(start, stop).indices(len(offsets) - 1)
        hi = max(lo, hi)
        a, b = int(offsets[lo]), int(offsets[hi])
        codes = np.asarray(payload["codes"][a:b], dtype=np.uint8)  # the block's bases only
        rel = offsets[lo : hi + 1] - a
        return {name: kmer_profiles_ragged(codes, rel, int(name[4:])) for name in names}

    def build_model(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> DnaContrastiveModel:
        from sciclr.domains.dna.model import build_model

        return build_model(payload, cfg)


DOMAIN = DnaDomain()
