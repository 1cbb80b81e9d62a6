"""Frozen-encoder embeddings: eval mode (BatchNorm uses running statistics), no gradient, no
augmentation — what probes, clustering and the report see.

Items are embedded in order of size when the source pads its batches (DNA), so a batch holds
similar lengths and pads little; encoders mask padding, so the result does not depend on the
order, only the time does (1.4x less padded work on the bundled 0.5-1.5 kb fragments).

Memory: a padding source's batch is forwarded in row blocks of at most :data:`BLOCK_CELLS`
padded positions (``source.split_rows``), each at the batch's width, so the activations are
bounded by a number of bases rather than a number of records and the embeddings equal those of
forwarding the whole batch (bit for bit at two threads; within one float32 rounding step at one,
where oneDNN's kernels depend on the row count). With the bundled genomics model (256-channel
stem, both strands) a batch of 512 records of 1.5 kb held 768 k positions at once; the blocks
hold at most 131 k (``sciclr embed`` peak RSS, bundled data: see the README's Benchmarks).
A crystal batch is forwarded in blocks of consecutive crystals of at most ``source.block_cells``
edges (16 k; ``CrystalSource.split_rows``): a forward holds about 13 kB per edge, so a batch of
512 crystals held 763 MB more than its input. With the blocks (and
:func:`sciclr.io.save_matrix_blocks` holding no finished chunk), ``sciclr embed`` of the
bundled crystals peaked at 732 MB instead of 1,353 MB, and of 16x them at 861 instead of
1,515 MB (125 s instead of 176 s); the embeddings agree to float32 rounding
(largest difference 6e-7), as the matrix kernels' blocking follows the row count.
Items are embedded :data:`CHUNK_ITEMS` at a time, in their given order (sorted by size inside
a chunk), and :func:`embed_blocks` yields each chunk's rows as soon as it is done, so a caller
that streams them to disk (``sciclr embed``: :func:`sciclr.io.save_matrix_blocks`) holds one
chunk, not the ``n x e`` result (2 GB for 10^6 items of the bundled 512-d genomics model).
After each chunk the payload pages it read are dropped from the resident set
(``source.release_pages``, :func:`sciclr.memory.release_mapped_pages`): a pass over every item
reads the whole mapped payload, 117 MB of sequence codes at 16x the bundled genomics data.
Peak RSS at 16x over 1x (``benchmarks/scaling.py`` run folders, ``/usr/bin/time -v sciclr
embed``): genomics 1.24x streamed alone, 1.16x with the pages dropped; crystals 1.32x before,
1.12x with both (8 k chunks, 1,353 / 1,515 MB), 1.18x with the edge blocks above (732 / 861 MB).
Sorting inside chunks of 8 k items pads nearly as little as sorting everything (a batch of
512 spans 1/16 of the chunk's sizes), and a data set of at most one chunk (both bundled ones)
is embedded exactly as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from sciclr.domains.base import ContrastiveModel, DataSource, item_sizes
from sciclr.train.allocator import mmap_threshold

__all__ = ["CHUNK_ITEMS", "embed", "embed_blocks"]

log = logging.getLogger(__name__)
#: seconds between progress lines of a long embedding
PROGRESS_EVERY_S = 30.0
#: most padded positions (rows x width) one forward of a padding source holds; the result does
#: not depend on it (beyond float32 rounding), only the peak memory does
BLOCK_CELLS = 1 << 17
#: items embedded (and held) at a time by :func:`embed_blocks`
CHUNK_ITEMS = 1 << 13


def embed(
    model: ContrastiveModel,
    source: DataSource,
    idx: torch.Tensor | np.ndarray | Sequence[int],
    device: torch.device,
    batch_size: int = 512,
) -> np.ndarray:
    """Embeddings ``(len(idx), e)`` float32 of the items ``idx``, in that order, in one array
    (for a bounded set of items, such as the val check's; :func:`embed_blocks` streams)."""
    parts = list(embed_blocks(model, source, idx, device, batch_size))
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@torch.no_grad()
def embed_blocks(
    model: ContrastiveModel,
    source: DataSource,
    idx: torch.Tensor | np.ndarray | Sequence[int],
    device: torch.device,
    batch_size: int = 512,
    chunk_items: int | None = None,
) -> Iterator[np.ndarray]:
    """The embeddings of the items ``idx``, in that order, as float32 row blocks of at most
    ``chunk_items`` (default :data:`CHUNK_ITEMS`) rows: memory holds one block."""
    idx = torch.as_tensor(np.asarray(idx), dtype=torch.int64)
    chunk_items = CHUNK_ITEMS if chunk_items is None else int(chunk_items)
    if chunk_items < 1:
        raise ValueError(f"chunk_items must be >= 1, got {chunk_items}")
    sizes = item_sizes(source)
    split = getattr(source, "split_rows", None)
    cells = getattr(source, "block_cells", BLOCK_CELLS)  # the source's unit (crystals: edges)
    release = getattr(source, "release_pages", None)
    was_training = model.training
    model.eval()
    done = 0
    t0 = last = time.perf_counter()
    # batches of changing shape: freed blocks must go back to the OS (sciclr.train.allocator)
    with mmap_threshold():
        try:
            for c in range(0, len(idx), chunk_items):
                part = idx[c : c + chunk_items]
                # row j of the size order belongs at position dest[j] of the chunk: written
                # there straight away (no list of parts, no reordered copy)
                dest = np.arange(len(part))
                if sizes is not None:
                    dest = np.argsort(sizes[part.numpy()], kind="stable")
                    part = part[torch.as_tensor(dest)]
                out: np.ndarray | None = None
                filled = 0
                for i in range(0, len(part), batch_size):
                    batch = source.batch(part[i : i + batch_size], device)
                    for block in split(batch, cells) if split is not None else [batch]:
                        z = model.embed(block).float().cpu().numpy()
                        if out is None:
                            out = np.empty((len(part), z.shape[1]), dtype=np.float32)
                        out[dest[filled : filled + len(z)]] = z
                        filled += len(z)
                    now = time.perf_counter()
                    if now - last >= PROGRESS_EVERY_S:
                        seen = done + filled
                        log.info(
                            "embedded %d/%d items (%.0f/s, eta %.0f s)",
                            seen,
                            len(idx),
                            seen / (now - t0),
                            (now - t0) / seen * (len(idx) - seen),
                        )
                        last = now
                if out is None or filled != len(part):
                    raise RuntimeError(f"embedded {filled} rows for {len(part)} items")
                done += filled
                if release is not None:
                    release()  # the payload pages this chunk read (a mapped payload)
                yield out
        finally:
            model.train(was_training)
