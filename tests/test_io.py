"""Atomic outputs: a writer that fails leaves the target as it was and no temporary file behind;
outputs get the umask's permissions; formats are what their names say; torch files load with
``weights_only=True``."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.errors import SciclrError
from sciclr.io import (
    atomic_path,
    load_matrix,
    load_torch,
    save_matrix,
    save_matrix_blocks,
    save_torch,
    write_json,
    write_table,
    write_text,
)


class Opaque:
    """An arbitrary class: pickled instances of it must never be loaded."""

    def __init__(self) -> None:
        self.value = 41


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_path_renames_into_place(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target  # a sibling: rename is atomic
        assert tmp.name.startswith(".out.txt.") and tmp.name.endswith(".tmp")
        tmp.write_text("done")
        assert not target.exists()  # nothing at the target until the block succeeds
    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_path_failure_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of it")
            raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_keeps_the_previous_content(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new but broken")
            raise RuntimeError("midway")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_save_torch_of_an_unpicklable_object_fails_cleanly(tmp_path):
    target = tmp_path / "data.pt"
    save_torch(target, {"x": torch.arange(3)})
    before = target.read_bytes()
    big = torch.zeros(100_000)  # torch.save has begun the archive when the lambda fails
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_torch(target, {"a": big, "f": lambda: 0})
    assert target.read_bytes() == before
    assert torch.equal(load_torch(target)["x"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.pt"]
    # and with no previous file, nothing appears at all
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_torch(tmp_path / "new.pt", {"a": big, "f": lambda: 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.pt"]


def test_a_failing_table_writer_leaves_nothing(tmp_path):
    class Exploding(pd.DataFrame):
        def to_csv(self, path, **kw):
            with open(path, "w") as fh:
                fh.write("a,b\n1,")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_table(tmp_path / "t.tsv", Exploding({"a": [1]}))
    assert list(tmp_path.iterdir()) == []


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    expected = 0o666 & ~_umask()
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "a.json", {"a": 1})
    write_table(tmp_path / "a.tsv", pd.DataFrame({"a": [1]}))
    save_torch(tmp_path / "a.pt", {"a": 1})
    save_matrix(tmp_path / "a.npz", ["i"], [[1.0]])
    for name in ("a.txt", "a.json", "a.tsv", "a.pt", "a.npz"):
        assert _mode(tmp_path / name) == expected, name


def test_permissions_under_another_umask(tmp_path):
    """In a fresh process whose umask is 027, outputs are 0640 (mkstemp alone makes 0600)."""
    code = textwrap.dedent(
        f"""
        import os, stat
        os.umask(0o027)
        from sciclr.io import save_torch, write_text
        write_text({str(tmp_path / "a.txt")!r}, "x")
        save_torch({str(tmp_path / "a.pt")!r}, {{"a": 1}})
        for n in ("a.txt", "a.pt"):
            print(oct(stat.S_IMODE(os.stat(os.path.join({str(tmp_path)!r}, n)).st_mode)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0o640", "0o640"]


def test_write_json_is_sorted_indented_and_newline_terminated(tmp_path):
    path = tmp_path / "s.json"
    write_json(path, {"b": 1, "a": {"z": [1, 2], "y": None}, "c": tmp_path / "p"})
    text = path.read_text()
    assert text == (
        "{\n"
        '  "a": {\n'
        '    "y": null,\n'
        '    "z": [\n'
        "      1,\n"
        "      2\n"
        "    ]\n"
        "  },\n"
        '  "b": 1,\n'
        f'  "c": "{tmp_path / "p"}"\n'
        "}\n"
    )
    assert json.loads(text)["c"] == str(tmp_path / "p")  # non-JSON values as text


def test_write_table_tsv_or_csv_by_suffix(tmp_path):
    df = pd.DataFrame({"id": ["x", "y"], "value": [1.5, 2.0]}, index=[7, 9])
    write_table(tmp_path / "t.tsv", df)
    write_table(tmp_path / "t.csv", df)
    write_table(tmp_path / "t.txt", df)
    assert (tmp_path / "t.tsv").read_text() == "id\tvalue\nx\t1.5\ny\t2.0\n"
    assert (tmp_path / "t.csv").read_text() == "id,value\nx,1.5\ny,2.0\n"  # no index column
    assert (tmp_path / "t.txt").read_text() == "id,value\nx,1.5\ny,2.0\n"  # "other suffixes"
    back = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))


