"""A small synthetic domain for the training-engine tests (configured as
``tests.train.synthetic_domain:DOMAIN``; subprocesses find it with the repository root on
PYTHONPATH).

Items are points of well-separated Gaussian clusters; a view adds Gaussian noise and drops 10 %
of the coordinates. The model is an MLP encoder and projection head, both with BatchNorm (so
DDP must synchronise it), and draws its views for the global batch and keeps its slice
(``global_batch_views``), so a 2-process run sees exactly the views of a 1-process run.
``SCICLR_TEST_BATCH_DELAY`` (seconds) slows ``batch`` down so a test can signal mid-epoch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from sciclr.config import dataset_params
from sciclr.domains.base import ContrastiveModel
from sciclr.io import save_torch, write_table
from sciclr.train.distributed import global_slice
from sciclr.views import drawing_views


class VectorSource:
    #: calls of :meth:`release_pages` over all instances (the loop's per-step release)
    released = 0

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def release_pages(self) -> int:
        VectorSource.released += 1
        return 0

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        delay = float(os.environ.get("SCICLR_TEST_BATCH_DELAY", "0"))
        if delay:
            time.sleep(delay)
        return self.x[idx].to(device)


class VectorModel(ContrastiveModel):
    global_batch_views = True

    def __init__(
        self,
        d_in: int,
        hidden: int = 32,
        emb: int = 16,
        proj: int = 8,
        noise: float = 0.5,
        drop: float = 0.1,
    ) -> None:
        super().__init__()
        self.noise, self.drop = noise, drop
        # no bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify
        self.encoder = nn.Sequential(
            nn.Linear(d_in, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, emb, bias=False),  # feeds the head's BatchNorm: same reason
        )
        self.head = nn.Sequential(
            nn.Linear(emb, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, proj),
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, d = x.shape
        with drawing_views():
            start, n_global = global_slice(n)
            noise = torch.randn(2, n_global, d, generator=generator, device=x.device)
            keep = torch.rand(2, n_global, d, generator=generator, device=x.device) >= self.drop
            views = (x + self.noise * noise[:, start : start + n]) * keep[:, start : start + n]
        z = self.head(self.encoder(views.reshape(2 * n, d)))
        return z.reshape(2, n, -1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class SyntheticDomain:
    name = "synthetic"

    def data_source(self, payload: dict[str, Any]) -> VectorSource:
        return VectorSource(payload["x"])

    def build_model(self, payload: dict[str, Any], cfg: dict[str, Any]) -> VectorModel:
        return VectorModel(payload["x"].shape[1], **cfg.get("model", {}))


DOMAIN = SyntheticDomain()


def make_dataset(
    path: Path, clusters: int = 4, per_cluster: int = 32, dim: int = 16, seed: int = 0
) -> Path:
    """Write ``data.pt`` + ``records.tsv``: per cluster 3/4 train, 1/8 val, 1/8 test."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (clusters, dim))
    label = np.repeat(np.arange(clusters), per_cluster)
    x = centres[label] + rng.normal(0.0, 1.0, (len(label), dim))
    n_tr, n_va = per_cluster * 3 // 4, per_cluster // 8
    within = np.tile(np.arange(per_cluster), clusters)
    split = np.where(within < n_tr, "train", np.where(within < n_tr + n_va, "val", "test"))
    path.mkdir(parents=True, exist_ok=True)
    save_torch(path / "data.pt", {"x": torch.tensor(x, dtype=torch.float32)})
    records = pd.DataFrame(
        {
            "id": [f"item{i:04d}" for i in range(len(label))],
            "split": split,
            "label": [f"c{c}" for c in label],
        }
    )
    write_table(path / "records.tsv", records)
    return path


def make_cfg(**train: Any) -> dict[str, Any]:
    base = {
        "epochs": 3,
        "batch_size": 32,
        "lr": 1e-2,
        "warmup_epochs": 1.0,
        "seed": 7,
        "log_every": 1,
        "profile_steps": 0,
        "embed_batch_size": 64,
    }
    base.update(train)
    return dataset_params(
        {
            "domain": "tests.train.synthetic_domain:DOMAIN",
            "device": "cpu",
            "tasks": [{"column": "label", "type": "classification"}],
            "train": base,
        }
    )
