"""DNA views: batched, seeded augmentations applied to whole padded batches on their device.

A batch of sequences is ``codes`` ``(N, L)`` uint8 with the alphabet ``A=0, C=1, G=2, T=3, N=4``
and ``PAD=5`` after each sequence's end, plus ``lengths`` ``(N,)`` int64. Every function is pure
(inputs are never modified) and draws its randomness from the ``generator`` it is given, so a
view is a deterministic function of (batch, seed). No per-sample Python loops: each view is a few
tensor operations over the whole batch.

The k-mer profile view counts *canonical* k-mers (a k-mer and its reverse complement are one
feature), the strand-independent composition signal used for metagenomic binning (tetranucleotide
frequencies: Teeling et al. 2004, BMC Bioinformatics 5:163; Kislyuk et al. 2009).

Views on stored k-mer *tokens* (non-overlapping k-mers, for the transformer encoder) live at the
end of the module: crop, reverse complement, point mutation and masking in token space.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "ALPHABET",
    "N_CODE",
    "PAD",
    "TOKEN_PAD",
    "TOKEN_UNK",
    "DnaViewConfig",
    "canonical_kmer_index",
    "kmer_profile",
    "kmer_profiles_ragged",
    "make_token_view",
    "make_view",
    "mask_n",
    "n_canonical_kmers",
    "point_mutations",
    "random_crop",
    "random_reverse_complement",
    "reverse_complement",
    "token_crop",
    "token_mask",
    "token_mutations",
    "token_rc_table",
    "token_reverse_complement",
]

ALPHABET = "ACGTN"
N_CODE = 4
PAD = 5
# complement of each code: A<->T, C<->G, N->N, PAD->PAD
_COMPLEMENT = (3, 2, 1, 0, 4, 5)

TOKEN_PAD = 0
TOKEN_UNK = 1  # a k-mer with any N (or a masked token)
TOKEN_OFFSET = 2  # token id of k-mer index t is t + TOKEN_OFFSET


# ----------------------------------------------------------------------------- k-mer tables
def _rc_index(k: int) -> np.ndarray:
    """Index of the reverse complement of every k-mer index in ``[0, 4**k)`` (A=0 … T=3)."""
    idx = np.arange(4**k, dtype=np.int64)
    rc = np.zeros_like(idx)
    for j in range(k):  # digit j (from the least significant) -> digit k-1-j, complemented
        digit = (idx >> (2 * j)) & 3
        rc |= (3 - digit) << (2 * (k - 1 - j))
    return rc


@lru_cache(maxsize=16)
def canonical_kmer_index(k: int) -> np.ndarray:
    """Map every k-mer index ``[0, 4**k)`` to its canonical feature index ``[0, F)``.

    The canonical k-mer is the lexicographically smaller of a k-mer and its reverse complement;
    features are numbered in that order. F = (4**k + 4**(k//2)) / 2 for even k (136 for k=4,
    2080 for k=6) and 4**k / 2 for odd k.
    """
    if not 1 <= k <= 12:
        raise ValueError(f"k must be in [1, 12], got {k}")
    idx = np.arange(4**k, dtype=np.int64)
    canon = np.minimum(idx, _rc_index(k))
    _, compact = np.unique(canon, return_inverse=True)
    dtype = np.uint16 if compact.max() < 2**16 else np.int32
    out = compact.astype(dtype)
    out.setflags(write=False)
    return out


def n_canonical_kmers(k: int) -> int:
    """Number of canonical k-mers F (feature dimension of a k-mer profile)."""
    return int(canonical_kmer_index(k).max()) + 1


@lru_cache(maxsize=32)
def _canon_table_torch(k: int, canonical: bool, device: str) -> torch.Tensor:
    table = canonical_kmer_index(k) if canonical else np.arange(4**k)
    return torch.as_tensor(table.astype(np.int64), device=device)


# ----------------------------------------------------------------------------- randomness
def _rand(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Uniform [0, 1) draws from ``generator`` (on its own device), returned on ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev).to(device)


# ----------------------------------------------------------------------------- base-level views
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
    u = _rand((2, n), generator, codes.device)
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
    comp = torch.tensor(_COMPLEMENT, dtype=codes.dtype, device=codes.device)
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
    flip = _rand((codes.shape[0],), generator, codes.device) < p
    return reverse_complement(codes, lengths, flip)


def point_mutations(
    codes: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Substitute each A/C/G/T independently with probability ``rate`` by one of the three
    other bases (uniformly). N and padding are left unchanged."""
    if rate <= 0:
        return codes
    u = _rand((2, *codes.shape), generator, codes.device)
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
    hit = (_rand(tuple(codes.shape), generator, codes.device) < rate) & (codes < N_CODE)
    return codes.masked_fill(hit, N_CODE)


def kmer_profile(
    codes: torch.Tensor, k: int, canonical: bool = True, normalize: bool = True
) -> torch.Tensor:
    """k-mer profile of each row of a padded batch: ``(N, F)`` float32.

    Counts every window of ``k`` consecutive A/C/G/T (windows touching N or padding are skipped);
    with ``canonical`` a k-mer and its reverse complement share one feature, so the profile of a
    sequence equals that of its reverse complement. ``normalize`` turns counts into frequencies
    (rows without any valid k-mer stay zero).
    """
    n, w = codes.shape
    table = _canon_table_torch(k, canonical, str(codes.device))
    f = n_canonical_kmers(k) if canonical else 4**k
    out = torch.zeros((n, f + 1), dtype=torch.float32, device=codes.device)
    if w >= k:
        c = codes.long()
        m = w - k + 1
        idx = torch.zeros((n, m), dtype=torch.long, device=codes.device)
        ok = torch.ones((n, m), dtype=torch.bool, device=codes.device)
        for j in range(k):
            cj = c[:, j : j + m]
            idx = idx * 4 + cj.clamp(max=3)
            ok &= cj < N_CODE
        feat = torch.where(ok, table[idx], f)
        out.scatter_add_(1, feat, torch.ones_like(feat, dtype=torch.float32))
    out = out[:, :f]
    if normalize:
        out = out / out.sum(1, keepdim=True).clamp(min=1.0)
    return out


def kmer_profiles_ragged(
    codes: np.ndarray,
    offsets: np.ndarray,
    k: int,
    canonical: bool = True,
    normalize: bool = True,
    chunk_bases: int = 1 << 18,
) -> np.ndarray:
    """k-mer profiles of ragged sequences (one flat code array + ``offsets`` (n+1,)) → ``(n, F)``.

    The preprocessing-side twin of :func:`kmer_profile` (same counts), vectorised over the
    flat array in chunks of about ``chunk_bases`` bases (small enough to stay in cache: 2**18
    is ~2x faster than one pass over 7 Mbp): window indices are built in the smallest integer
    type and all records of a chunk are counted with one ``np.bincount``.
    """
    codes = np.asarray(codes, dtype=np.uint8)
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    table = canonical_kmer_index(k) if canonical else np.arange(4**k, dtype=np.int32)
    f = n_canonical_kmers(k) if canonical else 4**k
    out = np.zeros((n, f), dtype=np.float32)
    if n == 0:
        return out
    idx_dtype = np.uint8 if k <= 4 else (np.uint16 if k <= 8 else np.uint32)
    # k <= 4: the window index is a byte and F < 256, so the canonical map is a bytes.translate
    # table (a C loop, ~3x faster than fancy indexing, which first widens the index to intp)
    byte_table = None
    if k <= 4:
        byte_table = np.zeros(256, dtype=np.uint8)
        byte_table[: len(table)] = table
        byte_table = byte_table.tobytes()
    lo = 0
    while lo < n:
        # records [lo, hi) holding about chunk_bases bases (at least one record)
        hi = int(np.searchsorted(offsets, offsets[lo] + chunk_bases, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        a, b = int(offsets[lo]), int(offsets[hi])
        seg = codes[a:b]
        m = len(seg) - k + 1
        if m > 0:
            # window index and "has an N" flag, built in place in the smallest dtype
            low = (seg & 3).astype(idx_dtype)
            is_n = seg > 3
            idx = low[:m].copy()
            bad = is_n[:m].copy()
            for j in range(1, k):
                idx <<= 2
                idx |= low[j : j + m]
                bad |= is_n[j : j + m]
            # windows crossing a record end: start within k-1 of the next record's offset
            ends = offsets[lo + 1 : hi + 1] - a
            for j in range(1, k):
                cross = ends - j
                bad[cross[(cross >= 0) & (cross < m)]] = True
            # one bincount over (record, feature) pairs; invalid windows go to column f
            if byte_table is not None:
                feat = np.frombuffer(idx.tobytes().translate(byte_table), np.uint8)
                feat = feat.astype(np.int64)
            else:
                feat = table[idx].astype(np.int64)
            feat[bad] = f
            feat += np.repeat(
                np.arange(hi - lo, dtype=np.int64) * (f + 1), np.diff(offsets[lo : hi + 1])
            )[:m]
            counts = np.bincount(feat, minlength=(hi - lo) * (f + 1))
            out[lo:hi] = counts.reshape(hi - lo, f + 1)[:, :f]
        lo = hi
    if normalize:
        out /= np.maximum(out.sum(1, keepdims=True), 1.0)
    return out


# ----------------------------------------------------------------------------- composite view
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

    crop_min: int = 300
    crop_max: int = 1000
    disjoint: bool = True
    rc_prob: float = 0.5
    mutation_rate: float = 0.01
    mask_rate: float = 0.0


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


# ----------------------------------------------------------------------------- token views
@lru_cache(maxsize=16)
def _token_rc_numpy(k: int) -> np.ndarray:
    rc = np.arange(4**k + TOKEN_OFFSET, dtype=np.int64)
    rc[TOKEN_OFFSET:] = _rc_index(k) + TOKEN_OFFSET
    return rc


def token_rc_table(k: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Token id → token id of the reverse-complemented k-mer (PAD and UNK map to themselves)."""
    return torch.as_tensor(_token_rc_numpy(k), device=device)


def token_reverse_complement(
    tokens: torch.Tensor, n_tokens: torch.Tensor, k: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Reverse the order of each row's tokens and reverse-complement every k-mer token.

    An involution on token sequences (applying it twice gives the input back). It equals the
    tokenisation of the reverse-complement sequence when the sequence length is a multiple of k.
    """
    w = tokens.shape[1]
    j = torch.arange(w, device=tokens.device)[None, :]
    valid = j < n_tokens[:, None]
    src = (n_tokens[:, None] - 1 - j).clamp(min=0)
    table = token_rc_table(k, tokens.device).to(tokens.dtype)
    rc = table[tokens.gather(1, src).long()].masked_fill(~valid, TOKEN_PAD)
    if flip is None:
        return rc
    return torch.where(flip[:, None], rc, tokens)


def token_crop(
    tokens: torch.Tensor,
    n_tokens: torch.Tensor,
    min_tokens: int,
    max_tokens: int,
    generator: torch.Generator | None = None,
    part: int = 0,
    n_parts: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop in token units (same rule as :func:`random_crop`, padding ``TOKEN_PAD``)."""
    out, lens = random_crop(tokens, n_tokens, min_tokens, max_tokens, generator, part, n_parts)
    j = torch.arange(out.shape[1], device=out.device)[None, :]
    return out.masked_fill(j >= lens[:, None], TOKEN_PAD), lens


def token_mutations(
    tokens: torch.Tensor, k: int, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-base substitutions at ``rate`` in token space: a k-mer token is hit with probability
    ``1 - (1 - rate)**k`` and then one of its k bases (uniform) changes to another base."""
    if rate <= 0:
        return tokens
    p_token = 1.0 - (1.0 - rate) ** k
    u = _rand((3, *tokens.shape), generator, tokens.device)
    t = tokens.long() - TOKEN_OFFSET
    hit = (u[0] < p_token) & (t >= 0)
    digit = torch.floor(u[1] * k).long().clamp(max=k - 1)
    place = 4**digit
    old = (t.clamp(min=0) // place) % 4
    shift = 1 + torch.floor(u[2] * 3).long().clamp(max=2)
    new = t + ((old + shift) % 4 - old) * place
    return torch.where(hit, new + TOKEN_OFFSET, tokens.long()).to(tokens.dtype)


def token_mask(
    tokens: torch.Tensor, rate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each k-mer token with probability ``rate`` by ``TOKEN_UNK`` (padding untouched)."""
    if rate <= 0:
        return tokens
    hit = (_rand(tuple(tokens.shape), generator, tokens.device) < rate) & (tokens >= TOKEN_OFFSET)
    return tokens.masked_fill(hit, TOKEN_UNK)


def make_token_view(
    tokens: torch.Tensor,
    n_tokens: torch.Tensor,
    k: int,
    cfg: DnaViewConfig,
    generator: torch.Generator | None = None,
    view: int = 0,
    n_views: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The :func:`make_view` pipeline in token space (crop lengths converted from bases)."""
    lo = max(1, cfg.crop_min // k)
    hi = max(lo, cfg.crop_max // k)
    part, parts = (view, n_views) if cfg.disjoint else (0, 1)
    x, lens = token_crop(tokens, n_tokens, lo, hi, generator, part, parts)
    if cfg.rc_prob > 0:
        flip = _rand((x.shape[0],), generator, x.device) < cfg.rc_prob
        x = token_reverse_complement(x, lens, k, flip)
    x = token_mutations(x, k, cfg.mutation_rate, generator)
    x = token_mask(x, cfg.mask_rate, generator)
    return x, lens
