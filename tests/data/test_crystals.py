"""Crystal ingest: neighbour lists vs. a brute-force oracle, bad inputs, parse stage, shards, XRD."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sciclr.config import dataset_params
from sciclr.data import crystals
from sciclr.data.crystal_graphs import TIE_TOL, GraphSettings, build_graphs
from sciclr.data.crystal_io import list_inputs, parse_structure
from sciclr.data.crystal_payload import take
from sciclr.data.xrd import XRDSettings, xrd_pattern
from sciclr.errors import SciclrError

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "resources" / "materials" / "tiny"
BAD = Path(__file__).parent / "crystals"
TASKS = [
    {"column": "formation_energy_per_atom", "type": "regression"},
    {"column": "crystal_system", "type": "classification"},
]


def graph_settings(**kw) -> GraphSettings:
    """The schema's graph defaults with ``kw`` changed."""
    return GraphSettings.from_cfg({**dataset_params({"domain": "materials"})["preprocess"], **kw})


def tiny_cfg(**pre) -> dict:
    return dataset_params(
        {
            "domain": "materials",
            "input": [str(TINY / "materials.csv")],
            "format": "auto",
            "cif_column": "cif",
            "labels": None,
            "id_column": "material_id",
            "split_column": "split",
            "tasks": TASKS,
            "preprocess": pre,
        }
    )


def bad_cfg(**pre) -> dict:
    return dataset_params(
        {
            "domain": "materials",
            "input": [str(BAD / "bad")],
            "format": "auto",
            "labels": str(BAD / "bad_labels.csv"),
            "id_column": "material_id",
            "split_column": "split",
            "tasks": TASKS,
            "preprocess": pre,
        }
    )


@pytest.fixture(scope="module")
def tiny_structures():
    records, _ = list_inputs(tiny_cfg())
    return [parse_structure(r) for r in records]


def brute_force_pairs(lattice, frac, cutoff):
    """Every (centre, neighbour, image) with 0 < distance <= cutoff, by enumerating images."""
    cart = frac @ lattice
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(lattice).T, axis=1)  # plane spacings
    reach = np.ceil(cutoff / spacing).astype(int) + 1
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(
        -1, 3
    )
    shifted = cart[None, :, :] + (grid @ lattice)[:, None, :]  # (images, n, 3)
    d = np.linalg.norm(shifted[:, None, :, :] - cart[None, :, None, :], axis=-1)  # (I, i, j)
    im, i, j = np.nonzero((d <= cutoff) & (d > 1e-8))
    return {(a, b, *grid[m]): d[m, a, b] for m, a, b in zip(im, i, j, strict=True)}


def graph_pairs(g, lo, hi):
    src, dst = g["edge_index"][:, lo:hi]
    img, dist = g["edge_image"][lo:hi], g["edge_dist"][lo:hi]
    return {
        (int(c), int(j), *map(int, m)): float(x)
        for c, j, m, x in zip(dst, src, img, dist, strict=True)
    }


def _graphs(structs, settings):
    lat = np.stack([s.lattice for s in structs])
    ptr = np.r_[0, np.cumsum([len(s.z) for s in structs])]
    cart = np.concatenate([s.frac @ s.lattice for s in structs])
    return build_graphs(lat, cart, ptr, settings)


def test_neighbour_lists_equal_brute_force_oracle(tiny_structures):
    settings = graph_settings(cutoff=5.0, max_neighbors=0)
    g, reasons = _graphs(tiny_structures, settings)
    assert all(r is None for r in reasons)
    ptr = g["edge_ptr"]
    n_edges = 0
    for k, s in enumerate(tiny_structures):
        oracle = brute_force_pairs(s.lattice, s.frac, 5.0)
        ours = graph_pairs(g, ptr[k], ptr[k + 1])
        assert ours.keys() == oracle.keys(), f"structure {k}"
        np.testing.assert_allclose([ours[e] for e in oracle], list(oracle.values()), atol=1e-5)
        n_edges += len(oracle)
    assert n_edges == ptr[-1] > 1000
    # edge vectors agree with the distances
    np.testing.assert_allclose(np.linalg.norm(g["edge_vec"], axis=1), g["edge_dist"], atol=1e-5)


def test_neighbour_cap_keeps_k_nearest_and_whole_shells(tiny_structures):
    k_cap = 8
    g, _ = _graphs(tiny_structures, graph_settings(cutoff=6.0, max_neighbors=k_cap))
    ptr = g["edge_ptr"]
    for k, s in enumerate(tiny_structures):
        oracle = brute_force_pairs(s.lattice, s.frac, 6.0)
        ours = graph_pairs(g, ptr[k], ptr[k + 1])
        for centre in range(len(s.z)):
            d = np.sort([v for e, v in oracle.items() if e[0] == centre])
            limit = d[min(k_cap, len(d)) - 1] + TIE_TOL
            want = {e for e, v in oracle.items() if e[0] == centre and v <= limit}
            got = {e for e in ours if e[0] == centre}
            assert got == want
            assert len(got) >= min(k_cap, len(d))


