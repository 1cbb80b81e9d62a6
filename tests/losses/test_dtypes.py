"""Precision of the loss: float32 floor, float64 kept on every path (gradcheck applies).

Numerics rule: the loss computes in float32, or in the input's dtype when it is wider; bf16 /
fp16 inputs (and bf16 autocast) give float32 arithmetic, float64 inputs float64 arithmetic and
a float64 loss, through the dense rows, the debiased / hard-negative rows, the ``cross_view``
pair path, the chunked path, the queue and the diagnostics.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import sciclr.losses.infonce as core
import sciclr.losses.pairs as pairs
import sciclr.losses.rows as rows
from sciclr.losses import InfoNCE, info_nce
from tests.losses import reference

F64 = torch.float64

# every code path of the loss; "shifted" forces the row-max-shifted softmax kernels
PATHS = {
    "dense": {},
    "chunked": {"chunk_size": 4},
    "queue": {"queue": True},
    "queue+chunked": {"queue": True, "chunk_size": 5},
    "debiased+hard": {"tau_plus": 0.1, "beta": 0.5},
    "debiased+hard+chunked": {"tau_plus": 0.1, "beta": 0.5, "chunk_size": 3},
    "shifted": {"shifted": True},
}


def _z(v: int, n: int, d: int, seed: int, dtype=F64) -> torch.Tensor:
    return torch.randn(v, n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _queue(n: int, d: int, dtype=F64) -> tuple[torch.Tensor, torch.Tensor]:
    """Five queue keys; ids 1 and 3 are older views of instances 1 and 3 (masked)."""
    keys = F.normalize(torch.randn(5, d, generator=torch.Generator().manual_seed(99)), dim=-1)
    return keys.to(dtype), torch.tensor([100, 1, 101, 3, 102])


def _loss_fn(mode: str, normalize: bool, opts: dict, monkeypatch, n: int, d: int, tau=0.3):
    kw = {k: v for k, v in opts.items() if k not in ("queue", "shifted")}
    if opts.get("queue"):
        kw["queue"] = _queue(n, d)
        kw["index"] = torch.arange(n)
    if opts.get("shifted"):
        monkeypatch.setattr(rows, "exp_is_exact", lambda *_: False)
        monkeypatch.setattr(pairs, "usable", lambda *_: False)
    return lambda x: info_nce(x, tau, mode, normalize, **kw)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_gradcheck_float64(mode, normalize, path, monkeypatch):
    v, n, d = 3, 6, 4
    z = (_z(v, n, d, seed=1) * (1.0 if normalize else 0.6)).requires_grad_()
    fn = _loss_fn(mode, normalize, PATHS[path], monkeypatch, n, d)
    assert fn(z).dtype == F64
    assert gradcheck(fn, (z,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_gradcheck_float64_two_views_pair_path_and_temperature(mode):
    """V = 2 takes the two-view shortcut of the pair kernel; τ as a tensor gets a gradient."""
    z = _z(2, 7, 5, seed=2).requires_grad_()
    tau = torch.tensor(0.25, dtype=F64, requires_grad=True)
    assert gradcheck(lambda x, t: info_nce(x, t, mode), (z, tau), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_float64_module_with_learnable_temperature_and_queue():
    loss_fn = InfoNCE(0.2, learnable=True, queue_size=8).double()
    loss_fn(_z(2, 4, 5, seed=3), index=torch.arange(4))  # fills the queue (float64 keys)
    assert loss_fn.queue.keys.dtype == F64
    loss_fn.eval()  # no enqueue between gradcheck's evaluations
    z = _z(2, 4, 5, seed=4).requires_grad_()
    assert gradcheck(lambda x: loss_fn(x, index=torch.arange(4, 8)), (z,), eps=1e-6, atol=1e-7)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("mode", ["all", "cross_view"])
@pytest.mark.parametrize("variant", ["dense", "chunked", "rows", "shifted"])
def test_float64_matches_reference_to_1e9(mode, normalize, v, variant, monkeypatch):
    z = _z(v, 9, 6, seed=v) * (1.0 if normalize else 0.4)
    kw = {"chunk_size": 4} if variant == "chunked" else {}
    if variant in ("rows", "shifted"):  # cross_view through the row kernel
        monkeypatch.setattr(pairs, "usable", lambda *_: False)
    if variant == "shifted":
        monkeypatch.setattr(rows, "exp_is_exact", lambda *_: False)
    ref_fn = reference.all_views if mode == "all" else reference.cross_view
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    got = info_nce(z1, 0.2, mode, normalize, **kw)
    ref = ref_fn(z2, 0.2, normalize)
    got.backward()
    ref.backward()
    assert got.dtype == F64
    assert abs(float(got.detach()) - float(ref.detach())) <= 1e-9 * abs(float(ref.detach()))
    assert _rel(z1.grad, z2.grad) <= 1e-9


@pytest.mark.parametrize("chunk", [0, 4])
@pytest.mark.parametrize("tau_plus,beta", [(0.1, 0.0), (0.0, 1.0), (0.1, 0.5)])
def test_float64_debiased_hard_matches_reference_to_1e9(tau_plus, beta, chunk):
    z = _z(3, 6, 5, seed=4)
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    got = info_nce(z1, 0.5, tau_plus=tau_plus, beta=beta, chunk_size=chunk)
    ref = reference.debiased_hard(z2, 0.5, tau_plus, beta)
    got.backward()
    ref.backward()
    assert got.dtype == F64
    assert abs(float(got.detach()) - float(ref.detach())) <= 1e-9 * abs(float(ref.detach()))
    assert _rel(z1.grad, z2.grad) <= 1e-9


@pytest.mark.parametrize("mode", ["all", "cross_view"])
@pytest.mark.parametrize("chunk", [0, 3])
def test_float64_queue_matches_reference_to_1e9(mode, chunk):
    """Queue entries as extra negatives nobody anchors; an instance's own older views masked."""
    v, n, d, tau = 2, 5, 4, 0.2
    z = _z(v, n, d, seed=6)
    keys, ids = _queue(n, d)
    got = info_nce(z, tau, mode, queue=(keys, ids), index=torch.arange(n), chunk_size=chunk)
    zn = F.normalize(z, dim=-1)
    own = ids[None, :] == torch.arange(n)[:, None]  # (n, q)
    terms = []
    for a in range(v):
        for i in range(n):
            if mode == "all":
                cols = [(u, j) for u in range(v) for j in range(n) if (u, j) != (a, i)]
            else:
                cols = [(b, j) for b in range(v) if b != a for j in range(n)]
            s = torch.stack([zn[a, i] @ zn[u, j] for u, j in cols] + list(keys @ zn[a, i])) / tau
            s = torch.where(torch.cat([torch.zeros(len(cols), dtype=bool), own[i]]), -math.inf, s)
            for p, (_, j) in enumerate(cols):
                if j == i:
                    terms.append(torch.logsumexp(s, 0) - s[p])
    ref = torch.stack(terms).mean()
    assert got.dtype == F64
    assert abs(float(got) - float(ref)) <= 1e-9 * float(ref)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_float64_in_float64_out_with_float64_diagnostics(mode, path, monkeypatch):
    v, n, d = 3, 6, 4
    z = _z(v, n, d, seed=7)
    fn = _loss_fn(mode, True, PATHS[path], monkeypatch, n, d)
    z_leaf = z.clone().requires_grad_()
    loss = fn(z_leaf)
    loss.backward()
    assert loss.dtype == F64 and z_leaf.grad.dtype == F64
    kw = {k: v for k, v in PATHS[path].items() if k not in ("queue", "shifted")}
    if PATHS[path].get("queue"):
        kw |= {"queue": _queue(n, d), "index": torch.arange(n)}
    loss2, diag = info_nce(z, 0.3, mode, return_diagnostics=True, **kw)
    assert loss2.dtype == F64
    # the statistics are float64: the positive similarity is exact to float64 rounding
    zn = F.normalize(z, dim=-1)
    pairs_ = [(a, b) for a in range(v) for b in range(v) if a != b]
    pos = torch.stack([(zn[a] * zn[b]).sum(-1) for a, b in pairs_]).mean()
    assert diag.pos_sim == pytest.approx(float(pos), rel=1e-12, abs=1e-13)
    assert diag.mi_bound == pytest.approx(math.log(diag.k) - float(loss2), rel=0, abs=1e-12)
    assert diag.alignment == pytest.approx(
        float(torch.stack([(zn[a] - zn[b]).pow(2).sum(-1) for a, b in pairs_]).mean()), rel=1e-12
    )


