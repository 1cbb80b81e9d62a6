"""What preprocessing produces for one data set or one shard of it, in every domain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["Processed"]


@dataclass
class Processed:
    """The output of preprocessing (one data set, or one shard of it).

    payload: tensors/lists/numbers only (saved with ``torch.save``, loaded with
        ``weights_only=True``); domain-specific layout, row-aligned with ``records``.
    records: one row per kept item: ``id``, label columns, the split column when configured,
        and ``order`` (the item's index in the full input, so shards can be merged back into
        exactly the unsharded order).
    rejects: ``id``, ``source``, ``reason`` for every dropped record.
    counts: ``{"in": ..., "out": ..., "rejected": ...}`` plus any domain-specific counters.
    """

    payload: dict[str, Any]
    records: pd.DataFrame
    rejects: pd.DataFrame
    counts: dict[str, int]