def test_bad_corpus_every_reject_listed_with_reason():
    out = crystals.preprocess_shard(bad_cfg(), 0, 1)
    assert sorted(out.records["id"]) == ["bom_nacl", "gaas", "good_nacl", "si", "two_blocks_KCl"]
    reasons = dict(zip(out.rejects["id"], out.rejects["reason"], strict=True))
    expected = {
        "partial_occupancy": "partial occupancy",
        "overlapping_atoms": "overlapping atoms",
        "isolated_atom": "isolated atom",
        "too_many_atoms": "too many atoms: 512 > max_atoms 256",
        "unparsable": "unparsable CIF: could not convert string to float: 'zero'",
        "not_a_structure": "not a CIF: no data_ block",
        "POSCAR_broken": "unparsable POSCAR",
        "missing_label": "missing label",
        "water": "unsupported file type",
        "empty": "empty file",
        "missing_cell_length": "missing cell parameter: _cell_length_b (pymatgen: ",
        "two_atoms_one_site": "two atoms on one site: Cl and Na2 at (0, 0.5, 0)",
        "two_blocks_noatoms": "missing atom sites: no _atom_site_label",
        "truncated": "POSCAR: counts line promises 2 atoms, found 1 coordinate lines",
    }
    assert set(reasons) == set(expected)
    for rid, start in expected.items():
        assert reasons[rid].startswith(start), (rid, reasons[rid])
    assert "(pymatgen: Occupancy 2.0 exceeded tolerance.)" in reasons["two_atoms_one_site"]
    assert out.counts["in"] == 19
    assert out.counts["out"] == 5 and out.counts["rejected"] == 14
    assert out.counts["rejected_unparsable_cif"] == 1
    assert out.counts["rejected_not_a_cif"] == 1
    assert out.counts["label_rows_without_record"] == 1  # no_such_structure
    src = dict(zip(out.rejects["id"], out.rejects["source"], strict=True))
    assert src["water"].endswith("water.xyz")
    assert src["two_blocks_noatoms"].endswith("two_blocks.cif:data_noatoms")
    # the kept structures are the right ones
    n_atoms = torch.diff(out.payload["atom_ptr"]).tolist()
    assert dict(zip(out.records["id"], n_atoms, strict=True)) == {
        "bom_nacl": 8,
        "gaas": 2,
        "good_nacl": 8,
        "si": 2,
        "two_blocks_KCl": 8,
    }


def test_partial_occupancy_majority_policy():
    out = crystals.preprocess_shard(bad_cfg(occupancy="majority"), 0, 1)
    assert "partial_occupancy" in set(out.records["id"])
    row = list(out.records["id"]).index("partial_occupancy")
    comp = out.payload["composition"][row]
    assert comp[11 - 1] == pytest.approx(0.5) and comp[17 - 1] == pytest.approx(0.5)  # Na, Cl
    assert out.counts["majority_sites"] == 4


def test_wrong_format_input_is_a_clear_error(tmp_path):
    cfg = bad_cfg()
    cfg["input"] = [str(BAD / "bad" / "water.xyz")]
    with pytest.raises(SciclrError, match=r"water\.xyz"):
        crystals.preprocess_shard(cfg, 0, 1)
    table = tmp_path / "table.csv"
    table.write_text("material_id,structure\nx,1\n")
    cfg["input"] = [str(table)]
    with pytest.raises(SciclrError, match="'cif'"):
        crystals.preprocess_shard(cfg, 0, 1)
    cfg["input"] = [str(tmp_path / "nope.csv")]
    with pytest.raises(SciclrError, match="not found"):
        crystals.preprocess_shard(cfg, 0, 1)


def _same(a, b):
    assert a.payload.keys() == b.payload.keys()
    for key, v in a.payload.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b.payload[key]), key
        else:
            assert v == b.payload[key], key
    pd.testing.assert_frame_equal(a.records, b.records)
    pd.testing.assert_frame_equal(a.rejects, b.rejects)


def test_deterministic():
    _same(crystals.preprocess_shard(tiny_cfg(), 0, 1), crystals.preprocess_shard(tiny_cfg(), 0, 1))


@pytest.mark.parametrize("cfg_fn", [tiny_cfg, bad_cfg])
def test_sharded_equals_unsharded(cfg_fn):
    cfg = cfg_fn()
    one = crystals.merge([crystals.preprocess_shard(cfg, 0, 1)], cfg)
    three = crystals.merge([crystals.preprocess_shard(cfg, s, 3) for s in range(3)], cfg)
    _same(one, three)
    _same(one, crystals.preprocess_shard(cfg, 0, 1))


