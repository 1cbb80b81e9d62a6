"""Data-parallel plumbing: process group from torchrun's environment, batch sharding,
synchronised BatchNorm, and cross-rank reductions.

Sharding is stateless: every rank computes the same global batch (positions into the train
items, from :func:`sciclr.train.seeding.epoch_order`) and keeps the contiguous slice
``[rank * B/W, (rank + 1) * B/W)``. So the union of the ranks' items at a step is exactly the
single-process batch, whatever the world size.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "DistContext",
    "all_reduce_mean",
    "any_rank",
    "convert_sync_batchnorm",
    "global_slice",
    "init_distributed",
    "launched_by_torchrun",
    "shard",
    "shutdown_distributed",
]


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True inside a worker started by ``torchrun`` (it exports RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group described by torchrun's environment (NCCL on CUDA, gloo on CPU);
    a single-process context when not launched by torchrun."""
    if not launched_by_torchrun():
        return DistContext()
    ctx = DistContext(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    )
    if ctx.world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            bind = "device_id" in inspect.signature(dist.init_process_group).parameters
            dist.init_process_group("nccl", **({"device_id": device} if bind else {}))
        else:
            dist.init_process_group("gloo")
    return ctx


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(global_batch: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous slice of ``global_batch`` (its length must divide by the world)."""
    n = global_batch.shape[0] // ctx.world_size
    return global_batch[ctx.rank * n : (ctx.rank + 1) * n]


def global_slice(n_local: int) -> tuple[int, int]:
    """``(start, n_global)`` of this rank's items within the global batch.

    For models whose views must not depend on the world size: draw the random numbers for
    ``n_global`` items from the step generator (identical on every rank for such models) and
    keep rows ``start : start + n_local``. In a single process this is ``(0, n_local)``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() * n_local, dist.get_world_size() * n_local
    return 0, n_local


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (identity in a single process); no autograd."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is set on any rank: all ranks stop at the same step on a signal."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks with autograd: every rank's output is the same sum, so the gradient of a
    rank's input is the sum of all ranks' output gradients (again an all-reduce)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlooSyncBatchNorm(_BatchNorm):
    """BatchNorm whose batch statistics are computed over all ranks, for CPU process groups.

    ``torch.nn.SyncBatchNorm`` only runs on accelerators; this is the same computation with
    autograd-aware all-reduces (the gradient of a sum over ranks is the sum of the ranks'
    gradients), two-pass for the variance. Outside training or without a process group it is
    plain BatchNorm. Parameter and buffer names equal BatchNorm's, so state dicts interchange.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        syncing = (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        )
        if not syncing:
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([float(input.numel() // input.shape[1])], dtype=torch.float64)
        dist.all_reduce(count)
        n = float(count.item())
        x = input.float()
        mean = _AllReduceSum.apply(x.sum(dims)) / n
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm (also those nested in e.g. PyG's ``BatchNorm``) with a
    synchronised one: ``torch.nn.SyncBatchNorm`` on accelerators, :class:`GlooSyncBatchNorm`
    on CPU. Parameters and running statistics are carried over."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(
        module, (nn.SyncBatchNorm, GlooSyncBatchNorm)
    ):
        new = GlooSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module
