"""Relaunch training under ``torchrun`` when more than one process is wanted.

The parent process (what Snakemake or SLURM started) runs ``python -m torch.distributed.run
--standalone`` (a c10d rendezvous on a free localhost port) and waits. Stop signals reaching the
parent are forwarded to torchrun, which passes them to every worker (SIGUSR1 included, via
``TORCHELASTIC_SIGNALS_TO_HANDLE``); the workers finish their step, save, and exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sciclr.errors import SciclrError
from sciclr.train.signals import STOP_SIGNALS, TrainingInterrupted

__all__ = ["run_under_torchrun", "torchrun_command"]

WORKER_MODULE = "sciclr.train.worker"


def torchrun_command(
    nproc: int, cfg: Mapping[str, Any], data_dir: str | Path, out_dir: str | Path
) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", "--nnodes=1", f"--nproc-per-node={nproc}",
        "-m", WORKER_MODULE,
        "--params", json.dumps(dict(cfg)), "--data", str(data_dir), "--out", str(out_dir),
    ]  # fmt: skip


def run_under_torchrun(
    nproc: int, cfg: Mapping[str, Any], data_dir: str | Path, out_dir: str | Path
) -> None:
    """Run ``nproc`` training workers; raise :class:`TrainingInterrupted` when a stop signal
    was forwarded, :class:`SciclrError` when a worker failed."""
    env = os.environ.copy()
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"
    proc = subprocess.Popen(torchrun_command(nproc, cfg, data_dir, out_dir), env=env)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        proc.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        rc = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise TrainingInterrupted(received[0])
    if rc != 0:
        raise SciclrError(
            f"training under torchrun ({nproc} processes) failed with exit status {rc}; "
            "the worker's error is in the log above"
        )
