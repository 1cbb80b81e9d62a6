"""Low temperature, large norms, tiny losses: finite and accurate where public code is not."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sciclr.losses import info_nce
from tests.losses import reference

OPTIONS = [{}, {"tau_plus": 0.1}, {"beta": 1.0}, {"tau_plus": 0.1, "beta": 1.0}]


@pytest.mark.parametrize("mode", ["all", "cross_view"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("chunk", [0, 7])
def test_finite_at_tau_0005_with_norm_10(mode, normalize, options, chunk):
    torch.manual_seed(0)
    z = F.normalize(torch.randn(3, 16, 8), dim=-1) * 10.0
    z[1, :4] = z[0, :4]  # some exact positives (self-similarity dominates) ...
    z[1, 4:8] = -z[0, 4:8]  # ... and some opposite ones (huge loss)
    z = z.requires_grad_()
    loss = info_nce(z, 0.005, mode, normalize, chunk_size=chunk, **options)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_accurate_at_tau_0005(mode):
    # a large finite mask constant (−1e4 …) or clamped exponentials would show up here
    torch.manual_seed(1)
    z = torch.randn(2, 12, 6)
    ref = reference.all_views if mode == "all" else reference.cross_view
    z64 = z.double().requires_grad_()
    r = ref(z64, 0.005)
    r.backward()
    zz = z.clone().requires_grad_()
    got = info_nce(zz, 0.005, mode)
    got.backward()
    assert float(got.detach()) == pytest.approx(float(r.detach()), rel=1e-5)
    rel = (zz.grad.double() - z64.grad).norm() / z64.grad.norm()
    assert rel < 1e-4


def _tiny_loss_batch() -> torch.Tensor:
    """Positives identical, negatives at cosine 0.25: loss ≈ 1e-5 at τ = 0.05."""
    g = torch.Generator().manual_seed(2)
    n, d = 8, 16
    base = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:n]  # orthonormal rows
    common = torch.linalg.qr(torch.randn(d, d, generator=g))[0][n]
    x = math.sqrt(0.75) * base + math.sqrt(0.25) * common  # pairwise cosine 0.25
    return torch.stack([x, x.clone()])


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_tiny_loss_relative_error(mode):
    z = _tiny_loss_batch()
    ref = (reference.all_views if mode == "all" else reference.cross_view)(z.double(), 0.05)
    assert 1e-6 < float(ref) < 1e-4
    got = info_nce(z, 0.05, mode)
    assert abs(float(got) - float(ref)) / float(ref) <= 1e-5
    # the plain float32 cross-entropy form loses this accuracy (why the softplus form is used)
    zn = F.normalize(z, dim=-1)
    plain = F.cross_entropy(zn[0] @ zn[1].T / 0.05, torch.arange(8))
    ref_plain = reference.cross_view(z.double(), 0.05)
    assert abs(float(plain) - float(ref_plain)) / float(ref_plain) > 1e-5


def test_tiny_loss_gradient_accurate():
    z = _tiny_loss_batch().requires_grad_()
    z64 = z.detach().double().requires_grad_()
    reference.all_views(z64, 0.05).backward()
    info_nce(z, 0.05).backward()
    rel = (z.grad.double() - z64.grad).norm() / z64.grad.norm()
    assert rel < 1e-5
