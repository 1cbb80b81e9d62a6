"""Model selection on the val split: k-NN accuracy of val embeddings against train embeddings.

The weighted k-NN monitor of Wu et al. (2018, "Unsupervised feature learning via
non-parametric instance discrimination"): cosine similarity, the k nearest train items vote with
weight ``exp(s / 0.07)``. Scored as balanced accuracy (mean per-class recall) because the
bundled label sets are imbalanced (e.g. 24 triclinic vs 961 cubic crystals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sciclr.domains.base import ContrastiveModel, DataSource
from sciclr.train.embed import embed

__all__ = ["Evaluation", "KnnEvaluator", "knn_balanced_accuracy"]


@dataclass(frozen=True)
class Evaluation:
    name: str
    value: float
    higher_is_better: bool = True

    def better_than(self, other: float | None) -> bool:
        if other is None:
            return True
        return self.value > other if self.higher_is_better else self.value < other


def knn_balanced_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> float:
    """Balanced accuracy of weighted cosine k-NN. ``*_x``: ``(n, e)``; ``*_y``: int64 ``(n,)``."""
    n_classes = int(max(train_y.max(), query_y.max())) + 1
    train_x = torch.nn.functional.normalize(train_x.float(), dim=1)
    query_x = torch.nn.functional.normalize(query_x.float(), dim=1)
    k = min(k, train_x.shape[0])
    preds = []
    for i in range(0, query_x.shape[0], chunk):
        sim, nn_idx = (query_x[i : i + chunk] @ train_x.T).topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], n_classes, dtype=torch.float64)
        votes.scatter_add_(1, train_y[nn_idx], torch.exp(sim.double() / temperature))
        preds.append(votes.argmax(1))
    pred = torch.cat(preds)
    classes = torch.unique(query_y)
    recalls = [(pred[query_y == c] == c).double().mean() for c in classes]
    return float(torch.stack(recalls).mean())


class KnnEvaluator:
    """Scores a model by k-NN balanced accuracy of its val embeddings (items with a label)."""

    name = "val_knn_balanced_accuracy"

    def __init__(
        self,
        source: DataSource,
        train_idx: Sequence[int] | np.ndarray,
        train_labels: Sequence[str],
        val_idx: Sequence[int] | np.ndarray,
        val_labels: Sequence[str],
        device: torch.device,
        batch_size: int = 512,
        k: int = 20,
    ) -> None:
        classes, codes = np.unique(np.concatenate([train_labels, val_labels]), return_inverse=True)
        n_train = len(train_labels)
        self.source, self.device, self.batch_size, self.k = source, device, batch_size, k
        self.train_idx = np.asarray(train_idx, dtype=np.int64)
        self.val_idx = np.asarray(val_idx, dtype=np.int64)
        self.train_y = torch.as_tensor(codes[:n_train], dtype=torch.int64)
        self.val_y = torch.as_tensor(codes[n_train:], dtype=torch.int64)
        self.n_classes = len(classes)

    def __call__(self, model: ContrastiveModel) -> Evaluation:
        release = getattr(self.source, "release_pages", None)
        if release is not None:  # the payload pages training read: the check reads its own
            release()
        tr = embed(model, self.source, self.train_idx, self.device, self.batch_size)
        va = embed(model, self.source, self.val_idx, self.device, self.batch_size)
        acc = knn_balanced_accuracy(
            torch.from_numpy(tr), self.train_y, torch.from_numpy(va), self.val_y, self.k
        )
        return Evaluation(self.name, acc, higher_is_better=True)
