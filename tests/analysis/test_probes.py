"""Probes on synthetic data with known answers, and the solvers against scikit-learn."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from sciclr.analysis.logistic import fit_logistic
from sciclr.analysis.probes import fit_linear, ridge_path, run_probes, standardize
from sciclr.analysis.scoring import score_prediction
from sciclr.analysis.spec import Settings, resolve_tasks
from sciclr.errors import SciclrError


def _dataset(n_per=60, k=4, sep=6.0, d=10, seed=0, with_val=True):
    rng = np.random.default_rng(seed)
    y = np.repeat([f"c{i}" for i in range(k)], n_per)
    code = np.repeat(np.arange(k), n_per)
    X = rng.normal(size=(len(y), d))
    X[np.arange(len(y)), code] += sep
    frac = rng.random(len(y))
    split = np.where(
        frac < 0.6, "train", np.where(frac < 0.8, "val" if with_val else "train", "test")
    )
    rec = pd.DataFrame({"id": [f"i{j}" for j in range(len(y))], "split": split, "y": y})
    return rec, X


def _probe(rec, X, params=None, **analysis):
    p = {
        "name": "syn",
        "tasks": [{"column": "y", "type": "classification"}],
        "analysis": {"bootstrap": 500, "probes": ["linear", "knn"], **analysis},
    }
    if params:
        p.update(params)
    s = Settings.from_params(p)
    tasks = resolve_tasks(s, rec)
    preds = run_probes(s, rec["id"].to_numpy(), rec["split"].to_numpy(), tasks, {"f": X})
    rows = []
    for pr in preds:
        task = next(t for t in tasks if t.name == pr.task)
        rows += score_prediction(pr, task.metrics(), 500, 0, 0.95)
    return pd.DataFrame(rows), preds


def test_separable_classes_give_accuracy_one_with_tight_ci():
    rec, X = _dataset(sep=12.0)
    m, _ = _probe(rec, X)
    for probe in ("linear", "knn"):
        r = m[(m.feature_set == "f") & (m.probe == probe) & (m.metric == "accuracy")].iloc[0]
        assert (r.value, r.ci_low, r.ci_high) == (1.0, 1.0, 1.0)
        assert r.n_test == int((rec.split == "test").sum())
    dummy = m[(m.probe == "dummy") & (m.metric == "accuracy")].iloc[0]
    assert dummy.value < 0.4


def test_shuffled_labels_give_chance():
    rec, X = _dataset(n_per=150, sep=12.0, seed=1)
    rec["y"] = np.random.default_rng(7).permutation(rec["y"].to_numpy())
    m, _ = _probe(rec, X)
    for probe in ("linear", "knn"):
        r = m[(m.feature_set == "f") & (m.probe == probe) & (m.metric == "balanced_accuracy")].iloc[
            0
        ]
        assert r.ci_low <= 0.25 <= r.ci_high
        assert abs(r.value - 0.25) < 0.1


def test_regression_probe_recovers_noise_level():
    """y = Xβ + ε with σ = 0.5: the test MAE is σ·sqrt(2/π) ≈ 0.399, inside the CI."""
    rng = np.random.default_rng(3)
    n = 1200
    X = rng.normal(size=(n, 8))
    y = X @ rng.normal(size=8) + 0.5 * rng.normal(size=n)
    split = np.where(np.arange(n) < 800, "train", "test")
    rec = pd.DataFrame({"id": [f"i{j}" for j in range(n)], "split": split, "y": y})
    m, _ = _probe(rec, X, {"tasks": [{"column": "y", "type": "regression"}]}, probes=["linear"])
    r = m[(m.feature_set == "f") & (m.metric == "mae")].iloc[0]
    assert r.ci_low <= 0.5 * np.sqrt(2 / np.pi) <= r.ci_high
    assert "fold CV" in r.param  # no val split: selection by CV on train
    r2 = m[(m.feature_set == "f") & (m.metric == "r2")].iloc[0]
    assert r2.value > 0.95


def test_selection_prefers_strong_regularisation_for_noise_and_weak_for_signal():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 30))
    s = Settings.from_params({"tasks": [{"column": "y", "type": "regression"}]})
    rec = pd.DataFrame(
        {"id": [str(i) for i in range(200)], "split": "train", "y": rng.normal(size=200)}
    )
    task = resolve_tasks(s, rec)[0]
    alpha, note = fit_linear(task, X, task.y, None, None, s)
    assert alpha == max(s["ridge_alpha"]) and "5-fold CV" in note
    task.y = X @ rng.normal(size=30)  # noiseless linear target
    alpha, _ = fit_linear(task, X, task.y, None, None, s)
    assert alpha == min(s["ridge_alpha"])
    alpha, note = fit_linear(task, X[:150], task.y[:150], X[150:], task.y[150:], s)
    assert alpha == min(s["ridge_alpha"]) and "(val)" in note


@pytest.mark.parametrize("n,d", [(80, 12), (20, 50)])
def test_ridge_path_equals_sklearn_ridge(n, d):
    """Every alpha of the path equals its own Ridge fit, also with more features than items."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    coefs, icpt = ridge_path(X, y, [0.1, 10.0])
    assert coefs.shape == (2, d) and icpt.shape == (2,)
    for j, a in enumerate([0.1, 10.0]):
        ref = Ridge(alpha=a).fit(X, y)
        np.testing.assert_allclose(coefs[j], ref.coef_, atol=1e-8)
        assert icpt[j] == pytest.approx(ref.intercept_)
    one, b = ridge_path(X.astype(np.float32), y, [3.0])  # float32 features are fitted in float64
    np.testing.assert_allclose(one[0], Ridge(alpha=3.0).fit(X, y).coef_, atol=1e-6)
    assert one.shape == (1, d) and b.shape == (1,)


