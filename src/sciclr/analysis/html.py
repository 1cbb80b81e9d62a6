"""Embedding for the self-contained report: images as base64 ``data:`` URIs, so the page
fetches nothing and can be mailed or archived as one file."""

from __future__ import annotations

import base64
from pathlib import Path

__all__ = ["data_uri"]


def data_uri(path: str | Path, mime: str = "image/png") -> str:
    """The file's bytes as a ``data:`` URI for an ``<img src=...>``."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:{mime};base64,{data}"
