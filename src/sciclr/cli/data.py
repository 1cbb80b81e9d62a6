"""``sciclr parse``, ``preprocess``, ``gather`` and ``features``: raw files to processed data."""

from __future__ import annotations

import argparse
from pathlib import Path

from sciclr.cli.common import add_params
from sciclr.config import load_params

__all__ = ["register"]


def _parse(args: argparse.Namespace) -> None:
    from sciclr.pipeline import parse_shard

    parse_shard(load_params(args.params), args.shard, args.n_shards, Path(args.out))


def _preprocess(args: argparse.Namespace) -> None:
    from sciclr.pipeline import preprocess_shard

    parsed = Path(args.parsed) if args.parsed else None
    preprocess_shard(load_params(args.params), args.shard, args.n_shards, Path(args.out), parsed)


def _gather(args: argparse.Namespace) -> None:
    from sciclr.pipeline import gather

    gather(load_params(args.params), [Path(p) for p in args.shards], Path(args.out))


def _features(args: argparse.Namespace) -> None:
    from sciclr.pipeline import baseline_features

    baseline_features(load_params(args.params), Path(args.data), Path(args.out), args.names)


def _shard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", type=int, default=0, help="this shard's index, 0-based (default 0)")
    p.add_argument(
        "--n-shards", type=int, default=1, help="number of shards the inputs are split into"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data verbs to the ``sciclr`` parser."""
    p = sub.add_parser(
        "parse",
        help="parse one shard of a data set's structures into arrays (materials)",
        description="Parse the records i %% N == SHARD of the inputs (CIF/POSCAR with pymatgen); "
        "`sciclr preprocess --parsed` builds the graphs from the result.",
    )
    add_params(p)
    _shard_args(p)
    p.add_argument("--out", required=True, help="output file (parsed.pt)")
    p.set_defaults(func=_parse)

    p = sub.add_parser("preprocess", help="read and process one shard of a data set's inputs")
    add_params(p)
    _shard_args(p)
    p.add_argument(
        "--parsed",
        default=None,
        help="the shard's parsed structures from `sciclr parse` (materials; default: parse here)",
    )
    p.add_argument(
        "--out", required=True, help="shard output folder (data.pt, records.parquet, rejects.tsv)"
    )
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("gather", help="merge preprocessed shards, assign splits")
    add_params(p)
    p.add_argument(
        "--out", required=True, help="processed data folder (data.pt, records.tsv, summary.json)"
    )
    p.add_argument("shards", nargs="+", help="shard folders, in shard order")
    p.set_defaults(func=_gather)

    p = sub.add_parser("features", help="handcrafted baseline features (k-mers, element fractions)")
    add_params(p)
    p.add_argument("--data", required=True, help="processed data folder (data.pt, records.tsv)")
    p.add_argument("--out", required=True, help="output folder for <name>.npz")
    p.add_argument(
        "--names",
        nargs="*",
        default=None,
        help="feature sets to compute (default: every baseline of the data set's domain)",
    )
    p.set_defaults(func=_features)
