"""``sciclr train``, ``sciclr embed`` and ``sciclr finetune``: thin argument parsing around
:mod:`sciclr.train.run` and :mod:`sciclr.train.finetune`."""

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
        init=args.init,
    )


def _embed(args: argparse.Namespace) -> None:
    from sciclr.errors import SciclrError
    from sciclr.train.run import embed_files, run_embedding

    if args.input:
        if not args.checkpoint or args.params or args.data:
            raise SciclrError("embed --input: give --checkpoint (and no --params/--data)")
        embed_files(args.checkpoint, args.input, args.out, args.rejects)
        return
    if not (args.params and args.data):
        raise SciclrError("embed: give --params and --data (a processed data set), or --input")
    run_embedding(load_params(args.params), args.data, args.checkpoint, args.out)


def _finetune(args: argparse.Namespace) -> None:
    from sciclr.train.finetune import run_finetune

    run_finetune(
        load_params(args.params),
        args.data,
        args.task,
        args.fraction,
        args.out,
        checkpoint=args.checkpoint,
    )


def _register_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="train an encoder + task head end to end on one task (from a checkpoint or "
        "from scratch), early-stopped on val",
        description="Fine-tune the SSL encoder (--checkpoint) or the same architecture from "
        "random initialisation (no --checkpoint) with a linear head on one task, using "
        "--fraction of its train labels; keeps the best val epoch and writes predictions.tsv "
        "(test split: id, y_true, y_pred, score), metrics.csv (one row per epoch) and "
        "summary.json into --out. Settings: the finetune: section of --params. Not resumable: "
        "a stopped run starts over.",
    )
    add_params(p)
    p.add_argument("--data", required=True, help="processed data folder (data.pt, records.tsv)")
    p.add_argument(
        "--task", required=True, help="name of a configured task (derived tasks are not tuned)"
    )
    p.add_argument(
        "--fraction",
        type=float,
        required=True,
        help="fraction of the task's train labels in (0, 1] (a seeded, class-stratified subset)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint.pt of `sciclr train` to start from (init ssl); omit to train from "
        "scratch (seeded by train.seed)",
    )
    p.add_argument("--out", required=True, help="run folder for the outputs")
    p.set_defaults(func=_finetune)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``embed`` and ``finetune`` verbs to the ``sciclr`` parser."""
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
        "--init",
        default=None,
        help="checkpoint.pt whose weights training starts from (a pretrained encoder)",
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
        description="Either a processed data set (--params, --data) or new files (--input with "
        "--checkpoint: read with the checkpoint's own preprocessing settings; no labels or "
        "splits needed, one record is fine; dropped records go to --rejects).",
    )
    add_params(p, required=False)
    p.add_argument("--data", default=None, help="processed data folder (data.pt, records.tsv)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint.pt of `sciclr train`; omit for the untrained encoder (seeded by "
        "train.seed)",
    )
    p.add_argument(
        "--input",
        nargs="+",
        default=None,
        help="new FASTA/GenBank files (dna) or CIF/POSCAR files, folders or a CSV of CIFs "
        "(materials) to embed with --checkpoint",
    )
    p.add_argument(
        "--rejects",
        default=None,
        help="with --input: TSV of dropped records (default: OUT without .npz + .rejects.tsv)",
    )
    p.add_argument("--out", required=True, help="output .npz (arrays ids, X)")
    p.set_defaults(func=_embed)

    _register_finetune(sub)
