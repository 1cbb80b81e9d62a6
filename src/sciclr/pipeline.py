"""Domain-agnostic pipeline steps behind the CLI: parse → shard → gather → baseline features.

Each step fills the data set's defaults from the schema (:func:`sciclr.config.dataset_params`),
loads what the previous one wrote, asks the data set's domain to do the domain-specific work and
writes its outputs atomically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.config import dataset_params
from sciclr.data.processed import Processed
from sciclr.data.records import finalize_records
from sciclr.domains import get_domain
from sciclr.errors import SciclrError
from sciclr.io import (
    atomic_path,
    load_torch,
    save_matrix_blocks,
    save_torch,
    write_json,
    write_table,
)

__all__ = ["baseline_features", "gather", "parse_shard", "preprocess_shard", "read_records"]

log = logging.getLogger(__name__)
#: records per block of a baseline feature set: 2,048 6-mer profiles are 17 MB of float32
FEATURE_BLOCK_RECORDS = 2048

DATA, RECORDS, REJECTS, SUMMARY = "data.pt", "records.tsv", "rejects.tsv", "summary.json"
SHARD_RECORDS, SHARD_COUNTS = "records.parquet", "counts.json"


def _check_shard(shard: int, n_shards: int) -> None:
    if not 0 <= shard < n_shards:
        raise SciclrError(f"shard {shard} is outside 0..{n_shards - 1}")


def parse_shard(params: Mapping[str, Any], shard: int, n_shards: int, out: Path) -> None:
    """Parse shard ``shard`` of ``n_shards`` (domains with a parse stage) into the file ``out``."""
    cfg = dataset_params(params)
    _check_shard(shard, n_shards)
    domain = get_domain(cfg["domain"])
    if not domain.parse_stage:
        raise SciclrError(f"domain {cfg['domain']!r} has no parse stage: run `sciclr preprocess`")
    parsed = domain.parse_shard(cfg, shard, n_shards)
    log.info(
        "%s shard %d/%d: parsed %d, rejected %d",
        cfg.get("name", ""),
        shard + 1,
        n_shards,
        len(parsed["ids"]),
        len(parsed["rejects"]),
    )
    save_torch(out, parsed)


def preprocess_shard(
    params: Mapping[str, Any], shard: int, n_shards: int, out: Path, parsed: Path | None = None
) -> None:
    """Process shard ``shard`` of ``n_shards`` (from the ``parsed`` arrays when given) and
    write data.pt, records.parquet, rejects.tsv and counts.json into the folder ``out``."""
    cfg = dataset_params(params)
    _check_shard(shard, n_shards)
    domain = get_domain(cfg["domain"])
    arrays = load_torch(parsed) if parsed is not None else None
    part = domain.preprocess_shard(cfg, shard, n_shards, arrays)
    log.info(
        "%s shard %d/%d: %s", cfg.get("name", ""), shard + 1, n_shards, _counts_line(part.counts)
    )
    out = Path(out)
    save_torch(out / DATA, part.payload)
    with atomic_path(out / SHARD_RECORDS) as tmp:
        part.records.to_parquet(tmp, index=False)
    write_table(out / REJECTS, part.rejects)
    write_json(out / SHARD_COUNTS, part.counts)


def _load_shard(folder: Path) -> Processed:
    missing = [n for n in (DATA, SHARD_RECORDS, REJECTS, SHARD_COUNTS) if not (folder / n).exists()]
    if missing:
        raise SciclrError(f"{folder}: not a preprocessed shard ({', '.join(missing)} missing)")
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


def gather(params: Mapping[str, Any], shard_dirs: Sequence[Path], out: Path) -> None:
    """Merge shards in input order, assign splits, write data.pt, records.tsv, rejects.tsv and
    summary.json (counts in/out/rejected, per split, per reason, label rows without a record)
    into ``out``.

    Shard counts add up: each shard counts its own records, and the label rows without a
    record among its share of the label table (every shard reads the whole table), so the
    domain's merge sums them. A record that is neither kept nor rejected stops the step."""
    cfg = dataset_params(params)
    domain = get_domain(cfg["domain"])
    merged = domain.merge([_load_shard(Path(d)) for d in shard_dirs], cfg)
    records = finalize_records(merged.records, cfg)
    name = cfg.get("name", "data set")
    counts = merged.counts
    if {"in", "out", "rejected"} <= counts.keys() and counts["in"] != (
        counts["out"] + counts["rejected"]
    ):
        raise SciclrError(
            f"{name}: {counts['in']} records in, but {counts['out']} kept + "
            f"{counts['rejected']} rejected: records were lost between the shards and the merge"
        )
    if len(records) == 0:
        raise SciclrError(f"{name}: no record survived preprocessing; see rejects.tsv")
    summary = dict(merged.counts)
    orphans = int(summary.get("label_rows_without_record", 0))
    if orphans:
        log.warning(
            "%s: %d label row(s) match no input record (their ids are in the preprocess logs)",
            name,
            orphans,
        )
    summary["splits"] = records["split"].value_counts().to_dict()
    summary["reasons"] = (
        merged.rejects["reason"].value_counts().to_dict() if len(merged.rejects) else {}
    )
    log.info("%s: %s; splits %s", name, _counts_line(merged.counts), summary["splits"])
    for split in ("train", "test"):
        if summary["splits"].get(split, 0) == 0:
            raise SciclrError(f"{name}: the {split} split is empty")
    out = Path(out)
    save_torch(out / DATA, merged.payload)
    write_table(out / RECORDS, records)
    write_table(out / REJECTS, merged.rejects)
    write_json(out / SUMMARY, summary)


def read_records(data_dir: Path) -> pd.DataFrame:
    """``records.tsv`` with ids kept as strings."""
    return pd.read_csv(Path(data_dir) / RECORDS, sep="\t", dtype={"id": str, "split": str})


def baseline_features(
    params: Mapping[str, Any], data_dir: Path, out: Path, names: Sequence[str] | None = None
) -> None:
    """Write the domain's handcrafted feature sets (all, or those in ``names``) as
    ``out/<name>.npz``; only the requested sets are computed. Each is computed and written
    :data:`FEATURE_BLOCK_RECORDS` records at a time (:func:`sciclr.io.save_matrix_blocks`), so
    the step holds one block, not the matrix. A sparse set (canonical 6-mer profiles of ~1 kb
    fragments) is stored as CSR, exactly; deciding that takes a counting pass, so such a set
    is computed twice."""
    cfg = dataset_params(params)
    domain = get_domain(cfg["domain"])
    known = domain.baseline_names(cfg)
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise SciclrError(f"unknown baseline feature set(s) {unknown}; the data set has {known}")
    wanted = list(names or known)
    payload = load_torch(Path(data_dir) / DATA, mmap=True)  # read block by block
    ids = read_records(data_dir)["id"].tolist()
    n, step = len(ids), FEATURE_BLOCK_RECORDS

    for name in wanted:

        def blocks(name: str = name) -> Iterator[np.ndarray]:
            for lo in range(0, max(n, 1), step):  # one (empty) block when there are no records
                yield domain.baseline_features(payload, cfg, [name], lo, min(n, lo + step))[name]

        shape = save_matrix_blocks(Path(out) / f"{name}.npz", ids, blocks, compact=True)
        log.info("%s: baseline %s %s", cfg.get("name", ""), name, shape)
