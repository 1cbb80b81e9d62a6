"""Cosine similarities of positive and negative pairs under the trained projection head.

The report's histogram of these two distributions is the picture behind the InfoNCE margin: the
loss pushes positives towards 1 and the probability-weighted crowd of negatives away; their gap
(relative to τ ln K) is what the margin diagnostic summarises.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sciclr.domains.base import ContrastiveModel, DataSource

__all__ = ["pair_similarities"]


@torch.no_grad()
def pair_similarities(
    model: ContrastiveModel,
    source: DataSource,
    idx: np.ndarray,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 256,
    max_batches: int = 4,
    max_negatives: int = 50_000,
) -> tuple[np.ndarray, np.ndarray]:
    """``(pos, neg)`` cosine similarities of view pairs of the same item and of different items,
    drawn exactly as in training (views of up to ``max_batches`` batches of ``idx``), with the
    model in eval mode. Negatives are subsampled to at most ``max_negatives``."""
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(idx))[: batch_size * max_batches]
    pos_all, neg_all = [], []
    for start in range(0, len(order), batch_size):
        rows = torch.as_tensor(order[start : start + batch_size], dtype=torch.long)
        if len(rows) < 2:
            break
        z = F.normalize(model(source.batch(rows, device), gen).float(), dim=-1)  # (V, N, d)
        v, n, d = z.shape
        flat = z.reshape(v * n, d)
        sim = flat @ flat.T
        inst = torch.arange(v * n, device=sim.device) % n
        same = inst[:, None] == inst[None, :]
        upper = torch.triu(torch.ones_like(same), diagonal=1)
        pos_all.append(sim[same & upper].cpu().numpy())
        neg_all.append(sim[~same & upper].cpu().numpy())
    model.train(was_training)
    pos, neg = np.concatenate(pos_all), np.concatenate(neg_all)
    if len(neg) > max_negatives:
        neg = rng.choice(neg, max_negatives, replace=False)
    return pos.astype(np.float32), neg.astype(np.float32)
