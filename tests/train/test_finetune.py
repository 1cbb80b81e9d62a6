"""Fine-tuning against training from scratch (sciclr.train.finetune) on the synthetic domain:
early stopping keeps the best val epoch, runs are deterministic, the ssl init is the
checkpoint's encoder, both inits see the same subset, regression targets are standardised."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sciclr.analysis.spec import TaskData
from sciclr.config import dataset_params
from sciclr.errors import SciclrError
from sciclr.io import load_matrix
from sciclr.train.embed import embed
from sciclr.train.finetune import (
    EarlyStopping,
    FinetuneConfig,
    FinetuneNet,
    _decode,
    _loss_fn,
    _metric,
    _outputs,
    epoch_batches,
    initial_model,
    run_finetune,
    select_task,
)
from sciclr.train.run import _load_trained, load_data, run_embedding, run_training
from tests.train.synthetic_domain import DOMAIN, make_cfg, make_dataset


def ft_cfg(**finetune) -> dict:
    """The synthetic data set with a classification task (label) and a regression task
    (target, carried by the clusters) and a small fine-tuning budget."""
    cfg = make_cfg(epochs=2)
    cfg["tasks"].append({"column": "target", "type": "regression"})
    base = {"epochs": 6, "patience": 2, "batch_size": 16, "lr": 0.01, "warmup_epochs": 0}
    cfg["finetune"] = {**base, **finetune}
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = make_dataset(tmp_path_factory.mktemp("ft") / "data")
    rec = pd.read_csv(path / "records.tsv", sep="\t")
    code = rec["label"].str[1:].astype(int).to_numpy()
    rng = np.random.default_rng(1)
    rec["target"] = 2.0 * code + rng.normal(0.0, 0.7, len(rec))
    rec.to_csv(path / "records.tsv", sep="\t", index=False)
    return path


@pytest.fixture(scope="module")
def checkpoint(data, tmp_path_factory) -> Path:
    """A trained SSL run on the synthetic data (2 epochs)."""
    out = tmp_path_factory.mktemp("ssl")
    torch.set_num_threads(1)
    run_training(make_cfg(epochs=2), data, out, stream=io.StringIO())
    return out / "checkpoint.pt"


def _run(data, out, task="label", fraction=1.0, checkpoint=None, **finetune):
    return run_finetune(
        ft_cfg(**finetune), data, task, fraction, out, checkpoint, stream=io.StringIO()
    )


def test_early_stopping_rule():
    stop = EarlyStopping(patience=2, higher_is_better=True)
    assert stop.update(1, float("nan"))  # the first epoch is the best so far, even undefined
    assert stop.update(2, 0.5)  # a defined value beats an undefined one
    assert not stop.update(3, 0.5)  # a tie keeps the earlier epoch
    assert not stop.stop
    assert stop.update(4, 0.7) and stop.best_epoch == 4 and stop.since_best == 0
    assert not stop.update(5, float("nan")) and not stop.update(6, 0.69)
    assert stop.stop and stop.best_epoch == 4 and stop.best_value == 0.7
    lower = EarlyStopping(patience=1, higher_is_better=False)
    lower.update(1, 0.3)
    assert lower.update(2, 0.2) and not lower.update(3, 0.25) and lower.stop


def test_early_stopping_keeps_the_best_val_epoch(data, tmp_path):
    res = _run(data, tmp_path, task="target", epochs=12, patience=2, lr=0.05)
    hist = pd.read_csv(tmp_path / "metrics.csv")
    assert list(hist["epoch"]) == list(range(1, len(hist) + 1))
    best = int(hist["val_value"].idxmin())  # mae: lower is better; first of ties
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best_epoch"] == best + 1 == int(hist.loc[hist["best"], "epoch"].iloc[-1])
    assert summary["best_val"] == pytest.approx(hist["val_value"].min())
    # it stopped patience epochs after the best one, which was not the last epoch
    assert summary["stopped_early"] and len(hist) == best + 1 + 2 < 12
    assert hist["val_value"].iloc[-1] > hist["val_value"].min()
    # the weights kept are that epoch's: rebuilt from them, the val MAE and the test
    # predictions come out exactly as recorded
    payload, _ = load_data(data)
    source = DOMAIN.data_source(payload)
    full = dataset_params(ft_cfg())
    records = pd.read_csv(data / "records.tsv", sep="\t", dtype={"id": str})
    task = select_task(full, records, "target")
    net = FinetuneNet(initial_model(DOMAIN, payload, full, None), 16, 1)
    net.load_state_dict(res.best_state)
    split = records["split"].to_numpy()
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    y = task.y[res.train_rows]
    decode = {"mean": float(y.mean()), "std": float(y.std())}
    out = _outputs(net, source, val, torch.device("cpu"), 64, None)
    pred, _ = _decode(task, out, decode)
    assert _metric(task, val, pred, None) == pytest.approx(summary["best_val"], abs=1e-12)
    pred, _ = _decode(task, _outputs(net, source, test, torch.device("cpu"), 64, None), decode)
    written = pd.read_csv(tmp_path / "predictions.tsv", sep="\t")
    np.testing.assert_allclose(written["y_pred"], pred, rtol=0, atol=1e-9)


def test_same_seed_same_predictions_and_another_seed_another_subset(data, tmp_path):
    a = _run(data, tmp_path / "a", fraction=0.5)
    b = _run(data, tmp_path / "b", fraction=0.5)
    c = _run(data, tmp_path / "c", fraction=0.5, seed=1)
    assert (tmp_path / "a/predictions.tsv").read_bytes() == (
        tmp_path / "b/predictions.tsv"
    ).read_bytes()
    timing = ["samples_per_s", "epoch_s"]
    pd.testing.assert_frame_equal(a.history.drop(columns=timing), b.history.drop(columns=timing))
    assert not np.array_equal(a.train_rows, c.train_rows)
    # the columns are the documented ones; a binary score is absent for 4 classes
    written = pd.read_csv(tmp_path / "a/predictions.tsv", sep="\t")
    assert list(written.columns) == ["id", "y_true", "y_pred", "score"]
    assert written["score"].isna().all() and len(written) == 16


def test_ssl_init_is_the_checkpoint_and_scratch_is_where_ssl_started(data, checkpoint):
    payload, _ = load_data(data)
    source = DOMAIN.data_source(payload)
    cfg = dataset_params(ft_cfg())
    rows = np.arange(len(source))
    dev = torch.device("cpu")
    ssl = embed(initial_model(DOMAIN, payload, cfg, checkpoint), source, rows, dev)
    trained = embed(_load_trained(DOMAIN, payload, checkpoint), source, rows, dev)
    np.testing.assert_array_equal(ssl, trained)
    scratch = embed(initial_model(DOMAIN, payload, cfg, None), source, rows, dev)
    run_embedding(make_cfg(epochs=2), data, None, data.parent / "untrained.npz")
    _, untrained = load_matrix(data.parent / "untrained.npz")
    np.testing.assert_array_equal(scratch, untrained)
    assert np.abs(ssl - scratch).max() > 0.1  # training moved the weights: the test can fail


def test_ssl_and_scratch_runs_see_the_same_subset(data, checkpoint, tmp_path):
    ssl = _run(data, tmp_path / "ssl", fraction=0.25, checkpoint=checkpoint)
    scratch = _run(data, tmp_path / "scratch", fraction=0.25)
    np.testing.assert_array_equal(ssl.train_rows, scratch.train_rows)
    s1 = json.loads((tmp_path / "ssl/summary.json").read_text())
    s2 = json.loads((tmp_path / "scratch/summary.json").read_text())
    assert s1["train_ids_sha256"] == s2["train_ids_sha256"]
    assert (s1["init"], s2["init"]) == ("ssl", "scratch") and s1["n_train"] == 24
    # stratified: 6 of the 24 train items of each of the 4 classes
    labels = pd.read_csv(data / "records.tsv", sep="\t")["label"].to_numpy()
    assert sorted(np.unique(labels[ssl.train_rows], return_counts=True)[1]) == [6] * 4
    # and the runs differ in their start: their predictions do not coincide
    assert not ssl.history["train_loss"].equals(scratch.history["train_loss"])


def test_regression_targets_are_standardised(data, tmp_path):
    """Shifting and scaling the target changes nothing but the scale of the predictions."""
    shifted = tmp_path / "data"
    shifted.mkdir()
    (shifted / "data.pt").write_bytes((data / "data.pt").read_bytes())
    rec = pd.read_csv(data / "records.tsv", sep="\t")
    rec["target"] = 1000.0 + 3.0 * rec["target"]
    rec.to_csv(shifted / "records.tsv", sep="\t", index=False)
    a = _run(data, tmp_path / "a", task="target").predictions
    b = _run(shifted, tmp_path / "b", task="target").predictions
    np.testing.assert_allclose(b["y_pred"], 1000.0 + 3.0 * a["y_pred"], rtol=1e-9, atol=1e-6)


def test_class_balanced_loss_weights_inverse_frequency():
    cfg = FinetuneConfig.from_mapping(dataset_params({"domain": "dna"})["finetune"])
    task = TaskData(
        "t", "classification", "t", np.array([]), np.array([]), "balanced_accuracy", ("a", "b", "c")
    )
    target = torch.tensor([0, 0, 0, 1])  # class c absent from the subset: weight 0
    w = _loss_fn(task, target, cfg, True, torch.device("cpu")).weight
    np.testing.assert_allclose(w.numpy(), [4 / 9, 4 / 3, 0.0], rtol=1e-6)
    assert _loss_fn(task, target, cfg, False, torch.device("cpu")).weight is None


def test_errors_are_one_line(data, checkpoint, tmp_path):
    with pytest.raises(SciclrError, match=r"--task 'nope': not a fine-tuned task"):
        _run(data, tmp_path, task="nope")
    with pytest.raises(SciclrError, match=r"finetune\.tasks: \['nope'\] not among"):
        _run(data, tmp_path, tasks=["nope"])
    with pytest.raises(SciclrError, match=r"--fraction: 0.0 is not in \(0, 1\]"):
        _run(data, tmp_path, fraction=0.0)
    cfg = ft_cfg()
    cfg["model"] = {"hidden": 8}  # not the checkpoint's architecture
    with pytest.raises(SciclrError, match=r"model section differs .* \['hidden'\]"):
        run_finetune(cfg, data, "label", 1.0, tmp_path, checkpoint, stream=io.StringIO())


def test_epoch_batches_cover_the_subset_and_bucket_by_size():
    sizes = np.random.default_rng(0).integers(500, 1500, 1000)
    for s in (None, sizes):
        batches = epoch_batches(1000, 16, 3, 0, s)
        assert len(batches) == 16 and {len(b) for b in batches} == {62, 63}
        assert sorted(torch.cat(batches).tolist()) == list(range(1000))
        again = epoch_batches(1000, 16, 3, 0, s)
        assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
        other = epoch_batches(1000, 16, 3, 1, s)
        assert not all(torch.equal(a, b) for a, b in zip(batches, other, strict=True))

    def padded(batches):  # work of padding each batch to its longest item, per base
        return sum(len(b) * sizes[b].max() for b in batches) / sizes.sum()

    assert padded(epoch_batches(1000, 16, 3, 0, None)) > 1.4
    assert padded(epoch_batches(1000, 16, 3, 0, sizes)) < 1.05
