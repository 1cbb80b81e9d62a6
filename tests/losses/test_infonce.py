"""The two conventions against float64 references, the module API and the options."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sciclr.errors import SciclrError
from sciclr.losses import InfoNCE, InfoNCEDiagnostics, info_nce
from tests.losses import reference


def _grad(fn, z):
    z = z.detach().clone().requires_grad_()
    loss = fn(z)
    loss.backward()
    return loss.detach(), z.grad


@pytest.mark.parametrize("v", [2, 3, 4])
@pytest.mark.parametrize("mode", ["all", "cross_view"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_float64_reference(v, mode, normalize):
    torch.manual_seed(v)
    z = torch.randn(v, 9, 6) * (1.0 if normalize else 0.4)
    ref = reference.all_views if mode == "all" else reference.cross_view
    loss, g = _grad(lambda x: info_nce(x, 0.2, mode, normalize), z)
    ref_loss, ref_g = _grad(lambda x: ref(x, 0.2, normalize), z.double())
    assert torch.allclose(loss.double(), ref_loss, rtol=1e-6, atol=0)
    assert torch.allclose(g.double(), ref_g, rtol=1e-5, atol=1e-7)


def test_two_views_are_ntxent_and_clip():
    torch.manual_seed(0)
    z = torch.randn(2, 16, 8)
    zn = F.normalize(z, dim=-1)
    labels = torch.arange(16)
    logits = zn[0] @ zn[1].T / 0.1
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(info_nce(z, 0.1, "cross_view"), clip, rtol=1e-6)
    # NT-Xent: 2N rows, positive at i ± N, self masked
    f = zn.reshape(32, 8)
    s = (f @ f.T / 0.1).masked_fill(torch.eye(32, dtype=torch.bool), float("-inf"))
    nt = F.cross_entropy(s, torch.cat([labels + 16, labels]))
    assert torch.allclose(info_nce(z, 0.1, "all"), nt, rtol=1e-6)


def test_modes_differ_for_three_views():
    z = torch.randn(3, 10, 4, generator=torch.Generator().manual_seed(1))
    assert abs(float(info_nce(z, 0.2, "all")) - float(info_nce(z, 0.2, "cross_view"))) > 1e-2


@pytest.mark.parametrize("mode", ["all", "cross_view"])
@pytest.mark.parametrize("block", [1, 5, 64])
@pytest.mark.parametrize("options", [{}, {"tau_plus": 0.1, "beta": 0.5}])
def test_chunked_equals_dense(mode, block, options):
    torch.manual_seed(2)
    z = torch.randn(3, 13, 8)
    queue = (F.normalize(torch.randn(7, 8), dim=-1), torch.arange(7) + 5)
    kw = {"queue": queue, "index": torch.arange(13), **options}  # ids 5..11 of the queue: masked
    dense, gd = _grad(lambda x: info_nce(x, 0.1, mode, chunk_size=0, **kw), z)
    chunk, gc = _grad(lambda x: info_nce(x, 0.1, mode, chunk_size=block, **kw), z)
    assert torch.allclose(dense, chunk, rtol=1e-6)
    assert torch.allclose(gd, gc, rtol=1e-5, atol=1e-7)
    _, d_dense = info_nce(z, 0.1, mode, chunk_size=0, return_diagnostics=True, **kw)
    _, d_chunk = info_nce(z, 0.1, mode, chunk_size=block, return_diagnostics=True, **kw)
    for key, value in dataclasses.asdict(d_dense).items():
        assert value == pytest.approx(dataclasses.asdict(d_chunk)[key], rel=1e-5, abs=1e-6), key


def test_chunked_with_debias_and_hard_negatives_equals_dense():
    z = torch.randn(2, 11, 8, generator=torch.Generator().manual_seed(3))
    kw = {"tau_plus": 0.1, "beta": 0.5}
    dense, gd = _grad(lambda x: info_nce(x, 0.2, chunk_size=0, **kw), z)
    chunk, gc = _grad(lambda x: info_nce(x, 0.2, chunk_size=4, **kw), z)
    assert torch.allclose(dense, chunk, rtol=1e-6)
    assert torch.allclose(gd, gc, rtol=1e-5, atol=1e-7)


def test_chunking_switches_on_automatically(monkeypatch):
    import sciclr.losses.chunked as chunked
    import sciclr.losses.infonce as core

    calls = []
    original = chunked._ChunkedRows.apply
    monkeypatch.setattr(core, "CHUNK_AUTO_BYTES", 4 * 20 * 20 - 1)
    monkeypatch.setattr(core, "CHUNK_BLOCK_BYTES", 4 * 20 * 5)
    monkeypatch.setattr(
        chunked._ChunkedRows, "apply", lambda *a: calls.append(a[1]) or original(*a)
    )
    z = torch.randn(2, 10, 4)
    auto = info_nce(z, 0.1)
    assert calls == [5]  # 20 x 20 logits exceed the limit: blocks of 5 rows
    assert torch.allclose(auto, info_nce(z, 0.1, chunk_size=0), rtol=1e-6)


@pytest.mark.parametrize("tau_plus,beta", [(0.1, 0.0), (0.0, 1.0), (0.1, 0.5)])
@pytest.mark.parametrize("v", [2, 3])
def test_debiased_and_hard_negatives_match_papers(tau_plus, beta, v):
    torch.manual_seed(4)
    z = torch.randn(v, 6, 5)
    loss, g = _grad(lambda x: info_nce(x, 0.5, tau_plus=tau_plus, beta=beta), z)
    ref, ref_g = _grad(lambda x: reference.debiased_hard(x, 0.5, tau_plus, beta), z.double())
    assert torch.allclose(loss.double(), ref, rtol=1e-6)
    assert torch.allclose(g.double(), ref_g, rtol=1e-5, atol=1e-7)


def test_debias_floor_is_active_and_matches():
    # positives far above negatives with a large tau_plus: the estimate would go negative
    z = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(5))
    z[1] = z[0] + 0.01 * z[1]
    loss = info_nce(z, 0.5, tau_plus=0.5)
    ref = reference.debiased_hard(z, 0.5, 0.5, 0.0)
    assert torch.allclose(loss.double(), ref, rtol=1e-6)


def test_queue_adds_negatives_and_masks_same_instance():
    torch.manual_seed(6)
    z = torch.randn(2, 5, 4)
    zn = F.normalize(z, dim=-1)
    extra = F.normalize(torch.randn(3, 4), dim=-1)
    # reference: the queue entries are extra instances whose views nobody anchors
    keys = torch.cat([extra, zn[0, :2]])  # the last two are older views of instances 0 and 1
    ids = torch.tensor([100, 101, 102, 0, 1])
    got = info_nce(z, 0.2, "cross_view", queue=(keys, ids), index=torch.arange(5))
    labels = torch.arange(5)
    ref = []
    for a, b in ((0, 1), (1, 0)):
        logits = torch.cat([zn[a] @ zn[b].T, zn[a] @ keys.T], 1).double() / 0.2
        logits[0, 5 + 3] = float("-inf")  # instance 0's own older view
        logits[1, 5 + 4] = float("-inf")
        ref.append(F.cross_entropy(logits, labels))
    assert torch.allclose(got.double(), torch.stack(ref).mean(), rtol=1e-6)


def test_module_queue_is_fifo_and_used():
    torch.manual_seed(7)
    loss_fn = InfoNCE(0.1, queue_size=12)
    z1, z2 = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    first = loss_fn(z1, index=torch.arange(4))
    assert len(loss_fn.queue) == 8
    assert torch.allclose(first, info_nce(z1, 0.1))
    second, diag = loss_fn(z2, index=torch.arange(4, 8), return_diagnostics=True)
    keys, ids = F.normalize(z1, dim=-1).reshape(8, 8), torch.arange(4).repeat(2)
    assert torch.allclose(second, info_nce(z2, 0.1, queue=(keys, ids), index=torch.arange(4, 8)))
    assert diag.k == 2 * 4 - 2 + 8
    # 16 pushed into 12 slots: the oldest 4 (first view of the first batch) are gone
    assert len(loss_fn.queue) == 12
    assert sorted(loss_fn.queue.negatives()[1].tolist()) == [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    loss_fn(z2, index=torch.arange(4, 8))
    q_keys, q_ids = loss_fn.queue.negatives()
    assert sorted(q_ids.tolist()) == [4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7]
    # a fresh module restores the queue from a state dict
    fresh = InfoNCE(0.1, queue_size=12)
    fresh.load_state_dict(loss_fn.state_dict())
    assert torch.equal(fresh.queue.negatives()[0], q_keys)


def test_learnable_temperature_is_clamped_and_trained():
    loss_fn = InfoNCE(0.005, learnable=True)
    assert float(loss_fn.temperature.detach()) == pytest.approx(0.01)  # 1/τ ≤ 100
    z = torch.randn(2, 8, 4, requires_grad=True)
    loss_fn(z).backward()
    assert loss_fn.log_temperature.grad is not None
    assert torch.isfinite(loss_fn.log_temperature.grad)
    fixed = InfoNCE(0.005)
    assert float(fixed.temperature) == pytest.approx(0.005)
    assert not any(p.requires_grad for p in fixed.parameters())


@pytest.mark.parametrize("mode", ["all", "cross_view"])
@pytest.mark.parametrize("v", [2, 3])
def test_temperature_gradient_matches_finite_difference(mode, v):
    z = torch.randn(v, 7, 5, generator=torch.Generator().manual_seed(8)).double()
    tau = torch.tensor(0.3, requires_grad=True)
    info_nce(z, tau, mode).backward()
    eps = 1e-3
    fd = (float(info_nce(z, 0.3 + eps, mode)) - float(info_nce(z, 0.3 - eps, mode))) / (2 * eps)
    assert float(tau.grad) == pytest.approx(fd, rel=1e-3)


@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("normalize", [True, False])
def test_cross_view_pair_path_equals_row_path(monkeypatch, v, normalize):
    """The one-product-per-pair path against the row kernel (two products per pair)."""
    import sciclr.losses.pairs as pairs

    z = torch.randn(v, 10, 6, generator=torch.Generator().manual_seed(11))
    fast, g_fast = _grad(lambda x: info_nce(x, 0.1, "cross_view", normalize), z)
    _, d_fast = info_nce(z, 0.1, "cross_view", normalize, return_diagnostics=True)
    monkeypatch.setattr(pairs, "usable", lambda *_: False)
    rows, g_rows = _grad(lambda x: info_nce(x, 0.1, "cross_view", normalize), z)
    _, d_rows = info_nce(z, 0.1, "cross_view", normalize, return_diagnostics=True)
    assert torch.allclose(fast, rows, rtol=1e-6)
    assert torch.allclose(g_fast, g_rows, rtol=1e-5, atol=1e-7)
    for key, value in dataclasses.asdict(d_fast).items():
        assert value == pytest.approx(dataclasses.asdict(d_rows)[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_unshifted_exponentials_at_their_exactness_limit(mode):
    # 1/τ + ln(columns) just below 80: the largest logit range taken without a max-shift
    z = torch.randn(2, 16, 6, generator=torch.Generator().manual_seed(12))
    z[1, :8] = -z[0, :8]  # opposite positives: rows and columns far below their maxima
    tau = 1 / (79.5 - math.log(32 if mode == "all" else 16))
    got, g = _grad(lambda x: info_nce(x, tau, mode), z)
    ref_fn = reference.all_views if mode == "all" else reference.cross_view
    ref, g_ref = _grad(lambda x: ref_fn(x, tau), z.double())
    assert float(got) == pytest.approx(float(ref), rel=1e-5)
    assert (g.double() - g_ref).norm() / g_ref.norm() < 1e-4


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_shifted_and_unshifted_kernels_agree(monkeypatch, mode):
    import sciclr.losses.pairs as pairs
    import sciclr.losses.rows as rows

    z = torch.randn(3, 12, 6, generator=torch.Generator().manual_seed(13))
    fast, g_fast = _grad(lambda x: info_nce(x, 0.05, mode), z)
    monkeypatch.setattr(rows, "exp_is_exact", lambda *_: False)
    monkeypatch.setattr(pairs, "usable", lambda *_: False)
    slow, g_slow = _grad(lambda x: info_nce(x, 0.05, mode), z)
    assert torch.allclose(fast, slow, rtol=1e-6)
    assert torch.allclose(g_fast, g_slow, rtol=1e-5, atol=1e-7)


def test_backward_twice_is_refused_not_wrong():
    z = torch.randn(2, 8, 4, requires_grad=True)
    loss = info_nce(z, 0.1, "cross_view")
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_bf16_autocast_keeps_float32_logits():
    z = torch.randn(2, 32, 16, generator=torch.Generator().manual_seed(9))
    ref, gref = _grad(lambda x: info_nce(x, 0.05), z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, g = _grad(lambda x: info_nce(x, 0.05), z)
    assert got.dtype == torch.float32
    assert torch.allclose(got, ref, rtol=1e-6)
    assert torch.allclose(g, gref, rtol=1e-5, atol=1e-7)


def test_diagnostics_values():
    torch.manual_seed(10)
    z = torch.randn(2, 6, 4)
    loss, diag = info_nce(z, 0.25, return_diagnostics=True)
    assert isinstance(diag, InfoNCEDiagnostics)
    row = dataclasses.asdict(diag)
    assert all(type(v) in (float, int) for v in row.values())
    zn = F.normalize(z, dim=-1)
    f = zn.reshape(12, 4)
    sim = f @ f.T
    inst = torch.arange(12) % 6
    same = inst[:, None] == inst[None, :]
    pos = same & ~torch.eye(12, dtype=torch.bool)
    assert diag.pos_sim == pytest.approx(float(sim[pos].mean()), abs=1e-6)
    assert diag.neg_sim == pytest.approx(float(sim[~same].mean()), abs=1e-6)
    assert diag.k == 10
    assert diag.alignment == pytest.approx(float((zn[0] - zn[1]).pow(2).sum(-1).mean()), rel=1e-5)
    d2 = torch.cdist(zn[0], zn[0]).pow(2)
    off = ~torch.eye(6, dtype=torch.bool)
    assert diag.uniformity == pytest.approx(float(torch.exp(-2 * d2[off]).mean().log()), rel=1e-5)
    assert diag.mi_bound == pytest.approx(float(torch.log(torch.tensor(10.0))) - float(loss))
    assert diag.margin == pytest.approx(diag.neg_sim + 0.25 * float(torch.log(torch.tensor(10.0))))
    assert diag.temperature == pytest.approx(0.25)
    _, cross = info_nce(z, 0.25, "cross_view", return_diagnostics=True)
    assert cross.k == 5


@pytest.mark.parametrize(
    "z,kwargs,match",
    [
        (torch.randn(1, 4, 3), {}, "positive"),
        (torch.randn(4, 3), {}, "shape"),
        (torch.randn(2, 1, 3), {}, "no negatives"),
        (torch.randn(2, 4, 3), {"mode": "pairs"}, "mode"),
        (torch.randn(2, 4, 3), {"temperature": 0.0}, "temperature"),
        (torch.randn(2, 4, 3), {"tau_plus": 1.0}, "tau_plus"),
    ],
)
def test_bad_input_raises_clear_error(z, kwargs, match):
    with pytest.raises(SciclrError, match=match):
        info_nce(z, **kwargs)
