"""Frozen-encoder embeddings: eval mode (BatchNorm uses running statistics), no gradient, no
augmentation — what probes, clustering and the report see."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sciclr.domains.base import ContrastiveModel, DataSource

__all__ = ["embed"]


@torch.no_grad()
def embed(
    model: ContrastiveModel,
    source: DataSource,
    idx: torch.Tensor | np.ndarray | Sequence[int],
    device: torch.device,
    batch_size: int = 512,
) -> np.ndarray:
    """Embeddings ``(len(idx), e)`` float32 of the items ``idx``, in that order."""
    idx = torch.as_tensor(np.asarray(idx), dtype=torch.int64)
    was_training = model.training
    model.eval()
    try:
        parts = [
            model.embed(source.batch(idx[i : i + batch_size], device)).float().cpu()
            for i in range(0, len(idx), batch_size)
        ]
    finally:
        model.train(was_training)
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(parts).numpy().astype(np.float32, copy=False)
