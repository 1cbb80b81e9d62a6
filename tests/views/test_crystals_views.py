"""Crystal views: seeded, batched, and physically consistent."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.data.crystal_batch import CrystalBatch
from sciclr.views.crystals import (
    CrystalViewConfig,
    augment_graph,
    composition_view,
    displace_atoms,
    drop_edges,
    mask_atoms,
    xrd_view,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 400), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_mask_atoms_rate_and_only_masks(n, p, seed):
    z = torch.randint(1, 119, (n,), generator=gen(seed))
    out = mask_atoms(z, p, gen(seed))
    changed = out != z
    assert (out[changed] == 0).all()  # masked atoms become the mask token, others untouched
    assert torch.equal(out, mask_atoms(z, p, gen(seed)))  # same seed, same view
    if p == 0:
        assert not changed.any()


def test_mask_and_drop_rates_are_close_to_p():
    z = torch.randint(1, 119, (200_000,), generator=gen(0))
    assert abs((mask_atoms(z, 0.3, gen(1)) == 0).float().mean() - 0.3) < 0.01
    keep = drop_edges(200_000, 0.2, torch.device("cpu"), gen(2))
    assert abs(keep.float().mean() - 0.8) < 0.01


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 30), st.integers(0, 2**31 - 1))
def test_displacement_moves_periodic_images_with_their_atom(n_atoms, seed):
    g = gen(seed)
    e = 4 * n_atoms
    index = torch.randint(0, n_atoms, (2, e), generator=g)
    image = torch.randint(-1, 2, (e, 3), generator=g).float()
    pos = torch.randn(n_atoms, 3, generator=g) * 3
    lattice = torch.eye(3) * 7
    vec = pos[index[0]] + image @ lattice - pos[index[1]]
    new_vec, new_dist = displace_atoms(vec, index, n_atoms, 0.1, gen(seed + 1))
    # the same displacement applied to the positions gives the same edge vectors
    delta = torch.randn((n_atoms, 3), generator=gen(seed + 1)) * 0.1
    moved = pos + delta
    want = moved[index[0]] + image @ lattice - moved[index[1]]
    torch.testing.assert_close(new_vec, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new_dist, want.norm(dim=-1), atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(10, 60), st.integers(0, 5), st.integers(0, 2**31 - 1))
def test_xrd_view_shifts_whole_patterns(b, n, shift, seed):
    x = torch.rand(b, n, generator=gen(seed))
    out = xrd_view(x, shift, 0.0, gen(seed))
    s = torch.randint(-shift, shift + 1, (b, 1), generator=gen(seed))
    for row in range(b):
        k = int(s[row])
        if k >= 0:
            torch.testing.assert_close(out[row, k:], x[row, : n - k])
            assert (out[row, :k] == 0).all()
        else:
            torch.testing.assert_close(out[row, : n + k], x[row, -k:])


def test_composition_view_stays_a_distribution():
    comp = torch.rand(5, 118) * (torch.rand(5, 118) < 0.05)
    comp[:, 0] += 0.1
    comp = comp / comp.sum(1, keepdim=True)
    out = composition_view(comp, 0.2, gen(0))
    torch.testing.assert_close(out.sum(1), torch.ones(5))
    assert torch.equal(out > 0, comp > 0)
    assert torch.equal(composition_view(comp, 0.0, gen(0)), comp)


# every views key, as the config schema fills them (values of the materials views section)
VIEWS = {
    "atom_mask": 0.1,
    "edge_drop": 0.1,
    "coord_noise": 0.05,
    "xrd_shift": 2,
    "xrd_noise": 0.05,
    "composition_noise": 0.0,
    "strain": 0.0,
}


def test_view_config_from_cfg_ignores_unknown_keys():
    cfg = CrystalViewConfig.from_cfg({**VIEWS, "atom_mask": 0.3, "n_views": 2})
    assert cfg.atom_mask == 0.3 and cfg.edge_drop == VIEWS["edge_drop"]


def test_view_config_has_no_defaults_of_its_own():
    """The schema is the only source of defaults: a missing key is an error, not a fallback."""
    with pytest.raises(TypeError):
        CrystalViewConfig()  # type: ignore[call-arg]
    partial = {k: v for k, v in VIEWS.items() if k != "coord_noise"}
    with pytest.raises(KeyError, match="coord_noise"):
        CrystalViewConfig.from_cfg(partial)
    with pytest.raises(TypeError, match="mapping"):
        CrystalViewConfig.from_cfg(None)  # type: ignore[arg-type]


def _ring_batch(n_graphs: int = 3, size: int = 5) -> CrystalBatch:
    """Rings of ``size`` atoms, both directions (test data only)."""
    g = gen(0)
    a = torch.arange(n_graphs * size)
    nxt = a // size * size + (a + 1) % size
    ei = torch.cat([torch.stack([a, nxt]), torch.stack([nxt, a])], 1)
    ei = ei[:, torch.argsort(ei[1] // size, stable=True)]  # edges grouped by crystal
    vec = torch.randn(ei.shape[1], 3, generator=g)
    return CrystalBatch(
        z=torch.randint(1, 90, (len(a),), generator=g),
        batch=a // size,
        edge_index=ei,
        edge_vec=vec,
        edge_dist=vec.norm(dim=-1),
        composition=torch.rand(n_graphs, 118, generator=g),
        xrd=torch.rand(n_graphs, 32, generator=g),
        cell=torch.rand(n_graphs, 37, generator=g),
        num_graphs=n_graphs,
    )


def test_augment_graph_returns_a_new_batch_and_leaves_the_input_alone():
    b = _ring_batch()
    before = {k: v.clone() for k, v in b.items()}
    cfg = CrystalViewConfig.from_cfg({**VIEWS, "atom_mask": 0.3, "edge_drop": 0.3})
    view = augment_graph(b, cfg, gen(1))
    assert isinstance(view, CrystalBatch) and view is not b
    assert all(torch.equal(b[k], v) for k, v in before.items())  # the input is untouched
    assert view.num_graphs == 3 and torch.equal(view.batch, b.batch)
    assert view.edge_index.shape[1] < b.edge_index.shape[1]
    assert torch.equal(view.composition, b.composition) and torch.equal(view.cell, b.cell)
    # the same seed draws the same view; per-crystal pieces follow the dropped edges
    again = augment_graph(b, cfg, gen(1))
    assert torch.equal(again.edge_index, view.edge_index) and torch.equal(again.z, view.z)
    graphs = view.to_data_list()
    assert sum(g.edge_index.shape[1] for g in graphs) == view.edge_index.shape[1]
    assert all(int(g.edge_index.max()) < 5 for g in graphs if g.edge_index.numel())


def test_a_uniform_strain_scales_each_crystal_and_keeps_its_symmetry_descriptors():
    """Every bond of one crystal scales by the same factor; of the cell descriptors only the
    volume per atom and the shortest length move (by 3 log f and log f): exactly the
    descriptors of the scaled cells."""
    from sciclr.data.lattice import lattice_invariants
    from sciclr.views.crystals import strain_cells

    b = _ring_batch(n_graphs=4)
    lat = torch.eye(3).repeat(4, 1, 1) * torch.tensor([3.0, 4.0, 5.0, 6.0])[:, None, None]
    lat[1, 0, 1] = 0.7  # not all cubic
    n_atoms = torch.full((4,), 5)
    b = b.replace(cell=lattice_invariants(lat, n_atoms))
    vec, dist, cell = strain_cells(b, 0.05, gen(3))
    ratio = dist / b.edge_dist
    per_crystal = ratio.new_zeros(4).scatter_reduce(0, b.batch[b.edge_index[1]], ratio, "amax")
    torch.testing.assert_close(ratio, per_crystal[b.batch[b.edge_index[1]]])  # one factor each
    assert not torch.allclose(per_crystal, torch.ones(4))
    torch.testing.assert_close(vec.norm(dim=-1), dist)
    scaled = lattice_invariants(lat * per_crystal[:, None, None].double().float(), n_atoms)
    torch.testing.assert_close(cell, scaled, atol=1e-5, rtol=1e-5)
    assert torch.equal(cell[:, :-2], b.cell[:, :-2])
    cfg = CrystalViewConfig.from_cfg(
        {**VIEWS, "strain": 0.05, "coord_noise": 0.0, "atom_mask": 0.0}
    )
    view = augment_graph(b, cfg, gen(3))
    torch.testing.assert_close(view.cell, cell)
