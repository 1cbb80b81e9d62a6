"""What every verb shares: the ``--params`` option, the error wrapper and the exit codes.

Exit codes (the same for every verb and for the torchrun workers of ``sciclr train``):

* ``0`` — done;
* ``2`` — a problem the user can fix (:class:`~sciclr.errors.SciclrError`: bad input, bad
  config, a missing file): one line ``sciclr: error: ...`` on stderr, no traceback; argparse's
  own usage errors exit with 2 too;
* ``75`` (EX_TEMPFAIL) — training stopped by SIGTERM/SIGUSR1 after saving its resume state:
  run the same command again to resume (Snakemake ``--retries`` and SLURM requeues do);
* anything else — a bug: Python's traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from sciclr.errors import SciclrError
from sciclr.train.signals import EXIT_RESUMABLE, TrainingInterrupted

__all__ = ["EXIT_OK", "EXIT_RESUMABLE", "EXIT_USER_ERROR", "add_params", "run_verb"]

EXIT_OK = 0
EXIT_USER_ERROR = 2


def add_params(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The data set's config section: what the Snakemake rule passes from its ``params:``."""
    p.add_argument(
        "--params",
        required=required,
        metavar="JSON|FILE",
        help="the data set's config section as JSON text, or a JSON file (@file.json or "
        "file.json); missing keys take the schema's defaults",
    )


def run_verb(func: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> int:
    """Run a verb; translate the two expected failures into their exit codes."""
    try:
        func(args)
    except SciclrError as exc:
        print(f"sciclr: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TrainingInterrupted as exc:
        print(f"sciclr train: {exc}; run the same command again to resume", file=sys.stderr)
        return EXIT_RESUMABLE
    return EXIT_OK


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
