"""How much of a training step is the data path (collating the batch + drawing the views).

For a window of steps the engine times each step, each ``source.batch`` call
(:meth:`DataPathProfiler.batch`) and the models' view drawing (which models wrap in
:func:`sciclr.views.drawing_views`) with ``perf_counter``. The ranges keep their
``torch.profiler`` labels (:data:`STEP_LABEL`, :data:`BATCH_LABEL`,
:data:`sciclr.views.PROFILE_LABEL`), so a trace taken around training shows them. On CUDA the
batch range ends with a host sync and a step with the loss's transfer, so their host times are
wall times; asynchronous view kernels that overlap compute do not stall the host and are not
counted.

Why not ``torch.profiler`` itself (what this did before): its window cost memory for the rest of
the run and speed for the window. On 16x the bundled crystals (one epoch, ``sciclr train``, 2
cores) the steps after a profiled window of 10 peaked about 250 MB higher (HWM 1,611 MB against
1,353 MB with ``train.profile_steps: 0``; 1,243 / 1,308 MB at 1x, whose 10 steps end inside the
window), and training ran at 306-335 samples/s against 383. The events' aggregation also held
465 k Python objects until a collection.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sciclr.views import VIEW_CLOCK, RangeClock, timed_range

__all__ = ["BATCH_LABEL", "STEP_LABEL", "DataPathProfiler"]

STEP_LABEL = "sciclr.step"
BATCH_LABEL = "sciclr.batch"


class DataPathProfiler:
    """Times steps ``first .. first + n_steps - 1`` (1-based step numbers): the whole step,
    its batch collation and its view drawing."""

    def __init__(self, first: int, n_steps: int) -> None:
        self.first, self.last = first, first + n_steps - 1
        self.enabled = n_steps > 0
        self._result: dict[str, Any] | None = None
        self._step_clock, self._batch_clock = RangeClock(), RangeClock()

    @property
    def _active(self) -> bool:
        return self._step_clock.running

    def step(self, step: int) -> AbstractContextManager[None]:
        """Context for the whole of ``step``; starts the clocks at the window's first step."""
        in_window = self.enabled and self._result is None and self.first <= step <= self.last
        if in_window and not self._active:
            for clock in (self._step_clock, self._batch_clock, VIEW_CLOCK):
                clock.start()
        return timed_range(STEP_LABEL, self._step_clock)

    def batch(self) -> AbstractContextManager[None]:
        """Context for a step's ``source.batch`` call (timed inside the window)."""
        return timed_range(BATCH_LABEL, self._batch_clock)

    def after_step(self, step: int) -> None:
        if self._active and step >= self.last:
            self.finish()

    def finish(self) -> None:
        """Stop (if running) and sum up; safe to call more than once."""
        if not self._active:
            return
        for clock in (self._step_clock, self._batch_clock, VIEW_CLOCK):
            clock.stop()
        views_s = VIEW_CLOCK.seconds if VIEW_CLOCK.calls else None
        step_s, batch_s = self._step_clock.seconds, self._batch_clock.seconds
        data_s = batch_s + (views_s or 0.0)
        self._result = {
            "method": "perf_counter of the labelled ranges (host time)",
            "steps": self._step_clock.calls,
            "step_s": step_s,
            "batch_s": batch_s,
            "views_s": views_s,
            "views_labelled": VIEW_CLOCK.calls > 0,
            "fraction": data_s / step_s if step_s > 0 else None,
        }

    @property
    def result(self) -> dict[str, Any] | None:
        return self._result
