"""The ``sciclr`` command line: one verb per pipeline step, each callable by hand or by a rule.

Every data verb takes ``--params`` (the data set's config section, as the Snakemake rule passes
it), so a step can be rerun outside Snakemake with exactly the same settings. Exit codes and the
error format: :mod:`sciclr.cli.common`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from sciclr import __version__
from sciclr.cli import analysis, data, report, train
from sciclr.cli.common import run_verb, setup_logging

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sciclr",
        description="Multi-view InfoNCE contrastive learning for DNA sequences and crystal "
        "structures, evaluated against honest baselines.",
    )
    parser.add_argument("--version", action="version", version=f"sciclr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (data, train, analysis, report):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if not sys.stdout.isatty():  # a rule's log: its first line is the command, to rerun by hand
        print(f"[sciclr] command: {shlex.join(['sciclr', *argv])}", flush=True)
    return run_verb(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
