"""Plain, obviously-correct float64 references of the InfoNCE conventions (test-only)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def all_views(z: torch.Tensor, tau: float, normalize: bool = True) -> torch.Tensor:
    """SupCon L_out with instance labels: mean over anchors of −1/(V−1) Σ_p log softmax."""
    z = z.double()
    if normalize:
        z = F.normalize(z, dim=-1)
    v, n, d = z.shape
    f = z.reshape(v * n, d)
    logits = f @ f.T / tau
    eye = torch.eye(v * n, dtype=torch.bool)
    logits = logits.masked_fill(eye, float("-inf"))
    inst = torch.arange(v * n) % n
    pos = (inst[:, None] == inst[None, :]) & ~eye
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    return -(logp.masked_fill(~pos, 0.0).sum(1) / (v - 1)).mean()


def cross_view(z: torch.Tensor, tau: float, normalize: bool = True) -> torch.Tensor:
    """Mean over ordered view pairs of cross-entropy(z_a z_bᵀ/τ, arange(N))."""
    z = z.double()
    if normalize:
        z = F.normalize(z, dim=-1)
    v, n, _ = z.shape
    labels = torch.arange(n)
    losses = [
        F.cross_entropy(z[a] @ z[b].T / tau, labels) for a in range(v) for b in range(v) if a != b
    ]
    return torch.stack(losses).mean()


def debiased_hard(z: torch.Tensor, tau: float, tau_plus: float, beta: float) -> torch.Tensor:
    """Mode "all" with the negative mass of Chuang et al. 2020 / Robinson et al. 2021, raw exp.

    For anchor a, positive p: −log(e^{s_p} / (e^{s_p} + Σ_{other p'} e^{s_p'} + Ng)), with
    Ng = max((Σ_j w_j e^{s_j} − K τ⁺ mean_p e^{s_p}) / (1 − τ⁺), K e^{−1/τ}),
    w_j = e^{β s_j} / mean_j e^{β s_j}. Only valid at moderate τ (it overflows otherwise).
    """
    z = F.normalize(z.double(), dim=-1)
    v, n, d = z.shape
    f = z.reshape(v * n, d)
    s = f @ f.T / tau
    total = 0.0
    count = 0
    for r in range(v * n):
        i = r % n
        pos = [u * n + i for u in range(v) if u * n + i != r]
        neg = [c for c in range(v * n) if c % n != i]
        k = len(neg)
        e_neg = torch.exp(s[r, neg])
        w = torch.exp(beta * s[r, neg])
        mass = (w * e_neg).sum() / w.mean()
        e_pos = torch.exp(s[r, pos])
        ng = (mass - k * tau_plus * e_pos.mean()) / (1 - tau_plus)
        ng = torch.clamp(ng, min=k * math.exp(-1 / tau))
        for j, _p in enumerate(pos):
            others = e_pos.sum() - e_pos[j]
            total = total - torch.log(e_pos[j] / (e_pos[j] + others + ng))
            count += 1
    return total / count
