"""Learning-rate schedule: linear warm-up, then half-cosine decay to zero, stepped per batch
(Goyal et al. 2017 warm-up; Loshchilov & Hutter 2017 SGDR cosine, without restarts)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["WarmupCosine", "warmup_cosine"]


class WarmupCosine:
    """Multiplier of the peak lr after ``step`` optimizer steps (a class, not a closure, so its
    state is plain numbers inside the scheduler's state dict)."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> LambdaLR:
    """A per-step :class:`LambdaLR` with :class:`WarmupCosine`."""
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps))
