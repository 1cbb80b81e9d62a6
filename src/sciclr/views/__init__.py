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
from contextlib import AbstractContextManager, contextmanager

from torch.profiler import record_function

PROFILE_LABEL = "sciclr.views"

__all__ = ["PROFILE_LABEL", "VIEW_CLOCK", "RangeClock", "drawing_views", "timed_range"]


class RangeClock:
    """Host seconds and calls of a labelled range while :attr:`running` (:func:`timed_range`)."""

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
def timed_range(label: str, clock: RangeClock) -> Iterator[None]:
    """``torch.profiler.record_function(label)``, its host seconds added to ``clock`` while
    the clock runs (a ``perf_counter`` pair otherwise not taken)."""
    with record_function(label):
        if not clock.running:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            clock.seconds += time.perf_counter() - t0
            clock.calls += 1


def drawing_views() -> AbstractContextManager[None]:
    """The range of a model's view drawing: :data:`PROFILE_LABEL`, timed on
    :data:`VIEW_CLOCK`."""
    return timed_range(PROFILE_LABEL, VIEW_CLOCK)
