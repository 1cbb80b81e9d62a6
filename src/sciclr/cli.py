"""The ``sciclr`` command line: one verb per pipeline step, each callable by hand or by a rule.

Every verb takes ``--params JSON`` (the data set's validated config section, as the Snakemake rule
passes it) so a step can be rerun outside Snakemake with exactly the same settings.
Errors the user can fix print one line (``sciclr: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sciclr.errors import SciclrError

log = logging.getLogger("sciclr")


def params_arg(text: str) -> dict[str, Any]:
    """``--params`` is JSON text, or ``@file.json``."""
    try:
        if text.startswith("@"):
            return json.loads(Path(text[1:]).read_text(encoding="utf-8"))
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"--params: not valid JSON ({exc})") from None


def _add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params", type=params_arg, required=True, help="data set config (JSON or @file)"
    )


def cmd_preprocess(args: argparse.Namespace) -> None:
    from sciclr.pipeline import preprocess_shard

    preprocess_shard(args.params, args.shard, args.n_shards, Path(args.out))


def cmd_gather(args: argparse.Namespace) -> None:
    from sciclr.pipeline import gather

    gather(args.params, [Path(p) for p in args.shards], Path(args.out))


def cmd_features(args: argparse.Namespace) -> None:
    from sciclr.pipeline import baseline_features

    baseline_features(args.params, Path(args.data), Path(args.out), args.names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciclr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("preprocess", help="read one shard of a data set's raw inputs")
    _add_params(p)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--n-shards", type=int, default=1)
    p.add_argument("--out", required=True, help="shard output folder")
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("gather", help="merge preprocessed shards, assign splits")
    _add_params(p)
    p.add_argument("--out", required=True, help="processed data folder")
    p.add_argument("shards", nargs="+", help="shard folders, in shard order")
    p.set_defaults(func=cmd_gather)

    p = sub.add_parser("features", help="handcrafted baseline features (k-mers, element fractions)")
    _add_params(p)
    p.add_argument("--data", required=True, help="processed data folder")
    p.add_argument("--out", required=True, help="output folder for <name>.npz")
    p.add_argument("--names", nargs="*", default=None, help="expected feature-set names")
    p.set_defaults(func=cmd_features)

    from sciclr.analysis.cli import register as register_analysis
    from sciclr.train.cli import register as register_train

    register_train(sub)
    register_analysis(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except SciclrError as exc:
        print(f"sciclr: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