def test_save_matrix_round_trip(tmp_path):
    ids = ["a", "bb", "1"]
    X = np.arange(6, dtype=np.float64).reshape(3, 2) / 3.0
    save_matrix(tmp_path / "m.npz", ids, X)
    with np.load(tmp_path / "m.npz") as z:  # allow_pickle=False: no object arrays inside
        assert sorted(z.files) == ["X", "ids"]
        assert z["ids"].dtype.kind == "U" and z["ids"].tolist() == ids
        assert z["X"].dtype == np.float32 and z["X"].shape == (3, 2)
        np.testing.assert_array_equal(z["X"], X.astype(np.float32))


@pytest.mark.parametrize(
    ("ids", "X", "shape"),
    [(["a", "b"], np.zeros((3, 2)), "(3, 2)"), (["a", "b"], np.zeros(2), "(2,)")],
)
def test_save_matrix_rejects_mismatched_shapes(tmp_path, ids, X, shape):
    path = tmp_path / "m.npz"
    with pytest.raises(SciclrError) as err:
        save_matrix(path, ids, X)
    assert str(err.value) == f"{path}: matrix shape {shape} does not match 2 ids"
    assert list(tmp_path.iterdir()) == []


def test_load_torch_round_trip(tmp_path):
    obj = {
        "t": torch.arange(5, dtype=torch.int32),
        "ids": ["a", "b"],
        "n": 3,
        "meta": {"x": 0.5, "s": "text"},
    }
    save_torch(tmp_path / "d.pt", obj)
    back = load_torch(tmp_path / "d.pt")
    assert torch.equal(back["t"], obj["t"]) and back["t"].dtype == torch.int32
    assert {k: v for k, v in back.items() if k != "t"} == {k: obj[k] for k in ("ids", "n", "meta")}


def test_load_torch_refuses_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Opaque()}, path)
    # the file itself is fine: an unrestricted load gets the object back
    assert torch.load(path, weights_only=False)["x"].value == 41
    with pytest.raises(pickle.UnpicklingError):
        load_torch(path)


def _sparse(n=300, d=700, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    X = np.where(rng.random((n, d)) < density, rng.normal(size=(n, d)), 0.0).astype(np.float32)
    X[0] = 0.0  # an empty row
    X[1, 5] = -0.0  # a signed zero is data too
    X[2, 7] = np.float32(1e-45)  # a subnormal
    return X


def test_a_sparse_matrix_is_stored_as_csr_and_reads_back_exactly(tmp_path):
    X = _sparse()
    ids = [f"r{i}" for i in range(len(X))]
    save_matrix(tmp_path / "s.npz", ids, X, compact=True)
    with np.load(tmp_path / "s.npz") as z:
        assert sorted(z.files) == ["X_data", "X_indices", "X_indptr", "X_shape", "ids"]
        assert z["X_indices"].dtype == np.uint16  # 700 columns
        assert z["X_data"].dtype == np.float32 and z["X_indptr"][-1] == len(z["X_data"])
    back_ids, back = load_matrix(tmp_path / "s.npz")
    assert back_ids.tolist() == ids and back.dtype == np.float32 and back.shape == X.shape
    np.testing.assert_array_equal(back.view(np.uint32), X.view(np.uint32))  # bit for bit
    assert np.signbit(back[1, 5]) and back[2, 7] == np.float32(1e-45)
    # a fifth non-zero: 6 bytes per entry instead of 4 per cell, ~0.3 of the dense size
    save_matrix(tmp_path / "d.npz", ids, X)
    assert (tmp_path / "s.npz").stat().st_size < 0.4 * (tmp_path / "d.npz").stat().st_size


def test_dense_matrices_stay_dense_and_uncompacted_writes_keep_x(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 40)).astype(np.float32)
    X[:, :5] = 0  # an eighth zero: CSR would be larger
    save_matrix(tmp_path / "a.npz", list(map(str, range(50))), X, compact=True)
    save_matrix(tmp_path / "b.npz", list(map(str, range(50))), _sparse(50, 40))  # default dense
    for name in ("a.npz", "b.npz"):
        with np.load(tmp_path / name) as z:
            assert sorted(z.files) == ["X", "ids"]
    np.testing.assert_array_equal(load_matrix(tmp_path / "a.npz")[1], X)


