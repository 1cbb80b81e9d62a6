"""sciclr.memory: the read pages of a mapped payload leave the resident set, nothing else."""

from __future__ import annotations

import sys

import pytest
import torch

from sciclr.io import load_torch
from sciclr.memory import release_mapped_pages


def _rss_file_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise: Linux")
def test_release_mapped_pages_drops_read_pages_of_a_mapped_payload_only(tmp_path):
    path = tmp_path / "payload.pt"
    torch.save({"codes": torch.arange(64 << 20, dtype=torch.int64).to(torch.uint8)}, path)
    codes = load_torch(path, mmap=True)["codes"]
    before = _rss_file_mb()
    total = int(codes.sum(dtype=torch.int64))  # reads every page: 64 MB more resident
    assert _rss_file_mb() - before > 48
    assert release_mapped_pages([codes]) >= 64 << 20
    assert _rss_file_mb() - before < 16
    assert int(codes.sum(dtype=torch.int64)) == total  # read again from the file, unchanged
    in_memory = codes.clone()
    assert release_mapped_pages([in_memory, None]) == 0  # anonymous memory is left alone
