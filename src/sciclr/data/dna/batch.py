"""Random access to a preprocessed DNA payload: collating a batch is gathering ragged rows.

The flat arrays are read where they are (memory-mapped by :func:`sciclr.train.run.load_data`):
a batch gathers its rows, so memory holds the offsets and one batch, not the data set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from sciclr.data.dna.codes import PAD, TOKEN_PAD
from sciclr.memory import release_mapped_pages

__all__ = ["DnaDataSource"]


class DnaDataSource:
    """Random access to a DNA payload: ``batch(idx)`` gathers rows from the ragged arrays.

    A batch is ``{"codes": (N, L) uint8, "lengths": (N,), "tokens": (N, T) int16,
    "n_tokens": (N,)}`` padded with ``PAD``/``TOKEN_PAD`` to the longest row; records longer
    than ``max_length`` bases are cut to their centred window of that length.
    """

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.codes = torch.as_tensor(payload["codes"], dtype=torch.uint8)
        self.offsets = torch.as_tensor(payload["offsets"], dtype=torch.int64)
        self.max_length = int(payload["max_length"])
        self.tokens = payload.get("tokens")
        if self.tokens is not None:
            self.tokens = torch.as_tensor(self.tokens)
            self.token_offsets = torch.as_tensor(payload["token_offsets"], dtype=torch.int64)
            self.token_k = int(payload["token_k"])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def release_pages(self) -> int:
        """Drop the read pages of the mapped sequence arrays from the resident set
        (:func:`sciclr.memory.release_mapped_pages`); returns the bytes advised."""
        return release_mapped_pages([self.codes, self.tokens])

    def item_sizes(self) -> np.ndarray:
        """Bases per record as batched (capped at ``max_length``): embedding sorts by it."""
        return (self.offsets[1:] - self.offsets[:-1]).clamp(max=self.max_length).numpy()

    @staticmethod
    def _gather(flat, offsets, idx, cap, pad):
        start = offsets[idx]
        length = offsets[idx + 1] - start
        start = start + ((length - cap).clamp(min=0) // 2)
        length = length.clamp(max=cap)
        width = max(int(length.max()), 1) if len(idx) else 1
        j = torch.arange(width)
        pos = (start[:, None] + j[None, :]).clamp(max=max(len(flat) - 1, 0))
        out = flat[pos] if len(flat) else torch.full((len(idx), width), pad, dtype=flat.dtype)
        return out.masked_fill(j[None, :] >= length[:, None], pad), length

    def batch(
        self, idx: torch.Tensor, device: torch.device | str = "cpu"
    ) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.int64).cpu()
        codes, lengths = self._gather(self.codes, self.offsets, idx, self.max_length, PAD)
        out = {"codes": codes, "lengths": lengths}
        if self.tokens is not None:
            cap = max(self.max_length // self.token_k, 1)
            out["tokens"], out["n_tokens"] = self._gather(
                self.tokens, self.token_offsets, idx, cap, TOKEN_PAD
            )
        return {k: v.to(device, non_blocking=True) for k, v in out.items()}

    @staticmethod
    def split_rows(
        batch: Mapping[str, torch.Tensor], max_cells: int
    ) -> list[dict[str, torch.Tensor]]:
        """``batch`` cut into consecutive row blocks of at most ``max_cells`` padded positions
        (rows x width, at least one row), each keeping the batch's width.

        What the embedding forwards one at a time: the stem's activations are
        ``rows x width x stem_channels`` floats (x 2 strands), so a block bounds them whatever
        the records' lengths. The encoders compute each row on its own at a given width, so
        the blocks' embeddings are bit-identical to the whole batch's (tested); only the width
        would change the last bits, and the blocks keep it."""
        n, width = batch["codes"].shape
        rows = max(1, int(max_cells) // max(width, 1))
        if rows >= n:
            return [dict(batch)]
        return [{k: v[i : i + rows] for k, v in batch.items()} for i in range(0, n, rows)]
