"""Invariances every convention must have (hypothesis): instance order, view order, scale; and
the diagnostics' MI bound against independent and analytic values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.losses import info_nce
from tests.losses import reference

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


def _n_neg(mode: str, v: int, n: int) -> int:
    """Negatives per anchor, counted from the conventions (not from the code)."""
    return v * n - v if mode == "all" else n - 1


@settings(max_examples=40, deadline=None)
@given(shapes, modes, taus, st.integers(0, 2**16))
def test_bounds_of_the_loss(shape, mode, tau, seed):
    """0 < L; the MI bound is ln K − L with K and L recomputed independently (the float64
    reference); similarities are cosines."""
    z = _z(shape, seed)
    loss, diag = info_nce(z, tau, mode, return_diagnostics=True)
    v, n, _ = shape
    ref = (reference.all_views if mode == "all" else reference.cross_view)(z, tau)
    assert float(loss) > 0
    assert diag.k == _n_neg(mode, v, n)
    assert diag.loss == pytest.approx(float(ref), rel=1e-5, abs=1e-6)
    assert diag.mi_bound == pytest.approx(math.log(_n_neg(mode, v, n)) - float(ref), abs=1e-5)
    assert -1.0 - 1e-5 <= diag.neg_sim <= 1.0 + 1e-5
    assert -1.0 - 1e-5 <= diag.pos_sim <= 1.0 + 1e-5


def _orthogonal(v: int, n: int, d: int, seed: int) -> torch.Tensor:
    """``V`` identical copies of ``n ≤ d`` orthonormal instances, float64."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0][:n]
    return q.expand(v, n, d).clone()


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.integers(2, 6), modes, st.integers(0, 2**16))
def test_mi_bound_saturation_and_floor_are_analytic(v, n, mode, seed):
    """Analytic cases. Views identical, instances orthogonal: every anchor sees its positives at
    cosine 1 and K negatives at 0, so L = ln(P + K e^{−1/τ}) exactly (P = V − 1 positives in
    the denominator for mode "all", 1 for cross_view); as τ → 0 the bound saturates at
    ln K − ln P (ln K for cross_view: McAllester & Stratos 2020). All embeddings equal: every
    logit is the same, L = ln(K + P), and the bound is ln K − ln(K + P) < 0."""
    z = _orthogonal(v, n, 8, seed)
    k = _n_neg(mode, v, n)
    p = v - 1 if mode == "all" else 1
    for tau in (1.0, 0.1, 0.02):
        _, diag = info_nce(z, tau, mode, return_diagnostics=True)
        # −log(e^{1/τ} / (P e^{1/τ} + K)) = ln(P + K e^{−1/τ})
        expected = math.log(k) - math.log(p + k * math.exp(-1.0 / tau))
        assert diag.k == k
        assert diag.mi_bound == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert diag.mi_bound == pytest.approx(math.log(k) - math.log(p), abs=1e-12)  # saturated
    same = torch.ones(v, n, 3, dtype=torch.float64)
    _, diag = info_nce(same, 0.1, mode, return_diagnostics=True)
    assert diag.mi_bound == pytest.approx(math.log(k) - math.log(k + p), rel=1e-12)
