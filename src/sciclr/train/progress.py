"""What a running training shows: a live progress bar on a terminal, one-line log records
otherwise (Snakemake ``log:`` files, SLURM output), and the per-step metrics table.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import torch

__all__ = ["MetricsLog", "Progress", "TensorBoardLogger"]


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress of ``total`` steps: a redrawn bar when ``stream`` is a terminal, otherwise a
    log line every ``log_every`` steps (and on the first and last step)."""

    def __init__(
        self,
        total: int,
        steps_per_epoch: int,
        start: int = 0,
        log_every: int = 10,
        stream: TextIO | None = None,
        enabled: bool = True,
    ) -> None:
        self.total, self.steps_per_epoch, self.start = total, steps_per_epoch, start
        self.log_every = log_every
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._t0 = time.perf_counter()
        self._last_draw = 0.0
        self.steady_from = start + 2
        self._t_steady: float | None = None
        self._steady_step = self.steady_from

    def begin(self, start: int, steady_from: int | None = None) -> None:
        """Start at step ``start`` (non-zero when resuming). The ETA is estimated from the
        steps after ``steady_from`` only (default: 2 steps in): the first steps warm up the
        allocator and are profiled, and are several times slower than the rest."""
        self.start, self._t0 = start, time.perf_counter()
        self.steady_from = start + 2 if steady_from is None else max(start, steady_from)
        self._t_steady: float | None = None
        self._steady_step = self.steady_from

    def _tick(self, step: int) -> None:
        """Called for every finished step: starts the ETA clock at ``steady_from``."""
        if self._t_steady is None and step >= self.steady_from:
            self._t_steady, self._steady_step = time.perf_counter(), step

    def _eta(self, step: int) -> float:
        if self._t_steady is None or step <= self._steady_step:
            return float("nan")
        rate = (time.perf_counter() - self._t_steady) / (step - self._steady_step)
        return rate * (self.total - step)

    def _line(self, step: int, m: Mapping[str, float]) -> str:
        eta = self._eta(step)
        epoch = (step - 1) // self.steps_per_epoch + 1
        n_epochs = math.ceil(self.total / self.steps_per_epoch)
        return (
            f"step {step}/{self.total} (epoch {epoch}/{n_epochs}) loss {m['loss']:.4f} "
            f"lr {m['lr']:.2e} tau {m['temperature']:.4f} {m['samples_per_s']:.0f} samples/s "
            f"data {100 * m['data_time_frac']:.1f}% eta "
            + (_fmt_duration(eta) if math.isfinite(eta) else "after warm-up")
        )

    def update(self, step: int, metrics: Mapping[str, float]) -> None:
        """Report that ``step`` steps are done, with that step's metrics."""
        if not self.enabled:
            return
        self._tick(step)
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw < 0.1 and step < self.total:
                return
            self._last_draw = now
            width = 24
            filled = int(width * step / max(self.total, 1))
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {self._line(step, metrics)}\x1b[K")
            self.stream.flush()
        elif step == self.start + 1 or step % self.log_every == 0 or step == self.total:
            print(f"[sciclr train] {self._line(step, metrics)}", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A log line that does not garble the bar."""
        if not self.enabled:
            return
        prefix = "\n" if self.tty else ""
        print(f"{prefix}[sciclr train] {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


class MetricsLog:
    """Per-step metrics rows with a fixed column order (set by the first row).

    Kept in memory and stored inside the resume checkpoint as one float64 tensor, so that a
    resumed run's ``metrics.csv`` continues the interrupted one instead of restarting it.
    """

    def __init__(self, columns: Sequence[str] = (), rows: Sequence[Sequence[float]] = ()) -> None:
        self.columns = list(columns)
        self.rows = [list(map(float, r)) for r in rows]

    def append(self, row: Mapping[str, Any]) -> None:
        if not self.columns:
            self.columns = list(row)
        self.rows.append([float(row[c]) for c in self.columns])

    def truncate(self, n_steps: int) -> None:
        """Drop rows beyond step ``n_steps`` (the step column is 1-based)."""
        if self.columns:
            i = self.columns.index("step")
            self.rows = [r for r in self.rows if r[i] <= n_steps]

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=self.columns)
        for col in ("step", "epoch", "k"):
            if col in df and len(df):
                df[col] = df[col].round().astype("int64")
        return df

    def state(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "rows": torch.tensor(self.rows, dtype=torch.float64).reshape(len(self.rows), -1),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MetricsLog:
        return cls(state["columns"], state["rows"].tolist())


class TensorBoardLogger:
    """Scalars to ``log_dir`` when the optional ``tensorboard`` package is installed."""

    def __init__(self, log_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # raises ImportError without it

        self.writer = SummaryWriter(log_dir=str(log_dir))

    @classmethod
    def create(cls, log_dir: str | Path, progress: Progress) -> TensorBoardLogger | None:
        try:
            return cls(log_dir)
        except ImportError:
            progress.message(
                "tensorboard requested but not installed (pip install 'sciclr[tensorboard]'); "
                "metrics.csv has the same numbers"
            )
            return None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if key not in ("step", "epoch"):
                self.writer.add_scalar(f"train/{key}", value, step)

    def log_eval(self, epoch: int, name: str, value: float) -> None:
        self.writer.add_scalar(f"val/{name}", value, epoch)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
