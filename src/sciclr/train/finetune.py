"""Fine-tuning against training from scratch: the encoder plus a task head, trained end to end.

One run = one task × one fraction of its train labels × one initialisation:

* ``ssl``: the model of the SSL checkpoint, built from the config stored with it and loaded
  with its weights (what ``sciclr embed`` embeds with);
* ``scratch``: the same architecture, freshly initialised under ``train.seed`` — exactly the
  weights SSL training started from (and the ``untrained`` baseline embeds with), so the two
  runs differ by the pretraining alone.

A linear head on ``model.embed(batch)`` (the frozen-probe representation, now trained),
standardised with the initial encoder's statistics on the train subset (:class:`FinetuneNet`)
and starting as the linear probe of those embeddings (:func:`probe_head`; LP-FT, Kumar et al.
2022; ``finetune.head_init: zero`` starts it at zero), is trained with it; the whole network is trained with AdamW (no decay on
biases and norms), a warm-up + cosine schedule over the most epochs, gradient clipping, bf16
autocast on CUDA (``train.amp``; fp16 with a GradScaler; float32 on CPU), BatchNorm layers
normalising with their stored statistics (``finetune.norm_stats: frozen``, :func:`train_mode`:
a step sees the function the probe was fitted on; ``batch`` uses batch statistics); batches of similar lengths when the source pads (:func:`epoch_batches`). Classification
minimises cross-entropy (class-balanced when the task's metric is balanced accuracy or macro-F1,
as :mod:`sciclr.analysis.probes` weights its logistic probe); regression a Huber, squared or
absolute loss on the target standardised with the subset's mean and deviation.

Both inits see the same things: the train subset (:func:`sciclr.analysis.label_efficiency.
draw_subset`, class-stratified, seeded by ``finetune.seed`` and the task's name), the batch
order, the rule that sets the head's initial weights, the budget (``finetune.epochs``) and the
stopping rule (the task's main metric on the val split before training — epoch 0 — and after
every epoch; ``patience`` epochs without a better value end the run and the best epoch's
weights are kept, epoch 0's included: fine-tuning that never beats its starting probe on val
returns that probe). Test predictions come from
that best epoch. Items are embedded in order of size for evaluation
(:func:`sciclr.train.embed.embed`).

Resume is not supported: a run is minutes long on the bundled data, and a stopped run simply
starts over (Snakemake deletes a failed job's outputs anyway). Single process only (no DDP).
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch
from torch import nn

from sciclr.analysis.inputs import read_records
from sciclr.analysis.label_efficiency import draw_subset
from sciclr.analysis.logistic import fit_logistic
from sciclr.analysis.probes import fit_linear, ridge_path
from sciclr.analysis.scoring import metric_functions, task_seed
from sciclr.analysis.spec import HIGHER_IS_BETTER, Settings, TaskData, resolve_tasks
from sciclr.config import dataset_params
from sciclr.domains import get_domain
from sciclr.domains.base import ContrastiveModel, DataSource, Domain, item_sizes
from sciclr.errors import SciclrError
from sciclr.io import write_json, write_table
from sciclr.train.allocator import trim_heap
from sciclr.train.checkpoint import load_checkpoint, model_state
from sciclr.train.device import autocast, resolve_amp, resolve_device
from sciclr.train.embed import embed
from sciclr.train.run import _load_weights, load_data
from sciclr.train.schedule import warmup_cosine
from sciclr.train.seeding import derive_seed, epoch_order

__all__ = [
    "EarlyStopping",
    "FinetuneConfig",
    "FinetuneNet",
    "FinetuneResult",
    "epoch_batches",
    "finetune_task",
    "initial_model",
    "run_finetune",
    "select_task",
]

INITS = ("ssl", "scratch")
#: columns of a run's ``predictions.tsv`` (the test split)
PREDICTION_COLUMNS = ["id", "y_true", "y_pred", "score"]
#: columns of a run's per-epoch ``metrics.csv``
EPOCH_COLUMNS = [
    "epoch",
    "step",
    "train_loss",
    "metric",
    "val_value",
    "best",
    "lr",
    "samples_per_s",
    "epoch_s",
]


@dataclass(frozen=True)
class FinetuneConfig:
    """The filled ``finetune:`` section (meaning and defaults: the schema's ``$defs/finetune``)."""

    fractions: tuple[float, ...]
    tasks: tuple[str, ...]
    epochs: int
    patience: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    grad_clip: float | None
    regression_loss: str
    head_init: str
    norm_stats: str
    seed: int
    eval_batch_size: int

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> FinetuneConfig:
        values = dict(section)
        values["fractions"] = tuple(float(f) for f in values["fractions"])
        values["tasks"] = tuple(str(t) for t in values["tasks"])
        return cls(**values)


class FinetuneNet(nn.Module):
    """A contrastive model's embedding with a linear task head: ``(N, out)`` per batch.

    The head reads the embedding standardised with fixed statistics (``mean``, ``std``: the
    initial encoder's on the train subset, as the linear probe standardises its features). It
    starts at zero, or as the linear probe of the initial embeddings (:meth:`set_head`,
    ``finetune.head_init: probe``): either way no random head pushes its errors into the
    pretrained features (LP-FT, Kumar et al., ICLR 2022). Both inits get the same treatment.
    """

    def __init__(self, model: ContrastiveModel, emb_dim: int, out_dim: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.zeros(emb_dim))
        self.register_buffer("std", torch.ones(emb_dim))
        self.head = nn.Linear(emb_dim, out_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        return (h - self.mean) / self.std

    def forward(self, batch: Any) -> torch.Tensor:
        return self.head(self.features(self.model.embed(batch)))

    def set_head(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Set the head to ``weight`` ``(out, emb)`` and ``bias`` ``(out,)`` (standardised
        features in, the training targets' units out)."""
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(weight, dtype=self.head.weight.dtype))
            self.head.bias.copy_(torch.as_tensor(bias, dtype=self.head.bias.dtype))

    def standardize_with(self, x: np.ndarray) -> None:
        """Fix the statistics from embeddings ``x`` ``(n, e)`` (a constant column keeps 1)."""
        t = torch.as_tensor(x, dtype=torch.float64)
        std = t.std(dim=0, correction=0)
        self.mean.copy_(t.mean(dim=0).float())
        self.std.copy_(torch.where(std > 0, std, torch.ones_like(std)).float())


class EarlyStopping:
    """The best epoch by the val metric so far, and whether ``patience`` epochs passed without
    a better one. A tie keeps the earlier epoch; an undefined (NaN) value never improves on a
    defined one."""

    def __init__(self, patience: int, higher_is_better: bool) -> None:
        self.patience, self.higher = int(patience), bool(higher_is_better)
        self.best_epoch: int | None = None
        self.best_value = float("nan")
        self.since_best = 0

    def improves(self, value: float) -> bool:
        if self.best_epoch is None:
            return True
        if not math.isfinite(value):
            return False
        if not math.isfinite(self.best_value):
            return True
        return value > self.best_value if self.higher else value < self.best_value

    def update(self, epoch: int, value: float) -> bool:
        """Record epoch ``epoch``'s val value; True when it is the new best."""
        if self.improves(value):
            self.best_epoch, self.best_value, self.since_best = epoch, float(value), 0
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        return self.since_best >= self.patience


@dataclass
class FinetuneResult:
    """What one run did; ``predictions`` is the test split at the best epoch."""

    predictions: pd.DataFrame
    history: pd.DataFrame
    summary: dict[str, Any]
    train_rows: np.ndarray  # record rows of the train subset
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


def configured_task_names(cfg: Mapping[str, Any]) -> list[str]:
    """Names of the data set's configured tasks (derived tasks are not fine-tuned)."""
    return [str(t.get("name", t["column"])) for t in cfg["tasks"]]


def select_task(cfg: Mapping[str, Any], records: pd.DataFrame, name: str) -> TaskData:
    """The configured task ``name`` over ``records``, with its main metric (as the probes
    score it: explicit, from a target, or the default)."""
    names = configured_task_names(cfg)
    wanted = list(cfg["finetune"]["tasks"]) or names
    unknown = [t for t in wanted if t not in names]
    if unknown:
        raise SciclrError(
            f"params: finetune.tasks: {unknown} not among the configured tasks {names} "
            "(derived tasks are not fine-tuned)"
        )
    if name not in wanted:
        raise SciclrError(f"--task {name!r}: not a fine-tuned task of this data set ({wanted})")
    settings = Settings.from_params(cfg)
    return next(t for t in resolve_tasks(settings, records) if t.name == name)


def initial_model(
    domain: Domain,
    payload: Mapping[str, Any],
    cfg: Mapping[str, Any],
    checkpoint: str | Path | None,
) -> ContrastiveModel:
    """The encoder a run starts from: the checkpoint's (built from the config stored with it),
    or with ``checkpoint`` None the data set's architecture seeded by ``train.seed`` (what SSL
    training started from). The checkpoint's ``model`` section must be the data set's: the
    scratch run builds that one, and the comparison is only fair on one architecture."""
    if checkpoint is None:
        torch.manual_seed(int(cfg["train"]["seed"]))
        return domain.build_model(payload, cfg)
    state = load_checkpoint(checkpoint)
    stored = dataset_params(state["cfg"])
    if stored["model"] != cfg["model"]:
        diff = sorted(
            k
            for k in set(stored["model"]) | set(cfg["model"])
            if stored["model"].get(k) != cfg["model"].get(k)
        )
        raise SciclrError(
            f"{checkpoint}: its model section differs from this data set's in {diff}; the "
            "scratch run builds the data set's, so set model: to the checkpoint's"
        )
    model = domain.build_model(payload, stored)
    _load_weights(model, state, checkpoint)
    return model


def _split_rows(task: TaskData, records: pd.DataFrame) -> dict[str, np.ndarray]:
    split = records["split"].astype(str).to_numpy()
    return {s: np.flatnonzero((split == s) & task.valid) for s in ("train", "val", "test")}


def _targets(task: TaskData, rows: np.ndarray) -> tuple[torch.Tensor, dict[str, Any]]:
    """Training targets of ``rows`` and how to decode outputs (classes or mean/std)."""
    if task.type == "classification":
        classes = np.asarray(task.classes, dtype=object)
        codes = np.searchsorted(classes.astype(str), task.y[rows].astype(str))
        return torch.as_tensor(codes, dtype=torch.int64), {"classes": list(task.classes)}
    y = task.y[rows].astype(np.float64)
    mean, std = float(y.mean()), float(y.std())
    std = std if std > 0 else 1.0
    return torch.as_tensor((y - mean) / std, dtype=torch.float32), {"mean": mean, "std": std}


def _balanced(task: TaskData, cfg: Mapping[str, Any]) -> bool:
    """Class-balanced loss, by the rule of the probes (``analysis.class_weight``)."""
    mode = cfg["analysis"]["class_weight"]
    return mode == "balanced" or (
        mode == "auto" and task.metric in ("balanced_accuracy", "macro_f1")
    )


#: how far below the least likely class a class absent from the subset starts (nats): the
#: probe cannot predict it, and neither does the head it becomes
ABSENT_CLASS_LOGIT = 10.0


def probe_head(
    task: TaskData,
    x: np.ndarray,
    target: np.ndarray,
    classes: list[str] | None,
    settings: Settings,
    balanced: bool,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The linear probe of standardised embeddings ``x`` ``(n, e)`` as a head: ``weight``
    ``(out, e)``, ``bias`` ``(out,)`` and the probe's note (e.g. ``"C=0.1 (5-fold CV)"``).

    The probe is the label-efficiency curves' one: L2 logistic regression (``classes``: the
    head's outputs, the task's sorted classes) or ridge on ``target`` (the standardised
    regression target the head is trained on), its strength chosen by cross-validation inside
    the subset (the val split decides only the epoch). Starting the fine-tuning there is LP-FT
    (Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution", ICLR 2022): the encoder's first gradients come from a fitted head.
    """
    value, note = fit_linear(task, x, target, None, None, settings)
    if task.type == "regression":
        coef, icpt = ridge_path(x, target.astype(np.float64), [value])
        return coef[:1].astype(np.float32), icpt[:1].astype(np.float32), note
    model = fit_logistic(x, target, value, settings["max_iter"], balanced=balanced)
    seen = [str(c) for c in model.classes]
    coef, icpt = model.estimator.coef_, model.estimator.intercept_
    if len(seen) == 2:  # one logit for the second class: softmax([0, z]) = sigmoid(z)
        coef = np.vstack([np.zeros_like(coef), coef])
        icpt = np.array([0.0, icpt[0]])
    weight = np.zeros((len(classes), x.shape[1]), dtype=np.float32)
    bias = np.full(len(classes), float(np.min(icpt)) - ABSENT_CLASS_LOGIT, dtype=np.float32)
    for j, c in enumerate(seen):
        k = classes.index(c)
        weight[k], bias[k] = coef[j], icpt[j]
    return weight, bias, note


def train_mode(net: nn.Module, norm_stats: str) -> None:
    """``net.train()``, with every BatchNorm layer back in eval mode when ``norm_stats`` is
    ``frozen``: it normalises with its stored statistics and does not update them, so the
    function being trained is the one the embedding (and the probe on it) came from."""
    net.train()
    if norm_stats == "frozen":
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def _loss_fn(
    task: TaskData, target: torch.Tensor, fcfg: FinetuneConfig, balanced: bool, device
) -> nn.Module:
    if task.type == "classification":
        weight = None
        if balanced:
            k = len(task.classes)
            counts = torch.bincount(target, minlength=k).double()
            weight = torch.where(counts > 0, len(target) / (k * counts), 0.0).float().to(device)
        return nn.CrossEntropyLoss(weight=weight)
    return {"huber": nn.HuberLoss(delta=1.0), "mse": nn.MSELoss(), "l1": nn.L1Loss()}[
        fcfg.regression_loss
    ]


def _outputs(
    net: FinetuneNet,
    source: DataSource,
    rows: np.ndarray,
    device: torch.device,
    batch_size: int,
    amp: torch.dtype | None,
) -> np.ndarray:
    """Head outputs ``(len(rows), out)`` float32 in eval mode (items embedded by size)."""
    with autocast(device, amp):
        x = embed(net.model, source, rows, device, batch_size)
    with torch.no_grad():
        h = torch.from_numpy(x).to(device)
        return net.head(net.features(h)).float().cpu().numpy()


def _decode(task: TaskData, out: np.ndarray, decode: Mapping[str, Any]):
    """``(y_pred, score)`` from head outputs; score = P(positive) for a binary task."""
    if task.type == "regression":
        return out[:, 0].astype(np.float64) * decode["std"] + decode["mean"], None
    classes = np.asarray(decode["classes"], dtype=object)
    prob = torch.softmax(torch.from_numpy(out).double(), dim=1).numpy()
    y_pred = classes[prob.argmax(axis=1)]
    score = None
    if task.positive is not None:
        score = prob[:, list(decode["classes"]).index(task.positive)]
    return y_pred, score


def _metric(task: TaskData, rows: np.ndarray, y_pred, score) -> float:
    fns = metric_functions(task.type, [task.metric], task.y[rows], y_pred, score, task.positive)
    if task.metric not in fns or len(rows) == 0:
        return float("nan")
    return float(fns[task.metric](np.ones((1, len(rows))))[0])


#: batches whose items are sorted by size together (sources that pad their batches)
BUCKET_BATCHES = 16


def epoch_batches(
    n: int, n_batches: int, seed: int, epoch: int, sizes: np.ndarray | None = None
) -> list[torch.Tensor]:
    """Positions ``0..n-1`` of one epoch in ``n_batches`` batches, shuffled by ``(seed, epoch)``.

    With per-item ``sizes`` (a source that pads, e.g. DNA) the shuffled order is cut into
    windows of :data:`BUCKET_BATCHES` batches, each sorted by size, and the batches are then
    shuffled: a batch holds similar lengths and pads little (the bundled 0.5-1.5 kb fragments
    padded to the longest of a random batch waste about a third of the work), while every
    epoch still draws new batches. Encoders mask padding, so only the time depends on it.
    """
    order = epoch_order(n, seed, epoch)
    if sizes is not None and n_batches > 1:
        window = BUCKET_BATCHES * math.ceil(n / n_batches)
        s = torch.as_tensor(np.asarray(sizes))[order].double()
        key = torch.div(torch.arange(n), window, rounding_mode="floor").double() * (s.max() + 1)
        order = order[torch.argsort(key + s, stable=True)]
    batches = torch.tensor_split(order, n_batches)
    if sizes is None:
        return list(batches)
    g = torch.Generator().manual_seed(derive_seed(seed, "batches", epoch))
    return [batches[i] for i in torch.randperm(n_batches, generator=g).tolist()]


def _fmt_s(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def finetune_task(
    model: ContrastiveModel,
    source: DataSource,
    task: TaskData,
    records: pd.DataFrame,
    fraction: float,
    fcfg: FinetuneConfig,
    device: torch.device,
    amp: torch.dtype | None = None,
    balanced: bool = False,
    stream: TextIO | None = None,
    settings: Settings | None = None,
) -> FinetuneResult:
    """Train ``model`` + a linear head on ``fraction`` of the task's train labels with early
    stopping on val; predict the test split with the best val epoch's weights.

    ``settings`` (the data set's analysis settings) choose the probe the head starts as when
    ``fcfg.head_init`` is ``probe``; epoch 0, the starting point, is scored on val too and is
    a candidate of the early stopping."""
    stream = stream if stream is not None else sys.stderr
    t_start = time.perf_counter()
    rows = _split_rows(task, records)
    train_all, val, test = rows["train"], rows["val"], rows["test"]
    if len(test) == 0:
        raise SciclrError(f"records.tsv: task {task.name!r} has no labelled test items")
    seed = task_seed(fcfg.seed, task.name)
    sub = train_all[draw_subset(task, train_all, fraction, seed)]
    if len(sub) < 2:
        raise SciclrError(
            f"records.tsv: task {task.name!r}: {len(sub)} labelled train item(s) at fraction "
            f"{fraction:g}; fine-tuning needs at least 2"
        )
    if task.type == "classification" and len(np.unique(task.y[sub].astype(str))) < 2:
        raise SciclrError(f"records.tsv: task {task.name!r}: the train subset holds one class")
    target, decode = _targets(task, sub)
    out_dim = len(task.classes) if task.type == "classification" else 1

    model.to(device)
    with autocast(device, amp):
        x0 = embed(model, source, sub, device, fcfg.eval_batch_size)
    net = FinetuneNet(model, x0.shape[1], out_dim).to(device)
    net.standardize_with(x0)
    probe_note = None
    if fcfg.head_init == "probe":
        if settings is None:
            raise ValueError("finetune_task: head_init 'probe' needs the analysis settings")
        with torch.no_grad():  # what the head reads: the net's own standardisation
            xs = net.features(torch.as_tensor(x0, device=net.mean.device)).cpu().numpy()
        classes = [str(c) for c in decode["classes"]] if "classes" in decode else None
        fit_on = task.y[sub].astype(str) if classes is not None else target.numpy()
        weight, bias, probe_note = probe_head(task, xs, fit_on, classes, settings, balanced)
        net.set_head(weight, bias)
    loss_fn = _loss_fn(task, target, fcfg, balanced, device)
    target = target.to(device)

    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": fcfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=fcfg.lr,
    )
    n_batches = math.ceil(len(sub) / min(fcfg.batch_size, len(sub)))
    if len(sub) // n_batches < 2:  # BatchNorm needs two items per batch in train mode
        n_batches = max(1, len(sub) // 2)
    total = fcfg.epochs * n_batches
    scheduler = warmup_cosine(optimizer, min(round(fcfg.warmup_epochs * n_batches), total), total)
    max_norm = fcfg.grad_clip if fcfg.grad_clip else math.inf
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)  # fp16 only
    sub_t = torch.as_tensor(sub, dtype=torch.int64)
    sizes = item_sizes(source)
    sub_sizes = None if sizes is None else sizes[sub]
    higher = HIGHER_IS_BETTER[task.metric]
    stopper = EarlyStopping(fcfg.patience, higher)
    has_val = len(val) >= 1
    prefix = "[sciclr finetune]"
    print(
        f"{prefix} task {task.name} ({task.type}, {task.metric}, "
        f"{'higher' if higher else 'lower'} is better): {len(sub)} of {len(train_all)} train "
        f"labels (fraction {fraction:g}), {len(val)} val, {len(test)} test; device {device}, "
        f"amp {str(amp).removeprefix('torch.') if amp else 'off'}; {n_batches} batches/epoch, "
        f"at most {fcfg.epochs} epochs, patience {fcfg.patience}"
        + (", class-balanced loss" if balanced and task.type == "classification" else "")
        + ("" if has_val else "; no val items: the last epoch is kept"),
        file=stream,
        flush=True,
    )
    history: list[dict[str, Any]] = []
    step, train_s, epoch_times = 0, 0.0, []

    def val_value() -> float:
        if not has_val:
            return float("nan")
        out = _outputs(net, source, val, device, fcfg.eval_batch_size, amp)
        return _metric(task, val, *_decode(task, out, decode))

    # epoch 0: the starting point (the probe, or the zero head) is a candidate too, so the
    # run keeps it when no epoch of fine-tuning beats it on val
    value0 = val_value()
    stopper.update(0, value0)
    best_state = model_state(net)
    history.append(
        {
            "epoch": 0,
            "step": 0,
            "train_loss": float("nan"),
            "metric": task.metric,
            "val_value": value0,
            "best": True,
            "lr": 0.0,
            "samples_per_s": float("nan"),
            "epoch_s": 0.0,
        }
    )
    print(
        f"{prefix} epoch 0 ({'probe ' + probe_note if probe_note else 'zero head'}): "
        f"val {task.metric} {value0:.4f}",
        file=stream,
        flush=True,
    )
    for epoch in range(fcfg.epochs):
        t0 = time.perf_counter()
        train_mode(net, fcfg.norm_stats)
        loss_sum, seen = 0.0, 0
        for chunk in epoch_batches(len(sub), n_batches, fcfg.seed, epoch, sub_sizes):
            batch = source.batch(sub_t[chunk], device)
            torch.manual_seed(derive_seed(fcfg.seed, "finetune", step))
            with autocast(device, amp):
                out = net(batch)
            out = out.float()
            loss = loss_fn(out[:, 0] if task.type == "regression" else out, target[chunk])
            if not torch.isfinite(loss):
                raise SciclrError(
                    f"fine-tuning diverged: loss {float(loss)} at epoch {epoch + 1}; "
                    "lower finetune.lr"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            lr = scheduler.get_last_lr()[0]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            trim_heap()  # batches of changing width: see sciclr.train.allocator
            loss_sum += float(loss.detach()) * len(chunk)
            seen += len(chunk)
            step += 1
        t_train = time.perf_counter() - t0
        train_s += t_train
        value = val_value()
        improved = stopper.update(epoch + 1, value) if has_val else True
        if improved:
            best_state = model_state(net)
            if not has_val:
                stopper.best_epoch = epoch + 1
        epoch_s = time.perf_counter() - t0
        epoch_times.append(epoch_s)
        history.append(
            {
                "epoch": epoch + 1,
                "step": step,
                "train_loss": loss_sum / max(seen, 1),
                "metric": task.metric,
                "val_value": value,
                "best": improved,
                "lr": lr,
                "samples_per_s": seen / t_train if t_train > 0 else float("nan"),
                "epoch_s": epoch_s,
            }
        )
        bound = fcfg.epochs
        if has_val and stopper.best_epoch is not None:
            bound = min(fcfg.epochs, stopper.best_epoch + fcfg.patience)
        eta = float(np.mean(epoch_times)) * (bound - (epoch + 1))
        print(
            f"{prefix} epoch {epoch + 1}/{fcfg.epochs}: train loss {history[-1]['train_loss']:.4f}, "
            f"val {task.metric} {value:.4f} (best {stopper.best_value:.4f} at epoch "
            f"{stopper.best_epoch}), {history[-1]['samples_per_s']:.0f} samples/s, "
            f"eta {_fmt_s(eta)} (at most)",
            file=stream,
            flush=True,
        )
        if has_val and stopper.stop:
            print(
                f"{prefix} early stop: no better val {task.metric} for {fcfg.patience} "
                f"epochs; keeping epoch {stopper.best_epoch}",
                file=stream,
                flush=True,
            )
            break

    net.load_state_dict(best_state)
    y_pred, score = _decode(
        task, _outputs(net, source, test, device, fcfg.eval_batch_size, amp), decode
    )
    test_value = _metric(task, test, y_pred, score)
    ids = records["id"].astype(str).to_numpy()
    predictions = pd.DataFrame(
        {
            "id": ids[test],
            "y_true": task.y[test],
            "y_pred": y_pred,
            "score": score if score is not None else np.full(len(test), np.nan),
        }
    )[PREDICTION_COLUMNS]
    epochs_run = len(history) - 1  # the row of epoch 0 is the starting point
    trained = [h["samples_per_s"] for h in history[1:]]
    steady = trained[1:] or trained
    summary = {
        "task": task.name,
        "task_type": task.type,
        "metric": task.metric,
        "fraction": float(fraction),
        "n_train": len(sub),
        "n_train_all": len(train_all),
        "n_val": len(val),
        "n_test": len(test),
        "train_ids_sha256": hashlib.sha256("\n".join(ids[sub]).encode()).hexdigest(),
        "best_epoch": stopper.best_epoch,
        "best_val": stopper.best_value if has_val else None,
        "epochs_run": epochs_run,
        "stopped_early": bool(has_val and stopper.stop and epochs_run < fcfg.epochs),
        "selection": "best val epoch" if has_val else "last epoch (no val items)",
        "head_init": fcfg.head_init,
        "probe": probe_note,
        "start_val": value0 if has_val else None,
        "test_value": test_value,
        "steps": step,
        "train_s": train_s,
        "wall_s": time.perf_counter() - t_start,
        "samples_per_s": float(np.nanmedian(steady)) if steady else float("nan"),
        "device": str(device),
        "amp": str(amp).removeprefix("torch.") if amp else "off",
        "balanced_loss": bool(balanced and task.type == "classification"),
        "config": asdict(fcfg),
        "torch": torch.__version__,
    }
    print(
        f"{prefix} done: epoch {stopper.best_epoch} kept of {epochs_run}; test {task.metric} "
        f"{test_value:.4f}; {summary['wall_s']:.0f} s",
        file=stream,
        flush=True,
    )
    return FinetuneResult(
        predictions=predictions,
        history=pd.DataFrame(history, columns=EPOCH_COLUMNS),
        summary=summary,
        train_rows=sub,
        best_state=best_state,
    )


def run_finetune(
    params: Mapping[str, Any],
    data_dir: str | Path,
    task: str,
    fraction: float,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    stream: TextIO | None = None,
) -> FinetuneResult:
    """Fine-tune one task at one label fraction, from ``checkpoint`` (``ssl``) or from scratch
    (``checkpoint`` None); write ``predictions.tsv`` (test: ``id, y_true, y_pred, score``),
    ``metrics.csv`` (one row per epoch) and ``summary.json`` into ``out_dir``, atomically."""
    cfg = dataset_params(params)
    if not 0 < float(fraction) <= 1:
        raise SciclrError(f"--fraction: {fraction} is not in (0, 1]")
    fcfg = FinetuneConfig.from_mapping(cfg["finetune"])
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    device = resolve_device(cfg["device"])
    amp = resolve_amp(cfg["train"]["amp"], device)
    domain = get_domain(cfg["domain"])
    payload, rows = load_data(data_dir)
    source = domain.data_source(payload)
    if len(source) != len(rows):
        raise SciclrError(
            f"{data_dir}: data.pt has {len(source)} items but records.tsv has {len(rows)} rows"
        )
    records = read_records(data_dir / "records.tsv")  # as the probes read it (NaN = no label)
    spec = select_task(cfg, records, task)
    model = initial_model(domain, payload, cfg, checkpoint)
    result = finetune_task(
        model,
        source,
        spec,
        records,
        float(fraction),
        fcfg,
        device,
        amp,
        _balanced(spec, cfg),
        stream,
        Settings.from_params(cfg),
    )
    result.summary.update(
        init="scratch" if checkpoint is None else "ssl",
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        dataset=str(cfg.get("name") or ""),
    )
    write_table(out_dir / "metrics.csv", result.history)
    write_json(out_dir / "summary.json", result.summary)
    write_table(out_dir / "predictions.tsv", result.predictions)
    return result
