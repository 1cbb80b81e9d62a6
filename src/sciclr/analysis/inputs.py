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
from sciclr.io import load_matrix

__all__ = ["load_features", "parse_named_paths", "read_records"]


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


def load_features(path: str | Path, ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Load the matrix of an ``.npz`` (arrays ``ids`` and ``X``, or its CSR form ``X_data``,
    ``X_indices``, ``X_indptr``, ``X_shape``: :func:`sciclr.io.save_matrix`) in the order of
    ``ids``.

    Returns float32 ``(len(ids), d)``, dense (a CSR file is expanded exactly). Extra rows in
    the file are ignored (e.g. rejected records); a record without a row is an error.
    """
    path = Path(path)
    if not path.exists():
        raise SciclrError(f"{path}: feature file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
        if "ids" not in keys or not ("X" in keys or "X_data" in keys):
            raise SciclrError(f"{path}: expected arrays 'ids' and 'X', found {keys}")
        fids, X = load_matrix(path)
        fids = np.asarray(fids).astype(str)
    except (OSError, ValueError, KeyError) as exc:
        raise SciclrError(f"{path}: cannot read feature file ({exc})") from None
    if X.ndim != 2 or len(X) != len(fids):
        raise SciclrError(
            f"{path}: X has shape {X.shape}, ids {fids.shape}; expected (n, d) and (n,)"
        )
    want = np.asarray(ids).astype(str)
    if len(fids) != len(want) or not np.array_equal(fids, want):
        pos = pd.Index(fids)
        if not pos.is_unique:
            raise SciclrError(f"{path}: duplicate id {str(pos[pos.duplicated()][0])!r} in 'ids'")
        idx = pos.get_indexer(want)
        if (idx < 0).any():
            missing = want[idx < 0]
            raise SciclrError(
                f"{path}: record {str(missing[0])!r} has no feature row ({len(missing)} missing)"
            )
        X = X[idx]
    step = max(1, (1 << 22) // max(X.shape[1], 1))  # blocks of ~4 M cells: no n x d mask
    for lo in range(0, len(X), step):
        finite = np.isfinite(X[lo : lo + step]).all(axis=1)
        if not finite.all():
            i = lo + int(np.flatnonzero(~finite)[0])
            raise SciclrError(f"{path}: record {str(want[i])!r} has non-finite features (NaN/inf)")
    return X
