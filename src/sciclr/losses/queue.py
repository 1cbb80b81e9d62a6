"""FIFO queue of negatives (MoCo, He et al. 2020) that remembers which instance each entry came from.

Entries are detached (already normalised) embeddings of earlier batches. Each carries the dataset
index of its instance so that the loss can mask queue entries of the anchor's own instance: an older
view of the same sequence or crystal is a positive, never a negative. Under DDP every rank pushes the
gathered global batch, so all ranks hold the same queue.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class NegativeQueue(nn.Module):
    """Ring buffer of ``size`` keys ``(size, d)`` with instance ids ``(size,)`` (−1: unknown).

    The width ``d`` is taken from the first push; the buffers are saved in ``state_dict`` so a
    resumed run continues with the same negatives. Keys are stored in float32, or in float64
    once float64 keys are pushed (the loss's compute dtype, see :mod:`sciclr.losses.infonce`).
    """

    keys: torch.Tensor
    ids: torch.Tensor
    ptr: torch.Tensor
    count: torch.Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"queue size must be >= 0, got {size}")
        self.size = int(size)
        self.register_buffer("keys", torch.empty(0, 0))
        self.register_buffer("ids", torch.empty(0, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    def negatives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled part: keys ``(q, d)`` and ids ``(q,)`` (order irrelevant to the loss)."""
        q = len(self)
        return self.keys[:q], self.ids[:q]

    @torch.no_grad()
    def push(self, keys: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Append ``keys (m, d)`` (oldest entries are overwritten); ``ids (m,)`` or None."""
        if self.size == 0:
            return
        dtype = torch.promote_types(keys.dtype, torch.float32)
        if self.keys.is_floating_point() and self.keys.numel():
            dtype = torch.promote_types(dtype, self.keys.dtype)
        keys = keys.detach().to(dtype)
        m, d = keys.shape
        if ids is None:
            ids = torch.full((m,), -1, dtype=torch.long, device=keys.device)
        if self.keys.shape != (self.size, d):
            self.keys = keys.new_zeros(self.size, d)
            self.ids = torch.full((self.size,), -1, dtype=torch.long, device=keys.device)
        elif self.keys.dtype != dtype:  # float64 keys into a float32 queue: widen, keep entries
            self.keys = self.keys.to(dtype)
        if m >= self.size:  # only the newest `size` survive
            self.keys.copy_(keys[-self.size :])
            self.ids.copy_(ids[-self.size :])
            self.ptr.zero_()
            self.count.fill_(self.size)
            return
        pos = (int(self.ptr) + torch.arange(m, device=keys.device)) % self.size
        self.keys[pos] = keys
        self.ids[pos] = ids.to(self.ids.device, torch.long)
        self.ptr.fill_((int(self.ptr) + m) % self.size)
        self.count.fill_(min(self.size, int(self.count) + m))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # buffers are created lazily: take their shape from the checkpoint before loading
        for name in ("keys", "ids"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args)
