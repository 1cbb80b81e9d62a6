"""Labels of crystal records: join them from the input table or a label file, drop records
without a label (policy ``preprocess.missing_labels``), count the label rows that match no
record, keep the first of repeated ids, and assign splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from sciclr.data.crystal_payload import take
from sciclr.data.records import finalize_records, label_rows_without_record, read_label_table
from sciclr.errors import SciclrError

__all__ = ["LabelTable", "dedupe", "finalize", "join_labels", "label_table", "rows_without_record"]


#: ``(table, how, name)``: the label table (None: no labels), how it joins (``"order"``: the
#: input table's own rows, indexed by record order; ``"id"``: a separate table indexed by id)
#: and its name for messages
LabelTable = tuple[pd.DataFrame | None, str, str]


def label_table(cfg: Mapping[str, Any], csv_labels: pd.DataFrame | None) -> LabelTable:
    """The label table and how to join it: ``("order", ...)`` for labels carried by the
    CSV input row by row (indexed by record order), ``("id", ...)`` for a separate table."""
    tasks = [t["column"] for t in cfg.get("tasks") or []]
    split_col = cfg.get("split_column")
    want = [*tasks, *([split_col] if split_col else [])]
    if cfg.get("labels"):
        table = read_label_table(cfg["labels"], cfg["id_column"], want)
        return table, "id", str(cfg["labels"])
    if csv_labels is not None:
        missing = [c for c in want if c not in csv_labels.columns]
        if missing:
            raise SciclrError(
                f"{cfg['input']}: label column(s) {missing} not in the input table; "
                f"available: {list(csv_labels.columns)[:15]}"
            )
        return csv_labels, "order", "the input table"
    if want:
        raise SciclrError(
            f"tasks {tasks} need labels, but the input {cfg['input']} has none: "
            "set `labels:` to a CSV/TSV with the id column"
        )
    return None, "id", ""


def rows_without_record(
    labels: LabelTable, record_ids: Sequence[str], shard: int = 0, n_shards: int = 1
) -> list[str]:
    """Ids of the rows of a separate label table that match no record of the inputs (kept or
    rejected), among this shard's share of the table (rows ``r % n_shards == shard``: every
    shard reads the whole table, so the shards' counts add up to the one-shard count). The
    input table's own rows are records themselves: none. Logs their number with examples."""
    table, how, name = labels
    if table is None or how != "id":
        return []
    return label_rows_without_record(name, table.index, record_ids, shard, n_shards)


def join_labels(
    ids: Sequence[str],
    order: np.ndarray,
    sources: Sequence[str],
    cfg: Mapping[str, Any],
    csv_labels: pd.DataFrame | None,
    labels: LabelTable | None = None,
) -> tuple[pd.DataFrame, list[tuple[str, str, str, int]]]:
    """Raw records (``id``, task columns, split column, ``order``) and missing-label rejects
    (``labels``: the :func:`label_table` when already read)."""
    tasks = [t["column"] for t in cfg.get("tasks") or []]
    split_col = cfg.get("split_column")
    cols = list(dict.fromkeys([*tasks, *([split_col] if split_col else [])]))
    table, how, name = labels if labels is not None else label_table(cfg, csv_labels)
    rec = pd.DataFrame({"id": list(ids), "order": np.asarray(order, dtype=np.int64)})
    if table is None or not cols:
        return rec, []
    if how == "order":  # rows of the input table, indexed by record order
        found = rec["order"].isin(table.index).to_numpy()
        lab = table.reindex(rec["order"])[cols].reset_index(drop=True)
    else:
        found = rec["id"].isin(table.index).to_numpy()
        lab = table.reindex(rec["id"])[cols].reset_index(drop=True)
    rec = pd.concat([rec, lab], axis=1)
    rec = rec.loc[:, ~rec.columns.duplicated()]
    policy = cfg["preprocess"]["missing_labels"]
    rejects = []
    bad = ~found
    reason = np.where(bad, f"missing label: id not in {name}", "").astype(object)
    if policy == "reject":
        for c in cols:
            na = rec[c].isna().to_numpy() & ~bad
            reason[na & (reason == "")] = f"missing label: {c!r} is empty"
            bad |= na
    else:
        split_na = (
            rec[split_col].isna().to_numpy() & ~bad if split_col else np.zeros(len(rec), bool)
        )
        reason[split_na] = f"missing label: {split_col!r} is empty"
        bad |= split_na
    for k in np.flatnonzero(bad):
        rejects.append((rec["id"].iat[k], sources[k], str(reason[k]), int(rec["order"].iat[k])))
    return rec[~bad].reset_index(drop=True), rejects


def finalize(raw: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    out = finalize_records(raw, cfg)
    for col in ("id", "split"):
        out[col] = out[col].astype(str)
    out["order"] = raw["order"].to_numpy()
    return out


def dedupe(
    payload: dict[str, Any], records: pd.DataFrame
) -> tuple[dict[str, Any], pd.DataFrame, list[tuple[str, str, str, int]]]:
    """Keep the first occurrence (lowest order) of every id; list the others."""
    dup = records["id"].duplicated(keep="first").to_numpy()
    if not dup.any():
        return payload, records, []
    src = payload["sources"]
    first = {records["id"].iat[k]: src[k] for k in np.flatnonzero(~dup)}
    rej = [
        (
            records["id"].iat[k],
            src[k],
            f"duplicate id (first at {first[records['id'].iat[k]]})",
            int(records["order"].iat[k]),
        )
        for k in np.flatnonzero(dup)
    ]
    keep = torch.from_numpy(np.flatnonzero(~dup))
    return take(payload, keep), records[~dup].reset_index(drop=True), rej
