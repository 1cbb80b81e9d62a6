"""Domain-agnostic pipeline steps behind the CLI: shard → gather → baseline features.

Each step loads what the previous one wrote, asks the data set's domain to do the
domain-specific work, and writes its outputs atomically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.data.records import finalize_records
from sciclr.domains import Processed, get_domain
from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch, write_json, write_table

log = logging.getLogger(__name__)

DATA, RECORDS, REJECTS, SUMMARY = "data.pt", "records.tsv", "rejects.tsv", "summary.json"
SHARD_RECORDS, SHARD_COUNTS = "records.parquet", "counts.json"


def preprocess_shard(cfg: Mapping[str, Any], shard: int, n_shards: int, out: Path) -> None:
    """Process shard ``shard`` of ``n_shards`` and write data.pt, records.parquet,
    rejects.tsv and counts.json into ``out``."""
    if not 0 <= shard < n_shards:
        raise SciclrError(f"shard {shard} is outside 0..{n_shards - 1}")
    domain = get_domain(cfg["domain"])
    part = domain.preprocess_shard(cfg, shard, n_shards)
    log.info(
        "%s shard %d/%d: %s", cfg.get("name", ""), shard + 1, n_shards, _counts_line(part.counts)
    )
    save_torch(out / DATA, part.payload)
    from sciclr.io import atomic_path

    with atomic_path(out / SHARD_RECORDS) as tmp:
        part.records.to_parquet(tmp, index=False)
    write_table(out / REJECTS, part.rejects)
    write_json(out / SHARD_COUNTS, part.counts)


def _load_shard(folder: Path) -> Processed:
    return Processed(
        payload=load_torch(folder / DATA),
        records=pd.read_parquet(folder / SHARD_RECORDS),
        rejects=pd.read_csv(folder / REJECTS, sep="\t", dtype=str, keep_default_na=False),
        counts=json.loads((folder / SHARD_COUNTS).read_text()),
    )


def _counts_line(counts: Mapping[str, int]) -> str:
    main = f"in {counts.get('in', '?')}, out {counts.get('out', '?')}, rejected {counts.get('rejected', '?')}"
    extra = {k: v for k, v in counts.items() if k not in ("in", "out", "rejected")}
    return main + (
        f" ({', '.join(f'{k}: {v}' for k, v in sorted(extra.items()))})" if extra else ""
    )


def gather(cfg: Mapping[str, Any], shard_dirs: Sequence[Path], out: Path) -> None:
    """Merge shards in input order, assign splits, write data.pt, records.tsv, rejects.tsv and
    summary.json (counts in/out/rejected, per split, per reason) into ``out``."""
    domain = get_domain(cfg["domain"])
    merged = domain.merge([_load_shard(Path(d)) for d in shard_dirs], cfg)
    records = finalize_records(merged.records, cfg)
    if len(records) == 0:
        raise SciclrError(
            f"{cfg.get('name', 'data set')}: no record survived preprocessing; see rejects.tsv"
        )
    summary = dict(merged.counts)
    summary["splits"] = records["split"].value_counts().to_dict()
    summary["reasons"] = (
        merged.rejects["reason"].value_counts().to_dict() if len(merged.rejects) else {}
    )
    log.info(
        "%s: %s; splits %s", cfg.get("name", ""), _counts_line(merged.counts), summary["splits"]
    )
    for split in ("train", "test"):
        if summary["splits"].get(split, 0) == 0:
            raise SciclrError(f"{cfg.get('name', 'data set')}: the {split} split is empty")
    save_torch(out / DATA, merged.payload)
    write_table(out / RECORDS, records)
    write_table(out / REJECTS, merged.rejects)
    write_json(out / SUMMARY, summary)


def read_records(data_dir: Path) -> pd.DataFrame:
    """``records.tsv`` with ids kept as strings."""
    return pd.read_csv(Path(data_dir) / RECORDS, sep="\t", dtype={"id": str, "split": str})


def save_matrix(path: Path, ids: Sequence[str], X: np.ndarray) -> None:
    """Write a feature/embedding matrix as ``.npz`` with ``ids`` (unicode) and ``X`` (float32)."""
    from sciclr.io import atomic_path

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) != len(ids):
        raise SciclrError(f"{path}: matrix shape {X.shape} does not match {len(ids)} ids")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=str), X=X)


def baseline_features(
    cfg: Mapping[str, Any], data_dir: Path, out: Path, names: Sequence[str] | None = None
) -> None:
    """Write the domain's handcrafted feature sets (all, or those in ``names``) as ``out/<name>.npz``."""
    domain = get_domain(cfg["domain"])
    payload = load_torch(Path(data_dir) / DATA)
    ids = read_records(data_dir)["id"].tolist()
    feats = domain.baseline_features(payload, cfg)
    unknown = sorted(set(names or ()) - set(feats))
    if unknown:
        raise SciclrError(
            f"unknown baseline feature set(s) {unknown}; the domain has {sorted(feats)}"
        )
    for name in names or feats:
        X = feats[name]
        save_matrix(Path(out) / f"{name}.npz", ids, X)
        log.info("%s: baseline %s %s", cfg.get("name", ""), name, tuple(np.shape(X)))
