"""Open a report in headless Chromium, offline, and say whether it rendered completely.

The report's own script marks ``<body data-images="ok|broken" data-broken-images=N>`` once
every image has loaded or failed, together with layout facts measured in the page at the
window's width: ``data-page-width``, ``data-wide-figures`` (figures or images that reach past
the page's right edge), ``data-widest-figure``, ``data-page-overflow`` (the page scrolls
sideways) and ``data-headlines`` (non-empty one-sentence answers). Chromium's ``--dump-dom``
(after a virtual-time budget) returns the DOM with those marks. Network access is cut (host
resolver maps everything to nowhere, proxy to a closed port), so an image that is not embedded
shows up as broken.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sciclr.errors import SciclrError

__all__ = ["BrowserCheck", "check_report", "find_chromium"]

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--hide-scrollbars",
]


@dataclass(frozen=True)
class BrowserCheck:
    """What Chromium saw: image counts and layout facts from the page's marks (-1: not
    marked), whether the summary table exists."""

    images: int
    broken: int
    status: str  # "ok", "broken" or "pending" (the load handler never ran)
    has_summary: bool
    screenshot: Path | None
    headlines: int = -1  # non-empty one-sentence answers (class "headline")
    page_width: int = -1  # the layout width in CSS pixels
    wide_figures: int = -1  # figures/images reaching past the page's edge
    widest_figure: int = -1  # rightmost edge of any figure or image, CSS pixels
    page_overflow: bool = False  # the page itself scrolls sideways

    @property
    def fits(self) -> bool:
        """No figure is wider than the page and the page does not scroll sideways."""
        return self.wide_figures == 0 and not self.page_overflow

    @property
    def ok(self) -> bool:
        return (
            self.status == "ok"
            and self.broken == 0
            and self.has_summary
            and self.headlines > 0
            and self.fits
        )


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SciclrError(
            f"chromium: no answer within {timeout:.0f} s ({' '.join(cmd[-1:])})"
        ) from None


def check_report(
    html: str | Path,
    screenshot: str | Path | None = None,
    timeout: float = 90.0,
    window: tuple[int, int] = (1300, 2400),
) -> BrowserCheck:
    """Render ``html`` offline in a window of ``window`` (width, height) CSS pixels, the width
    the layout facts are measured at; optionally save a PNG screenshot of the top of the
    page at that size."""
    html = Path(html).resolve()
    if not html.exists():
        raise SciclrError(f"{html}: report not found")
    exe = find_chromium()
    if exe is None:
        raise SciclrError("chromium not found (Debian: apt-get install -y chromium)")
    url = html.as_uri()
    with tempfile.TemporaryDirectory(prefix="sciclr-chromium-") as profile:
        base = [exe, *_FLAGS, f"--user-data-dir={profile}"]
        size = f"--window-size={window[0]},{window[1]}"
        dom = _run([*base, size, "--virtual-time-budget=10000", "--dump-dom", url], timeout)
        if dom.returncode != 0 or "<body" not in dom.stdout:
            raise SciclrError(
                f"chromium --dump-dom failed (exit {dom.returncode}): {dom.stderr.strip()[-300:]}"
            )
        shot = None
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            shot.parent.mkdir(parents=True, exist_ok=True)
            r = _run(
                [*base, size, f"--screenshot={shot}", url],
                timeout,
            )
            if r.returncode != 0 or not shot.exists():
                raise SciclrError(
                    f"chromium --screenshot failed (exit {r.returncode}): {r.stderr.strip()[-300:]}"
                )
    body = re.search(r"<body([^>]*)>", dom.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))) if body else {}

    def count(name: str) -> int:
        try:
            return int(attrs.get(name, -1))
        except ValueError:
            return -1

    return BrowserCheck(
        images=count("data-image-count"),
        broken=count("data-broken-images"),
        status=attrs.get("data-images", "pending"),
        has_summary=bool(re.search(r'<table[^>]*\bid="summary"', dom.stdout)),
        screenshot=shot,
        headlines=count("data-headlines"),
        page_width=count("data-page-width"),
        wide_figures=count("data-wide-figures"),
        widest_figure=count("data-widest-figure"),
        page_overflow=attrs.get("data-page-overflow") == "true",
    )
