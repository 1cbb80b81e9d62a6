"""Lattice descriptors: invariant to the basis, to rotations and to ties; symmetry visible."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.data.lattice import SHELLS, lattice_invariants, legendre, n_lattice_invariants


def _unimodular(entries: list[int], order: list[int]) -> torch.Tensor:
    """A product of shears (det 1) from drawn integers."""
    u = torch.eye(3, dtype=torch.float64)
    for (i, j), v in zip(((0, 1), (1, 2), (2, 0), (1, 0)), entries, strict=True):
        e = torch.eye(3, dtype=torch.float64)
        e[i, j] = v
        u = e @ u
    return u[order]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    entries=st.lists(st.integers(-2, 2), min_size=4, max_size=4),
    order=st.permutations([0, 1, 2]),
)
def test_invariant_to_basis_and_rotation(seed, entries, order):
    g = torch.Generator().manual_seed(seed)
    lat = 0.6 * torch.randn(4, 3, 3, generator=g, dtype=torch.float64) + 3 * torch.eye(3)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    n = torch.tensor([1, 2, 4, 8])
    want = lattice_invariants(lat, n)
    got = lattice_invariants(_unimodular(entries, order) @ lat @ q, n)
    assert want.shape == (4, n_lattice_invariants())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cubic_stars_have_their_textbook_counts_and_bond_orders():
    """Simple cubic: 6 nearest lattice points, q4 = 0.764, q6 = 0.354; face-centred cubic
    (primitive cell): 12, q4 = 0.191, q6 = 0.575 (Steinhardt et al. 1983)."""
    sc = 3.0 * torch.eye(3).unsqueeze(0)
    fcc = torch.tensor([[[0.0, 2.0, 2.0], [2.0, 0.0, 2.0], [2.0, 2.0, 0.0]]])
    width = 15  # the length spectrum comes first
    for lat, n_first, q4, q6 in ((sc, 6, 0.764, 0.354), (fcc, 12, 0.191, 0.575)):
        out = lattice_invariants(lat, torch.tensor([1]))[0]
        count = math.exp(out[width]) / torch.sigmoid(torch.tensor((SHELLS[0] - 1) / 0.02))
        assert abs(float(count) - n_first) < 1e-3
        q = out[width + len(SHELLS) : width + len(SHELLS) + 4]  # shell 1: q2, q4, q6, q8
        assert abs(float(q[1]) - q4) < 2e-3 and abs(float(q[2]) - q6) < 2e-3


def test_tetragonal_strain_is_seen():
    cubic = 4.0 * torch.eye(3).unsqueeze(0)
    tetra = cubic * torch.tensor([1.0, 1.0, 1.1]).unsqueeze(1)
    n = torch.tensor([2])
    assert (lattice_invariants(cubic, n) - lattice_invariants(tetra, n)).abs().max() > 0.1


def test_legendre_matches_closed_forms():
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    p = legendre(x, 4)
    torch.testing.assert_close(p[:, 1], (3 * x**2 - 1) / 2)
    torch.testing.assert_close(p[:, 3], (35 * x**4 - 30 * x**2 + 3) / 8)


def test_descriptors_do_not_depend_on_the_chunk():
    g = torch.Generator().manual_seed(0)
    lat = torch.eye(3) * 4 + torch.rand(70, 3, 3, generator=g)
    n = torch.randint(1, 40, (70,), generator=g)
    ref = lattice_invariants(lat, n, chunk=1000)
    for chunk in (1, 7, 64):
        assert torch.equal(lattice_invariants(lat, n, chunk=chunk), ref)
