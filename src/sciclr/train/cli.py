"""``sciclr train`` and ``sciclr embed``: thin argument parsing around :mod:`sciclr.train.run`.

``--params`` is the data set's config section as JSON, inline or as a file path (what the
Snakemake rule passes from its ``params:``).
"""

from __future__ import annotations

import argparse
import sys

from sciclr.config import load_params
from sciclr.errors import SciclrError

__all__ = ["main", "register"]


def _cmd_train(args: argparse.Namespace) -> int:
    from sciclr.train.run import run_training
    from sciclr.train.signals import EXIT_RESUMABLE, TrainingInterrupted

    try:
        run_training(load_params(args.params), args.data, args.out)
    except TrainingInterrupted as exc:
        print(f"sciclr train: {exc}; rerun to resume", file=sys.stderr)
        raise SystemExit(EXIT_RESUMABLE) from None
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from sciclr.train.run import run_embedding

    run_embedding(load_params(args.params), args.data, args.checkpoint, args.out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``embed`` verbs; each sets ``func(args)``."""
    p = subparsers.add_parser(
        "train",
        help="train the contrastive model of one data set (resumes from OUT/last.pt)",
        description="Train on the train split; writes checkpoint.pt, last.pt, metrics.csv and "
        "train_summary.json into --out. Exits with status 75 after saving when stopped by "
        "SIGTERM/SIGUSR1; rerunning resumes.",
    )
    p.add_argument("--params", required=True, help="data set config section (JSON or JSON file)")
    p.add_argument("--data", required=True, help="folder with data.pt and records.tsv")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser(
        "embed",
        help="embed every item with a trained (or, without --checkpoint, untrained) encoder",
    )
    p.add_argument("--params", required=True, help="data set config section (JSON or JSON file)")
    p.add_argument("--data", required=True, help="folder with data.pt and records.tsv")
    p.add_argument(
        "--checkpoint", default=None, help="checkpoint.pt; omit for the untrained encoder"
    )
    p.add_argument("--out", required=True, help="output .npz (arrays ids, X)")
    p.set_defaults(func=_cmd_embed)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m sciclr.train.cli``) for use before/without ``sciclr``."""
    parser = argparse.ArgumentParser(prog="sciclr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SciclrError as exc:
        print(f"sciclr: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
