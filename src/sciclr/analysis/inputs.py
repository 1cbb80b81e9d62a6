"""Reading the analysis inputs: ``records.tsv`` and feature matrices (``.npz`` with ``ids``, ``X``).

Row order is the glue of the pipeline, but the analysis does not trust it blindly: feature rows
are matched to records by id, and a missing id or a non-finite value stops with the file and
record named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sciclr.data.records import SPLITS
from sciclr.errors import SciclrError
from sciclr.io import StoredMatrix

__all__ = ["FeatureMatrix", "load_features", "parse_named_paths", "read_records"]


def read_records(path: str | Path) -> pd.DataFrame:
    """Read ``records.tsv`` (``id``, ``split``, label columns); ids as str, splits checked."""
    path = Path(path)
    if not path.exists():
        raise SciclrError(f"{path}: records table not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype={"id": str, "split": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SciclrError(f"{path}: cannot read records table ({exc})") from None
    for col in ("id", "split"):
        if col not in df.columns:
            raise SciclrError(f"{path}: column {col!r} missing (columns: {list(df.columns)})")
    bad = ~df["split"].isin(SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise SciclrError(
            f"{path}: record {df['id'].iloc[i]!r}: split {df['split'].iloc[i]!r} is not one of {SPLITS}"
        )
    dup = df["id"].duplicated()
    if dup.any():
        raise SciclrError(f"{path}: duplicate id {df['id'][dup].iloc[0]!r}")
    return df.reset_index(drop=True)


def parse_named_paths(items: Sequence[str], flag: str = "--features") -> dict[str, Path]:
    """Parse ``NAME=PATH`` arguments (order kept); names must be unique."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SciclrError(f"{flag}: expected NAME=PATH, got {item!r}")
        if name in out:
            raise SciclrError(f"{flag}: name {name!r} given twice")
        out[name] = Path(path)
    return out


class FeatureMatrix:
    """A feature file's matrix with its rows in the order of the records, read on demand.

    ``X[rows]`` (an integer array, a list or a slice of record positions) returns those rows,
    dense float32 ``(len(rows), d)``, gathered from the memory-mapped file
    (:class:`sciclr.io.StoredMatrix`); ``np.asarray(X)`` densifies every row. The analysis
    steps only ever take rows (a capped train subsample, the test split in chunks), so a step
    holds the rows it works on, not ``n x d``: a dense 6-mer profile of 10^6 fragments is
    8.3 GB. Pickles as its path and row order (joblib workers reopen the file instead of
    receiving a copy)."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, path: Path, order: np.ndarray | None, stored: StoredMatrix | None = None):
        self.path = Path(path)
        self.order = order  # file row of each record; None: the file's own order
        self._stored = stored if stored is not None else StoredMatrix(self.path)
        n = len(self._stored) if order is None else len(order)
        self.shape = (n, self._stored.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, tuple):
            raise TypeError("FeatureMatrix takes rows only: X[rows], not X[rows, cols]")
        n = self.shape[0]
        if isinstance(rows, slice):  # no n-long position array per block of rows
            pos = np.arange(*rows.indices(n))
        else:
            pos = np.asarray(rows)
            if pos.dtype == bool:
                if pos.shape != (n,):
                    raise IndexError(f"boolean index of shape {pos.shape} for {n} rows")
                pos = np.flatnonzero(pos)
            elif pos.ndim == 0:
                return self[pos.reshape(1)][0]
            pos = pos.astype(np.int64, copy=False)
            if len(pos) and (pos.min() < -n or pos.max() >= n):
                raise IndexError(f"{self.path}: row index outside -{n}..{n - 1}")
            pos = np.where(pos < 0, pos + n, pos)
        return self._stored.rows(pos if self.order is None else self.order[pos])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        X = self[:]
        return X if dtype is None else X.astype(dtype, copy=False)

    def __reduce__(self):
        return (FeatureMatrix, (self.path, self.order))


def load_features(path: str | Path, ids: Sequence[str] | np.ndarray) -> FeatureMatrix:
    """Open the matrix of an ``.npz`` (arrays ``ids`` and ``X``, or its CSR form ``X_data``,
    ``X_indices``, ``X_indptr``, ``X_shape``: :func:`sciclr.io.save_matrix`) in the order of
    ``ids``, as a :class:`FeatureMatrix` (rows float32, read on demand; a CSR file's rows are
    expanded exactly).

    Extra rows in the file are ignored (e.g. rejected records); a record without a row, or
    with a non-finite value (checked here, a block of rows at a time), is an error.
    """
    path = Path(path)
    if not path.exists():
        raise SciclrError(f"{path}: feature file not found")
    try:
        stored = StoredMatrix(path)
    except KeyError:
        raise SciclrError(f"{path}: expected arrays 'ids' and 'X' (or its CSR form)") from None
    except (OSError, ValueError) as exc:
        raise SciclrError(f"{path}: cannot read feature file ({exc})") from None
    fids = np.asarray(stored.ids).astype(str)
    if fids.ndim != 1 or len(fids) != len(stored):
        raise SciclrError(
            f"{path}: X has shape {stored.shape}, ids {fids.shape}; expected (n, d) and (n,)"
        )
    want = np.asarray(ids).astype(str)
    order = None
    if len(fids) != len(want) or not np.array_equal(fids, want):
        pos = pd.Index(fids)
        if not pos.is_unique:
            raise SciclrError(f"{path}: duplicate id {str(pos[pos.duplicated()][0])!r} in 'ids'")
        order = pos.get_indexer(want)
        if (order < 0).any():
            missing = want[order < 0]
            raise SciclrError(
                f"{path}: record {str(missing[0])!r} has no feature row ({len(missing)} missing)"
            )
    X = FeatureMatrix(path, order, stored)
    step = max(1, (1 << 22) // max(X.shape[1], 1))  # blocks of ~4 M cells: no n x d mask
    for lo in range(0, len(X), step):
        finite = np.isfinite(X[lo : lo + step]).all(axis=1)
        if not finite.all():
            i = lo + int(np.flatnonzero(~finite)[0])
            raise SciclrError(f"{path}: record {str(want[i])!r} has non-finite features (NaN/inf)")
    return X
