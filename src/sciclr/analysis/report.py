"""``results/report.html``: one self-contained page answering "are these embeddings better than
what I already have, how sure are we, and what did training do?"

:mod:`sciclr.analysis.report_data` reads the files the caller names (nothing is discovered or
recomputed here); the page is the jinja2 template ``templates/report.html.j2``, one block per
section, with autoescaping on. Images are embedded, nothing is fetched: the file can be mailed or
archived as is.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from sciclr.analysis.report_data import ReportData, load_report
from sciclr.io import write_text

__all__ = ["build_report", "render", "write_report"]

TEMPLATE = "report.html.j2"


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("sciclr", "analysis/templates"),
        autoescape=jinja2.select_autoescape(("html", "j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails instead of rendering empty
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(data: ReportData, title: str = "sciclr report", generated: str | None = None) -> str:
    """The page for already-loaded ``data`` (``generated``: the time stamp shown; default now)."""
    if generated is None:
        generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        _environment().get_template(TEMPLATE).render(report=data, title=title, generated=generated)
    )


def build_report(
    inputs: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any],
    title: str = "sciclr report",
) -> str:
    """The report's HTML: ``inputs`` maps data set -> {kind: path} (kinds:
    :data:`~sciclr.analysis.report_data.KINDS`), in page order; ``params`` is
    ``{"datasets": {name: section}}`` (domains and analysis settings)."""
    return render(load_report(inputs, params), title)


def write_report(
    out: str | Path,
    inputs: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Any],
    title: str = "sciclr report",
) -> None:
    """Build the report (see :func:`build_report`) and write it atomically."""
    write_text(out, build_report(inputs, params, title))
