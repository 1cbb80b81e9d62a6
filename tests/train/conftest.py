from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for subprocesses (torchrun workers, CLI runs) that can import the synthetic
    domain; single-threaded so that runs compare bit for bit."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return dict(os.environ)


@pytest.fixture(autouse=True)
def one_thread():
    """In-process training on one thread: fast on a busy 2-core machine and bitwise comparable
    with the single-threaded subprocess runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
