"""``sciclr train`` and ``sciclr embed``: thin argument parsing around :mod:`sciclr.train.run`."""

from __future__ import annotations

import argparse

from sciclr.cli.common import add_params
from sciclr.config import load_params

__all__ = ["register"]


def _train(args: argparse.Namespace) -> None:
    from sciclr.train.run import run_training

    run_training(
        load_params(args.params),
        args.data,
        args.out,
        resume=args.resume,
        tensorboard_dir=args.tensorboard_dir,
    )


def _embed(args: argparse.Namespace) -> None:
    from sciclr.train.run import run_embedding

    run_embedding(load_params(args.params), args.data, args.checkpoint, args.out)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``embed`` verbs to the ``sciclr`` parser."""
    p = sub.add_parser(
        "train",
        help="train the contrastive model of one data set (resumes from its resume state)",
        description="Train on the train split; writes checkpoint.pt, metrics.csv, "
        "train_summary.json and similarities.npz into --out. Exits with status 75 after saving "
        "the resume state when stopped by SIGTERM/SIGUSR1; rerunning resumes.",
    )
    add_params(p)
    p.add_argument("--data", required=True, help="processed data folder (data.pt, records.tsv)")
    p.add_argument("--out", required=True, help="run folder for the outputs")
    p.add_argument(
        "--resume",
        default=None,
        help="resume state file, written each epoch and on a stop signal (default OUT/last.pt)",
    )
    p.add_argument(
        "--tensorboard-dir",
        default=None,
        help="TensorBoard event files when train.tensorboard is true (default OUT/tensorboard)",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "embed",
        help="embed every item with a trained (or, without --checkpoint, untrained) encoder",
    )
    add_params(p)
    p.add_argument("--data", required=True, help="processed data folder (data.pt, records.tsv)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint.pt of `sciclr train`; omit for the untrained encoder (seeded by "
        "train.seed)",
    )
    p.add_argument("--out", required=True, help="output .npz (arrays ids, X)")
    p.set_defaults(func=_embed)
