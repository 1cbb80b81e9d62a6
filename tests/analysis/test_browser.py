"""The rendered report in headless Chromium, offline: summary table and headline present, no
broken image, no figure wider than the page.

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


def check_report_html(path: Path, screenshot: Path, window: tuple[int, int] = (1300, 2400)) -> None:
    """Assert that ``path`` renders offline in a ``window``-sized browser with the summary
    table, a one-sentence answer per data set, every image loaded, and no figure or image
    reaching past the page's edge (nor the page scrolling sideways)."""
    html = path.read_text(encoding="utf-8")
    sections = html.count('<section id="ds-')
    res = check_report(path, screenshot, window=window)
    assert res.has_summary, "no <table id='summary'> in the rendered page"
    assert res.status == "ok", f"image check: {res.status} ({res.broken} of {res.images} broken)"
    assert res.images > 0 and res.broken == 0
    # one headline at the top and one at the head of each data set's section
    assert sections > 0 and res.headlines == 2 * sections, (res.headlines, sections)
    assert res.page_width == window[0], res
    assert res.wide_figures == 0, f"{res.wide_figures} figure(s) wider than the page: {res}"
    assert 0 < res.widest_figure <= res.page_width and not res.page_overflow, res
    assert res.ok
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_in_chromium(report_html, tmp_path):
    check_report_html(report_html, tmp_path / "report.png")


def test_report_fits_a_narrow_window(report_html, tmp_path):
    """On a 700 px screen the figure grids fall back to one column and images shrink."""
    check_report_html(report_html, tmp_path / "narrow.png", window=(700, 1200))


def test_a_broken_image_is_detected(toy_results, tmp_path):
    html = (toy_results / "report.html").read_text()
    broken = html.replace("<figure>", '<figure><img src="missing.png" alt="x">', 1)
    bad = tmp_path / "bad.html"
    bad.write_text(broken)
    res = check_report(bad)
    assert res.status == "broken" and res.broken == 1 and not res.ok


def test_a_figure_wider_than_the_page_and_a_missing_headline_are_detected(toy_results, tmp_path):
    html = (toy_results / "report.html").read_text()
    assert 'class="headline"' in html
    at = html.index("<figure>", html.index('class="figure-grid"'))  # a figure in a grid
    wide = html[:at] + '<figure style="width:2600px;max-width:none">' + html[at + 8 :]
    wide = wide.replace('class="headline"', 'class="lead"')
    bad = tmp_path / "wide.html"
    bad.write_text(wide)
    res = check_report(bad, window=(1300, 1000))
    assert res.status == "ok" and res.broken == 0  # the images themselves are fine
    assert res.wide_figures >= 1 and res.widest_figure > 2000 and not res.fits
    assert res.headlines == 0 and not res.ok
    good = check_report(toy_results / "report.html", window=(1300, 1000))
    assert good.fits and good.headlines == 2 and good.ok
