"""Embedding for the self-contained report: images as base64 ``data:`` URIs, so the page
fetches nothing and can be mailed or archived as one file."""

from __future__ import annotations

import base64
from pathlib import Path

__all__ = ["data_uri", "png_size"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def data_uri(path: str | Path, mime: str = "image/png") -> str:
    """The file's bytes as a ``data:`` URI for an ``<img src=...>``."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:{mime};base64,{data}"


def png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's header; (0, 0) when the file is no PNG."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return 0, 0
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
