"""The data-path profiler: its share of step time, and nothing kept after its window."""

from __future__ import annotations

import gc

import torch
from torch.autograd.profiler_util import FunctionEvent

from sciclr.train.profiling import BATCH_LABEL, DataPathProfiler


def _window(n_steps: int) -> dict:
    prof = DataPathProfiler(first=1, n_steps=n_steps, device=torch.device("cpu"))
    x = torch.randn(64, 64)
    for step in range(1, n_steps + 2):  # one step after the window
        with prof.step(step):
            with torch.profiler.record_function(BATCH_LABEL):
                y = x @ x
            (y @ x).sum()
        prof.after_step(step)
    return prof.result


def _live_events() -> int:
    return sum(isinstance(o, FunctionEvent) for o in gc.get_objects())


def test_window_measures_the_batch_share():
    result = _window(2)
    assert result is not None and result["steps"] == 2
    assert 0 < result["batch_s"] <= result["step_s"] and 0 < result["fraction"] <= 1


def test_events_do_not_outlive_the_window():
    gc.disable()  # the collection must come from finish(), not from an allocation threshold
    try:
        _window(2)
        short = _live_events()
        _window(30)
        assert _live_events() <= short  # torch keeps the last few; not one per profiled op
    finally:
        gc.enable()
