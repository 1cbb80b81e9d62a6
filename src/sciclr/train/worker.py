"""Entry point of one torchrun worker: ``python -m sciclr.train.worker --params JSON --data DIR
--out DIR`` (started by :mod:`sciclr.train.launch`, not by users)."""

from __future__ import annotations

import argparse
import sys

from sciclr.config import load_params
from sciclr.errors import SciclrError
from sciclr.train.run import run_training
from sciclr.train.signals import EXIT_RESUMABLE, TrainingInterrupted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sciclr-train-worker")
    parser.add_argument("--params", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        run_training(load_params(args.params), args.data, args.out)
    except TrainingInterrupted as exc:
        print(f"sciclr train: {exc}", file=sys.stderr)
        return EXIT_RESUMABLE
    except SciclrError as exc:
        print(f"sciclr train: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
