"""Frozen-encoder embeddings: eval mode (BatchNorm uses running statistics), no gradient, no
augmentation — what probes, clustering and the report see.

Items are embedded in order of size when the source pads its batches (DNA), so a batch holds
similar lengths and pads little; encoders mask padding, so the result does not depend on the
order, only the time does (1.4x less padded work on the bundled 0.5-1.5 kb fragments).

Memory: a padding source's batch is forwarded in row blocks of at most :data:`BLOCK_CELLS`
padded positions (``source.split_rows``), each at the batch's width, so the activations are
bounded by a number of bases rather than a number of records and the embeddings stay
bit-identical to forwarding the whole batch. With the bundled genomics model (256-channel
stem, both strands) a batch of 512 records of 1.5 kb held 768 k positions at once; the blocks
hold at most 131 k (``sciclr embed`` peak RSS, bundled data: see the README's Benchmarks).
Each block's embeddings go straight to their rows of the result, the one array that grows
with the number of items (``n x e`` float32: 2 GB for 10^6 items of the bundled 512-d
genomics model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch

from sciclr.domains.base import ContrastiveModel, DataSource, item_sizes
from sciclr.train.allocator import mmap_threshold

__all__ = ["embed"]

log = logging.getLogger(__name__)
#: seconds between progress lines of a long embedding
PROGRESS_EVERY_S = 30.0
#: most padded positions (rows x width) one forward of a padding source holds; the result does
#: not depend on it (bit-identical blocks), only the peak memory does
BLOCK_CELLS = 1 << 17


@torch.no_grad()
def embed(
    model: ContrastiveModel,
    source: DataSource,
    idx: torch.Tensor | np.ndarray | Sequence[int],
    device: torch.device,
    batch_size: int = 512,
) -> np.ndarray:
    """Embeddings ``(len(idx), e)`` float32 of the items ``idx``, in that order."""
    idx = torch.as_tensor(np.asarray(idx), dtype=torch.int64)
    sizes = item_sizes(source)
    order = None
    if sizes is not None and len(idx):
        order = torch.as_tensor(np.argsort(sizes[idx.numpy()], kind="stable"))
        idx = idx[order]
    # row j of the size order belongs at position dest[j]: written there straight away, so the
    # result is the only n x e array (no list of parts, no concatenated and reordered copies)
    dest = order.numpy() if order is not None else np.arange(len(idx))
    was_training = model.training
    model.eval()
    split = getattr(source, "split_rows", None)
    out: np.ndarray | None = None
    done = 0
    t0 = last = time.perf_counter()
    # batches of changing shape: freed blocks must go back to the OS (sciclr.train.allocator)
    with mmap_threshold():
        try:
            for i in range(0, len(idx), batch_size):
                batch = source.batch(idx[i : i + batch_size], device)
                for block in split(batch, BLOCK_CELLS) if split is not None else [batch]:
                    z = model.embed(block).float().cpu().numpy()
                    if out is None:
                        out = np.empty((len(idx), z.shape[1]), dtype=np.float32)
                    out[dest[done : done + len(z)]] = z
                    done += len(z)
                now = time.perf_counter()
                if now - last >= PROGRESS_EVERY_S:
                    eta = (now - t0) / done * (len(idx) - done)
                    log.info(
                        "embedded %d/%d items (%.0f/s, eta %.0f s)",
                        done,
                        len(idx),
                        done / (now - t0),
                        eta,
                    )
                    last = now
        finally:
            model.train(was_training)
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    if done != len(idx):
        raise RuntimeError(f"embedded {done} rows for {len(idx)} items")
    return out
