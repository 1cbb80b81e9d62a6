"""Keep large freed buffers going back to the operating system (glibc's ``malloc``).

Why: glibc serves a block of at least ``M_MMAP_THRESHOLD`` bytes with its own ``mmap`` and
returns it at ``free``; smaller blocks come from the heap, which only shrinks from its top. By
default the threshold is dynamic: each freed mmapped block raises it to that block's size (up to
32 MiB on 64-bit). A process that forwards batches of changing shape, as ``sciclr embed`` does
(padded DNA batches in order of length, every block a different width), soon serves its
activations of a few MiB from the heap, where they fragment and stay resident: its peak RSS
grew 1.8x for 4x the items (3,230 vs 1,781 MB, ``benchmarks/scaling.py --quick``) although each
forward is bounded. A fixed threshold keeps every block of 1 MiB or more mmapped, so memory
follows the batch, not the number of batches.

Measured on the bundled genomics data (7,309 fragments, ``sciclr embed``, 2 cores, runs
interleaved): peak RSS 1,154-1,156 MB fixed against 1,837-2,065 MB dynamic, and 1,251 MB at
4x the items (1.08x of 1x). The price is time: 104-120 s against 90-102 s (about +15 %), as
each large block now costs fresh pages. So only embedding fixes it, for its own duration
(:func:`mmap_threshold` around :func:`sciclr.train.embed.embed_blocks`: ``sciclr embed`` and
the val check inside training); training steps then run with a fixed 32 MiB threshold, the
value the dynamic one settles at, and keep their speed. Trimming the heap between batches
(``malloc_trim``) instead kept 1,480 MB there.

Training steps of changing shape fragment the heap as well: DNA crops are 250-750 bp, and a
batch is as wide as its longest crop, so every step's activations differ in size. DNA
training's peak RSS followed the number of steps taken, not the data: 2.7 GB after one epoch
of the bundled data and 3.3 GB after three. :func:`trim_heap` after each step
(``malloc_trim(0)``, which also returns free pages inside the heap) keeps it at what one step
holds: 1.9 / 2.1 / 2.1-2.2 GB after 1 / 3 / 6 epochs, at the same speed (148 samples/s
untrimmed, 161 trimmed, 3 epochs; ``sciclr train`` on the bundled genomics data with
evaluation off, ``/usr/bin/time -v``). A fixed 1 MiB threshold for the whole run had also
lowered the peak (1.4 GB) but cost 30 % of the speed.

``MALLOC_MMAP_THRESHOLD_`` in the environment (glibc's own tunable) takes precedence: when it is
set, the threshold is not changed.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sciclr.memory import libc_function

__all__ = [
    "MMAP_THRESHOLD",
    "MMAP_THRESHOLD_MAX",
    "fix_mmap_threshold",
    "mmap_threshold",
    "trim_heap",
]

log = logging.getLogger(__name__)

#: bytes from which a block is mmapped (and returned at free); glibc's own default start value
#: is 128 KiB, raised dynamically to at most 32 MiB
MMAP_THRESHOLD = 1 << 20
#: glibc's ceiling of the dynamic threshold on 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``)
MMAP_THRESHOLD_MAX = 32 << 20
_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``nbytes`` (which also stops its dynamic growth).

    Returns True when it was set; False off Linux, without glibc's ``mallopt``, or when the
    environment already sets ``MALLOC_MMAP_THRESHOLD_``."""
    mallopt = None if "MALLOC_MMAP_THRESHOLD_" in os.environ else libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(nbytes)))
    log.debug("malloc mmap threshold %d bytes: %s", nbytes, "set" if ok else "not set")
    return ok


@contextmanager
def mmap_threshold(nbytes: int = MMAP_THRESHOLD, after: int = MMAP_THRESHOLD_MAX) -> Iterator[bool]:
    """Fix the threshold at ``nbytes`` inside the block and at ``after`` when it ends (glibc
    cannot go back to its dynamic threshold, and does not report the current value). Yields
    whether it was set (:func:`fix_mmap_threshold`); when not, nothing is changed after."""
    ok = fix_mmap_threshold(nbytes)
    try:
        yield ok
    finally:
        if ok:
            fix_mmap_threshold(after)


@functools.cache
def _malloc_trim() -> Any:
    trim = libc_function("malloc_trim")
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return the heap's free pages to the operating system (glibc's ``malloc_trim(0)``, a few
    milliseconds). Returns whether anything was released; False off glibc."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
