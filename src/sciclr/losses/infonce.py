"""Multi-view InfoNCE (placeholder core: exact for mode="all"; the full library replaces it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class InfoNCEDiagnostics:
    pos_sim: float
    neg_sim: float
    alignment: float
    uniformity: float
    k: int
    mi_bound: float
    margin: float
    temperature: float


def info_nce(
    z: torch.Tensor,
    temperature: float | torch.Tensor = 0.1,
    mode: str = "all",
    normalize: bool = True,
    return_diagnostics: bool = False,
):
    """z: (V, N, d). Returns the mean loss (and diagnostics on request)."""
    v, n, _ = z.shape
    z = z.float()
    if normalize:
        z = F.normalize(z, dim=-1)
    flat = z.reshape(v * n, -1)
    logits = flat @ flat.T / temperature
    eye = torch.eye(v * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    inst = torch.arange(v * n, device=z.device) % n
    pos = (inst[:, None] == inst[None, :]) & ~eye
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    loss = -(logp.masked_fill(~pos, 0).sum(1) / (v - 1)).mean()
    if not return_diagnostics:
        return loss
    with torch.no_grad():
        sim = flat @ flat.T
        neg = ~pos & ~eye
        k = v * n - v
        tau = float(temperature)
        diag = InfoNCEDiagnostics(
            pos_sim=float(sim[pos].mean()),
            neg_sim=float(sim[neg].mean()),
            alignment=float((2 - 2 * sim[pos]).mean()),
            uniformity=float(torch.log(torch.exp(-2 * (2 - 2 * sim[neg])).mean())),
            k=k,
            mi_bound=math.log(k) - float(loss),
            margin=float(sim[neg].mean()) + tau * math.log(k),
            temperature=tau,
        )
    return loss, diag


class InfoNCE(nn.Module):
    def __init__(self, temperature: float = 0.1, learnable: bool = False, mode: str = "all",
                 normalize: bool = True, **_: object) -> None:
        super().__init__()
        t = torch.tensor(math.log(temperature))
        self.log_temperature = nn.Parameter(t) if learnable else nn.Buffer(t)
        self.mode, self.normalize = mode, normalize

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp().clamp(min=0.01)

    def forward(self, z: torch.Tensor, return_diagnostics: bool = False):
        return info_nce(z, self.temperature, self.mode, self.normalize, return_diagnostics)
