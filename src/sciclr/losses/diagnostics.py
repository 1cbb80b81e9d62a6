"""Cheap per-step diagnostics of an InfoNCE loss, from statistics the loss already computed.

* ``pos_sim`` / ``neg_sim``: mean similarity (logit · τ; cosine when normalised) of positive and
  negative pairs; the negative mean comes from ``R · Σ K`` minus the non-negatives, never from an
  extra N × N pass.
* ``alignment``: E‖f(x) − f(y)‖² over positive pairs; ``uniformity``: log E exp(−2‖f(x) − f(y)‖²)
  over pairs of distinct instances (Wang & Isola 2020, α = 2, t = 2), estimated on at most
  ``UNIFORMITY_ROWS`` anchors of the first view against the whole (local) batch.
* ``k``: negatives per anchor; ``mi_bound``: ln K − L, the InfoNCE lower bound on the mutual
  information between views in nats (van den Oord et al. 2018; Poole et al. 2019);
  ``margin``: β + τ ln K with β = ``neg_sim`` — the positive similarity above which the loss
  becomes small (the effective margin of the softmax, see :mod:`sciclr.losses.infonce`).

Statistics are reduced in the loss's compute dtype (float64 for float64 embeddings) before
becoming Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sciclr.losses.rows import RowStats, compute_dtype

UNIFORMITY_ROWS = 256


@dataclass
class InfoNCEDiagnostics:
    """Plain floats/ints (``dataclasses.asdict`` goes straight into a CSV row)."""

    pos_sim: float
    neg_sim: float
    alignment: float
    uniformity: float
    k: int
    mi_bound: float
    margin: float
    temperature: float
    loss: float = float("nan")


@torch.no_grad()
def alignment_uniformity(zn: torch.Tensor) -> tuple[float, float]:
    """Alignment and uniformity of embeddings ``zn (V, N, d)`` as the loss sees them."""
    v, n, _ = zn.shape
    zn = zn.to(compute_dtype(zn.dtype))
    sq_norm = (zn * zn).sum(-1)  # (V, N)
    gram = torch.einsum("und,vnd->uvn", zn, zn)  # same-instance dot products
    dist = sq_norm[:, None] + sq_norm[None, :] - 2 * gram  # (V, V, N)
    off = ~torch.eye(v, dtype=torch.bool, device=zn.device)
    align = float(dist[off].mean()) if v > 1 else float("nan")
    x = zn[0]
    rows = min(n, UNIFORMITY_ROWS)
    if n < 2:
        return align, float("nan")
    d2 = (sq_norm[0, :rows, None] + sq_norm[0, None, :] - 2 * x[:rows] @ x.T).clamp_min(0)
    e = -2.0 * d2
    e.diagonal().fill_(float("-inf"))  # a point is not paired with itself
    uni = float(torch.logsumexp(e.flatten(), 0)) - math.log(rows * (n - 1))
    return align, uni


@torch.no_grad()
def summarize(
    loss: torch.Tensor, stats: RowStats, temperature: float, zn: torch.Tensor
) -> InfoNCEDiagnostics:
    """Diagnostics of one step from the loss, its row statistics and the local embeddings."""
    tau = float(temperature)
    lval = float(loss.detach())
    pos_sim = float(stats.s_pos.mean()) * tau
    n_neg = float(stats.n_neg.sum())
    neg_sim = float(stats.neg_sum.sum()) / n_neg * tau if n_neg > 0 else float("nan")
    k = round(float(stats.n_neg.mean()))
    align, uni = alignment_uniformity(zn)
    log_k = math.log(k) if k > 0 else float("nan")
    return InfoNCEDiagnostics(
        pos_sim=pos_sim,
        neg_sim=neg_sim,
        alignment=align,
        uniformity=uni,
        k=int(k),
        mi_bound=log_k - lval,
        margin=neg_sim + tau * log_k,
        temperature=tau,
        loss=lval,
    )
