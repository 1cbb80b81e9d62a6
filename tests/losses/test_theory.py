"""Theory checks from the InfoNCE literature the product is built on.

1. Gradient: ∇_q L = (Σ_i p_i k_i − k_t)/τ (e.g. Wu et al. 2018; He et al. 2020).
2. Margin: all positives at α, all K negatives at β ⇒ L = softplus((β + τ ln K − α)/τ), i.e. it
   tracks the hinge max(0, β + τ ln K − α)/τ. Derived tolerance: |softplus(x) − max(0, x)| =
   log(1 + e^{−|x|}) ≤ ln 2, exponentially small away from the kink ln K = (α − β)/τ.
3. Density ratio: the optimal critic is log p(y|x)/p(y) up to a constant (van den Oord et al.
   2018; Poole et al. 2019).
4. Mutual information: ln K − L ≤ I(X; Y) and it saturates at ln K (McAllester & Stratos 2020).
5. Normalised embeddings: the gradient w.r.t. the unnormalised vector is tangential.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from sciclr.losses import info_nce
from sciclr.losses.chunked import chunked_row_terms
from sciclr.losses.rows import row_terms


@pytest.mark.parametrize("chunk", [0, 3])
def test_1_gradient_formula(chunk):
    torch.manual_seed(0)
    m, c, d, tau = 8, 20, 6, 0.3
    q = torch.randn(m, d, requires_grad=True)
    keys = torch.randn(c, d)
    target = torch.randint(0, c, (m,))
    args = ((q / tau)[None], keys[None], target.view(1, m, 1))
    terms, _ = chunked_row_terms(row_terms, chunk, *args) if chunk else row_terms(*args)
    terms.sum().backward()
    q64, k64 = q.detach().double(), keys.double()
    p = torch.softmax(q64 @ k64.T / tau, dim=1)
    expected = (p @ k64 - k64[target]) / tau
    scale = float(expected.abs().max())
    assert torch.allclose(q.grad.double(), expected, rtol=1e-5, atol=2e-6 * scale)


def _margin_rows(alpha: float, beta: float, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.tensor([[1.0, 0.0, 0.0]])
    pos = torch.tensor([[alpha, math.sqrt(1 - alpha**2), 0.0]])
    neg = torch.tensor([[beta, 0.0, math.sqrt(1 - beta**2)]]).expand(k, 3)
    return q, torch.cat([pos, neg])


def test_2_margin_hinge():
    alpha, beta, tau = 0.8, 0.1, 0.1  # kink at ln K = 7 (K ≈ 1100), inside the range
    xs, losses = [], []
    for k in [16, 64, 256, 1024, 4096, 16384, 65536]:
        q, keys = _margin_rows(alpha, beta, k)
        terms, _ = row_terms((q / tau)[None], keys[None], torch.zeros(1, 1, 1, dtype=torch.long))
        loss = float(terms)
        x = (beta + tau * math.log(k) - alpha) / tau
        assert loss == pytest.approx(math.log1p(math.exp(x)), rel=1e-5)
        assert abs(loss - max(0.0, x)) <= math.log1p(math.exp(-abs(x))) + 1e-5
        xs.append(x)
        losses.append(loss)
    # beyond the kink the loss grows like ln K (slope 1 per e-fold of negatives)
    slack = sum(math.log1p(math.exp(-abs(x))) for x in xs[-2:])
    assert abs((losses[-1] - losses[-2]) - math.log(4)) <= slack
    assert losses[0] < 0.02  # below the kink: almost zero


def _equicorrelated(v: int, n: int, alpha: float, beta: float) -> torch.Tensor:
    """Unit vectors: same instance at cosine α across views, any two instances at β."""
    dim = 1 + n + v * n
    eye = torch.eye(dim)
    c, e, f = eye[0], eye[1 : 1 + n], eye[1 + n :].view(v, n, dim)
    return math.sqrt(beta) * c + math.sqrt(alpha - beta) * e[None] + math.sqrt(1 - alpha) * f


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_2_margin_through_the_public_loss(mode):
    alpha, beta, tau, v = 0.7, 0.2, 0.1, 2
    for n in [9, 65, 513]:
        z = _equicorrelated(v, n, alpha, beta)
        k = v * n - v if mode == "all" else n - 1
        loss, diag = info_nce(z, tau, mode, return_diagnostics=True)
        x = (beta + tau * math.log(k) - alpha) / tau
        assert diag.k == k
        assert float(loss) == pytest.approx(math.log1p(math.exp(x)), rel=1e-5)
        assert diag.pos_sim == pytest.approx(alpha, abs=1e-5)
        assert diag.neg_sim == pytest.approx(beta, abs=1e-5)
        assert diag.margin == pytest.approx(beta + tau * math.log(k), abs=1e-5)


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x * x, torch.ones_like(x[:, :1])], dim=1)


def _gaussian_pairs(n: int, d: int, rho: float, g: torch.Generator):
    x = torch.randn(n, d, generator=g)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g)
    return x, y


def _log_ratio(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    s2 = 1 - rho**2
    return (-((y - rho * x) ** 2) / (2 * s2) + y**2 / 2 - 0.5 * math.log(s2)).sum(-1)


def test_3_critic_recovers_density_ratio():
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    d, rho, width = 2, 0.8, 8
    f_x = torch.nn.Linear(2 * d + 1, width, bias=False)
    f_y = torch.nn.Linear(2 * d + 1, width, bias=False)
    opt = torch.optim.Adam([*f_x.parameters(), *f_y.parameters()], lr=0.03)
    for _ in range(250):
        x, y = _gaussian_pairs(128, d, rho, g)
        z = torch.stack([f_x(_quadratic(x)), f_y(_quadratic(y))])
        loss = info_nce(z, 1.0, "cross_view", normalize=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = _gaussian_pairs(2000, d, rho, g)
    y_all = torch.cat([y, y[torch.randperm(2000, generator=g)]])  # joint and product pairs
    x_all = torch.cat([x, x])
    with torch.no_grad():
        critic = (f_x(_quadratic(x_all)) * f_y(_quadratic(y_all))).sum(-1)
    truth = _log_ratio(x_all, y_all, rho)
    r = torch.corrcoef(torch.stack([critic, truth]))[0, 1]
    assert float(r) >= 0.95


def _optimal_critic_embeddings(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    """Features whose dot product is log p(y|x)/p(y) minus a constant."""
    s2 = 1 - rho**2
    a = torch.cat([rho * x / s2, -(rho**2) * x * x / (2 * s2), torch.ones_like(x)], 1)
    b = torch.cat([y, torch.ones_like(y), -(rho**2) * y * y / (2 * s2)], 1)
    return torch.stack([a, b])


@pytest.mark.parametrize("mi_per_dim,d", [(0.5, 2), (2.0, 4)])
def test_4_mutual_information_bound(mi_per_dim, d):
    g = torch.Generator().manual_seed(4)
    rho = math.sqrt(1 - math.exp(-2 * mi_per_dim))
    mi = mi_per_dim * d  # I(X; Y) = −d/2 ln(1 − ρ²)
    total = 16384
    bounds = []
    for n in [16, 128, 1024]:
        reps = total // n  # independent batches of n pairs, as one batched row problem
        x, y = _gaussian_pairs(reps * n, d, rho, g)
        z = _optimal_critic_embeddings(x, y, rho).view(2, reps, n, -1)
        pos = torch.arange(n).view(1, n, 1).expand(reps, n, 1)
        terms, _ = row_terms(z[0], z[1], pos)
        log_k = math.log(n - 1)
        bound = log_k - float(terms.mean())
        stderr = float(terms.std()) / math.sqrt(terms.numel())
        assert bound <= mi + 4 * stderr  # a lower bound, up to Monte-Carlo error
        assert bound <= log_k
        bounds.append((log_k, bound, stderr))
    assert all(b2 > b1 for (_, b1, _), (_, b2, _) in itertools.pairwise(bounds))
    # it approaches min(MI, ln K): saturated at ln K with few negatives and a large MI, and at
    # the MI with many negatives and a small MI
    for log_k, bound, stderr in bounds:
        if abs(mi - log_k) > 5:
            assert bound == pytest.approx(min(mi, log_k), abs=0.03 + 4 * stderr)
    # the diagnostic reports the same quantity for the (symmetric) public loss
    x, y = _gaussian_pairs(256, d, rho, g)
    z = _optimal_critic_embeddings(x, y, rho)
    loss, diag = info_nce(z, 1.0, "cross_view", normalize=False, return_diagnostics=True)
    assert diag.mi_bound == pytest.approx(math.log(255) - float(loss), abs=1e-6)


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_5_gradient_is_tangential_when_normalised(mode):
    torch.manual_seed(5)
    z = (torch.randn(3, 10, 6) * torch.rand(3, 10, 1) * 5).requires_grad_()
    info_nce(z, 0.1, mode).backward()
    zhat = F.normalize(z.detach(), dim=-1)
    radial = (z.grad * zhat).sum(-1)
    assert radial.abs().max() <= 1e-6 * z.grad.norm(dim=-1).max()
    # tangential part = (I − ẑẑᵀ) ∇_ẑ L / ‖z‖
    u = zhat.clone().requires_grad_()
    info_nce(u, 0.1, mode, normalize=False).backward()
    proj = u.grad - (u.grad * zhat).sum(-1, keepdim=True) * zhat
    assert torch.allclose(z.grad, proj / z.detach().norm(dim=-1, keepdim=True), atol=1e-6)
    # without normalisation there is a radial ("scaling") force
    w = z.detach().clone().requires_grad_()
    info_nce(w, 0.1, mode, normalize=False).backward()
    assert (w.grad * zhat).sum(-1).abs().max() > 1e-2 * w.grad.norm(dim=-1).max()
