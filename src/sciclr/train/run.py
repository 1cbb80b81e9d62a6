"""The two entry points the CLI calls: train a data set's model, embed its items.

Inputs are the outputs of ``sciclr gather``: ``data_dir/data.pt`` (the domain's payload) and
``data_dir/records.tsv`` (``id``, ``split``, task columns; row ``i`` is payload item ``i``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch

from sciclr.config import dataset_params
from sciclr.domains import get_domain
from sciclr.domains.base import DataSource, Domain
from sciclr.errors import SciclrError
from sciclr.io import atomic_path, load_torch, save_matrix_blocks, write_json, write_table
from sciclr.train.checkpoint import fingerprint, load_checkpoint
from sciclr.train.config import TrainConfig
from sciclr.train.device import resolve_device
from sciclr.train.distributed import init_distributed, launched_by_torchrun, shutdown_distributed
from sciclr.train.embed import embed_blocks
from sciclr.train.evaluate import KnnEvaluator
from sciclr.train.launch import run_under_torchrun
from sciclr.train.loop import Trainer
from sciclr.train.objective import build_loss
from sciclr.train.similarities import pair_similarities

__all__ = ["embed_files", "load_data", "resolve_world_size", "run_embedding", "run_training"]

#: ``train:`` keys that change how a run is shown, not what it computes (left out of the
#: fingerprint that decides whether ``last.pt`` may be resumed).
COSMETIC_KEYS = ("log_every", "tensorboard", "profile_steps", "embed_batch_size")


def load_data(data_dir: str | Path, mmap: bool = True) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(payload, records)`` from a gathered data folder; records columns are strings, a missing
    label is ``""``.

    ``mmap`` (default): the payload's tensors are mapped from ``data.pt``, not read
    (:func:`sciclr.io.load_torch`), so training and embedding, which gather one batch's rows at
    a time (:mod:`sciclr.data.dna.batch`, :mod:`sciclr.data.crystal_batch`), hold the index
    arrays and the pages their batches touch rather than the data set. Values are those of a
    plain load (tested); the mapping is private, so an in-place change never reaches the file."""
    data_dir = Path(data_dir)
    data_pt, rec_tsv = data_dir / "data.pt", data_dir / "records.tsv"
    for path in (data_pt, rec_tsv):
        if not path.exists():
            raise SciclrError(f"{path}: not found (run `sciclr gather` first)")
    try:
        payload = load_torch(data_pt, mmap=mmap)
    except Exception as exc:
        raise SciclrError(f"{data_pt}: cannot read payload ({type(exc).__name__}: {exc})") from None
    records = pd.read_csv(rec_tsv, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in ("id", "split") if c not in records.columns]
    if missing:
        raise SciclrError(f"{rec_tsv}: column(s) {missing} missing; found {list(records.columns)}")
    return payload, records


def _source(
    domain: Domain, payload: Mapping[str, Any], records: pd.DataFrame, data_dir: Path
) -> DataSource:
    source = domain.data_source(payload)
    if len(source) != len(records):
        raise SciclrError(
            f"{data_dir}: data.pt has {len(source)} items but records.tsv has {len(records)} rows"
        )
    return source


def resolve_world_size(tcfg: TrainConfig, device: torch.device) -> int:
    """Processes to train with: ``ddp_procs``, or with ``"auto"`` one per visible GPU."""
    if tcfg.ddp_procs == "auto":
        return torch.cuda.device_count() if device.type == "cuda" else 1
    n = int(tcfg.ddp_procs)
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise SciclrError(
            f"config train.ddp_procs: {n} processes but {torch.cuda.device_count()} GPU(s) visible"
        )
    return n


