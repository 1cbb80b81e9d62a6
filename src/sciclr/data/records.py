"""Label tables, splits and reject lists shared by every domain.

``records.tsv`` (one row per kept item, in the row order of the domain's tensors) always has the
columns ``id``, ``split`` and then the configured label columns under their original names.
``rejects.tsv`` has ``id``, ``source`` (file, with record number where useful) and ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.errors import SciclrError

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["id", "source", "reason"]
SPLITS = ("train", "val", "test")
#: suffixes of tab-separated tables; every other table is comma-separated
TAB_SUFFIXES = (".tsv", ".tab", ".txt")
#: tables are read as UTF-8 with an optional byte-order mark (spreadsheet exports write one)
TABLE_ENCODING = "utf-8-sig"


def table_separator(path: str | Path) -> str:
    """The column separator of a CSV/TSV table, from its suffix."""
    return "\t" if Path(path).suffix.lower() in TAB_SUFFIXES else ","


def read_table_header(path: str | Path) -> list[str]:
    """The column names of a CSV/TSV table (first line only: cheap on any size)."""
    path = Path(path)
    try:
        header = pd.read_csv(path, sep=table_separator(path), nrows=0, encoding=TABLE_ENCODING)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SciclrError(f"{path}: cannot read the table's header ({exc})") from None
    return [str(c) for c in header.columns]


#: example ids named in the log line of label rows without a record
N_EXAMPLES = 5


def label_rows_without_record(
    table_name: str,
    label_ids: pd.Index,
    record_ids: Sequence[str],
    shard: int = 0,
    n_shards: int = 1,
) -> list[str]:
    """Ids of the label rows that match no record of the inputs (kept or rejected), in table
    order, among this shard's share of the table (rows ``r % n_shards == shard``: every shard
    reads the whole table, so the shards' counts add up to the one-shard count); one log line
    with their number and a few examples."""
    share = np.arange(len(label_ids)) % n_shards == shard
    orphan = share & ~np.asarray(label_ids.isin(pd.Index(record_ids)), dtype=bool)
    out = [str(x) for x in label_ids[orphan]]
    if out:
        part = f" (shard {shard + 1}/{n_shards}'s share of the table)" if n_shards > 1 else ""
        more = ", ..." if len(out) > N_EXAMPLES else ""
        examples = ", ".join(repr(x) for x in out[:N_EXAMPLES]) + more
        log.warning(
            "%s: %d label row(s) match no input record%s, e.g. %s",
            table_name,
            len(out),
            part,
            examples,
        )
    return out


def read_label_table(path: str | Path, id_column: str, columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV/TSV label table (separator from the suffix), indexed by ``id_column`` as str.

    Raises :class:`SciclrError` naming the file when it is missing, the id column or a requested
    column is absent, or ids repeat.
    """
    path = Path(path)
    if not path.exists():
        raise SciclrError(f"{path}: label table not found")
    try:
        df = pd.read_csv(
            path,
            sep=table_separator(path),
            dtype={id_column: str},
            keep_default_na=True,
            encoding=TABLE_ENCODING,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SciclrError(f"{path}: cannot read label table ({exc})") from None
    missing = [c for c in [id_column, *columns] if c not in df.columns]
    if missing:
        raise SciclrError(f"{path}: column(s) {missing} not found; available: {list(df.columns)}")
    dup = df[id_column][df[id_column].duplicated()]
    if len(dup):
        raise SciclrError(f"{path}: duplicate id {dup.iloc[0]!r} in column {id_column!r}")
    return df.set_index(id_column, drop=False)


def assign_splits(
    n: int, fractions: Mapping[str, float], seed: int, strata: Sequence[Any] | None = None
) -> np.ndarray:
    """Deterministic random split of ``n`` items into train/val/test by ``fractions``.

    With ``strata`` (e.g. the class label) each stratum is split separately so that every split
    holds every class, as done for the bundled materials set.
    """
    fr = np.array([float(fractions.get(s, 0.0)) for s in SPLITS])
    if fr.sum() <= 0:
        raise SciclrError("split_fractions must have a positive sum")
    fr = fr / fr.sum()
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=object)
    groups = (
        [np.arange(n)]
        if strata is None
        else [
            np.flatnonzero(np.asarray(strata, dtype=object) == g)
            for g in pd.unique(np.asarray(strata, dtype=object))
        ]
    )
    for idx in groups:
        idx = rng.permutation(idx)
        bounds = np.round(np.cumsum(fr) * len(idx)).astype(int)
        for name, lo, hi in zip(SPLITS, np.r_[0, bounds[:-1]], bounds, strict=True):
            out[idx[lo:hi]] = name
    return out


def finalize_records(records: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Return ``records`` (with ``id`` and label columns) with a valid ``split`` column.

    Uses ``cfg["split_column"]`` when set (values must be train/val/test), otherwise
    ``cfg["split_fractions"]`` and ``cfg["split_seed"]``, stratified by the first
    classification task when there is one.
    """
    records = records.copy()
    split_col = cfg.get("split_column")
    if split_col:
        if split_col not in records.columns:
            raise SciclrError(f"split column {split_col!r} not found in the label table")
        split = records[split_col].astype(str).str.strip().str.lower()
        bad = sorted(set(split) - set(SPLITS))
        if bad:
            raise SciclrError(
                f"split column {split_col!r} has values {bad[:5]}; expected train/val/test"
            )
        records["split"] = split.to_numpy()
    else:
        strata = None
        for task in cfg.get("tasks") or []:
            if task["type"] == "classification" and task["column"] in records.columns:
                strata = records[task["column"]].astype(str).to_numpy()
                break
        records["split"] = assign_splits(
            len(records),
            cfg["split_fractions"],
            cfg["split_seed"],
            strata,
        )
    label_cols = [t["column"] for t in cfg.get("tasks") or []]
    cols = ["id", "split", *[c for c in label_cols if c not in ("id", "split")]]
    return records[cols].reset_index(drop=True)
