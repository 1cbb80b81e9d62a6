"""Relaunch training under ``torchrun`` when more than one process is wanted.

The parent process (what Snakemake or SLURM started) runs ``python -m torch.distributed.run
--standalone`` (a c10d rendezvous on a free localhost port) in a process group of its own and
waits. A stop signal reaching the parent is sent to that whole group, so every worker gets it
even if torchrun itself does not forward it (older torchrun handles only SIGTERM/SIGINT/SIGHUP/
SIGQUIT; newer ones are told to handle SIGUSR1 too). The workers finish their step, save and
exit; the parent returns only when none of them is left, so a requeued job never races a worker
that is still writing ``last.pt``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from sciclr.errors import SciclrError
from sciclr.train.signals import STOP_SIGNALS, TrainingInterrupted

__all__ = ["run_under_torchrun", "torchrun_command"]

#: seconds the workers get to finish a step and save after torchrun has exited
DRAIN_TIMEOUT_S = 120.0


@cache
def _torchrun_handles_signal_option() -> bool:
    from torch.distributed.run import get_args_parser

    return any("--signals-to-handle" in a.option_strings for a in get_args_parser()._actions)


def torchrun_command(
    nproc: int,
    cfg: Mapping[str, Any],
    data_dir: str | Path,
    out_dir: str | Path,
    resume: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    init: str | Path | None = None,
) -> list[str]:
    """``torchrun`` running ``nproc`` copies of ``sciclr train`` with the same arguments (a
    worker sees torchrun's environment and trains instead of relaunching)."""
    cmd = [sys.executable, "-m", "torch.distributed.run",
           "--standalone", "--nnodes=1", f"--nproc-per-node={nproc}"]  # fmt: skip
    if _torchrun_handles_signal_option():
        cmd.append("--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1")
    cmd += ["-m", "sciclr", "train", "--params", json.dumps(dict(cfg)),
            "--data", str(data_dir), "--out", str(out_dir)]  # fmt: skip
    if resume is not None:
        cmd += ["--resume", str(resume)]
    if tensorboard_dir is not None:
        cmd += ["--tensorboard-dir", str(tensorboard_dir)]
    if init is not None:
        cmd += ["--init", str(init)]
    return cmd


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_under_torchrun(
    nproc: int,
    cfg: Mapping[str, Any],
    data_dir: str | Path,
    out_dir: str | Path,
    resume: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    init: str | Path | None = None,
) -> None:
    """Run ``nproc`` training workers; raise :class:`TrainingInterrupted` when a stop signal
    was passed on, :class:`SciclrError` when a worker failed."""
    env = os.environ.copy()
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(
        torchrun_command(nproc, cfg, data_dir, out_dir, resume, tensorboard_dir, init),
        env=env,
        start_new_session=True,
    )
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, forward) for sig in (*STOP_SIGNALS, signal.SIGINT)}
    try:
        rc = proc.wait()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signal.SIGINT in received:
        raise KeyboardInterrupt
    if received:
        raise TrainingInterrupted(received[0])
    if rc != 0:
        raise SciclrError(
            f"training under torchrun ({nproc} processes) failed with exit status {rc}; "
            "the worker's error is in the log above"
        )
