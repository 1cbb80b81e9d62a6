"""DNA views: batched, seeded augmentations applied to whole padded batches on their device.

A batch of sequences is ``codes`` ``(N, L)`` uint8 with the alphabet ``A=0, C=1, G=2, T=3, N=4``
and ``PAD=5`` after each sequence's end (:mod:`sciclr.data.dna.codes`), plus ``lengths``
``(N,)`` int64. Every function is pure (inputs are never modified) and draws its randomness from
the ``generator`` it is given, so a view is a deterministic function of (batch, seed). No
per-sample Python loops: each view is a few tensor operations over the whole batch.

The same views on stored k-mer tokens (for the transformer encoder) are in
:mod:`sciclr.views.dna_tokens`; the k-mer profile view is :func:`sciclr.data.dna.kmer_profile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from sciclr.data.dna.codes import COMPLEMENT, N_CODE, PAD

__all__ = [
    "DnaViewConfig",
    "make_view",
    "mask_n",
    "point_mutations",
    "rand",
    "random_crop",
    "random_reverse_complement",
    "reverse_complement",
]


def rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) draws from ``generator`` (on its own device), returned on ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev).to(device)


def random_crop(
    codes: torch.Tensor,
    lengths: torch.Tensor,
    min_len: int,
    max_len: int,
    generator: torch.Generator | None = None,
    part: int = 0,
    n_parts: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop each sequence to a random window.

    The window length is uniform in ``[min_len, max_len]`` (clipped to the available length,
    so a sequence shorter than ``min_len`` is kept whole) and its start uniform over the
    positions where it fits. With ``n_parts > 1`` the window lies inside part ``part`` of the
    sequence cut into ``n_parts`` equal segments, so crops drawn for different parts never
    overlap. Returns ``(codes (N, W), lengths (N,))`` with ``W`` the longest crop.
    """
    if min_len < 1 or max_len < min_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if not 0 <= part < n_parts:
        raise ValueError(f"part {part} out of range for {n_parts} parts")
    n, width = codes.shape
    u = rand((2, n), generator, codes.device)
    seg_lo = torch.div(lengths * part, n_parts, rounding_mode="floor")
    seg_len = torch.div(lengths * (part + 1), n_parts, rounding_mode="floor") - seg_lo
    lo = seg_len.clamp(max=min_len)
    hi = seg_len.clamp(max=max_len)
    crop = lo + torch.floor(u[0] * (hi - lo + 1)).long().clamp(max=(hi - lo))
    start = seg_lo + torch.floor(u[1] * (seg_len - crop + 1)).long().clamp(max=seg_len - crop)
    w = max(int(crop.max()), 1) if n else 1
    j = torch.arange(w, device=codes.device)
    pos = (start[:, None] + j[None, :]).clamp(max=max(width - 1, 0))
    out = codes.gather(1, pos) if width else codes.new_full((n, w), PAD)
    out = out.masked_fill(j[None, :] >= crop[:, None], PAD)
    return out, crop


def reverse_complement(
    codes: torch.Tensor, lengths: torch.Tensor, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Reverse complement of every sequence (or of the rows where ``flip`` is true).

    Only the first ``lengths[i]`` positions are reversed, so padding stays at the end and
    ``reverse_complement(reverse_complement(x)) == x`` exactly.
    """
    w = codes.shape[1]
    j = torch.arange(w, device=codes.device)[None, :]
    valid = j < lengths[:, None]
    src = (lengths[:, None] - 1 - j).clamp(min=0)
    comp = torch.tensor(COMPLEMENT, dtype=codes.dtype, device=codes.device)
    rc = comp[codes.gather(1, src).long()]
    rc = rc.masked_fill(~valid, PAD)
    if flip is None:
        return rc
    return torch.where(flip[:, None], rc, codes)


def random_reverse_complement(
    codes: torch.Tensor,
    lengths: torch.Tensor,
    p: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reverse-complement each sequence independently with probability ``p``."""
    if p <= 0:
        return codes
    flip = rand((codes.shape[0],), generator, codes.device) < p
    return reverse_complement(codes, lengths, flip)


def point_mutations(
    codes: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Substitute each A/C/G/T independently with probability ``rate`` by one of the three
    other bases (uniformly). N and padding are left unchanged."""
    if rate <= 0:
        return codes
    u = rand((2, *codes.shape), generator, codes.device)
    hit = (u[0] < rate) & (codes < N_CODE)
    shift = 1 + torch.floor(u[1] * 3).to(codes.dtype).clamp(max=2)
    mutated = (codes + shift) % 4
    return torch.where(hit, mutated, codes)


def mask_n(
    codes: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each base independently with probability ``rate`` by N (padding untouched)."""
    if rate <= 0:
        return codes
    hit = (rand(tuple(codes.shape), generator, codes.device) < rate) & (codes < N_CODE)
    return codes.masked_fill(hit, N_CODE)


@dataclass(frozen=True)
class DnaViewConfig:
    """One augmented view: crop → reverse complement → point mutations → N-masking.

    crop_min/crop_max: crop length range in bases (sequences shorter than crop_min kept whole).
    disjoint: the views of one sequence are cropped from disjoint segments (view ``v`` of ``V``
        from the ``v``-th of ``V`` equal parts), so they share composition but no sequence:
        the positives of metagenomic-binning contrastive learning (fragments of one contig,
        COMEBin: Wang et al. 2024, Nat Commun 15:585) rather than overlapping windows an
        encoder can match by exact substrings.
    rc_prob: probability of taking the reverse complement (the other strand of the molecule).
    mutation_rate: per-base substitution probability. mask_rate: per-base N-masking probability.
    """

    crop_min: int
    crop_max: int
    disjoint: bool
    rc_prob: float
    mutation_rate: float
    mask_rate: float

    @classmethod
    def from_cfg(cls, views: Mapping[str, Any]) -> DnaViewConfig:
        """From a data set's filled ``views:`` section (its other keys are not crop settings)."""
        return cls(**{f: views[f] for f in cls.__dataclass_fields__})


def make_view(
    codes: torch.Tensor,
    lengths: torch.Tensor,
    cfg: DnaViewConfig,
    generator: torch.Generator | None = None,
    view: int = 0,
    n_views: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw view ``view`` of ``n_views`` of a padded batch → ``(codes (N, W), lengths (N,))``."""
    part, parts = (view, n_views) if cfg.disjoint else (0, 1)
    x, lens = random_crop(codes, lengths, cfg.crop_min, cfg.crop_max, generator, part, parts)
    x = random_reverse_complement(x, lens, cfg.rc_prob, generator)
    x = point_mutations(x, cfg.mutation_rate, generator)
    x = mask_n(x, cfg.mask_rate, generator)
    return x, lens
