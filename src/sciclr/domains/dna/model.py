"""The DNA contrastive model: sequence encoder, k-mer profile MLP and projection heads.

Pairings (``model.pairing``): ``augment`` contrasts ``views.n_views`` augmented crops of each
sequence (SimCLR, Chen et al. 2020); ``kmer`` contrasts an augmented crop with the canonical
k-mer profile of another crop, encoded by an MLP (cross-modal, as CLIP/CMC: Radford et al. 2021,
Tian et al. 2020); ``both`` uses the ``n_views`` crops and the profile together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sciclr.data.dna.codes import PAD, TOKEN_PAD
from sciclr.data.dna.kmers import kmer_profile
from sciclr.domains.base import ContrastiveModel
from sciclr.encoders.dna import DilatedResNet1d, KmerMLP, KmerTransformer
from sciclr.encoders.heads import ProjectionHead
from sciclr.errors import SciclrError
from sciclr.views import drawing_views
from sciclr.views.dna import DnaViewConfig, make_view
from sciclr.views.dna_tokens import make_token_view

__all__ = ["DnaContrastiveModel", "build_encoder", "build_model"]


class DnaContrastiveModel(ContrastiveModel):
    """Sequence encoder (+ k-mer MLP for the cross-modal pairing) and projection heads.

    ``forward(batch, generator)`` → ``(V, N, proj_dim)``; ``embed(batch)`` → ``(N, out_dim)``:
    the sequence encoder on the unaugmented records (call under ``model.eval()``).
    ``rc_train``: symmetrise the training forwards too (``rc_invariant: true``); with
    ``rc_invariant: embed`` only the embedding is symmetrised and training sees random strands.
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
        rc_train: bool = True,
    ) -> None:
        super().__init__()
        if pairing not in ("augment", "kmer", "both"):
            raise SciclrError(f"model.pairing must be augment, kmer or both, got {pairing!r}")
        self.encoder = encoder
        self.views, self.pairing, self.kmer_k = views, pairing, int(kmer_k)
        self.rc_train = bool(rc_train) and bool(getattr(encoder, "rc_invariant", False))
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
        with drawing_views():
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


def build_encoder(model: Mapping[str, Any], token_k: int) -> nn.Module:
    """The sequence encoder named by ``model.encoder`` (a filled ``model:`` section)."""
    rc = model["rc_invariant"] is not False  # true or "embed": the embedding is symmetrised
    if model["encoder"] == "cnn":
        return DilatedResNet1d(
            channels=model["channels"],
            blocks=model["blocks"],
            kernel_size=model["kernel_size"],
            stem_kernel=model["stem_kernel"],
            pool=model["pool"],
            dilations=list(model["dilations"]),
            convs_per_block=model["convs_per_block"],
            pooling=model["pooling"],
            rc_invariant=rc,
            stem_channels=model["stem_channels"] or None,
            multiscale=model["multiscale"],
            stem_init=model["stem_init"],
            init_k=model["init_k"],
            neck=model["neck"],
        )
    return KmerTransformer(
        k=token_k,
        d_model=model["d_model"],
        heads=model["heads"],
        layers=model["layers"],
        ff=model["ff"],
        pooling=model["pooling"],
        rc_invariant=rc,
    )


def build_model(payload: Mapping[str, Any], cfg: Mapping[str, Any]) -> DnaContrastiveModel:
    """A freshly initialised model for a data set's filled config (seeded by the caller)."""
    model, views = cfg["model"], cfg["views"]
    token_k = int(payload.get("token_k") or 0)  # absent/None: no tokens were stored
    if model["encoder"] == "transformer" and payload.get("tokens") is None:
        raise SciclrError("model.encoder 'transformer' needs tokens in the preprocessed data")
    return DnaContrastiveModel(
        build_encoder(model, token_k),
        DnaViewConfig.from_cfg(views),
        n_views=views["n_views"],
        pairing=model["pairing"],
        kmer_k=views["kmer_k"],
        kmer_hidden=model["kmer_hidden"],
        proj_hidden=model["proj_hidden"],
        proj_dim=model["proj_dim"],
        rc_train=model["rc_invariant"] is True,
    )
