"""Atomic output: every file is written to a temporary sibling and renamed into place.

An interrupted job therefore never leaves a file that looks complete (Snakemake would otherwise
treat a truncated output as done on the next run).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sciclr.errors import SciclrError

if TYPE_CHECKING:
    import torch

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = [
    "atomic_path",
    "load_matrix",
    "load_torch",
    "save_matrix",
    "save_torch",
    "write_json",
    "write_table",
    "write_text",
]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text atomically (UTF-8)."""
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically, indented and key-sorted so diffs stay readable."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table(path: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """Write a TSV (``.tsv``) or CSV (other suffixes) atomically, without the index."""
    sep = "\t" if Path(path).suffix == ".tsv" else ","
    _atomic_write(path, lambda p: df.to_csv(p, sep=sep, index=False))


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` atomically. Keep ``obj`` to tensors, numbers, strings, lists and dicts so
    that :func:`load_torch` can read it with ``weights_only=True``."""
    import torch  # here, not at the top: the analysis and report steps never load torch

    _atomic_write(path, lambda p: torch.save(obj, p))


def load_torch(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", mmap: bool = False
) -> Any:
    """``torch.load`` with ``weights_only=True``: never unpickles arbitrary code.

    ``mmap``: map the tensors' storages from the file instead of reading them (torch's zip
    format, which :func:`save_torch` writes): a tensor costs memory only for the pages that
    are read, and those are the page cache's (clean, dropped under pressure). Training and
    embedding read their payload so, one batch's rows at a time."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)


#: a matrix is stored as CSR when that takes at most this share of the dense bytes
SPARSE_MAX_SHARE = 0.75


def _row_chunks(n: int, d: int, cells: int = 1 << 22) -> Iterator[slice]:
    step = max(1, cells // max(d, 1))
    for lo in range(0, n, step):
        yield slice(lo, min(n, lo + step))


def _stored(X: np.ndarray) -> np.ndarray:
    """Entries CSR keeps: non-zero ones, and -0.0 (its sign bit is data too)."""
    return (X != 0) | np.signbit(X)


def _csr_parts(X: np.ndarray) -> dict[str, np.ndarray] | None:
    """CSR arrays of ``X`` when they are smaller than ``SPARSE_MAX_SHARE`` of it, else None.

    Values are the float32 entries themselves and column indices the smallest unsigned type
    that holds them, so the round trip is exact (:func:`load_matrix`). Built a block of rows
    at a time (temporaries of ~4 M cells, whatever ``n``). Canonical 6-mer profiles of the
    bundled 0.5-1.5 kb fragments are 34 % non-zero: 6 bytes per entry instead of 4 per cell,
    0.51 of the dense file (60 -> 31 MB); 4-mer profiles, embeddings and element fractions of
    mixed compounds stay dense."""
    n, d = X.shape
    if n == 0 or d == 0:
        return None
    nnz_rows = np.zeros(n, dtype=np.int64)
    for sl in _row_chunks(n, d):
        nnz_rows[sl] = _stored(X[sl]).sum(axis=1)
    nnz = int(nnz_rows.sum())
    idx_dtype = np.uint8 if d <= 2**8 else np.uint16 if d <= 2**16 else np.uint32
    if nnz * (4 + np.dtype(idx_dtype).itemsize) + (n + 1) * 8 > SPARSE_MAX_SHARE * X.nbytes:
        return None
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nnz_rows, out=indptr[1:])
    data = np.empty(nnz, dtype=np.float32)
    cols = np.empty(nnz, dtype=idx_dtype)
    for sl in _row_chunks(n, d):
        block = X[sl]
        r, c = np.nonzero(_stored(block))  # row-major: CSR order
        a, b = indptr[sl.start], indptr[sl.stop]
        data[a:b] = block[r, c]
        cols[a:b] = c
    return {"X_data": data, "X_indices": cols, "X_indptr": indptr, "X_shape": np.array([n, d])}


def save_matrix(path: str | os.PathLike[str], ids: Any, X: Any, compact: bool = False) -> None:
    """Write a feature or embedding matrix as ``.npz``, atomically: ``ids`` (unicode, ``(n,)``)
    and the float32 ``(n, d)`` matrix, row ``i`` belonging to ``ids[i]``.

    The matrix is ``X`` (dense), or with ``compact`` (the baseline features) when that is at
    most :data:`SPARSE_MAX_SHARE` of the dense size, CSR: ``X_data`` (float32 values),
    ``X_indices`` (column of each value), ``X_indptr`` (int64 ``(n + 1,)``) and ``X_shape``.
    Both read back exactly with :func:`load_matrix`."""
    X = np.asarray(X, dtype=np.float32)
    ids = np.asarray(ids, dtype=str)
    if X.ndim != 2 or len(X) != len(ids):
        raise SciclrError(f"{path}: matrix shape {X.shape} does not match {len(ids)} ids")
    arrays = (_csr_parts(X) if compact else None) or {"X": X}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=ids, **arrays)


def load_matrix(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)`` of a :func:`save_matrix` file, dense or CSR; ``X`` float32 ``(n, d)``.

    Raises ``KeyError`` when the file holds neither layout, ``ValueError``/``OSError`` when it
    is not a readable ``.npz``."""
    with np.load(path, allow_pickle=False) as z:
        ids = z["ids"]
        if "X" in z:
            return ids, np.asarray(z["X"], dtype=np.float32)
        n, d = (int(v) for v in z["X_shape"])
        indptr = z["X_indptr"].astype(np.int64, copy=False)
        if len(indptr) != n + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError("X_indptr is not the row offsets of X_shape")
        data = np.asarray(z["X_data"], dtype=np.float32)
        cols = z["X_indices"]
        if len(data) != len(cols) or len(cols) != indptr[-1] or (len(cols) and cols.max() >= d):
            raise ValueError("X_data/X_indices do not match X_indptr and X_shape")
        X = np.zeros((n, d), dtype=np.float32)
        for sl in _row_chunks(n, d):  # a block of rows at a time: temporaries stay small
            a, b = indptr[sl.start], indptr[sl.stop]
            counts = np.diff(indptr[sl.start : sl.stop + 1])
            rows = np.repeat(np.arange(sl.start, sl.stop), counts)
            X[rows, cols[a:b]] = data[a:b]
        return ids, X
