"""``sciclr report`` and ``sciclr check-report``: the HTML report and its browser check."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _report(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_report

    run_report(a.params, a.inputs, a.out, a.title)


def _window(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1300x900, got {text!r}"
        ) from None
    if w < 200 or h < 200:
        raise argparse.ArgumentTypeError(f"window {text!r} is smaller than 200x200")
    return w, h


def _check(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_check_report

    run_check_report(a.html, a.screenshot, a.window)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the report verbs to the ``sciclr`` parser."""
    p = sub.add_parser(
        "report",
        help="self-contained HTML report",
        description="Render the HTML report from exactly the files named in --inputs "
        "(nothing else is read).",
    )
    p.add_argument("--out", required=True, help="report.html")
    p.add_argument(
        "--params",
        required=True,
        metavar="JSON|FILE",
        help='{"datasets": {NAME: SECTION}} as JSON text or a file (@file.json): each data '
        "set's domain and analysis settings; missing keys take the schema's defaults",
    )
    p.add_argument(
        "--inputs",
        required=True,
        metavar="JSON|FILE",
        help="{NAME: {KIND: PATH}} as JSON text or a file (@file.json), data sets in report "
        "order; kinds: probe_metrics, recovery, cluster_metrics, verdict, figures (folder "
        "with figures.json), preprocess_summary; optional train_summary, training_metrics, "
        "label_efficiency, sweep_table, sweep_figure, finetune, finetune_comparisons",
    )
    p.add_argument("--title", default="sciclr report", help="page title")
    p.set_defaults(func=_report)

    p = sub.add_parser("check-report", help="open a report in headless Chromium (offline)")
    p.add_argument("--html", required=True, help="report.html")
    p.add_argument("--screenshot", default=None, help="PNG of the top of the page")
    p.add_argument(
        "--window",
        type=_window,
        default=(1300, 2400),
        metavar="WxH",
        help="browser window in CSS pixels: the width the layout is checked at and the "
        "screenshot's size (default 1300x2400)",
    )
    p.set_defaults(func=_check)
