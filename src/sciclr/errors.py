"""The one exception type users see: a clear, one-line message naming file, record and reason."""

from __future__ import annotations


class SciclrError(Exception):
    """An input or configuration problem the user can fix; the CLI prints it without a traceback."""
