"""sciclr.train.allocator: a fixed mmap threshold, or a heap trim, returns freed multi-MiB
buffers to the OS."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sciclr.train.allocator import fix_mmap_threshold

# Without the fix, freeing one 16 MiB block raises glibc's threshold to 16 MiB (a block over its
# 32 MiB maximum would not); the 2 MiB blocks that follow come from the heap, and with the last
# one still held at its top nothing freed below it can be trimmed: the process keeps ~240 MiB it
# no longer uses.
PROBE = textwrap.dedent(
    """
    import sys
    import numpy as np
    from sciclr.train.allocator import fix_mmap_threshold, mmap_threshold, trim_heap

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20

    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    elif sys.argv[1] == "scoped":  # fixed inside the block, 32 MiB (heap for 2 MiB) after it
        with mmap_threshold() as ok:
            assert ok
    big = np.ones(16 << 20, dtype=np.uint8)
    del big
    blocks = [np.ones(2 << 20, dtype=np.uint8) for _ in range(120)]
    last = blocks[-1]
    del blocks
    if sys.argv[1] == "trimmed":  # what training does after each step
        assert trim_heap()
    print(rss_mb())
    """
)


def _held_mb(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.strip())


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION")),
    reason="glibc's mallopt is Linux/glibc only",
)
def test_fixed_threshold_and_trim_return_freed_blocks_that_the_dynamic_one_keeps():
    dynamic, fixed = _held_mb("dynamic"), _held_mb("fixed")
    assert dynamic - fixed > 150, (dynamic, fixed)
    scoped = _held_mb("scoped")  # after the block, blocks under 32 MiB use the heap again
    assert scoped - fixed > 150, (scoped, fixed)
    trimmed = _held_mb("trimmed")  # the free pages inside the heap go back too
    assert dynamic - trimmed > 150 and trimmed < fixed + 50, (dynamic, trimmed, fixed)


def test_an_explicit_environment_setting_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4194304")
    assert fix_mmap_threshold() is False