def test_float32_queue_widens_to_float64_keeping_its_entries():
    loss_fn = InfoNCE(0.1, queue_size=10)
    loss_fn(_z(2, 3, 4, seed=8, dtype=torch.float32), index=torch.arange(3))
    first = loss_fn.queue.negatives()[0].clone()
    assert first.dtype == torch.float32
    loss_fn(_z(2, 2, 4, seed=9), index=torch.arange(3, 5))
    keys = loss_fn.queue.negatives()[0]
    assert keys.dtype == F64 and len(loss_fn.queue) == 10
    assert torch.equal(keys[:6], first.double())  # the float32 entries survive, widened
    loss_fn(_z(2, 2, 4, seed=10, dtype=torch.float32), index=torch.arange(5, 7))
    assert loss_fn.queue.keys.dtype == F64  # never narrowed again


def _spy(monkeypatch) -> list[torch.dtype]:
    """Record the dtype each kernel (row terms, pair terms) computes in."""
    seen: list[torch.dtype] = []
    row_terms, pair_terms = core.row_terms, pairs.pair_terms

    def rows_spy(R, K, *a, **k):
        out = row_terms(R, K, *a, **k)
        seen.append(out[0].dtype)
        assert R.dtype == K.dtype == out[0].dtype
        return out

    def pairs_spy(z, *a, **k):
        seen.append(z.dtype)
        return pair_terms(z, *a, **k)

    monkeypatch.setattr(core, "row_terms", rows_spy)
    monkeypatch.setattr(pairs, "pair_terms", pairs_spy)
    return seen


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_half_precision_input_under_autocast_computes_in_float32(mode, path, dtype, monkeypatch):
    n, d = 8, 6
    z16 = _z(3, n, d, seed=11, dtype=torch.float32).to(dtype)
    fn = _loss_fn(mode, True, PATHS[path], monkeypatch, n, d)
    ref_leaf = z16.float().requires_grad_()
    ref = fn(ref_leaf)  # the same values in float32 without autocast
    ref.backward()
    seen = _spy(monkeypatch)
    leaf = z16.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fn(leaf)
    got.backward()
    assert seen and set(seen) == {torch.float32}
    assert got.dtype == torch.float32
    assert torch.allclose(got, ref, rtol=1e-6, atol=0)  # bf16 logits would be ~1e-2 off
    assert leaf.grad.dtype == dtype
    assert torch.equal(leaf.grad, ref_leaf.grad.to(dtype))


