"""The domain-agnostic steps on the bundled tiny data: sharding changes nothing, the parse stage
changes nothing, the summary adds up, baselines compute only what is asked, and the failure
modes are one clear SciclrError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from sciclr.config import dataset_params
from sciclr.domains import get_domain
from sciclr.errors import SciclrError
from sciclr.io import load_matrix, load_torch, save_matrix
from sciclr.pipeline import (
    baseline_features,
    gather,
    parse_shard,
    preprocess_shard,
    read_records,
)
from tests.conftest import REPO

DNA = {
    "name": "genomics",
    "domain": "dna",
    "input": str(REPO / "resources" / "dna" / "tiny" / "genomics_tiny.fasta"),
    "labels": str(REPO / "resources" / "dna" / "tiny" / "labels.tsv"),
    "id_column": "id",
    "split_column": "split",
    "tasks": [{"column": "label", "type": "classification"}],
    "preprocess": {"min_length": 800},  # lengths run 503..1492: about a third is rejected
    "baselines": {"kmer_k": [4, 6]},
}
MATERIALS = {
    "name": "materials",
    "domain": "materials",
    "input": str(REPO / "resources" / "materials" / "tiny" / "materials.csv"),
    "cif_column": "cif",
    "id_column": "material_id",
    "split_column": None,  # the tiny set has 4 test items: re-split
    "split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
    "tasks": [
        {"column": "formation_energy_per_atom", "type": "regression"},
        {"column": "crystal_system", "type": "classification"},
    ],
    "preprocess": {"cutoff": 5.0, "max_atoms": 10, "xrd": {"bins": 32}},
}
OUTPUTS = ("data.pt", "records.tsv", "rejects.tsv", "summary.json")
SHARD_OUTPUTS = ("data.pt", "records.parquet", "rejects.tsv", "counts.json")


def _run(params: dict[str, Any], root: Path, n_shards: int, parse: bool = False) -> Path:
    shards = []
    for i in range(n_shards):
        parsed = None
        if parse:
            parsed = root / f"parsed{i}.pt"
            parse_shard(params, i, n_shards, parsed)
        preprocess_shard(params, i, n_shards, root / f"shard{i}", parsed=parsed)
        shards.append(root / f"shard{i}")
    gather(params, shards, root / "processed")
    return root


def _assert_same(a: Any, b: Any, where: str = "payload") -> None:
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def dna_runs(tmp_path_factory):
    return {n: _run(DNA, tmp_path_factory.mktemp(f"dna{n}"), n) for n in (1, 2)}


@pytest.fixture(scope="module")
def materials_runs(tmp_path_factory):
    return {
        "1": _run(MATERIALS, tmp_path_factory.mktemp("mat1"), 1),
        "2": _run(MATERIALS, tmp_path_factory.mktemp("mat2"), 2),
        "2+parse": _run(MATERIALS, tmp_path_factory.mktemp("mat2p"), 2, parse=True),
    }


def _summary(root: Path) -> dict[str, Any]:
    return json.loads((root / "processed" / "summary.json").read_text())


@pytest.mark.parametrize("domain", ["dna", "materials"])
def test_one_or_two_shards_give_identical_outputs(domain, dna_runs, materials_runs):
    one, two = (
        (dna_runs[1], dna_runs[2])
        if domain == "dna"
        else (
            materials_runs["1"],
            materials_runs["2"],
        )
    )
    _assert_same(
        load_torch(one / "processed" / "data.pt"), load_torch(two / "processed" / "data.pt")
    )
    for name in ("records.tsv", "rejects.tsv"):
        assert (one / "processed" / name).read_text() == (two / "processed" / name).read_text()
    assert _summary(one) == _summary(two)
    # and the two shards really split the work
    counts = [json.loads((two / f"shard{i}" / "counts.json").read_text()) for i in (0, 1)]
    assert all(c["in"] > 0 for c in counts)
    assert sum(c["in"] for c in counts) == _summary(one)["in"]


def test_parsed_arrays_give_what_parsing_inside_gives(materials_runs):
    direct, staged = materials_runs["2"], materials_runs["2+parse"]
    for i in (0, 1):
        assert (staged / f"parsed{i}.pt").exists()
        a, b = direct / f"shard{i}", staged / f"shard{i}"
        _assert_same(load_torch(a / "data.pt"), load_torch(b / "data.pt"), f"shard{i}")
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / "records.parquet"), pd.read_parquet(b / "records.parquet")
        )
        assert (a / "rejects.tsv").read_text() == (b / "rejects.tsv").read_text()
        assert (a / "counts.json").read_text() == (b / "counts.json").read_text()
    for name in OUTPUTS:
        if name != "data.pt":
            assert (direct / "processed" / name).read_text() == (
                staged / "processed" / name
            ).read_text()


@pytest.mark.parametrize("domain", ["dna", "materials"])
def test_summary_adds_up(domain, dna_runs, materials_runs):
    root = dna_runs[2] if domain == "dna" else materials_runs["2"]
    s = _summary(root)
    records = read_records(root / "processed")
    rejects = pd.read_csv(root / "processed" / "rejects.tsv", sep="\t", dtype=str)
    assert s["rejected"] > 0 and s["out"] > 0  # both kinds of outcome are exercised
    assert s["in"] == s["out"] + s["rejected"]
    assert sum(s["splits"].values()) == s["out"] == len(records)
    assert sum(s["reasons"].values()) == s["rejected"] == len(rejects)
    assert records["split"].value_counts().to_dict() == s["splits"]
    assert rejects["reason"].value_counts().to_dict() == s["reasons"]
    assert set(s["splits"]) <= {"train", "val", "test"} and s["splits"]["test"] > 0
    assert records["id"].is_unique and not set(records["id"]) & set(rejects["id"])
    payload = load_torch(root / "processed" / "data.pt")
    assert payload["ids"] == records["id"].tolist()  # row i of the tensors is record i


def test_dna_records_keep_the_label_tables_split(dna_runs):
    records = read_records(dna_runs[2] / "processed")
    labels = pd.read_csv(DNA["labels"], sep="\t", dtype=str).set_index("id")
    assert list(records.columns) == ["id", "split", "label"]
    assert records["split"].tolist() == labels.loc[records["id"], "split"].tolist()
    assert records["label"].tolist() == labels.loc[records["id"], "label"].tolist()
    kept = labels[labels["length"].astype(int) >= 800].index
    assert sorted(records["id"]) == sorted(kept)


class _Spy:
    """Wraps a domain's baseline_features and records the names it was asked for."""

    def __init__(self, domain: Any) -> None:
        self.inner, self.calls = domain.baseline_features, []

    def __call__(self, payload, cfg, names, start=0, stop=None):
        self.calls.append(list(names))
        return self.inner(payload, cfg, names, start, stop)


