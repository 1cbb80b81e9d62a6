"""sciclr.ragged: the loop-free positions equal the loops they replace."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sciclr.ragged import ragged_positions, segment_arange

rows = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 30)), max_size=40)


@given(rows)
def test_segment_arange_is_the_concatenated_aranges(rs):
    counts = np.array([c for _, c in rs], dtype=np.int64)
    want = np.concatenate([np.arange(c) for c in counts]) if rs else np.zeros(0)
    got = segment_arange(counts)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@given(rows)
def test_ragged_positions_are_each_rows_span_in_order(rs):
    starts = np.array([s for s, _ in rs], dtype=np.int64)
    counts = np.array([c for _, c in rs], dtype=np.int64)
    want = [p for s, c in rs for p in range(s, s + c)]
    got = ragged_positions(starts, counts)
    assert got.dtype == np.int64 and got.tolist() == want
    # the gather of those rows from a flat array is each row's slice, back to back
    flat = np.arange(10_040) * 3
    assert flat[got].tolist() == [int(v) for s, c in rs for v in flat[s : s + c]]
