"""DNA views on stored non-overlapping k-mer tokens (the transformer encoder's input): crop,
reverse complement, point mutations and masking in token space, mirroring :mod:`sciclr.views.dna`.

Tokens are ``(N, T)`` ints (``TOKEN_PAD = 0``, ``TOKEN_UNK = 1``, k-mer index + 2, see
:mod:`sciclr.data.dna.codes`) with ``n_tokens`` ``(N,)``.
"""

from __future__ import annotations

import torch

from sciclr.data.dna.codes import TOKEN_OFFSET, TOKEN_PAD, TOKEN_UNK, token_rc_table
from sciclr.views.dna import DnaViewConfig, rand, random_crop

__all__ = [
    "make_token_view",
    "token_crop",
    "token_mask",
    "token_mutations",
    "token_reverse_complement",
]


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
    u = rand((3, *tokens.shape), generator, tokens.device)
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
    hit = (rand(tuple(tokens.shape), generator, tokens.device) < rate) & (tokens >= TOKEN_OFFSET)
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
        flip = rand((x.shape[0],), generator, x.device) < cfg.rc_prob
        x = token_reverse_complement(x, lens, k, flip)
    x = token_mutations(x, k, cfg.mutation_rate, generator)
    x = token_mask(x, cfg.mask_rate, generator)
    return x, lens
