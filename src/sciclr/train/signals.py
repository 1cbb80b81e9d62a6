"""Graceful stop on SIGTERM / SIGUSR1: what SLURM sends before preemption or the time limit
(``--signal=USR1@120``) and what Snakemake's executors send to cancel.

The handler only sets a flag; the training loop finishes the current step, saves the resume
checkpoint, and exits with :data:`EXIT_RESUMABLE` so the scheduler (Snakemake ``--retries``,
SLURM ``--requeue``) runs the job again, which then resumes.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

__all__ = ["EXIT_RESUMABLE", "STOP_SIGNALS", "StopRequest", "TrainingInterrupted"]

#: Exit status of a run stopped by a signal after saving its state (EX_TEMPFAIL: retry later).
EXIT_RESUMABLE = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(Exception):
    """Raised after the state was saved because a stop signal arrived."""

    def __init__(self, signum: int, step: int | None = None) -> None:
        where = f"after step {step}" if step is not None else "(torchrun workers)"
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}; state saved")
        self.signum, self.step = signum, step


class StopRequest:
    """Context manager that records stop signals instead of dying on them.

    Handlers are installed only in the main thread and the previous ones are restored on exit,
    so calling the trainer from a test or a notebook leaves the process as it was.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[signal.Signals, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
