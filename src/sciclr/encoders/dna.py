"""DNA encoders: a residual dilated 1-D CNN over one-hot bases, a small transformer over stored
k-mer tokens, and an MLP over k-mer profiles (the second modality of the cross-modal pairing).

Reverse-complement invariance (``rc_invariant=True``) is exact by construction: the encoder
output is ``g(x) + g(rc(x))`` where ``g`` is the pooled network, so ``f(rc(x)) = g(rc(x)) +
g(x) = f(x)`` (floating-point addition is commutative). This is the "post-hoc conjoining" of
Shrikumar et al. 2017 (bioRxiv 103663) applied to the pooled representation, the simplest of the
RC-symmetric designs compared by Zhou et al. 2021 (ICML, "Towards interpretable and
reverse-complement-equivariant ..."): it doubles the encoder's compute but needs no weight tying.

Shapes: ``codes`` ``(N, L)`` uint8 (A=0, C=1, G=2, T=3, N=4, PAD=5), ``lengths`` ``(N,)``;
``tokens`` ``(N, T)`` int (PAD=0, UNK=1, k-mer index + 2), ``n_tokens`` ``(N,)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sciclr.data.dna.codes import PAD, TOKEN_OFFSET, TOKEN_PAD
from sciclr.data.dna.kmers import n_canonical_kmers
from sciclr.encoders.heads import MLP
from sciclr.views.dna import reverse_complement
from sciclr.views.dna_tokens import token_reverse_complement

__all__ = [
    "DilatedResNet1d",
    "KmerMLP",
    "KmerTransformer",
    "kmer_detector_",
    "masked_pool",
    "one_hot",
]


def one_hot(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(N, L)`` codes → ``(N, 4, L)``: A/C/G/T one-hot, N = 0.25 each, padding = 0."""
    table = torch.zeros((PAD + 1, 4), dtype=dtype, device=codes.device)
    table[:4] = torch.eye(4, dtype=dtype, device=codes.device)
    table[4] = 0.25
    return table[codes.long()].transpose(1, 2)


def masked_pool(h: torch.Tensor, valid: torch.Tensor, mode: str = "meanmax") -> torch.Tensor:
    """Pool ``h`` ``(N, C, L)`` over the positions where ``valid`` ``(N, L)`` is true.

    ``mode``: ``"mean"`` → ``(N, C)``; ``"meanmax"`` → ``(N, 2C)`` (mean and max concatenated).
    Rows without a valid position pool to zero.
    """
    v = valid[:, None, :].to(h.dtype)
    count = v.sum(-1).clamp(min=1.0)
    mean = (h * v).sum(-1) / count
    if mode == "mean":
        return mean
    if mode != "meanmax":
        raise ValueError(f"pooling must be 'mean' or 'meanmax', got {mode!r}")
    mx = h.masked_fill(~valid[:, None, :], float("-inf")).amax(-1)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    return torch.cat([mean, mx], dim=1)


