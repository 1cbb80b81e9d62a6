"""End-to-end tests of the training engine on the synthetic domain (CPU, seconds each):
outputs, exact resume after SIGTERM, 2-process DDP == 1 process, determinism, selection."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sciclr.config import load_params
from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch
from sciclr.train import run_embedding, run_training
from sciclr.train.checkpoint import model_state
from sciclr.train.config import TrainConfig
from sciclr.train.distributed import DistContext
from sciclr.train.evaluate import Evaluation
from sciclr.train.loop import Trainer
from sciclr.train.objective import build_loss
from sciclr.train.schedule import WarmupCosine
from sciclr.train.signals import EXIT_RESUMABLE
from tests.train.synthetic_domain import DOMAIN, VectorSource, make_cfg, make_dataset

DIAG_COLUMNS = ["pos_sim", "neg_sim", "alignment", "uniformity", "k", "mi_bound", "margin"]
COLUMNS = ["step", "epoch", "loss", "lr", "temperature", *DIAG_COLUMNS,
           "grad_norm", "samples_per_s", "data_time_frac"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synthetic") / "data")


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("trained")
    summary = run_training(make_cfg(profile_steps=3), data, out)
    return out, summary


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_outputs_metrics_and_summary(trained: tuple[Path, dict]) -> None:
    out, summary = trained
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == COLUMNS
    assert len(metrics) == 9 and metrics["step"].tolist() == list(range(1, 10))
    assert metrics["epoch"].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert np.isfinite(metrics.to_numpy(dtype=float)).all()
    schedule = WarmupCosine(warmup_steps=3, total_steps=9)
    assert metrics["lr"].to_numpy() == pytest.approx([1e-2 * schedule(s) for s in range(9)])
    assert (metrics["k"] == 2 * 32 - 2).all() and np.allclose(metrics["temperature"], 0.1)
    assert metrics["loss"].iloc[-3:].mean() < metrics["loss"].iloc[:3].mean() - 0.3
    assert (metrics["mi_bound"] - (np.log(62) - metrics["loss"])).abs().max() < 1e-5

    on_disk = json.loads((out / "train_summary.json").read_text())
    assert on_disk["world_size"] == 1 and on_disk["device"] == "cpu" and on_disk["amp"] == "off"
    assert on_disk["total_steps"] == 9 and on_disk["global_batch_size"] == 32
    assert on_disk["samples_per_s"] > 0
    path = on_disk["data_path"]
    assert path["steps"] == 3 and path["views_labelled"] and 0 < path["fraction"] < 1
    assert path["fraction"] == pytest.approx((path["batch_s"] + path["views_s"]) / path["step_s"])
    evals = on_disk["evaluations"]
    assert [e["epoch"] for e in evals] == [1, 2, 3]
    best = max(evals, key=lambda e: e["value"])  # first of equal maxima is kept
    assert on_disk["chosen_epoch"] == best["epoch"] == summary["chosen_epoch"]
    assert on_disk["selection"]["rule"] == "best val epoch"

    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == best["epoch"] and ckpt["cfg"]["train"]["epochs"] == 3
    assert not (out / "best.pt").exists()  # the best epoch's weights live in the resume state
    assert _states_equal(ckpt["model"], load_torch(out / "last.pt")["best_model"])
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["step"] == 9 and last["total_steps"] == 9


def test_resume_after_completion_is_noop(trained: tuple[Path, dict], data: Path, capsys) -> None:
    out, _ = trained
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    assert run_training(make_cfg(profile_steps=3), data, out) is None
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    assert after == before
    assert "nothing to do" in capsys.readouterr().err


def test_finished_state_without_checkpoint_is_finalized_and_config_change_restarts(
    data: Path, tmp_path: Path
) -> None:
    cfg = make_cfg(epochs=1)
    first = run_training(cfg, data, tmp_path)
    (tmp_path / "checkpoint.pt").unlink()  # killed between last.pt and checkpoint.pt
    again = run_training(cfg, data, tmp_path)
    assert again["steps_this_run"] == 0 and again["resumed_from_step"] == 3
    assert (tmp_path / "checkpoint.pt").exists() and again["chosen_epoch"] == first["chosen_epoch"]
    changed = run_training(make_cfg(epochs=1, lr=5e-3), data, tmp_path)  # another run: no resume
    assert changed["resumed_from_step"] == 0 and changed["steps_this_run"] == 3
    assert load_torch(tmp_path / "checkpoint.pt")["cfg"]["train"]["lr"] == 5e-3


def test_learned_temperature_and_queue_reach_the_loss(data: Path, tmp_path: Path) -> None:
    summary = run_training(
        make_cfg(epochs=1, learn_temperature=True, queue_size=64, eval_every=0), data, tmp_path
    )
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert m["temperature"].iloc[0] == pytest.approx(0.1) and m["temperature"].iloc[-1] != 0.1
    # the queue fills with 2 views x 32 items per step: K = 62 in-batch + queued keys
    assert m["k"].tolist() == [62, 62 + 64, 62 + 64]
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert float(last["loss"]["log_temperature"].exp()) == pytest.approx(
        m["temperature"].iloc[-1], rel=0.05
    )
    assert last["loss"]["queue.keys"].shape == (64, 8) and summary["total_steps"] == 3


def test_each_step_releases_the_payload_pages_its_gather_read(data: Path, tmp_path: Path) -> None:
    # a mapped payload's pages leave the resident set after every gather (sciclr.memory), so
    # training memory does not grow with the data; no check here, so only the steps release
    before = VectorSource.released
    summary = run_training(make_cfg(epochs=1, eval_every=0), data, tmp_path)
    assert VectorSource.released - before == summary["total_steps"] == 3


def test_same_seed_gives_identical_embeddings(
    trained: tuple[Path, dict], data: Path, tmp_path: Path
) -> None:
    out, _ = trained
    again = tmp_path / "again"
    run_training(make_cfg(), data, again)  # profiling off: must not change the result

    def embedded(checkpoint: Path | None, name: str) -> np.ndarray:
        shape = run_embedding(make_cfg(), data, checkpoint, tmp_path / name)
        with np.load(tmp_path / name) as z:
            assert z["ids"].dtype.kind == "U" and z["X"].shape == shape
            assert z["ids"].tolist() == pd.read_csv(data / "records.tsv", sep="\t")["id"].tolist()
            return z["X"]

    x1 = embedded(out / "checkpoint.pt", "a.npz")
    x2 = embedded(again / "checkpoint.pt", "b.npz")
    assert x1.dtype == np.float32 and x1.shape == (128, 16)
    assert np.array_equal(x1, x2)
    # the untrained baseline: deterministic, the training's initial weights, not the trained ones
    u1 = embedded(None, "u1.npz")
    u2 = embedded(None, "u2.npz")
    assert np.array_equal(u1, u2) and not np.allclose(u1, x1)
    torch.manual_seed(7)
    init = DOMAIN.build_model({"x": load_torch(data / "data.pt")["x"]}, make_cfg()).eval()
    with torch.no_grad():
        assert np.array_equal(init.embed(load_torch(data / "data.pt")["x"]).numpy(), u1)
    other = run_training(make_cfg(seed=8), data, tmp_path / "seed8")
    assert other is not None
    x3 = embedded(tmp_path / "seed8" / "checkpoint.pt", "c.npz")
    assert not np.allclose(x3, x1)


def _cli(params: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "sciclr", "train", "--params", str(params),
            "--data", str(data), "--out", str(out)]  # fmt: skip


def test_sigterm_mid_epoch_then_rerun_equals_uninterrupted(
    data: Path, tmp_path: Path, worker_env: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps(make_cfg(epochs=3, batch_size=16)))  # 6 steps/epoch, 18 steps
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    slow = {**worker_env, "SCICLR_TEST_BATCH_DELAY": "0.15"}
    proc = subprocess.Popen(
        _cli(params, data, interrupted), env=slow, stderr=subprocess.PIPE, text=True
    )
    seen = []
    for line in proc.stderr:  # one log line per step (not a terminal)
        seen.append(line)
        if "step 8/18" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == EXIT_RESUMABLE, "".join(seen) + rest
    assert "stopped by SIGTERM" in rest
    state = torch.load(interrupted / "last.pt", weights_only=True)
    stopped = state["step"]
    assert 8 <= stopped < 18 and stopped % 6 != 0  # mid-epoch
    assert not (interrupted / "checkpoint.pt").exists()
    assert len(pd.read_csv(interrupted / "metrics.csv")) == stopped

    # rerun (in this process, also single-threaded) and an uninterrupted reference run
    assert run_training(make_cfg(epochs=3, batch_size=16), data, interrupted) is not None
    assert f"resuming after step {stopped}" in capsys.readouterr().err
    run_training(make_cfg(epochs=3, batch_size=16), data, reference)

    for name in ("checkpoint.pt", "last.pt"):
        a = torch.load(interrupted / name, weights_only=True)["model"]
        b = torch.load(reference / name, weights_only=True)["model"]
        assert _states_equal(a, b), name
    ma, mb = (pd.read_csv(d / "metrics.csv") for d in (interrupted, reference))
    cols = ["step", "epoch", "loss", "lr", "grad_norm", *DIAG_COLUMNS]
    pd.testing.assert_frame_equal(ma[cols], mb[cols], check_exact=True)
    sa, sb = (json.loads((d / "train_summary.json").read_text()) for d in (interrupted, reference))
    assert sa["resumed_from_step"] == stopped and sa["steps_this_run"] == 18 - stopped
    assert sa["evaluations"] == sb["evaluations"] and sa["chosen_epoch"] == sb["chosen_epoch"]


def test_ddp_two_processes_equal_one_process_across_a_stop_signal(
    data: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    """2 gloo processes (global batch 16 = 2 x 8) give the parameters of 1 process on the
    global batch (1e-5), even when stopped by SIGUSR1 mid-epoch (what SLURM sends before the
    time limit) and resumed: the signal reaches both workers, which stop after the same step."""
    cfg = make_cfg(epochs=1, batch_size=16, ddp_procs=2, eval_every=0)  # 6 steps
    params = tmp_path / "params.json"
    params.write_text(json.dumps(cfg))
    out = tmp_path / "ddp"
    slow = {**worker_env, "SCICLR_TEST_BATCH_DELAY": "0.3"}
    proc = subprocess.Popen(_cli(params, data, out), env=slow, stderr=subprocess.PIPE, text=True)
    log = []
    for line in proc.stderr:
        log.append(line)
        if "step 2/6" in line:
            proc.send_signal(signal.SIGUSR1)
            break
    log.append(proc.stderr.read())
    text = "".join(log)
    assert proc.wait(timeout=120) == EXIT_RESUMABLE, text
    stopped = torch.load(out / "last.pt", weights_only=True)["step"]
    assert 2 <= stopped < 6, text
    assert text.count(f"stopped by SIGUSR1 after step {stopped}") == 2  # both ranks
    assert not (out / "checkpoint.pt").exists()
    resumed = subprocess.run(_cli(params, data, out), env=worker_env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after step {stopped}" in resumed.stderr

    run_training({**cfg, "train": {**cfg["train"], "ddp_procs": 1}}, data, tmp_path / "one")
    s2 = json.loads((out / "train_summary.json").read_text())
    assert s2["world_size"] == 2 and s2["negatives"].startswith("global batch")
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    diffs = {k: float((a[k].double() - b[k].double()).abs().max()) for k in a}
    assert max(diffs.values()) < 1e-5, diffs
    init = model_state(_initial_model(data))
    assert float((b["encoder.0.weight"] - init["encoder.0.weight"]).abs().max()) > 1e-3
    assert b["encoder.1.num_batches_tracked"] == 6  # synced BatchNorm counted 6 global batches
    m2, m1 = (pd.read_csv(d / "metrics.csv") for d in (out, tmp_path / "one"))
    assert len(m2) == len(m1) == 6 and np.abs(m2["loss"] - m1["loss"]).max() < 1e-5
    assert (m2["k"] == m1["k"]).all() and (m1["k"] == 2 * 16 - 2).all()


def _initial_model(data: Path) -> torch.nn.Module:
    torch.manual_seed(7)
    return DOMAIN.build_model({"x": load_torch(data / "data.pt")["x"]}, make_cfg())


class _Scripted:
    """An evaluator with fixed scores that remembers the model it saw at each epoch."""

    def __init__(self, scores: list[float]) -> None:
        self.scores, self.seen = list(scores), []

    def __call__(self, model: torch.nn.Module) -> Evaluation:
        self.seen.append(model_state(model))
        return Evaluation("scripted", self.scores[len(self.seen) - 1])


@pytest.mark.parametrize("select", [True, False])
def test_val_selection_keeps_best_epoch(data: Path, tmp_path: Path, select: bool) -> None:
    payload = load_torch(data / "data.pt")
    cfg = make_cfg(select_on_val=select)
    tcfg = TrainConfig.from_mapping(cfg["train"])
    evaluator = _Scripted([0.2, 0.9, 0.5])
    trainer = Trainer(
        model=_initial_model(data),
        loss=build_loss(tcfg),
        source=DOMAIN.data_source(payload),
        train_idx=torch.arange(96),
        tcfg=tcfg,
        device=torch.device("cpu"),
        ctx=DistContext(),
        out_dir=tmp_path,
        run_fingerprint="test",
        cfg=cfg,
        evaluator=evaluator,
    )
    result = trainer.fit()
    ckpt = load_torch(tmp_path / "checkpoint.pt")
    if select:
        assert result.summary["chosen_epoch"] == 2 and ckpt["epoch"] == 2
        assert _states_equal(ckpt["model"], evaluator.seen[1])
    else:
        assert result.summary["chosen_epoch"] == 3 and ckpt["selection"]["rule"].startswith("last")
        assert _states_equal(ckpt["model"], evaluator.seen[2])
    assert not _states_equal(evaluator.seen[1], evaluator.seen[2])


def test_tensorboard_optional(data: Path, tmp_path: Path, capsys) -> None:
    run_training(make_cfg(tensorboard=True, max_steps=2, eval_every=0), data, tmp_path)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert "tensorboard requested but not installed" in capsys.readouterr().err
    else:
        assert any((tmp_path / "tensorboard").iterdir())
    assert (tmp_path / "checkpoint.pt").exists()


def test_input_errors_are_one_line(data: Path, tmp_path: Path) -> None:
    with pytest.raises(SciclrError, match=r"data\.pt: not found"):
        run_training(make_cfg(), tmp_path / "missing", tmp_path / "out")
    short = tmp_path / "short"
    short.mkdir()
    save_torch(short / "data.pt", {"x": torch.zeros(5, 16)})
    (short / "records.tsv").write_text((data / "records.tsv").read_text())
    with pytest.raises(SciclrError, match=r"data\.pt has 5 items but records\.tsv has 128 rows"):
        run_training(make_cfg(), short, tmp_path / "out")
    with pytest.raises(SciclrError, match="cannot load 'nowhere_module:X'"):
        run_training({**make_cfg(), "domain": "nowhere_module:X"}, data, tmp_path / "out")
    wrong = tmp_path / "wrong.pt"
    save_torch(wrong, {"format": 1, "model": {"encoder.0.weight": torch.zeros(2, 2)},
                       "cfg": make_cfg()})  # fmt: skip
    with pytest.raises(SciclrError, match="does not fit the model"):
        run_embedding(make_cfg(), data, wrong, tmp_path / "x.npz")
    with pytest.raises(SciclrError, match="not a sciclr checkpoint"):
        save_torch(tmp_path / "foreign.pt", {"weights": 1})
        run_embedding(make_cfg(), data, tmp_path / "foreign.pt", tmp_path / "x.npz")


def test_params_inline_or_file(tmp_path: Path) -> None:
    assert load_params('{"a": 1}') == {"a": 1}
    f = tmp_path / "p.json"
    f.write_text('{"b": 2}')
    assert load_params(str(f)) == {"b": 2} == load_params(f"@{f}")
    with pytest.raises(SciclrError, match="invalid JSON"):
        load_params("{nope")
    with pytest.raises(SciclrError, match="neither a JSON object nor an existing file"):
        load_params(str(tmp_path / "absent.json"))


def test_pair_similarities_separate_positives_after_training(tmp_path):
    """Training writes similarities.npz; positives end up more similar than negatives."""
    data = make_dataset(tmp_path / "data")
    run_training(make_cfg(epochs=4), data, tmp_path / "run")
    sims = np.load(tmp_path / "run" / "similarities.npz")
    pos, neg = sims["pos"], sims["neg"]
    assert len(pos) > 0 and len(neg) > len(pos)
    assert np.isfinite(pos).all() and np.isfinite(neg).all()
    assert np.all(np.abs(pos) <= 1 + 1e-5) and np.all(np.abs(neg) <= 1 + 1e-5)
    assert pos.mean() > neg.mean() + 0.2, (pos.mean(), neg.mean())