@pytest.mark.parametrize(
    ("domain", "names", "expected"),
    [
        ("dna", ["kmer4"], {"kmer4": 136}),
        ("dna", None, {"kmer4": 136, "kmer6": 2080}),
        ("materials", ["lattice"], {"lattice": 37}),
        ("materials", None, {"element_fractions": 118, "lattice": 37}),
    ],
)
def test_baseline_features_computes_and_writes_only_what_is_asked(
    tmp_path, monkeypatch, dna_runs, materials_runs, domain, names, expected
):
    params, root = (DNA, dna_runs[1]) if domain == "dna" else (MATERIALS, materials_runs["1"])
    spy = _Spy(get_domain(domain))
    monkeypatch.setattr(type(get_domain(domain)), "baseline_features", spy)
    baseline_features(params, root / "processed", tmp_path, names)
    # one set per call (block by block; a CSR set twice: counting, then writing)
    assert all(len(c) == 1 for c in spy.calls)
    assert sorted({c[0] for c in spy.calls}) == sorted(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{n}.npz" for n in sorted(expected)]
    ids = read_records(root / "processed")["id"].tolist()
    for name, width in expected.items():
        got_ids, X = load_matrix(tmp_path / f"{name}.npz")  # dense or CSR
        assert got_ids.tolist() == ids
        assert X.shape == (len(ids), width) and X.dtype == np.float32


@pytest.mark.parametrize("domain", ["dna", "materials"])
def test_features_written_block_by_block_equal_the_whole_matrix(
    tmp_path, monkeypatch, dna_runs, materials_runs, domain
):
    """Blocks of 7 records give the files that one array of every record gives (CSR
    6-mers included), and no block is larger than asked for."""
    import sciclr.pipeline as pipe

    params, root = (DNA, dna_runs[1]) if domain == "dna" else (MATERIALS, materials_runs["1"])
    dom = get_domain(domain)
    cfg = dataset_params(params)
    payload = load_torch(root / "processed" / "data.pt")
    ids = read_records(root / "processed")["id"].tolist()
    sizes = []
    real = type(dom).baseline_features

    def sized(self, payload, cfg, names, start=0, stop=None):
        out = real(self, payload, cfg, names, start, stop)
        sizes.append(len(next(iter(out.values()))))
        return out

    monkeypatch.setattr(pipe, "FEATURE_BLOCK_RECORDS", 7)
    monkeypatch.setattr(type(dom), "baseline_features", sized)
    baseline_features(params, root / "processed", tmp_path / "blocks")
    assert len(ids) > 7 and max(sizes) == 7
    monkeypatch.setattr(type(dom), "baseline_features", real)
    whole = dom.baseline_features(payload, cfg, dom.baseline_names(cfg))
    for name, X in whole.items():
        save_matrix(tmp_path / f"{name}.npz", ids, X, compact=True)
        with (
            np.load(tmp_path / f"{name}.npz") as a,
            np.load(tmp_path / "blocks" / f"{name}.npz") as b,
        ):
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_unknown_baseline_is_one_clear_error(tmp_path, dna_runs):
    with pytest.raises(SciclrError) as err:
        baseline_features(DNA, dna_runs[1] / "processed", tmp_path, ["kmer4", "kmer5"])
    assert str(err.value) == (
        "unknown baseline feature set(s) ['kmer5']; the data set has ['kmer4', 'kmer6']"
    )
    assert list(tmp_path.iterdir()) == []  # not even the known one was written


def test_gather_with_an_empty_test_split(tmp_path, dna_runs):
    params = {**DNA, "split_column": None, "split_fractions": {"train": 0.8, "val": 0.2, "test": 0}}
    with pytest.raises(SciclrError) as err:
        gather(params, [dna_runs[1] / "shard0"], tmp_path / "out")
    assert str(err.value) == "genomics: the test split is empty"
    assert not (tmp_path / "out").exists()  # no output that looks complete


def test_parse_shard_needs_a_domain_with_a_parse_stage(tmp_path):
    with pytest.raises(SciclrError) as err:
        parse_shard(DNA, 0, 1, tmp_path / "parsed.pt")
    assert str(err.value) == "domain 'dna' has no parse stage: run `sciclr preprocess`"
    assert list(tmp_path.iterdir()) == []


def test_shard_index_is_checked(tmp_path):
    with pytest.raises(SciclrError, match=r"^shard 2 is outside 0\.\.1$"):
        preprocess_shard(DNA, 2, 2, tmp_path / "s")
    with pytest.raises(SciclrError, match=r"^shard -1 is outside 0\.\.0$"):
        parse_shard(MATERIALS, -1, 1, tmp_path / "p.pt")
    assert list(tmp_path.iterdir()) == []
