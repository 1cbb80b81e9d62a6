"""The contract between the generic pipeline (CLI, training engine, analysis) and a domain.

A *domain* (``dna``, ``materials``) knows how to read its raw files, what its tensors look like,
which handcrafted baseline features it has, and which encoders and views it trains with. The
rest of sciclr is domain-agnostic: adding a third domain means a reader, a views module, an
encoder and one :class:`Domain` object registered in :mod:`sciclr.domains`.

Row order is the glue: row ``i`` of every payload tensor, of ``records.tsv`` and of every
embedding/feature matrix is the same item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn


def config_section(cfg: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` overlaid with the non-null values of ``cfg[key]``.

    The workflow fills every default from the schema; the defaults here serve direct API and CLI
    use, and a test keeps the two equal.
    """
    out = dict(defaults)
    out.update({k: v for k, v in (cfg.get(key) or {}).items() if v is not None})
    return out


@dataclass
class Processed:
    """What preprocessing produces for one data set (or one shard of it).

    payload: tensors/lists/numbers only (saved with ``torch.save``, loaded with
        ``weights_only=True``); domain-specific layout, row-aligned with ``records``.
    records: one row per kept item: ``id``, label columns, the split column when configured,
        and ``order`` (the item's index in the full input, so shards can be merged back into
        exactly the unsharded order).
    rejects: ``id``, ``source``, ``reason`` for every dropped record.
    counts: ``{"in": ..., "out": ..., "rejected": ...}`` plus any domain-specific counters.
    """

    payload: dict[str, Any]
    records: pd.DataFrame
    rejects: pd.DataFrame
    counts: dict[str, int]


class DataSource(Protocol):
    """Random access to preprocessed items, already in memory: collating a batch is indexing."""

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor, device: torch.device) -> Any:
        """Collate the items ``idx`` (int64 row indices) into a batch on ``device``."""
        ...


def item_sizes(source: DataSource) -> np.ndarray | None:
    """Per-item padded size (e.g. sequence length) when the source pads its batches.

    Sources that pad (DNA) define ``item_sizes()``; :func:`sciclr.train.embed.embed` sorts by it
    so that each batch pads to similar lengths. Sources that do not pad return ``None``.
    """
    fn = getattr(source, "item_sizes", None)
    return None if fn is None else np.asarray(fn())


class ContrastiveModel(nn.Module):
    """Encoders + projection heads of one domain.

    ``forward(batch, generator)`` draws the configured views of the batch *on the batch's
    device* (seeded by ``generator``) and returns projections of shape ``(V, N, d)`` for the
    InfoNCE loss. ``embed(batch)`` returns the frozen representation ``(N, e)`` of the
    unaugmented items (the encoder output before the projection head): what probes see.


    Optional attributes the training engine honours:

    * ``global_batch_views = True``: under DDP the engine passes a generator seeded by
      (seed, step) that is identical on every rank; the model draws the random numbers for the
      *global* batch and keeps its rank's slice (``sciclr.train.distributed.global_slice``), so
      the views, and hence training, do not depend on the number of processes.
    * View drawing wrapped in ``torch.profiler.record_function(sciclr.train.profiling.VIEWS_LABEL)``
      is counted as data-path time in ``train_summary.json``.
    """

    def forward(self, batch: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError


class Domain(Protocol):
    """One scientific domain. ``cfg`` is the data set's validated config section."""

    name: str

    def preprocess_shard(self, cfg: Mapping[str, Any], shard: int, n_shards: int) -> Processed:
        """Read the inputs named in ``cfg`` and process the records with global index
        ``i % n_shards == shard``. Raise :class:`sciclr.errors.SciclrError` on wrong-format input."""
        ...

    def merge(self, parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
        """Concatenate shards back into global input order (identical to one shard), applying
        checks that need the whole set (e.g. duplicate ids across shards)."""
        ...

    def data_source(self, payload: Mapping[str, Any]) -> DataSource: ...

    def baseline_features(
        self, payload: Mapping[str, Any], cfg: Mapping[str, Any]
    ) -> dict[str, np.ndarray]:
        """Handcrafted features per item, e.g. ``{"kmer4": (n, 136), "kmer6": (n, 2080)}``."""
        ...

    def build_model(self, payload: Mapping[str, Any], cfg: Mapping[str, Any]) -> ContrastiveModel:
        """A freshly initialised model (initialisation seeded by the caller)."""
        ...
