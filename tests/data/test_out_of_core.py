"""The out-of-core data path on the tiny data (config/test.yaml's sections): the memory-mapped
payload gives exactly the batches, embeddings and training of an in-memory one; DNA embedding
blocks are bit-identical to whole batches; batches widen only their own rows."""

from __future__ import annotations

import importlib
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sciclr.config import dataset_params
from sciclr.domains import get_domain
from sciclr.io import load_matrix
from sciclr.pipeline import gather, parse_shard, preprocess_shard
from sciclr.train.embed import embed
from sciclr.train.run import load_data, run_embedding, run_training
from tests.conftest import REPO

# the modules (sciclr.train re-exports functions of the same names)
embed_mod = importlib.import_module("sciclr.train.embed")
run_mod = importlib.import_module("sciclr.train.run")
TEST_CFG = yaml.safe_load((REPO / "config" / "test.yaml").read_text())


def _section(name: str) -> dict:
    sec = dict(TEST_CFG["datasets"][name], name=name, device="cpu")
    sec["input"] = str(REPO / sec["input"])
    if sec.get("labels"):
        sec["labels"] = str(REPO / sec["labels"])
    sec["preprocess"] = {**sec["preprocess"], "shards": 1}
    return sec


def _process(name: str, tmp_path_factory) -> tuple[dict, Path]:
    sec = _section(name)
    root = tmp_path_factory.mktemp(name)
    shard = root / "shards" / "0of1"
    parsed = None
    if get_domain(sec["domain"]).parse_stage:
        parsed = root / "parsed.pt"
        parse_shard(sec, 0, 1, parsed)
    preprocess_shard(sec, 0, 1, shard, parsed)
    gather(sec, [shard], root / "processed")
    return sec, root / "processed"


@pytest.fixture(scope="module")
def genomics(tmp_path_factory) -> tuple[dict, Path]:
    return _process("genomics", tmp_path_factory)


@pytest.fixture(scope="module")
def materials(tmp_path_factory) -> tuple[dict, Path]:
    return _process("materials", tmp_path_factory)


@pytest.fixture(params=["genomics", "materials"])
def processed(request) -> tuple[dict, Path]:
    """Either domain's processed tiny data (for the properties both payloads have)."""
    return request.getfixturevalue(request.param)


