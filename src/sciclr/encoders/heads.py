"""Projection heads shared by every domain.

The contrastive loss is computed on a small MLP's output rather than on the representation
itself: SimCLR (Chen et al. 2020, ICML, §4.2) showed that the layer *before* the head keeps more
information useful downstream, so probes read the encoder output and only the loss sees the head.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "ProjectionHead"]


def _norm(kind: str | None, dim: int) -> nn.Module:
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


class MLP(nn.Sequential):
    """``num_layers`` linear layers with norm + ReLU between them: ``(N, in_dim) -> (N, out_dim)``.

    With ``final_activation`` the last layer is followed by norm + ReLU too (an encoder body
    rather than a head).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        num_layers: int = 2,
        norm: str | None = "batch",
        final_activation: bool = False,
    ) -> None:
        if num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=last and not final_activation))
            if not last or final_activation:
                layers += [_norm(norm, dims[i + 1]), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim


class ProjectionHead(MLP):
    """SimCLR-style projection head ``Linear → norm → ReLU → Linear``: ``(N, in_dim) → (N, out_dim)``.

    Args:
        in_dim: representation size (the encoder's output, what probes see).
        hidden: hidden width.
        out_dim: size of the vectors the InfoNCE loss compares (L2-normalised by the loss).
        num_layers: linear layers (2 as in SimCLR; 3 as in SimCLR v2 / MoCo v3).
        norm: ``"batch"`` (default; synchronised under DDP by ``SyncBatchNorm`` conversion),
            ``"layer"`` or ``"none"``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        num_layers: int = 2,
        norm: str | None = "batch",
    ) -> None:
        super().__init__(in_dim, hidden, out_dim, num_layers=num_layers, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)