def _evaluator(
    cfg: Mapping[str, Any],
    records: pd.DataFrame,
    source: DataSource,
    device: torch.device,
    tcfg: TrainConfig,
) -> tuple[KnnEvaluator | None, str]:
    """k-NN evaluator on the first classification task, or None and why not."""
    task = next((t for t in cfg["tasks"] if t["type"] == "classification"), None)
    if task is None:
        return None, "no classification task"
    col = task["column"]
    if col not in records.columns:
        return None, f"task column {col!r} not in records.tsv"
    labelled = records[col] != ""
    train = np.flatnonzero(labelled & (records["split"] == "train"))
    val = np.flatnonzero(labelled & (records["split"] == "val"))
    if len(train) == 0 or len(val) == 0:
        return None, f"no labelled train/val items for {col!r}"
    labels = records[col].to_numpy()
    how = f"k-NN on {col!r}"
    if len(train) > tcfg.eval_max_items:  # the reference set: embedding it is the check's cost
        rng = np.random.default_rng(tcfg.seed)
        train = np.sort(rng.choice(train, tcfg.eval_max_items, replace=False))
        how += f" against {len(train)} seeded train items"
    if len(val) > tcfg.eval_max_val:  # each check embeds every val item it scores
        rng = np.random.default_rng([tcfg.seed, 1])
        val = np.sort(rng.choice(val, tcfg.eval_max_val, replace=False))
        how += f", scored on {len(val)} seeded val items"
    evaluator = KnnEvaluator(
        source, train, labels[train], val, labels[val], device, tcfg.embed_batch_size
    )
    return evaluator, how


def run_training(
    params: Mapping[str, Any],
    data_dir: str | Path,
    out_dir: str | Path,
    stream: TextIO | None = None,
    resume: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    init: str | Path | None = None,
) -> dict[str, Any] | None:
    """Train on the ``split == "train"`` rows; write ``checkpoint.pt``, ``metrics.csv``,
    ``train_summary.json`` and ``similarities.npz`` into ``out_dir`` and keep the resume state
    in ``resume`` (default ``out_dir/last.pt``). ``init``: a checkpoint whose weights training
    starts from (``pretrained:``) instead of a random initialisation.

    ``params``: the data set's config section (defaults are filled from the schema). Relaunches
    itself under torchrun when more than one process is configured. Returns the summary (None
    in non-zero ranks, under a relaunch, or when the run was already complete). Raises
    :class:`sciclr.train.signals.TrainingInterrupted` after saving on SIGTERM/SIGUSR1.
    """
    cfg = dataset_params(params)
    tcfg = TrainConfig.from_mapping(cfg["train"])
    device = resolve_device(cfg["device"])
    world = resolve_world_size(tcfg, device)
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    if world > 1 and not launched_by_torchrun():
        run_under_torchrun(world, cfg, data_dir, out_dir, resume, tensorboard_dir, init)
        return None
    ctx = init_distributed(device)
    try:
        domain = get_domain(cfg["domain"])
        payload, records = load_data(data_dir)
        source = _source(domain, payload, records, data_dir)
        train_idx = np.flatnonzero(records["split"].to_numpy() == "train")
        if len(train_idx) < 2:
            raise SciclrError(
                f"{data_dir / 'records.tsv'}: {len(train_idx)} rows with split 'train'; "
                "contrastive training needs at least 2"
            )
        torch.manual_seed(tcfg.seed)
        model = domain.build_model(payload, cfg)
        start = None
        if init is not None:
            start = load_checkpoint(init)
            _load_weights(model, start, init)
        evaluator, why = (
            _evaluator(cfg, records, source, device, tcfg)
            if tcfg.eval_every
            else (None, "eval_every is 0")
        )
        fp_cfg = {
            **cfg,
            "train": {k: v for k, v in tcfg.to_dict().items() if k not in COSMETIC_KEYS},
        }
        fp_cfg.pop("device", None)
        run_fp = fingerprint(
            fp_cfg,
            ctx.world_size,
            device.type,
            data_dir / "data.pt",
            data_dir / "records.tsv",
            start["fingerprint"] if start is not None else None,
        )
        trainer = Trainer(
            model=model,
            loss=build_loss(tcfg),
            source=source,
            train_idx=train_idx,
            tcfg=tcfg,
            device=device,
            ctx=ctx,
            out_dir=out_dir,
            run_fingerprint=run_fp,
            cfg=cfg,
            evaluator=evaluator,
            stream=stream,
            resume=resume,
            tensorboard_dir=tensorboard_dir,
        )
        if evaluator is None:
            trainer.progress.message(f"no val model selection: {why}")
        result = trainer.fit()
        if ctx.is_main and not result.noop:
            result.summary["selection"]["evaluator"] = why
            _write_similarities(domain, payload, source, train_idx, out_dir, device, tcfg)
            write_json(out_dir / "train_summary.json", result.summary)
            return result.summary
        return None
    finally:
        shutdown_distributed()


def _load_weights(model: torch.nn.Module, state: Mapping[str, Any], path: str | Path) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SciclrError(
            f"{path}: does not fit the model built from its config ({first})"
        ) from None