def test_splits_assigned_on_the_whole_set_when_no_split_column():
    cfg = tiny_cfg()
    cfg["split_column"] = None
    cfg["split_fractions"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    one = crystals.preprocess_shard(cfg, 0, 1)
    two = crystals.merge([crystals.preprocess_shard(cfg, s, 2) for s in range(2)], cfg)
    pd.testing.assert_frame_equal(one.records, two.records)
    assert set(one.records["split"]) == {"train", "val", "test"}


def test_parse_stage_is_reused_and_a_cutoff_change_needs_no_parsing(monkeypatch):
    """Stage 2 from stage 1's stored arrays equals the one-step run, for any graph settings."""
    parsed = crystals.parse_shard(tiny_cfg(), 0, 1)
    first = crystals.preprocess_shard(tiny_cfg(), 0, 1)

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed although the parsed arrays were given")

    monkeypatch.setattr(crystals, "_parse_all", no_parse)
    _same(first, crystals.preprocess_shard(tiny_cfg(), 0, 1, parsed))
    third = crystals.preprocess_shard(tiny_cfg(cutoff=4.0), 0, 1, parsed)
    assert third.payload["edge_dist"].max() <= 4.0 + 1e-6
    assert first.payload["edge_dist"].max() > 4.0
    with pytest.raises(SciclrError, match=r"parsed arrays of shard \[0, 1\] given for shard"):
        crystals.preprocess_shard(tiny_cfg(), 1, 2, parsed)
    monkeypatch.undo()
    _same(third, crystals.preprocess_shard(tiny_cfg(cutoff=4.0), 0, 1))


def test_payload_layout_and_composition():
    out = crystals.preprocess_shard(tiny_cfg(), 0, 1)
    p = out.payload
    n = len(out.records)
    assert n == 63 and p["ids"] == list(out.records["id"])
    assert p["composition"].shape == (n, 118)
    torch.testing.assert_close(p["composition"].sum(1), torch.ones(n))
    assert p["xrd"].shape == (n, 320) and torch.allclose(p["xrd"].amax(1), torch.ones(n))
    e = p["edge_index"]
    counts = torch.diff(p["atom_ptr"]).repeat_interleave(torch.diff(p["edge_ptr"]))
    assert (e >= 0).all() and (e < counts).all()  # local indices inside their graph
    buf = take(p, torch.tensor([5, 0]))
    assert buf["ids"] == [p["ids"][5], p["ids"][0]]


def test_xrd_matches_pymatgen_xrdcalculator(tiny_structures):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Lattice, Structure

    st = XRDSettings.from_cfg(tiny_cfg()["preprocess"]["xrd"])
    calc = XRDCalculator(wavelength=st.wavelength)
    for s in tiny_structures[::3]:
        ours = xrd_pattern(s.lattice, s.frac, s.z, st)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pat = calc.get_pattern(
                Structure(Lattice(s.lattice), s.z.tolist(), s.frac),
                scaled=False,
                two_theta_range=(st.two_theta_min, st.two_theta_max),
            )
        ref, _ = np.histogram(pat.x, bins=st.edges(), weights=pat.y)
        np.testing.assert_allclose(ours, ref / ref.max(), atol=1e-6)


@pytest.mark.parametrize("block", [1, 2, 5])
def test_graphs_built_block_by_block_equal_one_pass(tiny_structures, block):
    """Blocks of structures give the arrays and reject reasons of one pass over all of them,
    with rejected structures (overlapping, isolated) inside and across blocks."""
    from dataclasses import replace

    structs = list(tiny_structures)
    s0 = structs[0]
    overlap = replace(
        s0, frac=np.concatenate([s0.frac, s0.frac[:1] + 1e-4]), z=np.r_[s0.z, s0.z[:1]]
    )
    structs = [structs[0], overlap, *structs[1:], overlap]
    settings = graph_settings(cutoff=4.0, max_neighbors=8)
    lat = np.stack([s.lattice for s in structs])
    ptr = np.r_[0, np.cumsum([len(s.z) for s in structs])]
    cart = np.concatenate([s.frac @ s.lattice for s in structs])
    whole, why_whole = build_graphs(lat, cart, ptr, settings, block=len(structs))
    parts, why_parts = build_graphs(lat, cart, ptr, settings, block=block)
    assert why_parts == why_whole
    assert sum(w is not None for w in why_whole) >= 2
    assert sorted(parts) == sorted(whole)
    for key in whole:
        assert parts[key].dtype == whole[key].dtype
        np.testing.assert_array_equal(parts[key], whole[key])
