"""The training loop: sharded batches, AMP, clipping, per-step schedule, metrics, per-epoch
val selection and checkpoints, graceful stop on signals, exact resume.

Every random stream is derived from ``(seed, epoch)`` or ``(seed, step, rank)``
(:mod:`sciclr.train.seeding`), so resuming at step ``s`` replays exactly what the uninterrupted
run did from ``s`` on: same batches, same views, same dropout masks.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sciclr.domains.base import ContrastiveModel, DataSource
from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch, write_table
from sciclr.train.allocator import trim_heap
from sciclr.train.checkpoint import (
    CHECKPOINT_FORMAT,
    load_resume,
    model_state,
    save_resume,
)
from sciclr.train.config import TrainConfig
from sciclr.train.device import resolve_amp
from sciclr.train.distributed import (
    DistContext,
    all_reduce_mean,
    any_rank,
    convert_sync_batchnorm,
    shard,
)
from sciclr.train.evaluate import Evaluation
from sciclr.train.objective import Objective, check_global_negatives
from sciclr.train.profiling import DataPathProfiler
from sciclr.train.progress import MetricsLog, Progress, TensorBoardLogger
from sciclr.train.schedule import warmup_cosine
from sciclr.train.seeding import (
    capture_rng_state,
    derive_seed,
    epoch_order,
    restore_rng_state,
    step_generator,
)
from sciclr.train.signals import StopRequest, TrainingInterrupted

__all__ = ["Plan", "TrainResult", "Trainer", "plan_steps"]

Evaluator = Callable[[ContrastiveModel], Evaluation]

LAST, FINAL, METRICS = "last.pt", "checkpoint.pt", "metrics.csv"


@dataclass(frozen=True)
class Plan:
    """Batch geometry: global batch ``batch_size`` = ``world_size`` × local batch."""

    n_train: int
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def plan_steps(n_train: int, tcfg: TrainConfig, world_size: int) -> Plan:
    """Clamp the global batch to the train size (a multiple of the world size) and count steps.

    The last incomplete batch of an epoch is dropped: a smaller batch has fewer negatives, which
    changes the loss's scale (its lower bound is ``-ln K``).
    """
    batch = min(tcfg.batch_size, n_train) // world_size * world_size
    if batch < 2 or batch // world_size < 1:
        raise SciclrError(
            f"train split has {n_train} items: too few for a batch of >= 2 on {world_size} process(es)"
        )
    spe = n_train // batch
    total = tcfg.epochs * spe
    if tcfg.max_steps is not None:
        total = min(total, tcfg.max_steps)
    warmup = min(round(tcfg.warmup_epochs * spe), total)
    return Plan(n_train, batch, spe, total, warmup)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did; ``summary`` is what goes into ``train_summary.json``."""

    finished: bool
    noop: bool
    summary: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Trains ``model`` with InfoNCE on ``source[train_idx]`` and writes into ``out_dir``.

    ``model`` must already be initialised (seeded by the caller) and identical on every rank.
    Files (rank 0 only): the resume state ``resume`` (default ``out_dir/last.pt``: model,
    optimizer, RNG states and the best val epoch's weights so far) each epoch and on a stop
    signal, ``metrics.csv`` with it, ``checkpoint.pt`` at the end; TensorBoard event files in
    ``tensorboard_dir`` (default ``out_dir/tensorboard``) when ``tcfg.tensorboard``.
    """

    def __init__(
        self,
        *,
        model: ContrastiveModel,
        loss: nn.Module,
        source: DataSource,
        train_idx: torch.Tensor,
        tcfg: TrainConfig,
        device: torch.device,
        ctx: DistContext,
        out_dir: str | Path,
        run_fingerprint: str,
        cfg: Mapping[str, Any],
        evaluator: Evaluator | None = None,
        stream: TextIO | None = None,
        resume: str | Path | None = None,
        tensorboard_dir: str | Path | None = None,
    ) -> None:
        self.model, self.loss, self.source = model, loss, source
        self.train_idx = torch.as_tensor(train_idx, dtype=torch.int64)
        self.tcfg, self.device, self.ctx = tcfg, device, ctx
        self.out = Path(out_dir)
        self.resume_path = Path(resume) if resume is not None else self.out / LAST
        self.tensorboard_dir = (
            Path(tensorboard_dir) if tensorboard_dir is not None else self.out / "tensorboard"
        )
        self.fingerprint, self.cfg = run_fingerprint, dict(cfg)
        self.evaluator = evaluator
        self.plan = plan_steps(len(self.train_idx), tcfg, ctx.world_size)
        self.amp_dtype = resolve_amp(tcfg.amp, device)
        self.progress = Progress(
            self.plan.total_steps,
            self.plan.steps_per_epoch,
            0,
            tcfg.log_every,
            stream,
            enabled=ctx.is_main,
        )

    # -- setup -------------------------------------------------------------------------------

    def _build(self) -> None:
        tcfg = self.tcfg
        self.model.to(self.device).train()
        self.loss.to(self.device).train()
        if self.ctx.distributed:
            self.model = convert_sync_batchnorm(self.model, self.device)
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        no_decay += [p for p in self.loss.parameters() if p.requires_grad]
        self.params = decay + no_decay
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": tcfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=tcfg.lr,
        )
        self.scheduler = warmup_cosine(
            self.optimizer, self.plan.warmup_steps, self.plan.total_steps
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )

    def _wrap(self) -> nn.Module:
        self.negatives = check_global_negatives(self.loss, self.tcfg, self.device)
        net = torch.compile(self.model) if self.tcfg.compile else self.model
        objective = Objective(net, self.loss, self.device, self.amp_dtype)
        if not self.ctx.distributed:
            return objective
        # BatchNorm statistics are synchronised, the loss's queue is filled from the global
        # batch: no buffer needs rank 0's copy at every forward
        key = (
            "forward_sync_buffers"
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else "broadcast_buffers"
        )
        return DistributedDataParallel(
            objective,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            **{key: False},
        )

    def _resume_state(self, step: int) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "step": step,
            "total_steps": self.plan.total_steps,
            "world_size": self.ctx.world_size,
            "model": model_state(self.model),
            "loss": {k: v.detach().cpu() for k, v in self.loss.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
            "metrics": self.metrics.state(),
            "evaluations": list(self.evaluations),
            "best": dict(self.best) if self.best else None,
            "best_model": self.best_model,
            "train_seconds": self.train_seconds,
        }

    def _load_state(self, state: Mapping[str, Any]) -> int:
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.metrics = MetricsLog.from_state(state["metrics"])
        self.metrics.truncate(int(state["step"]))
        self.evaluations = list(state["evaluations"])
        self.best = dict(state["best"]) if state["best"] else None
        self.best_model = state["best_model"]
        self.train_seconds = float(state["train_seconds"])
        return int(state["step"])

    # -- files -------------------------------------------------------------------------------

    def _save_progress(self, step: int) -> None:
        if not self.ctx.is_main:
            return
        save_resume(self.resume_path, self._resume_state(step))
        write_table(self.out / METRICS, self.metrics.frame())

    def _evaluate(self, epoch: int, step: int) -> None:
        if not self.ctx.is_main or self.evaluator is None:
            return
        result = self.evaluator(self.model)
        self.evaluations.append(
            {"epoch": epoch, "step": step, "metric": result.name, "value": result.value}
        )
        self.progress.message(f"epoch {epoch}: {result.name} = {result.value:.4f}")
        if self.tb is not None:
            self.tb.log_eval(epoch, result.name, result.value)
        if self.tcfg.select_on_val and result.better_than(self.best and self.best["value"]):
            self.best = {"epoch": epoch, "step": step, "metric": result.name, "value": result.value}
            self.best_model = model_state(self.model)  # kept in the resume state

    def _finalize(self, last_step: int) -> dict[str, Any]:
        """Write ``checkpoint.pt`` (best val epoch or last) and return the selection record."""
        last_epoch = math.ceil(last_step / self.plan.steps_per_epoch)
        if self.tcfg.select_on_val and self.best is not None:
            state = self.best_model
            selection = {
                "epoch": self.best["epoch"],
                "step": self.best["step"],
                "metric": self.best["metric"],
                "value": self.best["value"],
                "rule": "best val epoch",
            }
        else:
            state = model_state(self.model)
            reason = "select_on_val is off" if not self.tcfg.select_on_val else "no val evaluation"
            selection = {
                "epoch": last_epoch,
                "step": last_step,
                "metric": None,
                "value": None,
                "rule": f"last epoch ({reason})",
            }
        save_torch(
            self.out / FINAL,
            {
                "format": CHECKPOINT_FORMAT,
                "model": state,
                "cfg": self.cfg,
                "fingerprint": self.fingerprint,
                "epoch": selection["epoch"],
                "step": selection["step"],
                "selection": selection,
                "world_size": self.ctx.world_size,
            },
        )
        return selection

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train (resuming from ``last.pt`` when it belongs to this run) and finalise."""
        plan, tcfg, ctx = self.plan, self.tcfg, self.ctx
        self.out.mkdir(parents=True, exist_ok=True)
        self._build()
        self.metrics, self.evaluations, self.best = MetricsLog(), [], None
        self.best_model: dict[str, torch.Tensor] | None = None
        self.train_seconds = 0.0
        state = load_resume(self.resume_path, self.fingerprint)
        start = self._load_state(state) if state is not None else 0
        if start >= plan.total_steps and (self.out / FINAL).exists():
            if load_torch(self.out / FINAL).get("fingerprint") == self.fingerprint:
                self.progress.message(
                    f"{self.out / FINAL} is complete for this config: nothing to do"
                )
                return TrainResult(finished=True, noop=True)

        self.tb = (
            TensorBoardLogger.create(self.tensorboard_dir, self.progress)
            if tcfg.tensorboard and ctx.is_main
            else None
        )
        objective = self._wrap()
        amp = str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off"
        self.progress.message(
            f"device {self.device}, {ctx.world_size} process(es), amp {amp}, "
            f"{plan.n_train} train items, global batch {plan.batch_size}, "
            f"{plan.steps_per_epoch} steps/epoch, {plan.total_steps} steps, negatives from "
            f"{self.negatives}" + (f"; resuming after step {start}" if start else "")
        )
        view_rank = 0 if getattr(self.model, "global_batch_views", False) else ctx.rank
        profiler = DataPathProfiler(
            start + 2 if plan.total_steps - start > 2 else start + 1,
            tcfg.profile_steps,
        )
        max_norm = tcfg.grad_clip if tcfg.grad_clip else math.inf
        local_n = plan.batch_size // ctx.world_size
        step_times: list[float] = []
        data_times: list[float] = []
        order_epoch, order = -1, torch.empty(0, dtype=torch.int64)
        t_loop = time.perf_counter()
        # the ETA counts from the first step after the profiled window
        self.progress.begin(start, profiler.last + 1 if profiler.enabled else None)
        # a mapped payload's pages that a step read leave the resident set after its gather:
        # random batches touch every page within an epoch's first steps, so otherwise RSS
        # grows with the data (sciclr.memory.release_mapped_pages: about 5 ms a step, the
        # re-mapping included, against 0.7 s a step of 16x the bundled crystals on 2 cores)
        release = getattr(self.source, "release_pages", None)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        with StopRequest() as stop:
            for step in range(start, plan.total_steps):
                epoch = step // plan.steps_per_epoch
                if epoch != order_epoch:
                    order_epoch, order = epoch, epoch_order(plan.n_train, tcfg.seed, epoch)
                pos = step % plan.steps_per_epoch
                local = shard(order[pos * plan.batch_size : (pos + 1) * plan.batch_size], ctx)
                assert local.numel() == local_n
                t0 = time.perf_counter()
                with profiler.step(step + 1):
                    rows = self.train_idx[local]
                    with profiler.batch():
                        batch = self.source.batch(rows, self.device)
                        if release is not None:  # the batch is a copy: see release_pages
                            release()
                    sync()
                    t_data = time.perf_counter() - t0
                    generator = step_generator(tcfg.seed, step, view_rank, self.device)
                    torch.manual_seed(derive_seed(tcfg.seed, "torch", step, ctx.rank))
                    loss, diag = objective(batch, generator, rows.to(self.device))
                    if not torch.isfinite(loss):
                        raise SciclrError(
                            f"training diverged: loss {float(loss)} at step {step + 1}; "
                            "lower train.lr or raise train.temperature"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
                    lr = self.scheduler.get_last_lr()[0]
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.scheduler.step()
                    diag_d = {k: float(v) for k, v in asdict(diag).items()}
                    reduced = all_reduce_mean(
                        torch.tensor(
                            [float(loss.detach()), float(grad_norm), *diag_d.values()],
                            dtype=torch.float64,
                            device=self.device,
                        )
                    ).tolist()
                profiler.after_step(step + 1)
                trim_heap()  # batches of changing width: see sciclr.train.allocator
                t_step = time.perf_counter() - t0
                step_times.append(t_step)
                data_times.append(t_data)
                done = step + 1
                row = {
                    "step": done,
                    "epoch": epoch + 1,
                    "loss": reduced[0],
                    "lr": lr,
                    "temperature": diag_d.get("temperature", tcfg.temperature),
                }
                row.update({k: v for k, v in zip(diag_d, reduced[2:], strict=True) if k not in row})
                row.update(
                    {
                        "grad_norm": reduced[1],
                        "samples_per_s": plan.batch_size / t_step,
                        "data_time_frac": t_data / t_step,
                    }
                )
                self.metrics.append(row)
                self.progress.update(done, row)
                if self.tb is not None:
                    self.tb.log(done, row)
                self.train_seconds += t_step
                end_of_epoch = done % plan.steps_per_epoch == 0 or done == plan.total_steps
                if end_of_epoch:
                    if tcfg.eval_every and (
                        (epoch + 1) % tcfg.eval_every == 0 or done == plan.total_steps
                    ):
                        self._evaluate(epoch + 1, done)
                    self._save_progress(done)
                if any_rank(stop.requested, self.device):
                    if not end_of_epoch:
                        self._save_progress(done)
                    profiler.finish()
                    self.progress.close()
                    raise TrainingInterrupted(stop.signum or 15, done)
        profiler.finish()
        self.progress.close()
        loop_s = time.perf_counter() - t_loop
        if 0 < plan.total_steps <= start:  # finished before, but checkpoint.pt is missing
            self.progress.message("resume state is complete: writing the final checkpoint")
        selection = self._finalize(plan.total_steps) if ctx.is_main else {}
        if self.tb is not None:
            self.tb.close()
        steady = step_times[1:] if len(step_times) > 1 else step_times
        summary = {
            "device": str(self.device),
            "world_size": ctx.world_size,
            "amp": amp,
            "compile": tcfg.compile,
            "negatives": self.negatives,
            "n_train": plan.n_train,
            "global_batch_size": plan.batch_size,
            "steps_per_epoch": plan.steps_per_epoch,
            "total_steps": plan.total_steps,
            "resumed_from_step": start,
            "steps_this_run": len(step_times),
            "wall_time_s": loop_s,
            "train_time_s_all_runs": self.train_seconds,
            "samples_per_s": (plan.batch_size * len(steady) / sum(steady)) if steady else None,
            "data_time_fraction_timer": (sum(data_times) / sum(step_times)) if step_times else None,
            "data_path": profiler.result,
            "chosen_epoch": selection.get("epoch"),
            "selection": selection,
            "evaluations": self.evaluations,
            "final_loss": self.metrics.rows[-1][self.metrics.columns.index("loss")]
            if self.metrics.rows
            else None,
            "torch": torch.__version__,
        }
        return TrainResult(finished=True, noop=False, summary=summary)
