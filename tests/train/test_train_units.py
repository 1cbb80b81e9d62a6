"""Unit tests of the engine's parts: config, schedule, seeding, sharding, sync BatchNorm,
k-NN selection metric, metrics log, progress output, device choice."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sciclr.config import dataset_params, load_schema
from sciclr.errors import SciclrError
from sciclr.io import load_torch
from sciclr.train.config import TrainConfig
from sciclr.train.device import resolve_amp, resolve_device
from sciclr.train.distributed import DistContext, GlooSyncBatchNorm, convert_sync_batchnorm, shard
from sciclr.train.evaluate import knn_balanced_accuracy
from sciclr.train.loop import plan_steps
from sciclr.train.progress import MetricsLog, Progress
from sciclr.train.run import _evaluator
from sciclr.train.schedule import WarmupCosine, warmup_cosine
from sciclr.train.seeding import (
    capture_rng_state,
    derive_seed,
    epoch_order,
    restore_rng_state,
    step_generator,
)
from tests.train.synthetic_domain import DOMAIN, make_cfg, make_dataset


def tcfg(**train) -> TrainConfig:
    """A TrainConfig with the schema's defaults and ``train`` changed (as the CLI builds it)."""
    return TrainConfig.from_mapping(dataset_params({"domain": "dna", "train": train})["train"])


def test_config_takes_values_from_the_schema_and_errors_come_from_it() -> None:
    schema = load_schema()["$defs"]["train"]["properties"]
    assert tcfg().to_dict() == {k: v["default"] for k, v in schema.items()}
    assert tcfg(epochs=3).epochs == 3
    for bad, match in [
        ({"epoch": 3}, r"params: train: unknown key 'epoch'"),
        ({"lr": "fast"}, r"train\.lr: 'fast' is not of type number"),
        ({"batch_size": 1}, r"train\.batch_size: 1 is less than the minimum of 2"),
        ({"amp": "fp8"}, r"train\.amp: 'fp8' is not one of"),
        ({"learn_temperature": 1}, r"train\.learn_temperature: 1 is not of type boolean"),
        ({"ddp_procs": 0}, r"train\.ddp_procs: 0 is less than the minimum of 1"),
    ]:
        with pytest.raises(SciclrError, match=match):
            tcfg(**bad)


def test_warmup_cosine_shape() -> None:
    f = WarmupCosine(warmup_steps=4, total_steps=14)
    assert [f(s) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.5)  # half way through the cosine
    assert f(14) == pytest.approx(0.0, abs=1e-12)
    lrs = [f(s) for s in range(4, 14)]
    assert all(a > b for a, b in itertools.pairwise(lrs))
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = warmup_cosine(opt, 4, 14)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # step 0 already warmed a fifth
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_seeds_stable_distinct_and_streams() -> None:
    assert derive_seed(0, "views", 3, 1) == derive_seed(0, "views", 3, 1)
    seeds = {
        derive_seed(s, "views", step, r) for s in (0, 1) for step in range(50) for r in range(4)
    }
    assert len(seeds) == 2 * 50 * 4
    assert 0 <= derive_seed(123, "x") < 2**63
    cpu = torch.device("cpu")
    a = torch.rand(5, generator=step_generator(0, 3, 0, cpu))
    b = torch.rand(5, generator=step_generator(0, 3, 0, cpu))
    c = torch.rand(5, generator=step_generator(0, 3, 1, cpu))
    assert torch.equal(a, b) and not torch.equal(a, c)
    o1, o2 = epoch_order(100, 0, 2), epoch_order(100, 0, 3)
    assert torch.equal(torch.sort(o1).values, torch.arange(100))
    assert torch.equal(o1, epoch_order(100, 0, 2)) and not torch.equal(o1, o2)


