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
from typing import Any

import numpy as np
import pandas as pd
import torch

from sciclr.errors import SciclrError

_UMASK = os.umask(0)
os.umask(_UMASK)

__all__ = [
    "atomic_path",
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
    _atomic_write(path, lambda p: torch.save(obj, p))


def load_torch(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: never unpickles arbitrary code."""
    return torch.load(path, map_location=map_location, weights_only=True)


def save_matrix(path: str | os.PathLike[str], ids: Any, X: Any) -> None:
    """Write a feature or embedding matrix as ``.npz``: ``ids`` (unicode, ``(n,)``) and ``X``
    (float32, ``(n, d)``), atomically; row ``i`` of ``X`` belongs to ``ids[i]``."""
    X = np.asarray(X, dtype=np.float32)
    ids = np.asarray(ids, dtype=str)
    if X.ndim != 2 or len(X) != len(ids):
        raise SciclrError(f"{path}: matrix shape {X.shape} does not match {len(ids)} ids")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=ids, X=X)
