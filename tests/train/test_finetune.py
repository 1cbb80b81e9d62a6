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

from sciclr.analysis.logistic import fit_logistic
from sciclr.analysis.probes import fit_linear, ridge_path, standardize
from sciclr.analysis.spec import Settings, TaskData
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
    probe_head,
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
    res = _run(data, tmp_path, task="target", epochs=12, patience=2, lr=0.05, head_init="zero")
    hist = pd.read_csv(tmp_path / "metrics.csv")
    assert list(hist["epoch"]) == list(range(len(hist)))  # epoch 0: the starting point
    best = int(hist["val_value"].idxmin())  # mae: lower is better; first of ties
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best_epoch"] == best == int(hist.loc[hist["best"], "epoch"].iloc[-1])
    assert best > 0 and summary["best_val"] == pytest.approx(hist["val_value"].min())
    # it stopped patience epochs after the best one, which was not the last epoch
    assert summary["stopped_early"] and len(hist) == best + 1 + 2 < 13
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


@pytest.mark.parametrize("task_name", ["label", "target"])
def test_the_head_starts_as_the_linear_probe_and_epoch_0_can_be_kept(
    data, checkpoint, tmp_path, task_name
):
    """With a learning rate too small to move anything, no epoch beats the start on val, so
    the run returns its epoch 0: the test predictions are those of the label-efficiency
    probe (CV inside the subset) fitted on the SSL embeddings of the same subset."""
    res = _run(data, tmp_path, task=task_name, fraction=0.5, checkpoint=checkpoint, lr=1e-12)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best_epoch"] == 0 and summary["head_init"] == "probe"
    assert summary["probe"].endswith("-fold CV)") and summary["start_val"] == summary["best_val"]
    payload, _ = load_data(data)
    source = DOMAIN.data_source(payload)
    cfg = dataset_params(ft_cfg())
    records = pd.read_csv(data / "records.tsv", sep="\t", dtype={"id": str})
    task = select_task(cfg, records, task_name)
    X = embed(_load_trained(DOMAIN, payload, checkpoint), source, np.arange(len(source)), "cpu")
    sub, test = res.train_rows, np.flatnonzero(records["split"].to_numpy() == "test")
    settings = Settings.from_params(cfg)
    y = task.y[sub]
    if task.type == "regression":
        value, _ = fit_linear(task, X[sub], y.astype(float), None, None, settings)
        Xs, Xt = standardize(X[sub], X[test])
        coef, icpt = ridge_path(Xs, y.astype(float), [value])
        np.testing.assert_allclose(res.predictions["y_pred"], Xt @ coef[0] + icpt[0], atol=1e-4)
    else:
        value, _ = fit_linear(task, X[sub], y, None, None, settings)
        Xs, Xt = standardize(X[sub], X[test])
        expect = fit_logistic(Xs, y, value, settings["max_iter"]).predict(Xt)
        assert (res.predictions["y_pred"].astype(str).to_numpy() == expect).all()


def test_probe_head_maps_every_class_to_its_output():
    """Binary fits have one logit, a class absent from the subset gets none: the head's
    softmax still gives the probe's probabilities, in the head's class order."""
    rng = np.random.default_rng(0)
    settings = Settings.from_params(dataset_params({"domain": "dna"}))
    for classes, present in ((["a", "b"], ["a", "b"]), (["a", "b", "c", "d"], ["a", "b", "d"])):
        y = np.array(present * 20)
        x = rng.normal(size=(len(y), 5)) + (np.searchsorted(classes, y)[:, None] == np.arange(5))
        x = (x - x.mean(0)) / x.std(0)
        task = TaskData(
            "t", "classification", "t", y, np.ones(len(y), bool), "accuracy", tuple(classes)
        )
        weight, bias, note = probe_head(task, x, y, classes, settings, False)
        assert weight.shape == (len(classes), 5) and note.startswith("C=")
        value, _ = fit_linear(task, x, y, None, None, settings)
        probe = fit_logistic(x, y, value, settings["max_iter"])
        prob = torch.softmax(torch.from_numpy(x @ weight.T + bias).double(), 1).numpy()
        cols = [classes.index(c) for c in present]
        np.testing.assert_allclose(prob[:, cols], probe.predict_proba(x), atol=1e-4)
        assert (prob[:, [classes.index(c) for c in classes if c not in present]] < 1e-3).all()
