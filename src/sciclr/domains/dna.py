"""The DNA domain: FASTA/GenBank ingest, batched views, strand-aware encoders, k-mer baselines.

Payload (``torch.save``-able, loads with ``weights_only=True``), row ``i`` = record ``i``:

=================  =====================  ==============================================
``codes``          uint8 ``(total,)``     bases, A=0 C=1 G=2 T=3 N=4, records back to back
``offsets``        int64 ``(n+1,)``       record ``i`` is ``codes[offsets[i]:offsets[i+1]]``
``tokens``         int16 ``(total_t,)``   non-overlapping k-mer tokens (PAD=0, UNK=1, idx+2)
``token_offsets``  int64 ``(n+1,)``       ragged offsets of ``tokens``
``token_k``        int                    k of the tokens
``max_length``     int                    longest window a batch holds per record
``ids``            list[str]              record ids
=================  =====================  ==============================================

Pairings (``model.pairing``): ``augment`` contrasts ``views.n_views`` augmented crops of each
sequence (SimCLR, Chen et al. 2020); ``kmer`` contrasts an augmented crop with the canonical
k-mer profile of another crop, encoded by an MLP (cross-modal, as CLIP/CMC: Radford et al. 2021,
Tian et al. 2020); ``both`` uses the ``n_views`` crops and the profile together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.profiler import record_function

from sciclr.data.dna import PREPROCESS_DEFAULTS, merge_dna, preprocess_dna_shard
from sciclr.domains.base import ContrastiveModel, Processed, config_section
from sciclr.encoders.dna import DilatedResNet1d, KmerMLP, KmerTransformer
from sciclr.encoders.heads import ProjectionHead
from sciclr.errors import SciclrError
from sciclr.views.dna import (
    PAD,
    TOKEN_PAD,
    DnaViewConfig,
    kmer_profile,
    kmer_profiles_ragged,
    make_token_view,
    make_view,
)

VIEWS_LABEL = "sciclr.views"  # profiler range of the view drawing (sciclr.train.profiling)

__all__ = [
    "DOMAIN",
    "MODEL_DEFAULTS",
    "VIEW_DEFAULTS",
    "DnaContrastiveModel",
    "DnaDataSource",
    "DnaDomain",
]

# Defaults chosen on the val split of the bundled 11-genome data; the workflow schema repeats
# them.
VIEW_DEFAULTS: dict[str, Any] = {
    "n_views": 2,  # augmented crops per sequence (pairing augment/both)
    "crop_min": 250,  # crop length range in bases
    "crop_max": 750,
    "disjoint": True,  # views from disjoint segments of the sequence (no shared substrings)
    "rc_prob": 0.5,  # probability of the reverse-complement strand
    "mutation_rate": 0.01,  # per-base substitution probability
    "mask_rate": 0.0,  # per-base N-masking probability
    "kmer_k": 4,  # k of the k-mer profile view (pairing kmer/both)
}

MODEL_DEFAULTS: dict[str, Any] = {
    "encoder": "cnn",  # cnn | transformer
    "pairing": "kmer",  # augment | kmer | both
    # exact reverse-complement invariance of the embedding: true = the encoder is symmetrised
    # in training and embedding; "embed" = only the embedding (training sees random strands,
    # half the cost); false = none
    "rc_invariant": "embed",
    "channels": 128,  # CNN width (residual blocks)
    "stem_channels": 256,  # width of the stem conv (0 = channels)
    "stem_init": "kmer",  # random | kmer (stem starts as exact init_k-mer detectors)
    "init_k": 4,
    "multiscale": True,  # add a composition branch: mean of ReLU(stem) over all bases
    "neck": 0,  # width of an MLP on the pooled features (0 = none); its output is the embedding
    "blocks": 2,  # residual blocks
    "kernel_size": 5,
    "stem_kernel": 9,
    "pool": 4,  # max-pool factor after the stem
    "dilations": [1, 2, 4, 8],
    "convs_per_block": 1,
    "pooling": "meanmax",  # mean | meanmax
    "d_model": 128,  # transformer width / heads / layers / feed-forward width
    "heads": 4,
    "layers": 2,
    "ff": 256,
    "kmer_hidden": 256,  # k-mer MLP width (pairing kmer/both)
    "proj_hidden": 256,  # projection head
    "proj_dim": 128,
}


# ----------------------------------------------------------------------------- data source
class DnaDataSource:
    """Random access to a DNA payload: ``batch(idx)`` gathers rows from the ragged arrays.

    A batch is ``{"codes": (N, L) uint8, "lengths": (N,), "tokens": (N, T) int16,
    "n_tokens": (N,)}`` padded with ``PAD``/``TOKEN_PAD`` to the longest row; records longer
    than ``max_length`` bases are cut to their centred window of that length.
    """

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.codes = torch.as_tensor(payload["codes"], dtype=torch.uint8)
        self.offsets = torch.as_tensor(payload["offsets"], dtype=torch.int64)
        self.max_length = int(payload.get("max_length", PREPROCESS_DEFAULTS["max_length"]))
        self.tokens = payload.get("tokens")
        if self.tokens is not None:
            self.tokens = torch.as_tensor(self.tokens)
            self.token_offsets = torch.as_tensor(payload["token_offsets"], dtype=torch.int64)
            self.token_k = int(payload["token_k"])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def item_sizes(self) -> np.ndarray:
        """Bases per record as batched (capped at ``max_length``): embedding sorts by it."""
        return (self.offsets[1:] - self.offsets[:-1]).clamp(max=self.max_length).numpy()

    @staticmethod
    def _gather(flat, offsets, idx, cap, pad):
        start = offsets[idx]
        length = offsets[idx + 1] - start
        start = start + ((length - cap).clamp(min=0) // 2)
        length = length.clamp(max=cap)
        width = max(int(length.max()), 1) if len(idx) else 1
        j = torch.arange(width)
        pos = (start[:, None] + j[None, :]).clamp(max=max(len(flat) - 1, 0))
        out = flat[pos] if len(flat) else torch.full((len(idx), width), pad, dtype=flat.dtype)
        return out.masked_fill(j[None, :] >= length[:, None], pad), length

    def batch(
        self, idx: torch.Tensor, device: torch.device | str = "cpu"
    ) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.int64).cpu()
        codes, lengths = self._gather(self.codes, self.offsets, idx, self.max_length, PAD)
        out = {"codes": codes, "lengths": lengths}
        if self.tokens is not None:
            cap = max(self.max_length // self.token_k, 1)
            out["tokens"], out["n_tokens"] = self._gather(
                self.tokens, self.token_offsets, idx, cap, TOKEN_PAD
            )
        return {k: v.to(device, non_blocking=True) for k, v in out.items()}


# ----------------------------------------------------------------------------- model
class DnaContrastiveModel(ContrastiveModel):
    """Sequence encoder (+ k-mer MLP for the cross-modal pairing) and projection heads.

    ``forward(batch, generator)`` → ``(V, N, proj_dim)``; ``embed(batch)`` → ``(N, out_dim)``:
    the sequence encoder on the unaugmented records (call under ``model.eval()``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        views: DnaViewConfig,
        n_views: int = 2,
        pairing: str = "augment",
        kmer_k: int = 4,
        kmer_hidden: int = 256,
        proj_hidden: int = 256,
        proj_dim: int = 128,
        rc_mode: str = "always",
    ) -> None:
        super().__init__()
        if pairing not in ("augment", "kmer", "both"):
            raise SciclrError(f"model.pairing must be augment, kmer or both, got {pairing!r}")
        self.encoder = encoder
        self.views, self.pairing, self.kmer_k = views, pairing, int(kmer_k)
        self.rc_mode = rc_mode
        self.n_seq_views = 1 if pairing == "kmer" else int(n_views)
        if pairing == "augment" and self.n_seq_views < 2:
            raise SciclrError("views.n_views must be >= 2 for pairing 'augment'")
        self.tokens = isinstance(encoder, KmerTransformer)
        self.head = ProjectionHead(encoder.out_dim, proj_hidden, proj_dim)
        if pairing in ("kmer", "both"):
            self.kmer_encoder = KmerMLP(self.kmer_k, kmer_hidden, kmer_hidden)
            self.kmer_head = ProjectionHead(kmer_hidden, proj_hidden, proj_dim)

    @property
    def n_views(self) -> int:
        """V: the sequence views plus the k-mer profile view (pairing kmer/both)."""
        return self.n_seq_views + (self.pairing != "augment")

    def draw_views(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """All views of a batch: the sequence views stacked along the batch axis (``x``
        ``(S*N, W)``, ``lengths`` ``(S*N,)``) and, for the kmer/both pairings, the canonical
        k-mer profile of one more disjoint crop (``profile`` ``(N, F)``)."""
        xs, ls = [], []
        for v in range(self.n_seq_views):
            if self.tokens:
                x, lens = make_token_view(
                    batch["tokens"],
                    batch["n_tokens"],
                    self.encoder.k,
                    self.views,
                    generator,
                    v,
                    self.n_views,
                )
            else:
                x, lens = make_view(
                    batch["codes"], batch["lengths"], self.views, generator, v, self.n_views
                )
            xs.append(x)
            ls.append(lens)
        width = max(x.shape[1] for x in xs)
        pad = TOKEN_PAD if self.tokens else PAD
        out = {
            "x": torch.cat([nn.functional.pad(x, (0, width - x.shape[1]), value=pad) for x in xs]),
            "lengths": torch.cat(ls),
        }
        if self.pairing != "augment":
            x, _ = make_view(
                batch["codes"],
                batch["lengths"],
                self.views,
                generator,
                self.n_views - 1,
                self.n_views,
            )
            out["profile"] = kmer_profile(x, self.kmer_k)
        return out

    def forward(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        with record_function(VIEWS_LABEL):
            views = self.draw_views(batch, generator)
        h = self.encoder(views["x"], views["lengths"], symmetrize=self.rc_train)
        z = self.head(h).view(self.n_seq_views, -1, self.head.out_dim)
        if self.pairing == "augment":
            return z
        zk = self.kmer_head(self.kmer_encoder(views["profile"]))
        return torch.cat([z, zk[None]], dim=0)

    def embed(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.tokens:
            return self.encoder(batch["tokens"], batch["n_tokens"])
        return self.encoder(batch["codes"], batch["lengths"])

    @property
    def rc_train(self) -> bool:
        """Whether training forwards are symmetrised too (``rc_invariant: true``)."""
        return self.encoder.rc_invariant and self.rc_mode != "embed"


def _rc_flag(value: Any) -> bool:
    if value is True or value is False:
        return value
    if value == "embed":
        return True
    raise SciclrError(f"model.rc_invariant must be true, false or 'embed', got {value!r}")


def build_encoder(mcfg: Mapping[str, Any], token_k: int) -> nn.Module:
    """The sequence encoder named by ``model.encoder``."""
    kind = mcfg["encoder"]
    if kind == "cnn":
        return DilatedResNet1d(
            channels=int(mcfg["channels"]),
            blocks=int(mcfg["blocks"]),
            kernel_size=int(mcfg["kernel_size"]),
            stem_kernel=int(mcfg["stem_kernel"]),
            pool=int(mcfg["pool"]),
            dilations=[int(d) for d in mcfg["dilations"]],
            convs_per_block=int(mcfg["convs_per_block"]),
            pooling=str(mcfg["pooling"]),
            rc_invariant=_rc_flag(mcfg["rc_invariant"]),
            stem_channels=int(mcfg["stem_channels"] or 0) or None,
            multiscale=bool(mcfg["multiscale"]),
            stem_init=str(mcfg["stem_init"]),
            init_k=int(mcfg["init_k"]),
            neck=int(mcfg["neck"]),
        )
    if kind == "transformer":
        return KmerTransformer(
            k=token_k,
            d_model=int(mcfg["d_model"]),
            heads=int(mcfg["heads"]),
            layers=int(mcfg["layers"]),
            ff=int(mcfg["ff"]),
            pooling=str(mcfg["pooling"]),
            rc_invariant=_rc_flag(mcfg["rc_invariant"]),
        )
    raise SciclrError(f"model.encoder must be 'cnn' or 'transformer', got {kind!r}")


# ----------------------------------------------------------------------------- the domain
class DnaDomain:
    """The :class:`sciclr.domains.base.Domain` implementation for DNA sequences."""

    name = "dna"

    def preprocess_shard(self, cfg: Mapping[str, Any], shard: int, n_shards: int) -> Processed:
        return preprocess_dna_shard(cfg, shard, n_shards)

    def merge(self, parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
        return merge_dna(parts, cfg)

    def data_source(self, payload: Mapping[str, Any]) -> DnaDataSource:
        return DnaDataSource(payload)

    def baseline_features(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        """Canonical k-mer frequency profiles of the full records, ``kmer{k}`` → ``(n, F)``
        float32 for every k in ``baselines.kmer_k`` (F = 136 for k=4, 2080 for k=6)."""
        ks = config_section(cfg, "baselines", {"kmer_k": PREPROCESS_DEFAULTS["kmer_k"]})["kmer_k"]
        ks = [ks] if isinstance(ks, int) else list(ks)
        codes = np.asarray(payload["codes"], dtype=np.uint8)
        offsets = np.asarray(payload["offsets"], dtype=np.int64)
        return {f"kmer{int(k)}": kmer_profiles_ragged(codes, offsets, int(k)) for k in ks}

    def build_model(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> DnaContrastiveModel:
        mcfg = config_section(cfg, "model", MODEL_DEFAULTS)
        vcfg = config_section(cfg, "views", VIEW_DEFAULTS)
        token_k = int(payload.get("token_k") or 0)  # absent/None: no tokens were stored
        if mcfg["encoder"] == "transformer" and payload.get("tokens") is None:
            raise SciclrError("model.encoder 'transformer' needs tokens in the preprocessed data")
        views = DnaViewConfig(
            crop_min=int(vcfg["crop_min"]),
            crop_max=int(vcfg["crop_max"]),
            disjoint=bool(vcfg["disjoint"]),
            rc_prob=float(vcfg["rc_prob"]),
            mutation_rate=float(vcfg["mutation_rate"]),
            mask_rate=float(vcfg["mask_rate"]),
        )
        return DnaContrastiveModel(
            build_encoder(mcfg, token_k),
            views,
            n_views=int(vcfg["n_views"]),
            pairing=str(mcfg["pairing"]),
            kmer_k=int(vcfg["kmer_k"]),
            kmer_hidden=int(mcfg["kmer_hidden"]),
            proj_hidden=int(mcfg["proj_hidden"]),
            proj_dim=int(mcfg["proj_dim"]),
            rc_mode="embed" if mcfg["rc_invariant"] == "embed" else "always",
        )


DOMAIN = DnaDomain()