def _load_trained(domain: Domain, payload: Mapping[str, Any], checkpoint: str | Path):
    """The model of ``checkpoint``, built from the config stored with it."""
    state = load_checkpoint(checkpoint)
    model = domain.build_model(payload, dataset_params(state["cfg"]))
    _load_weights(model, state, checkpoint)
    return model


def _write_similarities(
    domain: Domain,
    payload: Mapping[str, Any],
    source: DataSource,
    train_idx: np.ndarray,
    out_dir: Path,
    device: torch.device,
    tcfg: TrainConfig,
) -> None:
    """``similarities.npz`` (``pos``, ``neg``) of the final model, for the report's histogram."""
    model = _load_trained(domain, payload, out_dir / "checkpoint.pt").to(device)
    pos, neg = pair_similarities(model, source, train_idx, device, seed=tcfg.seed)
    with atomic_path(out_dir / "similarities.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, pos=pos, neg=neg)


def run_embedding(
    params: Mapping[str, Any],
    data_dir: str | Path,
    checkpoint: str | Path | None,
    out_path: str | Path,
) -> tuple[int, int]:
    """Embed every row of ``records.tsv`` (in order) with the trained model, or with the freshly
    seeded untrained model when ``checkpoint`` is None (the "untrained encoder" baseline: the
    same initial weights training starts from). Writes ``ids`` (unicode) and ``X`` (float32)
    to ``out_path`` as :func:`sciclr.io.save_matrix` does, atomically, streamed a chunk of items
    at a time (:func:`sciclr.train.embed.embed_blocks`); returns the shape ``(n, e)``."""
    cfg = dataset_params(params)
    data_dir = Path(data_dir)
    tcfg = TrainConfig.from_mapping(cfg["train"])
    device = resolve_device(cfg["device"])
    domain = get_domain(cfg["domain"])
    payload, records = load_data(data_dir)
    source = _source(domain, payload, records, data_dir)
    if checkpoint is not None:
        model = _load_trained(domain, payload, checkpoint)
    else:
        torch.manual_seed(tcfg.seed)
        model = domain.build_model(payload, cfg)
    model.to(device)
    ids = records["id"].to_numpy().astype(str)
    return save_matrix_blocks(
        out_path,
        ids,
        lambda: embed_blocks(model, source, np.arange(len(ids)), device, tcfg.embed_batch_size),
    )


def embed_files(
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    out_path: str | Path,
    rejects_path: str | Path | None = None,
    device: str | None = None,
) -> tuple[int, int]:
    """Apply a trained model to new files: read ``inputs`` with the checkpoint's own
    preprocessing settings (no labels, no splits; one record is fine), embed every kept record
    and write ``ids``/``X`` to ``out_path`` and the dropped records to ``rejects_path`` (default
    ``<out_path without .npz>.rejects.tsv``). Returns the shape ``(n, e)``."""
    from sciclr.data.records import REJECT_COLUMNS

    state = load_checkpoint(checkpoint)
    section = {k: v for k, v in state["cfg"].items() if k not in ("tasks", "labels")}
    section.update(input=[str(p) for p in inputs], format="auto", labels=None, split_column=None)
    if device is not None:
        section["device"] = device
    cfg = dataset_params(section)
    domain = get_domain(cfg["domain"])
    domain.check_inputs(cfg, "--input", Path("."))
    merged = domain.merge([domain.preprocess_shard(cfg, 0, 1)], cfg)
    out_path = Path(out_path)
    if rejects_path is None:
        rejects_path = out_path.with_name(out_path.name.removesuffix(".npz") + ".rejects.tsv")
    write_table(rejects_path, merged.rejects[REJECT_COLUMNS])
    ids = merged.records["id"].astype(str).to_numpy()
    if len(ids) == 0:
        raise SciclrError(
            f"{', '.join(map(str, inputs))}: no record survived preprocessing; see {rejects_path}"
        )
    source = domain.data_source(merged.payload)
    tcfg = TrainConfig.from_mapping(cfg["train"])
    dev = resolve_device(cfg["device"])
    model = _load_trained(domain, merged.payload, checkpoint).to(dev)
    return save_matrix_blocks(
        out_path,
        ids,
        lambda: embed_blocks(model, source, np.arange(len(ids)), dev, tcfg.embed_batch_size),
    )