class _ResBlock(nn.Module):
    """Pre-activation residual block: ``convs`` × (BN → ReLU → dilated conv), plus identity.

    Positions past each sequence's end are zeroed before every convolution (``keep`` mask), so
    a record's embedding does not depend on how much padding its batch has.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, convs: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(convs))
        self.convs = nn.ModuleList(
            nn.Conv1d(
                channels,
                channels,
                kernel_size,
                dilation=dilation,
                padding=dilation * (kernel_size - 1) // 2,
                bias=False,
            )
            for _ in range(convs)
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = x
        for norm, conv in zip(self.norms, self.convs, strict=True):
            h = conv(F.relu(norm(h)) * keep)
        return x + h


def kmer_detector_(conv: nn.Conv1d, k: int) -> int:
    """Initialise the first ``min(out_channels, 4**k)`` filters of a one-hot conv as exact
    k-mer detectors: filter ``c`` scores +2 per matching base of k-mer ``c`` (centred in the
    kernel) with bias ``-(2k - 1)``, so after ReLU it is 1 on that k-mer and 0 elsewhere
    (a window with an N, which scores 0.5, stays at or below 0). Mean-pooled, these channels start as the k-mer frequency
    profile, the classic composition signal (tetranucleotide frequencies: Teeling et al. 2004);
    training is free to move them. Returns the number of filters set."""
    width = conv.kernel_size[0]
    if k > width:
        raise ValueError(f"stem_kernel {width} is shorter than the k-mer length {k}")
    n = min(conv.out_channels, 4**k)
    off = (width - k) // 2
    with torch.no_grad():
        conv.weight[:n].zero_()
        idx = torch.arange(n)
        for j in range(k):  # base j (most significant first) of k-mer idx
            base = (idx >> (2 * (k - 1 - j))) & 3
            conv.weight[idx, base, off + j] = 2.0
        if conv.bias is not None:
            conv.bias[:n] = -(2 * k - 1)
    return n


class DilatedResNet1d(nn.Module):
    """Residual dilated 1-D CNN over one-hot DNA with masked mean(+max) pooling.

    stem conv (``stem_kernel``, ``stem_channels``) → max-pool by ``pool`` → BN → ReLU →
    1×1 conv to ``channels`` → ``blocks`` residual blocks with dilations cycling through
    ``dilations`` (receptive field grows exponentially, as in Basenji, Kelley et al. 2018,
    Genome Res 28:739) → BN → ReLU → masked pooling. With ``multiscale`` a composition branch
    (the mean over all bases of ReLU(stem), before any down-sampling) is concatenated to the
    pooled output; ``stem_init="kmer"`` starts the stem as exact ``init_k``-mer detectors
    (:func:`kmer_detector_`), so that branch starts as the k-mer frequency profile. ``neck``
    > 0 adds a 2-layer MLP (BN, ReLU) on the pooled vector, whose output is the embedding.

    Input ``codes`` ``(N, L)``, ``lengths`` ``(N,)``; output ``(N, out_dim)``: ``neck`` when
    set, else ``p * channels + multiscale * stem_channels`` (``p`` = 2 for ``"meanmax"``
    pooling, 1 for ``"mean"``).
    """

    def __init__(
        self,
        channels: int = 128,
        blocks: int = 4,
        kernel_size: int = 5,
        stem_kernel: int = 9,
        pool: int = 4,
        dilations: Sequence[int] = (1, 2, 4, 8),
        convs_per_block: int = 1,
        pooling: str = "meanmax",
        rc_invariant: bool = True,
        stem_channels: int | None = None,
        multiscale: bool = False,
        stem_init: str = "random",
        init_k: int = 4,
        neck: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or stem_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd (symmetric 'same' padding)")
        if stem_init not in ("random", "kmer"):
            raise ValueError(f"stem_init must be 'random' or 'kmer', got {stem_init!r}")
        self.pool, self.pooling, self.rc_invariant = int(pool), pooling, bool(rc_invariant)
        self.multiscale = bool(multiscale)
        stem_channels = int(stem_channels or channels)
        self.stem = nn.Conv1d(4, stem_channels, stem_kernel, padding=stem_kernel // 2)
        if stem_init == "kmer":
            kmer_detector_(self.stem, init_k)
        self.stem_act = nn.Sequential(nn.BatchNorm1d(stem_channels), nn.ReLU())
        self.reduce = nn.Conv1d(stem_channels, channels, 1, bias=False)
        dil = list(dilations) or [1]
        self.blocks = nn.ModuleList(
            _ResBlock(channels, kernel_size, dil[i % len(dil)], convs_per_block)
            for i in range(blocks)
        )
        self.final = nn.Sequential(nn.BatchNorm1d(channels), nn.ReLU())
        per = 2 if pooling == "meanmax" else 1
        pooled = per * channels + (stem_channels if self.multiscale else 0)
        self.neck = (
            MLP(pooled, neck, neck, num_layers=2, final_activation=True) if neck else nn.Identity()
        )
        self.out_dim = neck or pooled

    def _pooled(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.stem(one_hot(codes, self.stem.weight.dtype))
        if self.multiscale:  # composition branch: mean of ReLU(stem) over the bases
            full = torch.arange(h.shape[-1], device=h.device)[None, :] < lengths[:, None]
            comp = masked_pool(F.relu(h), full, "mean")
        if self.pool > 1:
            # past-the-end positions must not win a pooling window that straddles the end
            end = (
                torch.arange(h.shape[-1], device=h.device)[None, None, :] >= lengths[:, None, None]
            )
            h = F.max_pool1d(h.masked_fill(end, float("-inf")), self.pool, ceil_mode=True)
        valid_len = torch.div(lengths + self.pool - 1, self.pool, rounding_mode="floor")
        valid = torch.arange(h.shape[-1], device=h.device)[None, :] < valid_len[:, None]
        keep = valid[:, None, :].to(h.dtype)
        s = self.stem_act(torch.where(valid[:, None, :], h, torch.zeros((), dtype=h.dtype)))
        h = self.reduce(s * keep)
        for block in self.blocks:
            h = block(h, keep)
        out = masked_pool(self.final(h), valid, self.pooling)
        if self.multiscale:
            out = torch.cat([comp, out], dim=1)
        return self.neck(out)

    def forward(
        self, codes: torch.Tensor, lengths: torch.Tensor, symmetrize: bool | None = None
    ) -> torch.Tensor:
        """``symmetrize`` overrides ``rc_invariant`` for this call (e.g. training on random
        strands, embedding symmetrised)."""
        if not (self.rc_invariant if symmetrize is None else symmetrize):
            return self._pooled(codes, lengths)
        n = codes.shape[0]
        both = torch.cat([codes, reverse_complement(codes, lengths)], dim=0)
        pooled = self._pooled(both, torch.cat([lengths, lengths]))
        return pooled[:n] + pooled[n:]


def _sinusoid(width: int, dim: int, device: torch.device) -> torch.Tensor:
    """Fixed sinusoidal positions (Vaswani et al. 2017): ``(width, dim)``; any length works."""
    pos = torch.arange(width, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    pe = torch.zeros(width, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class KmerTransformer(nn.Module):
    """A small pre-norm transformer encoder over non-overlapping k-mer tokens.

    Tokens come from preprocessing (stored once, not recomputed per epoch). Output: masked
    mean(+max) pooling of the last layer, ``(N, out_dim)``. ``rc_invariant`` symmetrises with
    the token-level reverse complement (:func:`sciclr.views.dna_tokens.token_reverse_complement`).
    """

    def __init__(
        self,
        k: int,
        d_model: int = 128,
        heads: int = 4,
        layers: int = 2,
        ff: int = 256,
        dropout: float = 0.0,
        pooling: str = "meanmax",
        rc_invariant: bool = True,
    ) -> None:
        super().__init__()
        self.k, self.pooling, self.rc_invariant = int(k), pooling, bool(rc_invariant)
        self.embed = nn.Embedding(4**k + TOKEN_OFFSET, d_model, padding_idx=TOKEN_PAD)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ff, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = d_model * (2 if pooling == "meanmax" else 1)

    def _pooled(self, tokens: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
        width = tokens.shape[1]
        valid = torch.arange(width, device=tokens.device)[None, :] < n_tokens[:, None]
        h = self.embed(tokens.long()) + _sinusoid(width, self.embed.embedding_dim, tokens.device)
        h = self.norm(self.encoder(h, src_key_padding_mask=~valid))
        return masked_pool(h.transpose(1, 2), valid, self.pooling)

    def forward(
        self, tokens: torch.Tensor, n_tokens: torch.Tensor, symmetrize: bool | None = None
    ) -> torch.Tensor:
        if not (self.rc_invariant if symmetrize is None else symmetrize):
            return self._pooled(tokens, n_tokens)
        n = tokens.shape[0]
        both = torch.cat([tokens, token_reverse_complement(tokens, n_tokens, self.k)], dim=0)
        pooled = self._pooled(both, torch.cat([n_tokens, n_tokens]))
        return pooled[:n] + pooled[n:]


class KmerMLP(nn.Module):
    """MLP over a canonical k-mer frequency profile ``(N, F)`` → ``(N, out_dim)``.

    Frequencies are rescaled by F (mean feature 1) and square-root transformed (variance
    stabilising for counts) before the first layer.
    """

    def __init__(self, k: int, hidden: int = 256, out_dim: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.k, self.n_features = int(k), n_canonical_kmers(k)
        self.mlp = MLP(self.n_features, hidden, out_dim, num_layers=layers, final_activation=True)
        self.out_dim = out_dim

    def forward(self, profile: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.sqrt(profile * self.n_features))