@pytest.mark.parametrize("mode", ["all", "cross_view"])
def test_float32_stays_float32(mode, monkeypatch):
    seen = _spy(monkeypatch)
    loss, diag = info_nce(_z(2, 8, 4, seed=12, dtype=torch.float32), 0.1, mode, True,
                          return_diagnostics=True)  # fmt: skip
    assert loss.dtype == torch.float32 and set(seen) == {torch.float32}
    assert all(type(x) in (float, int) for x in dataclasses.asdict(diag).values())


def test_automatic_chunking_counts_float64_logits_as_eight_bytes(monkeypatch):
    import sciclr.losses.chunked as chunked

    calls = []
    original = chunked._ChunkedRows.apply
    monkeypatch.setattr(core, "CHUNK_AUTO_BYTES", 4 * 20 * 20)  # 20 x 20 float32 logits fit
    monkeypatch.setattr(core, "CHUNK_BLOCK_BYTES", 8 * 20 * 5)
    monkeypatch.setattr(
        chunked._ChunkedRows, "apply", lambda *a: calls.append(a[1]) or original(*a)
    )
    z = _z(2, 10, 4, seed=13)
    info_nce(z.float(), 0.1)
    assert calls == []  # float32: dense
    auto = info_nce(z, 0.1)
    assert calls == [5]  # float64: twice the bytes, blocks of 5 rows
    assert auto.dtype == F64
    assert abs(float(auto) - float(info_nce(z, 0.1, chunk_size=0))) <= 1e-12
