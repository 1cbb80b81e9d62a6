"""Two CPU processes (gloo): global-batch negatives with exact gradients, and the BatchNorm trap.

The two ranks are spawned once per module (a few seconds) and do the work of every test here.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sciclr.losses import InfoNCE, info_nce
from sciclr.train.distributed import GlooSyncBatchNorm
from tests.losses._dist import run_ranks

V, N, D_IN, D = 2, 12, 8, 6
CASES = [("all", {}), ("cross_view", {}), ("all", {"tau_plus": 0.1, "beta": 0.5})]


def _model(norm: str) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(D_IN, 16)]
    if norm == "bn":
        layers.append(nn.BatchNorm1d(16))
    elif norm == "sync":
        layers.append(GlooSyncBatchNorm(16))  # the engine's synced BN for CPU process groups
    layers += [nn.ReLU(), nn.Linear(16, D)]
    return nn.Sequential(*layers)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(V, N, D, generator=g), torch.randn(V, N, D_IN, generator=g)


def _embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    v, n, _ = x.shape
    return model(x.reshape(v * n, -1)).view(v, n, -1)


def _grad_worker(rank: int, world: int) -> dict:
    z, _ = _inputs()
    lo, hi = rank * N // world, (rank + 1) * N // world
    out: dict = {}
    for mode, opts in CASES:
        mine = z[:, lo:hi].clone().requires_grad_()
        tau = torch.tensor(0.2, requires_grad=True)
        loss = info_nce(mine, tau, mode, **opts)
        loss.backward()
        dist.all_reduce(tau.grad)  # what DDP does to a parameter's gradient (sum, then / world)
        out[mode, tuple(opts)] = (loss.detach(), mine.grad, tau.grad / world)
    # unequal batches: rank 0 holds 7 instances, rank 1 holds 5
    cut = 7
    part = z[:, :cut] if rank == 0 else z[:, cut:]
    out["uneven"] = (info_nce(part, 0.2), part.shape[1])
    # queue under DDP: every rank enqueues the gathered global batch
    module = InfoNCE(0.2, queue_size=64)
    module(z[:, lo:hi], index=torch.arange(lo, hi))
    out["queue"] = module.queue.negatives()
    return out


def _worker(rank: int, world: int) -> dict:
    return {"grad": _grad_worker(rank, world), "ddp": _ddp_worker(rank, world)}


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return run_ranks(_worker, tmp_path_factory.mktemp("ranks"))


def test_global_batch_gradients_match_single_process(ranks):
    ranks = [r["grad"] for r in ranks]
    z, _ = _inputs()
    for mode, opts in CASES:
        key = (mode, tuple(opts))
        zz = z.clone().requires_grad_()
        tau = torch.tensor(0.2, requires_grad=True)
        loss = info_nce(zz, tau, mode, **opts)
        loss.backward()
        rank_losses = torch.stack([r[key][0] for r in ranks])
        # the loss is the mean over this rank's anchors (not scaled by the world size)
        assert torch.allclose(rank_losses.mean(), loss.detach(), atol=1e-6)
        # rank gradient = Σ_ranks ∂L_rank/∂z_local; DDP's average divides by the world size
        grad = torch.cat([r[key][1] for r in ranks], dim=1) / 2
        assert (grad - zz.grad).abs().max() <= 1e-6, key
        assert abs(float(ranks[0][key][2]) - float(tau.grad)) <= 1e-6
        assert torch.equal(ranks[0][key][2], ranks[1][key][2])
    (l0, n0), (l1, n1) = ranks[0]["uneven"], ranks[1]["uneven"]
    assert (n0, n1) == (7, 5)
    assert torch.allclose((l0 * n0 + l1 * n1) / N, info_nce(z, 0.2), atol=1e-6)
    keys0, ids0 = ranks[0]["queue"]
    keys1, ids1 = ranks[1]["queue"]
    assert torch.equal(keys0, keys1) and torch.equal(ids0, ids1)
    assert torch.allclose(keys0, nn.functional.normalize(z, dim=-1).reshape(V * N, D))
    assert torch.equal(ids0, torch.arange(N).repeat(V))


def _ddp_worker(rank: int, world: int) -> dict:
    _, x = _inputs()
    lo, hi = rank * N // world, (rank + 1) * N // world
    out = {}
    for norm in ("none", "bn", "sync"):
        model = DistributedDataParallel(_model(norm))
        loss = InfoNCE(0.1)(_embed(model, x[:, lo:hi]))
        loss.backward()
        out[norm] = [p.grad.clone() for p in model.parameters()]
    return out


def _single_process_grads(norm: str) -> list[torch.Tensor]:
    _, x = _inputs()
    model = _model(norm)
    if norm == "sync":  # one process: the global batch is the local batch
        model = copy.deepcopy(_model("bn"))
    InfoNCE(0.1)(_embed(model, x)).backward()
    return [p.grad for p in model.parameters()]


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest gradient difference relative to the largest gradient entry (float32 rounding)."""
    scale = max(float(y.abs().max()) for y in b)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True)) / scale


def test_ddp_matches_global_batch_and_per_rank_batchnorm_does_not(ranks):
    ranks = [r["ddp"] for r in ranks]
    for norm in ("none", "bn", "sync"):
        assert _max_diff(ranks[0][norm], ranks[1][norm]) == 0.0  # DDP keeps ranks in step
    assert _max_diff(ranks[0]["none"], _single_process_grads("none")) <= 1e-6
    # per-rank BatchNorm normalises each half with its own statistics: a different model
    assert _max_diff(ranks[0]["bn"], _single_process_grads("bn")) > 1e-3
    # synchronised BatchNorm restores the global-batch gradients
    assert _max_diff(ranks[0]["sync"], _single_process_grads("sync")) <= 1e-6
