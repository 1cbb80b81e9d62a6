"""Collating crystal graphs into :class:`torch_geometric.data.Batch` objects by pure indexing.

:class:`CrystalSource` reads a preprocessed payload's flat arrays (atoms, edges, crystals, each
with a ``ptr``; memory-mapped in training and embedding) in place; a batch is a handful of
segment gathers over them, with no per-crystal Python loop, returned as a :class:`CrystalBatch`, which *is* a PyG ``Batch`` (and ``Data``).
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import cumsum

from sciclr.data.lattice import lattice_invariants
from sciclr.memory import release_mapped_pages

__all__ = ["CrystalBatch", "CrystalSource", "segment_arange"]

NODE_KEYS = ("z",)
EDGE_KEYS = ("edge_index", "edge_vec", "edge_dist")
GRAPH_KEYS = ("composition", "xrd", "cell")


class _DirectBatchMeta(type(Batch), type(Data)):
    """``Batch``'s metaclass derives a new ``<Data class>Batch`` class on every instantiation
    (PyG's dynamic inheritance); a :class:`CrystalBatch` already is a ``Data`` and a ``Batch``,
    so it is built directly (the ``_base_cls`` of PyG's own ``cls(_base_cls=...)`` calls, as in
    ``CrystalBatch.from_data_list``, is ignored)."""

    def __call__(cls, *args: Any, _base_cls: Any = None, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class CrystalBatch(Batch, Data, metaclass=_DirectBatchMeta):
    """A batch of ``num_graphs`` crystals as one disconnected graph: a
    :class:`torch_geometric.data.Batch` with PyG's names, built from gathered tensors.

    Atoms: ``z`` (A,) int64 atomic numbers (0 = masked), ``batch`` (A,) crystal of each atom,
    ``ptr`` (B + 1,) atom offsets of the crystals (computed from ``batch`` when not given);
    edges: ``edge_index`` (2, E) int64 [source = neighbour, target = centre], batch-global atom
    indices, grouped by crystal; ``edge_vec`` (E, 3) float32 Å; ``edge_dist`` (E,) float32 Å;
    crystals: ``composition`` (B, 118) element fractions; ``xrd`` (B, bins) binned powder
    pattern; ``cell`` (B, F) basis-free descriptors of the lattice (:mod:`sciclr.data.lattice`).

    PyG's utilities and conventions apply (``batch.num_graphs``, ``len(batch)``,
    ``batch.num_nodes``, ``batch.to(device)``, which like ``Data.to`` moves in place,
    ``batch[i]`` / ``to_data_list()`` -> per-crystal :class:`~torch_geometric.data.Data`, with
    ``edge_index`` back to local atom numbers). Why not ``Batch.from_data_list``: it
    concatenates a list of per-crystal ``Data`` in Python, attribute by attribute and graph by
    graph. Measured on 256 bundled crystals (2,173 atoms, 28,181 edges; ``benchmarks/
    crystal_encoder.py --micro --threads 1``, minimum of 7): the gather of
    :meth:`CrystalSource.batch`, construction of this object included, 2.2 ms;
    ``from_data_list`` 7.0 ms with the 256 ``Data`` already built, 27 ms when they are sliced
    from the payload per step (a ``Dataset.__getitem__`` + collate, as PyG's ``DataLoader``
    does); the tensors are identical. So the collation stays a gather and only its result is a
    ``Batch``. The slices that ``to_data_list`` needs are derived from ``ptr`` and
    ``edge_index`` when asked for (:attr:`_slice_dict`), so they cost nothing per step and are
    never stale after a view dropped edges.
    """

    def __init__(
        self,
        z: Tensor | None = None,
        batch: Tensor | None = None,
        edge_index: Tensor | None = None,
        edge_vec: Tensor | None = None,
        edge_dist: Tensor | None = None,
        composition: Tensor | None = None,
        xrd: Tensor | None = None,
        cell: Tensor | None = None,
        num_graphs: int | None = None,
        ptr: Tensor | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            edge_index=edge_index,
            z=z,
            batch=batch,
            edge_vec=edge_vec,
            edge_dist=edge_dist,
            composition=composition,
            xrd=xrd,
            cell=cell,
            **kwargs,
        )
        if batch is None:  # empty, as PyG's collate creates it before filling it in
            return
        if ptr is None:
            if num_graphs is None:
                raise TypeError("CrystalBatch: pass num_graphs (or ptr) with batch")
            ptr = cumsum(torch.bincount(batch, minlength=num_graphs))
        if num_graphs is not None and len(ptr) != num_graphs + 1:
            raise ValueError(f"CrystalBatch: ptr has {len(ptr)} entries for {num_graphs} graphs")
        self.ptr = ptr
        self._num_graphs = int(num_graphs) if num_graphs is not None else len(ptr) - 1

    @property
    def device(self) -> torch.device:
        return self.z.device

    def replace(self, **changes: Tensor) -> CrystalBatch:
        """A shallow copy with some attributes swapped (the others are shared), the ``Batch``
        twin of :func:`dataclasses.replace`. Views change atoms' features and the edges; the
        atoms and their crystals (``batch``, ``ptr``) stay."""
        unknown = sorted(set(changes) - set(self.keys()))
        if unknown:
            raise KeyError(f"CrystalBatch.replace: no attribute(s) {unknown}")
        out = copy.copy(self)
        for key, value in changes.items():
            setattr(out, key, value)
        return out

    @property
    def edge_ptr(self) -> Tensor:
        """``(B + 1,)`` edge offsets of the crystals (edges are grouped by crystal), derived
        from ``edge_index``, so never stale after a view dropped edges."""
        edge_graph = self.batch[self.edge_index[1]]
        return cumsum(torch.bincount(edge_graph, minlength=self.num_graphs))

    @property
    def _slice_dict(self) -> dict[str, Tensor]:
        """Where each crystal's rows start, per attribute (what ``Batch.from_data_list``
        records): ``ptr`` for atoms, edge offsets for edges, ``0..B`` for crystals."""
        graph = torch.arange(self.num_graphs + 1, device=self.ptr.device)
        edges = self.edge_ptr
        keys = set(self.keys())
        out = {k: self.ptr for k in NODE_KEYS if k in keys}
        out.update({k: edges for k in EDGE_KEYS if k in keys})
        out.update({k: graph for k in GRAPH_KEYS if k in keys})
        return out

    @property
    def _inc_dict(self) -> dict[str, Tensor]:
        """What was added to each crystal's rows: its first atom's index for ``edge_index``."""
        zeros = torch.zeros(self.num_graphs, dtype=torch.long, device=self.ptr.device)
        out = {k: zeros for k in self._slice_dict}
        if "edge_index" in out:
            out["edge_index"] = self.ptr[:-1]
        return out

    def get_example(self, idx: int) -> Data:
        data = super().get_example(idx)
        data.num_nodes = int(self.ptr[idx + 1] - self.ptr[idx])
        return data

    def __reduce__(self) -> Any:  # Batch's would unpickle into a generic ``DataBatch``
        return type(self), (), self.__getstate__()


def segment_arange(counts: torch.Tensor) -> torch.Tensor:
    """``cat([arange(c) for c in counts])`` without a Python loop."""
    starts = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(starts, counts)


class CrystalSource:
    """Random access to a preprocessed crystal payload, read one batch's rows at a time.

    The payload's flat arrays stay as they were loaded (memory-mapped by
    :func:`sciclr.train.run.load_data`): a batch gathers its atoms and edges from them and
    widens only those to int64 (``z`` is stored as uint8, ``edge_index`` as int32), so memory
    holds one batch, never a converted copy of the whole data set. The lattice descriptors
    (``(n, 37)`` float32, :func:`sciclr.data.lattice.lattice_invariants`; the lattice is never
    augmented) are computed once per device, so batches get bit-identical values.

    :meth:`split_rows` cuts a batch into blocks of at most :attr:`block_cells` edges, which
    the embedding forwards one at a time (:func:`sciclr.train.embed.embed_blocks`).
    """

    #: most edges one embedding forward holds (:meth:`split_rows`): a forward's activations
    #: are about 13 kB per edge with the bundled model (a batch of 512 bundled crystals,
    #: 58 k edges, held 763 MB more than its input; 16 k edges hold about 200 MB)
    block_cells = 1 << 14

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        self._cells: dict[str, torch.Tensor] = {}
        self._atom_ptr = torch.as_tensor(payload["atom_ptr"]).long()
        self._edge_ptr = torch.as_tensor(payload["edge_ptr"]).long()

    def __len__(self) -> int:
        return len(self.payload["atom_ptr"]) - 1

    def release_pages(self) -> int:
        """Drop the read pages of the mapped atom and edge arrays from the resident set
        (:func:`sciclr.memory.release_mapped_pages`); returns the bytes advised."""
        return release_mapped_pages(v for v in self.payload.values() if isinstance(v, Tensor))

    @staticmethod
    def split_rows(batch: CrystalBatch, max_cells: int) -> list[CrystalBatch]:
        """``batch`` cut into consecutive blocks of crystals holding at most ``max_cells``
        edges each (at least one crystal per block), as slices of its tensors.

        A crystal's embedding does not depend on the other crystals of its forward (message
        passing and pooling stay inside a graph, normalisation uses running statistics in eval
        mode), so the blocks' embeddings equal the whole batch's up to float32 rounding
        (tested). Edges are grouped by crystal (:meth:`batch`), so a block is one range of
        atoms, one of edges and one of crystals."""
        n = batch.num_graphs
        e_ptr = batch.edge_ptr.tolist()
        if e_ptr[-1] <= max_cells or n <= 1:
            return [batch]
        a_ptr = batch.ptr.tolist()
        blocks, g0 = [], 0
        while g0 < n:
            # greedily the most crystals that fit, one at least (a loop over blocks only)
            g1 = min(max(bisect.bisect_right(e_ptr, e_ptr[g0] + max_cells) - 1, g0 + 1), n)
            a0, a1, e0, e1 = a_ptr[g0], a_ptr[g1], e_ptr[g0], e_ptr[g1]
            blocks.append(
                CrystalBatch(
                    z=batch.z[a0:a1],
                    batch=batch.batch[a0:a1] - g0,
                    edge_index=batch.edge_index[:, e0:e1] - a0,
                    edge_vec=batch.edge_vec[e0:e1],
                    edge_dist=batch.edge_dist[e0:e1],
                    composition=batch.composition[g0:g1],
                    xrd=batch.xrd[g0:g1],
                    cell=batch.cell[g0:g1],
                    num_graphs=g1 - g0,
                    ptr=batch.ptr[g0 : g1 + 1] - a0,
                )
            )
            g0 = g1
        return blocks

    def _cell(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._cells:
            lattice = torch.as_tensor(self.payload["lattice"]).to(device)
            self._cells[key] = lattice_invariants(lattice, torch.diff(self._atom_ptr).to(device))
        return self._cells[key]

    def batch(self, idx: torch.Tensor, device: torch.device | str = "cpu") -> CrystalBatch:
        """Collate graphs ``idx`` (int64) on ``device``: segment gathers over the flat arrays
        (on the CPU, where the payload lives), then the batch's tensors move to ``device``."""
        device = torch.device(device)
        p = self.payload
        idx = torch.as_tensor(idx).cpu().long()
        a_ptr, e_ptr = self._atom_ptr, self._edge_ptr
        a_cnt = a_ptr[idx + 1] - a_ptr[idx]
        e_cnt = e_ptr[idx + 1] - e_ptr[idx]
        graph = torch.arange(len(idx))
        atom_graph = torch.repeat_interleave(graph, a_cnt)
        atoms = a_ptr[idx][atom_graph] + segment_arange(a_cnt)
        edge_graph = torch.repeat_interleave(graph, e_cnt)
        edges = e_ptr[idx][edge_graph] + segment_arange(e_cnt)
        new_start = torch.cumsum(a_cnt, 0) - a_cnt

        def on(t: Tensor) -> Tensor:
            return t.to(device, non_blocking=True)

        return CrystalBatch(
            z=on(p["z"][atoms].long()),
            batch=on(atom_graph),
            edge_index=on(p["edge_index"][:, edges].long() + new_start[edge_graph]),
            edge_vec=on(p["edge_vec"][edges]),
            edge_dist=on(p["edge_dist"][edges]),
            composition=on(p["composition"][idx]),
            xrd=on(p["xrd"][idx]),
            cell=self._cell(device)[idx.to(device)],
            num_graphs=len(idx),
            ptr=on(cumsum(a_cnt)),
        )
