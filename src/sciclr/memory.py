"""This process's memory, through glibc and the kernel: the C library's functions, and
dropping the read pages of memory-mapped arrays from the resident set."""

from __future__ import annotations

import bisect
import ctypes
import functools
import mmap
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["libc_function", "release_mapped_pages"]


def libc_function(name: str) -> Any:
    """glibc's function ``name`` (None off Linux or without it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


#: ``madvise(2)``: unmap these pages from the process. Pages of a mapped file stay in the page
#: cache, and the next touch maps them again from it (a minor fault, no disk read). The payloads
#: are never written, so nothing is lost; a written page of a private mapping would be.
#: (``MADV_PAGEOUT`` also evicts them from the page cache: a training step that re-read its
#: crystals' pages took 87 ms to gather instead of 16 ms, 16x the bundled crystals.)
_MADV_DONTNEED = 4


def _file_mappings() -> list[tuple[int, int]]:
    """``(start, end)`` of this process's file-backed mappings (``/proc/self/maps``), in
    address order, as the kernel lists them."""
    ranges = []
    with open("/proc/self/maps") as fh:
        for line in fh:
            fields = line.split(maxsplit=5)
            if len(fields) >= 5 and fields[4] != "0":  # inode 0: anonymous memory
                lo, hi = fields[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


@functools.cache
def _madvise() -> Any:
    """glibc's ``madvise``, typed, looked up once (training releases pages every step)."""
    madvise = libc_function("madvise")
    if madvise is not None:
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


def release_mapped_pages(tensors: Iterable[Any]) -> int:
    """Drop the pages that this process has read of memory-mapped tensors
    (:func:`sciclr.io.load_torch` with ``mmap``) from its resident set; returns the bytes
    advised (0 off Linux).

    Why: a pass over a mapped payload (embedding every item; a training epoch) touches all of
    its pages, and they count in the process's RSS until the kernel needs the memory: at 16x
    the bundled genomics data, 117 MB of sequence codes. Only the parts of the tensors that
    lie in file-backed mappings are advised, so a payload held in memory is left alone."""
    spans = []
    for t in tensors:
        if t is None or t.device.type != "cpu" or t.numel() == 0:
            continue
        storage = t.untyped_storage()
        spans.append((storage.data_ptr(), storage.data_ptr() + storage.nbytes()))
    if not spans:
        return 0
    madvise = _madvise()
    if madvise is None:
        return 0
    mappings = _file_mappings()
    starts = [lo for lo, _ in mappings]
    page = mmap.PAGESIZE
    advised = 0
    for lo, hi in spans:
        # the mappings that overlap [lo, hi): from the last one starting at or before lo
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while i < len(mappings) and mappings[i][0] < hi:
            m_lo, m_hi = mappings[i]
            a = max(lo, m_lo) // page * page  # the mapping's pages: whole pages of one file
            b = min(hi, m_hi)
            if b > a and madvise(a, b - a, _MADV_DONTNEED) == 0:
                advised += b - a
            i += 1
    return advised
