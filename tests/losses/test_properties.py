"""Invariances every convention must have (hypothesis): instance order, view order, scale."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.losses import info_nce

shapes = st.tuples(st.integers(2, 4), st.integers(2, 9), st.integers(1, 6))
modes = st.sampled_from(["all", "cross_view"])
taus = st.sampled_from([0.05, 0.1, 0.5, 1.0])


def _z(shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=40, deadline=None)
@given(shapes, modes, taus, st.integers(0, 2**16))
def test_invariant_to_instance_and_view_order(shape, mode, tau, seed):
    z = _z(shape, seed)
    g = torch.Generator().manual_seed(seed + 1)
    perm_n = torch.randperm(shape[1], generator=g)
    perm_v = torch.randperm(shape[0], generator=g)
    base = info_nce(z, tau, mode)
    assert torch.isfinite(base)
    assert torch.allclose(info_nce(z[:, perm_n], tau, mode), base, rtol=1e-5, atol=1e-6)
    assert torch.allclose(info_nce(z[perm_v], tau, mode), base, rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shapes, modes, taus, st.integers(0, 2**16))
def test_normalised_loss_ignores_vector_lengths(shape, mode, tau, seed):
    z = _z(shape, seed)
    scale = torch.rand(shape[0], shape[1], 1, generator=torch.Generator().manual_seed(seed)) * 9
    base = info_nce(z, tau, mode)
    assert torch.allclose(info_nce(z * (scale + 0.1), tau, mode), base, rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(shapes, modes, taus, st.integers(0, 2**16))
def test_bounds_of_the_loss(shape, mode, tau, seed):
    """0 < L, the MI bound ln K − L never exceeds ln K, similarities are cosines."""
    z = _z(shape, seed)
    loss, diag = info_nce(z, tau, mode, return_diagnostics=True)
    assert float(loss) > 0
    assert diag.mi_bound <= torch.log(torch.tensor(float(diag.k))).item() + 1e-6
    assert -1.0 - 1e-5 <= diag.neg_sim <= 1.0 + 1e-5
    assert -1.0 - 1e-5 <= diag.pos_sim <= 1.0 + 1e-5
