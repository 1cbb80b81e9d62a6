"""Views: seeded, batched augmentations of each domain, drawn on the batch's device.

A domain model draws its views inside :func:`drawing_views`, which names the range
:data:`PROFILE_LABEL` for ``torch.profiler`` traces and, while the training engine times its
data-path window (:class:`sciclr.train.profiling.DataPathProfiler`), adds the range's host
seconds to :data:`VIEW_CLOCK`: the engine counts that time as data path
(``train_summary.json``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from torch.profiler import record_function

PROFILE_LABEL = "sciclr.views"

__all__ = ["PROFILE_LABEL", "VIEW_CLOCK", "RangeClock", "drawing_views"]


class RangeClock:
    """Host seconds spent in a labelled range while :attr:`running` (one per process)."""

    def __init__(self) -> None:
        self.running = False
        self.seconds = 0.0
        self.calls = 0

    def start(self) -> None:
        self.running, self.seconds, self.calls = True, 0.0, 0

    def stop(self) -> None:
        self.running = False


#: the clock of :func:`drawing_views`
VIEW_CLOCK = RangeClock()


@contextmanager
def drawing_views() -> Iterator[None]:
    """The range of a model's view drawing: ``torch.profiler.record_function(PROFILE_LABEL)``,
    timed on :data:`VIEW_CLOCK` while it runs (a ``perf_counter`` pair otherwise not taken)."""
    with record_function(PROFILE_LABEL):
        if not VIEW_CLOCK.running:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            VIEW_CLOCK.seconds += time.perf_counter() - t0
            VIEW_CLOCK.calls += 1