def _assert_same(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    else:
        assert a == b


def test_the_payload_is_mapped_and_equals_a_plain_load(processed):
    _, data = processed
    mapped, rec_m = load_data(data)
    plain, rec_p = load_data(data, mmap=False)
    _assert_same(mapped, plain)
    assert rec_m.equals(rec_p)
    if sys.platform.startswith("linux"):  # the tensors are pages of the file, not copies
        assert str((data / "data.pt").resolve()) in Path("/proc/self/maps").read_text()


def test_batches_of_the_mapped_payload_equal_the_in_memory_ones(processed):
    sec, data = processed
    domain = get_domain(sec["domain"])
    mapped = domain.data_source(load_data(data)[0])
    plain = domain.data_source(load_data(data, mmap=False)[0])
    n = len(plain)
    rng = np.random.default_rng(0)
    for idx in (np.arange(n), rng.permutation(n)[: n // 2], np.array([3, 3, 0]), np.array([n - 1])):
        a = mapped.batch(torch.as_tensor(idx))
        b = plain.batch(torch.as_tensor(idx))
        if isinstance(a, dict):
            _assert_same(a, b)
        else:
            assert a.keys() == b.keys() and a.num_graphs == b.num_graphs == len(idx)
            for key in a.keys():
                _assert_same(a[key], b[key])


def test_crystal_batches_widen_exactly_their_own_rows(materials):
    data = materials[1]
    payload = load_data(data)[0]
    assert payload["z"].dtype == torch.uint8 and payload["edge_index"].dtype == torch.int32
    idx = torch.tensor([5, 0, 2])
    batch = get_domain("materials").data_source(payload).batch(idx)
    assert batch.z.dtype == torch.int64 and batch.edge_index.dtype == torch.int64
    a_ptr, e_ptr = payload["atom_ptr"], payload["edge_ptr"]
    for j, (i, g) in enumerate(zip(idx.tolist(), batch.to_data_list(), strict=True)):
        assert torch.equal(g.z, payload["z"][a_ptr[i] : a_ptr[i + 1]].long())
        assert torch.equal(g.edge_index, payload["edge_index"][:, e_ptr[i] : e_ptr[i + 1]].long())
        assert torch.equal(g.edge_dist, payload["edge_dist"][e_ptr[i] : e_ptr[i + 1]])
        assert torch.equal(g.xrd[0], payload["xrd"][i]), j


def test_embedding_from_the_mapped_payload_equals_the_in_memory_one(processed, tmp_path):
    sec, data = processed
    cfg = dataset_params(sec)
    domain = get_domain(cfg["domain"])
    shape = run_embedding(sec, data, None, tmp_path / "u.npz")  # mapped (the default)
    _, x = load_matrix(tmp_path / "u.npz")
    payload, records = load_data(data, mmap=False)
    torch.manual_seed(cfg["train"]["seed"])
    model = domain.build_model(payload, cfg)
    ref = embed(model, domain.data_source(payload), np.arange(len(records)), torch.device("cpu"))
    assert x.shape == ref.shape == shape and x.shape[0] == len(records)
    np.testing.assert_array_equal(x, ref)


def test_dna_embedding_blocks_equal_whole_batches(genomics, monkeypatch):
    sec, data = genomics
    cfg = dataset_params(sec)
    domain = get_domain("dna")
    payload, records = load_data(data)
    source = domain.data_source(payload)
    torch.manual_seed(0)
    model = domain.build_model(payload, cfg)
    idx = np.arange(len(records))
    whole = embed(model, source, idx, torch.device("cpu"), batch_size=64)
    width = int(source.item_sizes().max())
    assert whole.shape[0] == len(records) and np.isfinite(whole).all()
    batch = source.batch(torch.arange(10))
    blocks = source.split_rows(batch, 3 * batch["codes"].shape[1])
    assert [len(b["codes"]) for b in blocks] == [3, 3, 3, 1]
    assert all(b["codes"].shape[1] == batch["codes"].shape[1] for b in blocks)
    for cells in (1, 2 * width, 7 * width):  # one row per forward, 2 rows, 7 rows
        monkeypatch.setattr(embed_mod, "BLOCK_CELLS", cells)
        blocked = embed(model, source, idx, torch.device("cpu"), 64)
        # bit for bit at two threads; at one (a thread count left by another test), oneDNN's
        # kernels depend on the row count and the last bit may differ
        np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-7)


def test_training_on_the_mapped_payload_equals_training_in_memory(processed, tmp_path, monkeypatch):
    sec, data = processed
    sec = {**sec, "train": {**sec["train"], "max_steps": 2, "eval_every": 0, "profile_steps": 0}}
    run_training(sec, data, tmp_path / "mapped")
    monkeypatch.setattr(run_mod, "load_data", lambda d: load_data(d, mmap=False))
    run_training(sec, data, tmp_path / "memory")
    a = torch.load(tmp_path / "mapped" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "memory" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert not moved
    assert torch.load(tmp_path / "mapped" / "checkpoint.pt", weights_only=True)["step"] == 2
    cfg = dataset_params(sec)
    torch.manual_seed(cfg["train"]["seed"])
    start = get_domain(cfg["domain"]).build_model(load_data(data)[0], cfg).state_dict()
    assert any(not torch.equal(start[k], a[k]) for k in a if a[k].is_floating_point())


def test_feature_files_are_compact_where_exact_and_read_back_bit_identical(genomics, tmp_path):
    sec, data = genomics
    from sciclr.analysis.inputs import load_features
    from sciclr.data.dna.kmers import kmer_profiles_ragged
    from sciclr.pipeline import baseline_features, read_records

    sec = {**sec, "baselines": {"kmer_k": [4, 6]}}
    baseline_features(sec, data, tmp_path)
    payload = load_data(data, mmap=False)[0]
    ids = read_records(data)["id"].to_numpy()
    for k, layout in ((4, "X"), (6, "X_data")):
        with np.load(tmp_path / f"kmer{k}.npz") as z:
            assert layout in z.files  # 6-mer profiles of ~1 kb are sparse: CSR; 4-mers dense
        ref = kmer_profiles_ragged(payload["codes"].numpy(), payload["offsets"].numpy(), k)
        got = load_features(tmp_path / f"kmer{k}.npz", ids)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_array_equal(got[:].view(np.uint32), ref.view(np.uint32))
        # rows on demand from the mapped file: any rows, any order, and after pickling (what
        # joblib's workers receive) the same bits
        rows = np.random.default_rng(k).permutation(len(ref))[:500]
        np.testing.assert_array_equal(got[rows].view(np.uint32), ref[rows].view(np.uint32))
        back = pickle.loads(pickle.dumps(got))
        assert len(pickle.dumps(got)) < 0.01 * ref.nbytes  # the path and order, not the rows
        np.testing.assert_array_equal(back[rows[::-1]], ref[rows[::-1]])
    dense = ref.nbytes
    assert (tmp_path / "kmer6.npz").stat().st_size < 0.7 * dense
