"""The rendered report in headless Chromium, offline: summary table present, no broken image.

``check_report_html`` is the check; the ``report_html`` fixture is the synthetic report by
default. Point it at any other report (e.g. the tiny end-to-end run's) with the environment
variable ``SCICLR_REPORT_HTML``, or call :func:`sciclr.analysis.browser.check_report` directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sciclr.analysis.browser import check_report

pytestmark = pytest.mark.browser


@pytest.fixture
def report_html(request) -> Path:
    path = os.environ.get("SCICLR_REPORT_HTML")
    if path:
        return Path(path)
    return request.getfixturevalue("toy_results") / "report.html"


def check_report_html(path: Path, screenshot: Path) -> None:
    """Assert that ``path`` renders offline with the summary table and every image loaded."""
    res = check_report(path, screenshot)
    assert res.has_summary, "no <table id='summary'> in the rendered page"
    assert res.status == "ok", f"image check: {res.status} ({res.broken} of {res.images} broken)"
    assert res.images > 0 and res.broken == 0
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_in_chromium(report_html, tmp_path):
    check_report_html(report_html, tmp_path / "report.png")


def test_a_broken_image_is_detected(toy_results, tmp_path):
    html = (toy_results / "report.html").read_text()
    broken = html.replace("<figure>", '<figure><img src="missing.png" alt="x">', 1)
    bad = tmp_path / "bad.html"
    bad.write_text(broken)
    res = check_report(bad)
    assert res.status == "broken" and res.broken == 1 and not res.ok
