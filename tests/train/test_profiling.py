"""The data-path profiler: its share of step time, timed with perf_counter in its window only."""

from __future__ import annotations

import time

import torch

from sciclr.train.profiling import DataPathProfiler
from sciclr.views import VIEW_CLOCK, drawing_views


def _window(n_steps: int, views: bool, sleep_batch: float = 0.0, sleep_views: float = 0.0):
    """Steps 1 .. n_steps + 2 with the window at 2 .. n_steps + 1; the steps outside it sleep
    0.3 s in each range, so counting one of them would show."""
    prof = DataPathProfiler(first=2, n_steps=n_steps)
    x = torch.randn(64, 64)
    for step in range(1, n_steps + 3):  # one step before the window and one after
        outside = step == 1 or step == n_steps + 2
        with prof.step(step):
            with prof.batch():
                time.sleep(0.3 if outside else sleep_batch)
                y = x @ x
            if views:
                with drawing_views():
                    time.sleep(0.3 if outside else sleep_views)
            (y @ x).sum()
        prof.after_step(step)
    prof.finish()  # as the engine does at the end: nothing changes after the window
    return prof.result


def test_window_measures_the_batch_and_view_shares():
    result = _window(3, views=True, sleep_batch=0.02, sleep_views=0.01)
    assert result["steps"] == 3 and result["views_labelled"]
    # three steps in the window: 60 ms of batches and 30 ms of views, not the first or last
    assert 0.06 <= result["batch_s"] < 0.3 and 0.03 <= result["views_s"] < 0.3
    assert result["batch_s"] + result["views_s"] <= result["step_s"] < 0.6
    assert 0.5 <= result["fraction"] <= 1.0  # the step is little more than the two sleeps
    assert not VIEW_CLOCK.running


def test_unlabelled_views_and_an_empty_window():
    result = _window(2, views=False, sleep_batch=0.01)
    assert result["views_s"] is None and not result["views_labelled"]
    assert 0 < result["batch_s"] <= result["step_s"] and 0 < result["fraction"] <= 1
    off = DataPathProfiler(first=1, n_steps=0)
    with off.step(1), off.batch():
        pass
    off.after_step(1)
    off.finish()
    assert off.result is None and not off.enabled


def test_view_drawing_outside_a_window_is_not_timed():
    VIEW_CLOCK.seconds, VIEW_CLOCK.calls = 0.0, 0
    with drawing_views():
        time.sleep(0.005)
    assert VIEW_CLOCK.calls == 0 and VIEW_CLOCK.seconds == 0.0
