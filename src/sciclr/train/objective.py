"""The training objective: model forward under autocast, InfoNCE in float32.

Wrapping model and loss in one module lets DDP average the gradient of a learned temperature
together with the model's, and keeps the precision boundary in one place: the encoders may run in
bf16, the logits and log-sum-exp never do.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sciclr.domains.base import ContrastiveModel
from sciclr.errors import SciclrError
from sciclr.losses import InfoNCE
from sciclr.train.config import TrainConfig
from sciclr.train.device import autocast

__all__ = ["Objective", "build_loss", "check_global_negatives"]


def build_loss(tcfg: TrainConfig) -> nn.Module:
    """The InfoNCE module configured by ``train:``."""
    return InfoNCE(
        temperature=tcfg.temperature,
        learnable=tcfg.learn_temperature,
        mode=tcfg.loss_mode,
        normalize=True,
        queue_size=tcfg.queue_size,
        tau_plus=tcfg.tau_plus,
        beta=tcfg.beta,
        chunk_size=tcfg.chunk_size,
    )


class Objective(nn.Module):
    """``forward(batch, generator) -> (loss, diagnostics)``; ``z`` is cast to float32 before
    the loss, outside autocast."""

    def __init__(
        self,
        model: ContrastiveModel | nn.Module,
        loss: nn.Module,
        device: torch.device,
        amp_dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.device, self.amp_dtype = device, amp_dtype

    def forward(
        self, batch: Any, generator: torch.Generator, index: torch.Tensor
    ) -> tuple[torch.Tensor, Any]:
        """``index``: dataset rows ``(N,)`` of the batch (the queue masks an item's own keys)."""
        with autocast(self.device, self.amp_dtype):
            z = self.model(batch, generator)
        return self.loss(z.float(), return_diagnostics=True, index=index)


def _expected_negatives(mode: str, views: int, n: int) -> int:
    return views * n - views if mode == "all" else n - 1


def check_global_negatives(loss: nn.Module, tcfg: TrainConfig, device: torch.device) -> str:
    """Under DDP, verify that the loss takes its negatives from the global batch.

    A probe instance of the same loss (no queue, no reweighting) runs on a tiny batch on every
    rank; its diagnostic ``k`` (negatives per anchor) says whether it gathered the other ranks'
    embeddings. Training with rank-local negatives would silently optimise a different objective
    (fewer negatives, no cross-rank repulsion), so that is an error. Returns a description.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return "single process"
    world, views, n = dist.get_world_size(), 2, 2
    probe = InfoNCE(temperature=tcfg.temperature, mode=tcfg.loss_mode).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    z = torch.randn(views, n, 8, device=device, generator=gen)
    _, diag = probe(z, return_diagnostics=True)
    k = int(asdict(diag)["k"])
    if k != _expected_negatives(tcfg.loss_mode, views, n * world):
        raise SciclrError(
            f"InfoNCE under {world} processes reports {k} negatives per anchor, expected "
            f"{_expected_negatives(tcfg.loss_mode, views, n * world)} from the global batch"
        )
    return "global batch (all-gather with gradients)"
