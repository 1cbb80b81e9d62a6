"""``sciclr report`` and ``sciclr check-report``: the HTML report and its browser check."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _report(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_report

    run_report(a.results, a.datasets, a.out, a.params, a.title)


def _check(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_check_report

    run_check_report(a.html, a.screenshot)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the report verbs to the ``sciclr`` parser."""
    p = sub.add_parser("report", help="self-contained HTML report")
    p.add_argument(
        "--results", required=True, help="results folder holding one folder per data set"
    )
    p.add_argument("--datasets", nargs="+", required=True, help="data sets, in report order")
    p.add_argument("--out", required=True, help="report.html")
    p.add_argument("--params", default=None, help="config JSON (domains; verdicts if not on disk)")
    p.add_argument("--title", default="sciclr report", help="page title")
    p.set_defaults(func=_report)

    p = sub.add_parser("check-report", help="open a report in headless Chromium (offline)")
    p.add_argument("--html", required=True, help="report.html")
    p.add_argument("--screenshot", default=None, help="PNG of the top of the page")
    p.set_defaults(func=_check)
