"""Atomic output: every file is written to a temporary sibling and renamed into place.

An interrupted job therefore never leaves a file that looks complete (Snakemake would otherwise
treat a truncated output as done on the next run).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sciclr.errors import SciclrError
from sciclr.ragged import ragged_positions

if TYPE_CHECKING:
    import torch

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = [
    "StoredMatrix",
    "atomic_path",
    "load_matrix",
    "load_torch",
    "save_matrix",
    "save_matrix_blocks",
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


def _member(zf: zipfile.ZipFile, key: str, dtype: Any, shape: tuple[int, ...]):
    """A writable ``key.npy`` member of an ``np.savez`` archive whose header says ``dtype`` and
    ``shape``; the caller streams the C-order bytes after it (what ``np.savez`` writes, so
    :func:`_npz_array` maps it)."""
    fh = zf.open(key + ".npy", "w", force_zip64=True)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    np.lib.format.write_array_header_1_0(fh, header)
    return fh


def _blocks_of(blocks: Callable[[], Iterable[Any]], d: int | None) -> Iterator[np.ndarray]:
    """The float32 row blocks of ``blocks()``, each checked to have ``d`` columns (the first
    one's when ``d`` is None)."""
    for block in blocks():
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 2 or (d is not None and block.shape[1] != d):
            raise SciclrError(f"row block of shape {block.shape}; expected (rows, {d})")
        d = block.shape[1]
        yield block
        del block  # not held while the producer computes the next one


def save_matrix_blocks(
    path: str | os.PathLike[str],
    ids: Any,
    blocks: Callable[[], Iterable[Any]],
    d: int | None = None,
    compact: bool = False,
) -> tuple[int, int]:
    """:func:`save_matrix` of the matrix whose rows ``blocks()`` yields in order, one block at
    a time: memory holds one block and the per-row counts, not the ``(n, d)`` matrix (6-mer
    profiles of 10^6 fragments: 8.3 GB dense). Returns the shape ``(n, d)``.

    With ``compact``, ``blocks`` is called twice: the first pass counts the entries CSR would
    keep, which decides the layout (CSR when it takes at most :data:`SPARSE_MAX_SHARE` of the
    dense bytes) and sizes the arrays; the second streams them into the archive. CSR keeps
    the float32 values exactly, column indices in the smallest unsigned type that holds
    them; the column indices go through a temporary file beside the output, since a zip
    archive is written one member at a time. ``d`` is the column count when no block comes
    (``n = 0``)."""
    ids = np.asarray(ids, dtype=str)
    n = len(ids)
    counts: list[np.ndarray] = []
    csr = False
    if compact:
        for block in _blocks_of(blocks, d):
            d = block.shape[1]
            counts.append(_stored(block).sum(axis=1))
        nnz_rows = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
        if len(nnz_rows) != n:
            raise SciclrError(f"{path}: matrix of {len(nnz_rows)} rows does not match {n} ids")
        nnz = int(nnz_rows.sum())
        idx_dtype = np.uint8 if (d or 0) <= 2**8 else np.uint16 if d <= 2**16 else np.uint32
        dense_bytes = n * (d or 0) * 4
        csr = dense_bytes > 0 and (
            nnz * (4 + np.dtype(idx_dtype).itemsize) + (n + 1) * 8 <= SPARSE_MAX_SHARE * dense_bytes
        )
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("ids.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, ids, allow_pickle=False)
            if csr:
                _write_csr(zf, blocks, d, nnz_rows, idx_dtype)
            else:
                d = _write_dense(zf, path, blocks, d, n)
    return n, int(d or 0)


def _write_dense(
    zf: zipfile.ZipFile, path: Any, blocks: Callable[[], Iterable[Any]], d: int | None, n: int
) -> int:
    """Member ``X``: ``(n, d)`` float32, streamed; its header needs ``d``, so the first block
    is read before it is written."""
    it = _blocks_of(blocks, d)
    first = next(it, None)
    d = first.shape[1] if first is not None else int(d or 0)
    rows = 0
    # no block outlives its write: the producer's next block is being computed meanwhile (an
    # embedding chunk is 42 MB; holding the first, the last and a bytes copy of it had added
    # 3 of them to ``sciclr embed``'s peak)
    head = [first] if first is not None else []
    del first
    with _member(zf, "X", np.float32, (n, d)) as fh:
        for block in itertools.chain(head, it):
            head.clear()
            rows += len(block)
            if rows > n:
                break
            fh.write(block.data)  # C-contiguous float32 (_blocks_of): no bytes copy
            del block
    if rows != n:
        got = f"more than {n}" if rows > n else str(rows)
        raise SciclrError(f"{path}: row blocks hold {got} rows; expected {n}, one per id")
    return d


def _write_csr(
    zf: zipfile.ZipFile,
    blocks: Callable[[], Iterable[Any]],
    d: int,
    nnz_rows: np.ndarray,
    idx_dtype: Any,
) -> None:
    """Members ``X_data``, ``X_indices``, ``X_indptr`` and ``X_shape`` (see :func:`save_matrix`)
    from a second pass over the blocks, which must yield what the counting pass saw."""
    n = len(nnz_rows)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nnz_rows, out=indptr[1:])
    nnz = int(indptr[-1])
    # the column indices are kept (nnz x 1-2 bytes, a third of the values' bytes) until the
    # values' member is complete: a zip archive is written one member at a time
    cols_parts: list[np.ndarray] = []
    lo = 0
    with _member(zf, "X_data", np.float32, (nnz,)) as fh:
        for block in _blocks_of(blocks, d):
            r, c = np.nonzero(_stored(block))  # row-major: CSR order
            hi = lo + len(block)
            if hi > n or len(r) != indptr[hi] - indptr[lo]:
                raise SciclrError("row blocks changed between the counting and writing passes")
            fh.write(block[r, c].tobytes())
            cols_parts.append(c.astype(idx_dtype))
            lo = hi
    if lo != n:
        raise SciclrError("row blocks changed between the counting and writing passes")
    with _member(zf, "X_indices", idx_dtype, (nnz,)) as fh:
        for part in cols_parts:
            fh.write(part.tobytes())
    del cols_parts
    for key, arr in (("X_indptr", indptr), ("X_shape", np.array([n, d]))):
        with zf.open(key + ".npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, arr, allow_pickle=False)


def save_matrix(path: str | os.PathLike[str], ids: Any, X: Any, compact: bool = False) -> None:
    """Write a feature or embedding matrix as ``.npz``, atomically: ``ids`` (unicode, ``(n,)``)
    and the float32 ``(n, d)`` matrix, row ``i`` belonging to ``ids[i]``.

    The matrix is ``X`` (dense), or with ``compact`` (the baseline features) when that is at
    most :data:`SPARSE_MAX_SHARE` of the dense size, CSR: ``X_data`` (float32 values),
    ``X_indices`` (column of each value), ``X_indptr`` (int64 ``(n + 1,)``) and ``X_shape``.
    Both read back exactly with :func:`load_matrix`. Canonical 6-mer profiles of the bundled
    0.5-1.5 kb fragments are 34 % non-zero: 6 bytes per entry instead of 4 per cell, 0.51 of
    the dense file (60 -> 31 MB); 4-mer profiles, embeddings and element fractions of mixed
    compounds stay dense. Written a block of rows at a time (:func:`save_matrix_blocks`,
    temporaries of ~4 M cells, whatever ``n``)."""
    X = np.asarray(X, dtype=np.float32)
    ids = np.asarray(ids, dtype=str)
    if X.ndim != 2 or len(X) != len(ids):
        raise SciclrError(f"{path}: matrix shape {X.shape} does not match {len(ids)} ids")
    n, d = X.shape
    save_matrix_blocks(path, ids, lambda: (X[sl] for sl in _row_chunks(n, d)), d, compact)


def _npz_array(path: Path, zf: zipfile.ZipFile, key: str, mmap: bool) -> np.ndarray:
    """Member ``key`` of an ``.npz``: memory-mapped from the file when it is stored uncompressed
    (``np.savez``, which :func:`save_matrix` uses), else read (``np.savez_compressed``).

    A stored member is a plain ``.npy`` file inside the zip: its data start after the zip's
    local header and the ``.npy`` header, so ``np.memmap`` can map it in place; pages are read
    when a row is touched and belong to the page cache."""
    info = zf.getinfo(key + ".npy")
    if mmap and info.compress_type == zipfile.ZIP_STORED and info.file_size > 0:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"member {key!r}: bad zip local header")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:  # 3.0: utf-8 field names, never written for these arrays
                shape = None
            offset = fh.tell()
        if shape is not None:
            if dtype.hasobject:
                raise ValueError(f"member {key!r}: object arrays are not read")
            if math.prod(shape) == 0:
                return np.zeros(shape, dtype=dtype)
            order = "F" if fortran else "C"
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


class StoredMatrix:
    """The float32 ``(n, d)`` matrix of a :func:`save_matrix` file, rows read on demand.

    Why: the analysis steps use a feature matrix a subset of rows at a time (a capped train
    subsample, the test split in chunks), and a dense 6-mer profile of 10^6 fragments is
    8.3 GB. The file's arrays are memory-mapped (:func:`_npz_array`), so holding a matrix
    costs its ids and, for CSR, its ``(n + 1,)`` row offsets; :meth:`rows` densifies only the
    rows asked for, exactly as :func:`load_matrix` would. Checked at open: the layout (dense
    ``X`` or the CSR arrays), and that the CSR arrays agree (a pass over the column indices,
    a block at a time).

    Raises ``KeyError`` when the file holds neither layout, ``ValueError``/``OSError`` when it
    is not a readable ``.npz``."""

    def __init__(self, path: str | os.PathLike[str], mmap: bool = True) -> None:
        self.path = Path(path)
        try:
            zf = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile:
            raise ValueError("not an .npz (zip) file") from None
        with zf:
            names = {n.removesuffix(".npy") for n in zf.namelist()}
            if "ids" not in names:
                raise KeyError("ids")
            self.ids = np.asarray(_npz_array(self.path, zf, "ids", mmap=False))
            if "X" in names:
                X = _npz_array(self.path, zf, "X", mmap)
                if X.ndim != 2:
                    raise ValueError(f"X has shape {X.shape}; expected (n, d)")
                self._dense: np.ndarray | None = X
                self.shape = (int(X.shape[0]), int(X.shape[1]))
                return
            self._dense = None
            n, d = (int(v) for v in _npz_array(self.path, zf, "X_shape", mmap=False))
            indptr = np.asarray(_npz_array(self.path, zf, "X_indptr", mmap=False), np.int64)
            data = _npz_array(self.path, zf, "X_data", mmap)
            cols = _npz_array(self.path, zf, "X_indices", mmap)
        self.shape = (n, d)
        if len(indptr) != n + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError("X_indptr is not the row offsets of X_shape")
        if len(data) != len(cols) or len(cols) != indptr[-1]:
            raise ValueError("X_data/X_indices do not match X_indptr and X_shape")
        step = 1 << 22
        for lo in range(0, len(cols), step):
            if int(cols[lo : lo + step].max()) >= d:
                raise ValueError("X_indices holds a column outside X_shape")
        self._csr = (indptr, cols, data)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, idx: np.ndarray | Sequence[int]) -> np.ndarray:
        """Rows ``idx`` (file order), dense float32 ``(len(idx), d)``."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        n, d = self.shape
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{self.path}: row index outside 0..{n - 1}")
        if self._dense is not None:
            return np.asarray(self._dense[idx], dtype=np.float32)
        indptr, cols, data = self._csr
        out = np.zeros((len(idx), d), dtype=np.float32)
        for sl in _row_chunks(len(idx), d):  # temporaries of a block of rows, whatever len(idx)
            r = idx[sl]
            starts, counts = indptr[r], indptr[r + 1] - indptr[r]
            total = int(counts.sum())
            if total == 0:
                continue
            at = np.repeat(np.arange(sl.start, sl.stop), counts)
            pos = ragged_positions(starts, counts)
            out[at, cols[pos]] = data[pos]
        return out

    def dense(self) -> np.ndarray:
        """Every row, dense float32 ``(n, d)``."""
        if self._dense is not None:
            return np.array(self._dense, dtype=np.float32)
        return self.rows(np.arange(self.shape[0]))


def load_matrix(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)`` of a :func:`save_matrix` file, dense or CSR; ``X`` float32 ``(n, d)`` in
    memory (:class:`StoredMatrix` reads rows on demand instead).

    Raises ``KeyError`` when the file holds neither layout, ``ValueError``/``OSError`` when it
    is not a readable ``.npz``."""
    m = StoredMatrix(path, mmap=False)
    return m.ids, m.dense()