def test_rng_state_roundtrip() -> None:
    state = capture_rng_state()
    x = (torch.rand(3), np.random.rand(3), __import__("random").random())  # noqa: NPY002
    restore_rng_state(state)
    y = (torch.rand(3), np.random.rand(3), __import__("random").random())  # noqa: NPY002
    assert torch.equal(x[0], y[0]) and np.array_equal(x[1], y[1]) and x[2] == y[2]


def test_shards_partition_the_global_batch() -> None:
    gb = torch.randperm(24)
    parts = [shard(gb, DistContext(r, 3)) for r in range(3)]
    assert torch.equal(torch.cat(parts), gb)


def test_plan_clamps_batch_and_counts_steps() -> None:
    plan = plan_steps(100, tcfg(batch_size=32, epochs=3, warmup_epochs=0.5), 2)
    assert (plan.batch_size, plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (
        32,
        3,
        9,
        2,
    )
    small = plan_steps(7, tcfg(batch_size=32, epochs=2, max_steps=1), 2)
    assert (small.batch_size, small.total_steps) == (6, 1)
    with pytest.raises(SciclrError, match="too few"):
        plan_steps(1, tcfg(), 1)


def test_gloo_sync_batchnorm_equals_batchnorm_in_one_process() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(5, momentum=0.3)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_()
    model = nn.Sequential(nn.Linear(4, 5), bn)
    ref = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, momentum=0.3))
    ref.load_state_dict(model.state_dict())
    converted = convert_sync_batchnorm(model, torch.device("cpu"))
    assert isinstance(converted[1], GlooSyncBatchNorm)
    assert converted.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(16, 4)
    assert torch.allclose(converted(x), ref(x), atol=1e-6)
    assert torch.allclose(converted[1].running_var, ref[1].running_var)


def test_knn_balanced_accuracy() -> None:
    train_x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    train_y = torch.tensor([0, 0, 1, 1])
    query_x = torch.tensor([[1.0, 0.05], [0.05, 1.0], [0.2, 1.0], [1.0, 0.3], [1.0, 0.2]])
    assert (
        knn_balanced_accuracy(train_x, train_y, query_x, torch.tensor([0, 1, 1, 0, 0]), k=2) == 1.0
    )
    # predictions are [0, 1, 1, 0, 0]; class 0: 1 of 1 right, class 1: 2 of 4 -> (1 + 0.5) / 2,
    # where plain accuracy would be 3/5
    acc = knn_balanced_accuracy(train_x, train_y, query_x, torch.tensor([0, 1, 1, 1, 1]), k=2)
    assert acc == pytest.approx(0.75)
    acc = knn_balanced_accuracy(train_x, train_y, query_x, torch.tensor([1, 1, 1, 0, 0]), k=2)
    assert acc == pytest.approx(0.5 * (2 / 3 + 1.0))


def test_metrics_log_roundtrip_and_truncate() -> None:
    log = MetricsLog()
    for s in range(1, 5):
        log.append({"step": s, "epoch": 1, "loss": 1.0 / s, "k": 62})
    restored = MetricsLog.from_state(log.state())
    restored.truncate(2)
    df = restored.frame()
    assert list(df.columns) == ["step", "epoch", "loss", "k"]
    assert df["step"].tolist() == [1, 2] and df["k"].dtype == np.int64
    assert df["loss"].tolist() == [1.0, 0.5]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _row(step: int) -> dict[str, float]:
    return {
        "loss": 1.5,
        "lr": 1e-3,
        "temperature": 0.1,
        "samples_per_s": 100.0,
        "data_time_frac": 0.02,
        "step": step,
    }


