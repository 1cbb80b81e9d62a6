"""Index arithmetic of ragged arrays (one flat array of values + one length per row).

Every ragged layout in sciclr (DNA bases per record, atoms and edges per crystal, CSR entries
per feature row, reflections and atom pairs in the XRD kernel) selects rows the same way: the
flat positions of rows with given starts and lengths, built without a Python loop. One
implementation here, in numpy (the torch twin for batches on a device is
:func:`sciclr.data.crystal_batch.segment_arange`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ragged_positions", "segment_arange"]


def segment_arange(counts: np.ndarray) -> np.ndarray:
    """``concat([arange(c) for c in counts])``, int64: each value's place within its row."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def ragged_positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concat([arange(s, s + c) for s, c in zip(starts, counts)])``, int64: the flat
    positions of rows that start at ``starts`` and hold ``counts`` values, in row order."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64), counts) + segment_arange(counts)
