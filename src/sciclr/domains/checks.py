"""Everything about a data set's inputs that can be known before the first job runs.

The Snakefile calls :func:`check_datasets` right after the schema check, so a wrong path, a
missing label column or a file of the wrong kind stops ``snakemake -n`` with one line naming
the data set, the key or file, and what was expected — instead of a failed job whose reason is
buried in its log. Only headers and first bytes are read (cheap on any input size); the domains
add what they know about their file types (``Domain.check_inputs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sciclr.data.records import read_table_header
from sciclr.domains import get_domain
from sciclr.errors import SciclrError

__all__ = ["check_dataset", "check_datasets", "label_columns"]


def label_columns(ds: Mapping[str, Any]) -> list[str]:
    """Columns a data set needs from its label table: the id, every task, the split."""
    cols = [ds["id_column"], *[t["column"] for t in ds.get("tasks") or []]]
    if ds.get("split_column"):
        cols.append(ds["split_column"])
    return list(dict.fromkeys(cols))


def _check_columns(where: str, path: str, header: list[str], wanted: dict[str, str]) -> None:
    for key, column in wanted.items():
        if column not in header:
            raise SciclrError(
                f"{where}.{key}: column {column!r} is not in the header of {path} "
                f"(columns: {header[:20]}{' ...' if len(header) > 20 else ''})"
            )


def check_dataset(name: str, ds: Mapping[str, Any], base: Path | None = None) -> None:
    """Check one filled data set section: inputs exist and are of the domain's kind, and the
    label table (or the domain's own table input) has the configured columns."""
    base = Path(base or ".")
    where = f"config: datasets.{name}"
    for key, paths in (
        ("input", list(ds["input"])),
        ("labels", [ds["labels"]] * bool(ds["labels"])),
    ):
        for p in paths:
            if not (base / p).exists():
                raise SciclrError(f"{where}.{key}: file not found: {p}")
    checkpoint = (ds.get("pretrained") or {}).get("checkpoint")
    if checkpoint and not (base / checkpoint).is_file():
        raise SciclrError(f"{where}.pretrained.checkpoint: file not found: {checkpoint}")
    domain = get_domain(ds["domain"])
    domain.check_inputs(ds, where, base)
    wanted = {"id_column": ds["id_column"]}
    for i, task in enumerate(ds.get("tasks") or []):
        wanted[f"tasks.{i}.column"] = task["column"]
    if ds.get("split_column"):
        wanted["split_column"] = ds["split_column"]
    tables = [ds["labels"]] if ds["labels"] else domain.label_tables(ds)
    if ds.get("tasks") and not tables:
        raise SciclrError(
            f"{where}.labels: the tasks need a label table (a CSV/TSV with the "
            f"{ds['id_column']!r} column); set labels:"
        )
    for table in tables:
        _check_columns(where, table, read_table_header(base / table), wanted)


def check_datasets(config: Mapping[str, Any], base: Path | None = None) -> None:
    """:func:`check_dataset` for every data set of a validated config."""
    for name, ds in config["datasets"].items():
        check_dataset(name, ds, base)
