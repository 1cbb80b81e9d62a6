"""The materials domain end to end on the tiny set: collation, model, baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sciclr.config import dataset_params
from sciclr.data.lattice import n_lattice_invariants
from sciclr.domains import get_domain
from sciclr.errors import SciclrError

TINY = Path(__file__).resolve().parents[2] / "resources" / "materials" / "tiny"
CFG = {
    "domain": "materials",
    "input": [str(TINY / "materials.csv")],
    "format": "auto",
    "cif_column": "cif",
    "labels": None,
    "id_column": "material_id",
    "split_column": "split",
    "tasks": [{"column": "formation_energy_per_atom", "type": "regression"}],
    "model": {
        "hidden": 32,
        "layers": 2,
        "n_rbf": 16,
        "side_hidden": 32,
        "proj_hidden": 32,
        "proj_dim": 16,
    },
}


@pytest.fixture(scope="module")
def processed():
    return get_domain("materials").preprocess_shard(dataset_params(CFG), 0, 1)


def test_batch_collation_matches_per_graph_reference(processed):
    dom = get_domain("materials")
    p = processed.payload
    src = dom.data_source(p)
    assert len(src) == 63
    idx = torch.tensor([7, 0, 62, 7])
    b = src.batch(idx, torch.device("cpu"))
    zs, eis, dists, off = [], [], [], 0
    for k in idx.tolist():  # the slow, obvious collation
        a0, a1 = p["atom_ptr"][k : k + 2].tolist()
        e0, e1 = p["edge_ptr"][k : k + 2].tolist()
        zs.append(p["z"][a0:a1].long())
        eis.append(p["edge_index"][:, e0:e1].long() + off)
        dists.append(p["edge_dist"][e0:e1])
        off += a1 - a0
    assert torch.equal(b.z, torch.cat(zs))
    assert torch.equal(b.edge_index, torch.cat(eis, 1))
    assert torch.equal(b.edge_dist, torch.cat(dists))
    assert torch.equal(
        b.batch, torch.repeat_interleave(torch.arange(4), torch.tensor([len(z) for z in zs]))
    )
    assert torch.equal(b.xrd, p["xrd"][idx]) and b.num_graphs == 4


@pytest.mark.parametrize(
    ("pairing", "n_views"),
    [("augment", 2), ("composition", 2), ("xrd", 2), (["augment", "composition", "xrd"], 4)],
)
def test_model_views_shapes_and_seed(processed, pairing, n_views):
    dom = get_domain("materials")
    cfg = dataset_params({**CFG, "model": {**CFG["model"], "pairing": pairing}})
    torch.manual_seed(0)
    model = dom.build_model(processed.payload, cfg)
    b = dom.data_source(processed.payload).batch(torch.arange(16), torch.device("cpu"))
    z1 = model(b, torch.Generator().manual_seed(3))
    z2 = model(b, torch.Generator().manual_seed(3))
    assert z1.shape == (n_views, 16, 16)
    torch.testing.assert_close(z1, z2)  # views are a function of the seed
    z1.sum().backward()
    assert all(p.grad is not None for p in model.gnn.parameters() if p.requires_grad)
    model.eval()
    e = model.embed(b)
    assert e.shape == (16, 32 * (2 + 1) + 32) and torch.isfinite(e).all()  # layers + lattice


def test_bad_pairing_is_a_clear_error():
    cfg = {**CFG, "model": {**CFG["model"], "pairing": "smiles"}}
    with pytest.raises(
        SciclrError,
        match=r"model\.pairing: 'smiles' is not valid; expected one of \['augment', "
        r"'composition', 'xrd'\] or a list of",
    ):
        dataset_params(cfg)


def test_baseline_features(processed):
    dom = get_domain("materials")
    names = dom.baseline_names(dataset_params(CFG))
    feats = dom.baseline_features(processed.payload, dataset_params(CFG), names)
    assert names == ["element_fractions", "lattice"] and set(feats) == set(names)
    x = feats["element_fractions"]
    assert x.shape == (63, 118) and x.dtype.name == "float32"
    row = processed.records.index[processed.records["id"] == "mp-1005"][0]  # FeP
    assert x[row, 26 - 1] == pytest.approx(0.5) and x[row, 15 - 1] == pytest.approx(0.5)
    cell = feats["lattice"]
    assert cell.shape == (63, n_lattice_invariants()) and np.isfinite(cell).all()


def test_composition_tower_can_read_descriptors(processed):
    dom = get_domain("materials")
    cfg = {**CFG, "model": {**CFG["model"], "pairing": "composition"}}
    b = dom.data_source(processed.payload).batch(torch.arange(8), torch.device("cpu"))
    for value in ("fractions", "descriptors"):
        model = dom.build_model(
            processed.payload,
            dataset_params({**cfg, "model": {**cfg["model"], "composition_input": value}}),
        )
        assert model(b, torch.Generator().manual_seed(0)).shape == (2, 8, 16)
    bad = {**cfg, "model": {**cfg["model"], "composition_input": "smiles"}}
    with pytest.raises(SciclrError, match="composition_input"):
        dataset_params(bad)


def test_every_pairing_says_what_its_views_share():
    dom = get_domain("materials")
    cfg = dataset_params({**CFG, "model": {"pairing": ["xrd", "augment", "composition", "xrd"]}})
    described = dom.describe_pairing(cfg)
    assert [v for v, _ in described] == [
        "graph ↔ powder XRD",
        "graph ↔ graph",
        "graph ↔ composition",
    ]
    assert "not the lattice" in described[2][1] and "symmetry" in described[0][1]


def test_split_rows_cuts_a_batch_into_the_batches_of_its_crystals(processed):
    src = get_domain("materials").data_source(processed.payload)
    idx = torch.tensor([5, 0, 62, 7, 7, 30, 12])
    whole = src.batch(idx)
    e_cnt = torch.diff(torch.as_tensor(processed.payload["edge_ptr"]))[idx]
    budget = int(e_cnt[:3].sum())  # the first three crystals fit exactly
    blocks = src.split_rows(whole, budget)
    assert sum(b.num_graphs for b in blocks) == len(idx) and blocks[0].num_graphs >= 3
    assert all(b.num_graphs == 1 or b.edge_index.shape[1] <= budget for b in blocks)
    start = 0
    for b in blocks:  # each block is the batch its crystals collate to on their own
        ref = src.batch(idx[start : start + b.num_graphs])
        for key in ("z", "batch", "edge_index", "edge_vec", "edge_dist", "ptr", "composition",
                    "xrd", "cell"):  # fmt: skip
            assert torch.equal(getattr(b, key), getattr(ref, key)), key
        start += b.num_graphs
    assert src.split_rows(whole, 10**9) == [whole]
    one = src.split_rows(whole, 1)  # a crystal over the budget still gets a block of its own
    assert [b.num_graphs for b in one] == [1] * len(idx)


def test_embedding_in_edge_blocks_equals_whole_batches(processed, monkeypatch):
    from sciclr.train.embed import embed

    dom = get_domain("materials")
    torch.manual_seed(0)
    model = dom.build_model(processed.payload, dataset_params(CFG))
    src = dom.data_source(processed.payload)
    idx = np.arange(len(src))
    monkeypatch.setattr(src, "block_cells", 10**9)
    whole = embed(model, src, idx, torch.device("cpu"), batch_size=64)
    monkeypatch.setattr(src, "block_cells", 500)  # a few crystals per forward
    blocked = embed(model, src, idx, torch.device("cpu"), batch_size=64)
    assert np.isfinite(whole).all() and whole.shape[0] == len(src)
    # equal up to float32 rounding: the matrix kernels' blocking depends on the row count
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-6)
