"""Counter-based seeding: every random stream is a pure function of (seed, purpose, counters).

Because the batch order of epoch ``e`` and the view/dropout streams of step ``s`` on rank ``r``
are derived from ``(seed, e)`` and ``(seed, s, r)`` rather than from a generator that advances
through training, a run resumed at step ``s`` draws exactly what the uninterrupted run drew there.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch

__all__ = [
    "capture_rng_state",
    "derive_seed",
    "epoch_order",
    "restore_rng_state",
    "step_generator",
]


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 63-bit seed from ``seed`` and counters/labels, stable across processes and platforms."""
    words = [int(seed)] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    state = np.random.SeedSequence([w & 0xFFFFFFFFFFFFFFFF for w in words]).generate_state(
        2, dtype=np.uint32
    )
    return int(state[0]) << 31 ^ int(state[1])


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The view generator of ``step`` on ``rank``, living on ``device`` (no host round trip)."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, "views", step, rank))
    return g


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order (int64, shape ``(n,)``) of the train items in ``epoch``; identical on
    every rank, so sharding it is a DistributedSampler without its state."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, "order", epoch))
    return torch.randperm(n, generator=g)


def capture_rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """Global RNG states as tensors (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we save
    py_state = random.getstate()
    out: dict[str, torch.Tensor | list[torch.Tensor]] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": torch.tensor([np_state[2], np_state[3]], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_state[4]], dtype=torch.float64),
        "python": torch.tensor(py_state[1], dtype=torch.int64),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: dict[str, torch.Tensor | list[torch.Tensor]]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    pos = state["numpy_pos"].tolist()
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            pos[0],
            pos[1],
            float(state["numpy_gauss"][0]),
        )
    )
    random.setstate((3, tuple(int(x) for x in state["python"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