def test_compact_storage_round_trips_in_row_blocks(tmp_path, monkeypatch):
    """Writing and reading go a block of rows at a time; blocks of 3 rows give the same file
    contents and the same matrix as one block."""
    import sciclr.io as sio

    X = _sparse(n=50, d=30, density=0.1, seed=3)
    ids = [str(i) for i in range(50)]
    save_matrix(tmp_path / "one.npz", ids, X, compact=True)
    real = sio._row_chunks
    monkeypatch.setattr(sio, "_row_chunks", lambda n, d, cells=0: real(n, d, cells=3 * d))
    save_matrix(tmp_path / "blocks.npz", ids, X, compact=True)
    np.testing.assert_array_equal(load_matrix(tmp_path / "blocks.npz")[1], X)
    with np.load(tmp_path / "one.npz") as a, np.load(tmp_path / "blocks.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_load_torch_mmap_maps_the_file_and_keeps_it_unchanged(tmp_path):
    path = tmp_path / "d.pt"
    save_torch(path, {"t": torch.arange(1000, dtype=torch.int32), "ids": ["a"]})
    mapped = load_torch(path, mmap=True)
    assert torch.equal(mapped["t"], torch.arange(1000, dtype=torch.int32)) and mapped["ids"] == [
        "a"
    ]
    if sys.platform.startswith("linux"):
        assert str(path) in open("/proc/self/maps").read()
    mapped["t"][0] = 7  # a private mapping: the file never changes
    assert load_torch(path)["t"][0] == 0


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 40),
    d=st.integers(1, 30),
    density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    cuts=st.lists(st.integers(0, 40), max_size=6),
    compact=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matrix_written_in_any_row_blocks_reads_back_exactly(n, d, density, cuts, compact, seed):
    """However the rows are cut into blocks (empty blocks too), the file holds the matrix
    bit for bit, in the layout the whole matrix gets."""
    import tempfile

    rng = np.random.default_rng(seed)
    X = np.where(rng.random((n, d)) < density, rng.normal(size=(n, d)), 0.0).astype(np.float32)
    if n:
        X[0, 0] = -0.0  # a signed zero is data too
    edges = [0, *sorted(min(c, n) for c in cuts), n]
    ids = [f"r{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.npz", Path(tmp) / "b.npz"
        save_matrix(a, ids, X, compact=compact)
        blocks = lambda: (X[lo:hi] for lo, hi in itertools.pairwise(edges))  # noqa: E731
        assert save_matrix_blocks(b, ids, blocks, d, compact=compact) == (n, d)
        with np.load(a) as za, np.load(b) as zb:
            assert sorted(za.files) == sorted(zb.files)
            for key in za.files:
                np.testing.assert_array_equal(za[key], zb[key])
        back_ids, back = load_matrix(b)
        assert back_ids.tolist() == ids
        np.testing.assert_array_equal(back.view(np.uint32), X.view(np.uint32))


def test_block_writing_holds_one_block_not_the_matrix(tmp_path):
    """Streaming 40 MB of sparse rows in 1 MB blocks allocates a few MB at most: the peak
    would hold the matrix if the blocks were gathered first."""
    import tracemalloc

    n, d, rows = 20_000, 500, 500

    def blocks():
        for lo in range(0, n, rows):
            yield _sparse(rows, d, 0.1, seed=lo)

    tracemalloc.start()
    try:
        save_matrix_blocks(tmp_path / "m.npz", [str(i) for i in range(n)], blocks, d, True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12e6, peak  # the dense matrix is 40 MB, its CSR 12 MB
    with np.load(tmp_path / "m.npz") as z:
        assert "X_data" in z.files and z["X_shape"].tolist() == [n, d]
    np.testing.assert_array_equal(
        load_matrix(tmp_path / "m.npz")[1][-rows:], _sparse(rows, d, 0.1, n - rows)
    )


def test_block_writing_names_what_went_wrong(tmp_path):
    X = _sparse(30, 20, 0.2)
    ids = [str(i) for i in range(30)]
    with pytest.raises(SciclrError, match="row blocks hold 20 rows; expected 30, one per id"):
        save_matrix_blocks(tmp_path / "a.npz", ids, lambda: iter([X[:20]]), 20)
    with pytest.raises(SciclrError, match=r"matrix of 20 rows does not match 30 ids"):
        save_matrix_blocks(tmp_path / "b.npz", ids, lambda: iter([X[:20]]), 20, compact=True)
    with pytest.raises(SciclrError, match=r"row block of shape \(30, 5\); expected \(rows, 20\)"):
        save_matrix_blocks(tmp_path / "c.npz", ids, lambda: iter([X[:, :5]]), 20)
    passes = iter([X, X * 0])  # a source that changes between the counting and writing passes
    with pytest.raises(SciclrError, match="row blocks changed between"):
        save_matrix_blocks(tmp_path / "d.npz", ids, lambda: iter([next(passes)]), 20, compact=True)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left