def test_progress_logs_lines_without_tty_and_bar_with_tty() -> None:
    plain = io.StringIO()
    p = Progress(total=25, steps_per_epoch=10, log_every=10, stream=plain)
    for s in range(1, 26):
        p.update(s, _row(s))
    lines = plain.getvalue().splitlines()
    assert [ln.split()[3] for ln in lines] == ["1/25", "10/25", "20/25", "25/25"]
    assert "(epoch 3/3)" in lines[-1] and "loss 1.5000" in lines[-1] and "data 2.0%" in lines[-1]
    tty = _Tty()
    p = Progress(total=3, steps_per_epoch=3, stream=tty)
    for s in range(1, 4):
        p.update(s, _row(s))
    p.close()
    out = tty.getvalue()
    assert out.startswith("\r[") and "[" + "#" * 24 + "]" in out and "\n" not in out[:-1]


def test_eta_waits_for_warm_up_and_ignores_the_slow_first_steps(monkeypatch) -> None:
    """Steps 1-3 take 10 s each (warm-up, profiling), later ones 1 s: the first ETA printed
    must come from the fast steps (the old mean over all steps said 38 min for a 9-min job)."""
    clock = [0.0]
    monkeypatch.setattr("sciclr.train.progress.time.perf_counter", lambda: clock[0])
    out = io.StringIO()
    p = Progress(total=103, steps_per_epoch=103, log_every=1, stream=out)
    p.begin(0, steady_from=3)
    for s in range(1, 8):
        clock[0] += 10.0 if s <= 3 else 1.0
        p.update(s, _row(s))
    lines = out.getvalue().splitlines()
    assert all(ln.endswith("eta after warm-up") for ln in lines[:3])
    assert lines[3].endswith("eta 0:01:39")  # 99 steps left at 1 s each
    assert lines[6].endswith("eta 0:01:36")


def test_device_and_amp_choice() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    with pytest.raises(SciclrError, match="needs a CUDA device"):
        resolve_amp("bf16", cpu)
    with pytest.raises(SciclrError, match="expected auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(SciclrError, match=r"torch\.cuda\.is_available"):
            resolve_device("cuda")


def test_the_val_check_compares_against_a_seeded_capped_train_subset(tmp_path):
    """``train.eval_max_items`` caps the k-NN reference set (its embedding is the check's cost);
    the subset is drawn from the train split only, by the training seed, and all val items stay.
    ``train.eval_max_val`` caps the val items scored the same way."""
    data = make_dataset(tmp_path / "data")
    records = pd.read_csv(data / "records.tsv", sep="\t", dtype=str, keep_default_na=False)
    source = DOMAIN.data_source(load_torch(data / "data.pt"))
    train = np.flatnonzero(records["split"] == "train")
    val = np.flatnonzero(records["split"] == "val")

    def build(**kw):
        cfg = make_cfg(**kw)
        return _evaluator(cfg, records, source, torch.device("cpu"), TrainConfig(**cfg["train"]))

    full, how = build()
    assert np.array_equal(full.train_idx, train) and how == "k-NN on 'label'"
    capped, how = build(eval_max_items=20)
    assert len(capped.train_idx) == 20 and set(capped.train_idx) <= set(train)
    assert np.array_equal(capped.val_idx, val)
    assert how.endswith("against 20 seeded train items")
    few_val, how = build(eval_max_val=7)
    assert len(few_val.val_idx) == 7 and set(few_val.val_idx) <= set(val) and len(val) > 7
    assert np.array_equal(few_val.train_idx, train)
    assert how == "k-NN on 'label', scored on 7 seeded val items"
    vcodes = dict(zip(val, full.val_y.tolist(), strict=True))
    assert [vcodes[i] for i in few_val.val_idx] == few_val.val_y.tolist()
    assert np.array_equal(build(eval_max_val=7)[0].val_idx, few_val.val_idx)  # seeded
    again, _ = build(eval_max_items=20)
    other, _ = build(eval_max_items=20, seed=8)
    assert np.array_equal(again.train_idx, capped.train_idx)
    assert not np.array_equal(other.train_idx, capped.train_idx)
    # labels stay aligned with their items
    codes = dict(zip(train, full.train_y.tolist(), strict=True))
    assert [codes[i] for i in capped.train_idx] == capped.train_y.tolist()