def test_standardize_uses_train_statistics_and_keeps_constant_columns():
    rng = np.random.default_rng(9)
    train = np.c_[rng.normal(3.0, 2.0, size=(50, 3)), np.full(50, 7.0)]
    test = np.c_[rng.normal(size=(5, 3)), np.full(5, 8.0)]
    ztr, zte = standardize(train, test)
    assert ztr.dtype == zte.dtype == np.float32
    np.testing.assert_allclose(ztr[:, :3].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(ztr[:, :3].std(axis=0), 1.0, atol=1e-5)
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(zte[:, :3], (test[:, :3] - mean[:3]) / std[:3], rtol=1e-5)
    # a constant train column keeps scale 1: it is centred, never divided by ~0
    np.testing.assert_allclose(ztr[:, 3], 0.0)
    np.testing.assert_allclose(zte[:, 3], 1.0)
    ref = StandardScaler().fit(train).transform(test)
    np.testing.assert_allclose(zte, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("balanced", [False, True])
def test_logistic_matches_sklearn(balanced):
    rng = np.random.default_rng(6)
    y = rng.choice(["a", "b", "c"], size=300, p=[0.6, 0.3, 0.1])
    X = rng.normal(size=(300, 5)) + (y[:, None] == np.array(["a", "b", "c", "a", "b"])) * 1.5
    ours = fit_logistic(X, y, C=0.5, tol=1e-8, balanced=balanced)
    ref = LogisticRegression(
        C=0.5, max_iter=5000, tol=1e-10, class_weight="balanced" if balanced else None
    ).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-4)
    assert np.array_equal(ours.predict(X), ref.predict(X))


def test_warm_start_reaches_the_same_solution():
    rng = np.random.default_rng(7)
    y = rng.choice(["a", "b"], size=200)
    X = rng.normal(size=(200, 6)) + (y == "a")[:, None]
    cold = fit_logistic(X, y, C=10.0, tol=1e-8)
    warm = fit_logistic(X, y, C=10.0, tol=1e-8, init=fit_logistic(X, y, C=0.01))
    np.testing.assert_allclose(warm.predict_proba(X), cold.predict_proba(X), atol=5e-4)


def test_binary_task_gets_roc_auc_and_single_class_train_is_an_error():
    rec, X = _dataset(k=2, sep=3.0, seed=8)
    m, preds = _probe(rec, X)
    assert {"roc_auc", "accuracy"} <= set(m.metric)
    assert all(p.score is not None for p in preds)
    rec.loc[rec.split == "train", "y"] = "c0"
    with pytest.raises(SciclrError, match="single class"):
        _probe(rec, X)


def test_capped_probes_are_seeded_predict_every_test_item_and_say_so():
    rec, X = _dataset(n_per=200, sep=1.5, d=30, seed=2)  # noisy: the fit depends on its items
    n_train, n_test = int((rec.split == "train").sum()), int((rec.split == "test").sum())
    assert n_train > 400 and n_test > 100
    m1, p1 = _probe(rec, X, max_items=100)
    m2, p2 = _probe(rec, X, max_items=100)
    pd.testing.assert_frame_equal(m1, m2)
    _, pf = _probe(rec, X)
    for a, b, f in zip(p1, p2, pf, strict=True):
        assert a.probe == f.probe and len(a.ids) == len(f.ids) == n_test  # every test item
        assert np.array_equal(a.y_pred, b.y_pred)
        if a.probe != "dummy":
            assert f"subsample 100 of {n_train:,} train and 100 of" in a.param, a.param
            assert "subsample" not in f.param
    lin = [(a, f) for a, f in zip(p1, pf, strict=True) if a.probe in ("linear", "knn")]
    assert any(not np.array_equal(a.y_pred, f.y_pred) for a, f in lin)


def test_chunked_test_predictions_equal_one_pass():
    """With fewer train and val items than the cap, a cap below the test split only cuts the
    predictions into blocks: the same labels and scores as one pass."""
    from sciclr.analysis.probes import fit_predict

    rng = np.random.default_rng(0)
    n = 400
    y = np.where(rng.random(n) < 0.4, "pos", "neg")
    X = rng.normal(size=(n, 6)) + (y == "pos")[:, None] * 0.8
    rec = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "split": "test", "y": y})
    rec.loc[:79, "split"] = "train"
    rec.loc[80:99, "split"] = "val"
    params = {"name": "s", "tasks": [{"column": "y", "type": "classification"}]}
    task = resolve_tasks(Settings.from_params(params), rec)[0]
    task = dataclasses.replace(task, positive="pos")
    rows = {s: np.flatnonzero(rec.split.to_numpy() == s) for s in ("train", "val", "test")}
    for probe in ("linear", "knn", "rf"):
        out = []
        for cap in (100, 10_000):  # 300 test items: 3 blocks, or one
            s = Settings.from_params({**params, "analysis": {"max_items": cap, "rf_trees": 20}})
            out.append(fit_predict(probe, task, X, rows, s, 1))
        (pa, sa, na), (pb, sb, nb) = out
        assert len(pa) == 300 and np.array_equal(pa, pb) and na == nb, probe
        np.testing.assert_allclose(sa, sb, rtol=1e-12, atol=1e-15)
