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
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sciclr.data.processed import Processed


class DataSource(Protocol):
    """Random access to preprocessed items, already in memory: collating a batch is indexing.

    Optional hooks the embedding honours (:func:`sciclr.train.embed.embed_blocks`):
    ``item_sizes()`` (a padding source: embed in order of size), ``split_rows(batch,
    max_cells)`` with ``block_cells`` (the most cells one forward holds, in the source's unit:
    padded positions for DNA, edges for crystals; default
    :data:`sciclr.train.embed.BLOCK_CELLS`), and ``release_pages()`` (drop the read pages of a
    mapped payload after each chunk)."""

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
    * View drawing wrapped in ``sciclr.views.drawing_views()`` is counted as data-path time
      in ``train_summary.json``.
    """

    def forward(self, batch: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError


class Domain(Protocol):
    """One scientific domain. ``cfg`` is the data set's config section, validated and with
    every default filled (:func:`sciclr.config.dataset_params`).

    A domain object is a light facade: constructing it and calling :meth:`baseline_names` must
    not import torch or the domain's libraries (the Snakefile does both while it builds the job
    graph); the other methods import what they need.
    """

    name: str
    #: whether structures are parsed in a step of their own (``sciclr parse``), so that a
    #: change of the graph settings re-uses the parsed arrays
    parse_stage: bool

    def baseline_names(self, cfg: Mapping[str, Any]) -> list[str]:
        """The handcrafted feature sets this data set is compared with (``features`` rule)."""
        ...

    def describe_pairing(self, cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(views, what they share)`` for each contrastive pairing of ``cfg["model"]``, in
        words for the report: an embedding keeps only what its paired views share."""
        ...

    def check_inputs(self, cfg: Mapping[str, Any], where: str, base: Path) -> None:
        """Raise a one-line :class:`~sciclr.errors.SciclrError` (prefixed ``where``) when an
        input is not of this domain's kind; read names and first bytes only (it runs before
        any job, on inputs of any size)."""
        ...

    def label_tables(self, cfg: Mapping[str, Any]) -> list[str]:
        """Inputs that carry their own label columns (used when ``labels:`` is not set)."""
        ...

    def parse_shard(self, cfg: Mapping[str, Any], shard: int, n_shards: int) -> dict[str, Any]:
        """Only with ``parse_stage``: parse the records ``i % n_shards == shard`` into plain
        arrays (tensors, lists, numbers) that :meth:`preprocess_shard` takes as ``parsed``."""
        ...

    def preprocess_shard(
        self,
        cfg: Mapping[str, Any],
        shard: int,
        n_shards: int,
        parsed: Mapping[str, Any] | None = None,
    ) -> Processed:
        """Read the inputs named in ``cfg`` and process the records with global index
        ``i % n_shards == shard`` (from ``parsed`` when given). Raise
        :class:`sciclr.errors.SciclrError` on wrong-format input."""
        ...

    def merge(self, parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
        """Concatenate shards back into global input order (identical to one shard), applying
        checks that need the whole set (e.g. duplicate ids across shards)."""
        ...

    def data_source(self, payload: Mapping[str, Any]) -> DataSource: ...

    def baseline_features(
        self,
        payload: Mapping[str, Any],
        cfg: Mapping[str, Any],
        names: Sequence[str],
        start: int = 0,
        stop: int | None = None,
    ) -> dict[str, np.ndarray]:
        """The feature sets ``names`` (from :meth:`baseline_names`) of the records
        ``start:stop`` (all by default), e.g. ``{"kmer4": (m, 136), "kmer6": (m, 2080)}``;
        only those are computed. A row depends on its record alone, so a set is written a
        block of records at a time (:func:`sciclr.pipeline.baseline_features`)."""
        ...

    def build_model(self, payload: Mapping[str, Any], cfg: Mapping[str, Any]) -> ContrastiveModel:
        """A freshly initialised model (initialisation seeded by the caller)."""
        ...
