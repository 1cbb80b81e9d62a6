"""Clustering recovers planted clusters and finds nothing in noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis.clustering import cluster_task, hdbscan_labels, leiden_labels, run_clustering
from sciclr.analysis.spec import Settings, resolve_tasks
from sciclr.errors import SciclrError


def _planted(k=5, n_per=40, d=12, sep=10.0, seed=0):
    rng = np.random.default_rng(seed)
    code = np.repeat(np.arange(k), n_per)
    X = rng.normal(size=(len(code), d))
    X[np.arange(len(code)), code] += sep
    rec = pd.DataFrame(
        {"id": [f"i{j}" for j in range(len(code))], "split": "test", "lab": [f"L{c}" for c in code]}
    )
    return rec, X


def _run(rec, feats, **analysis):
    s = Settings.from_params(
        {
            "name": "syn",
            "tasks": [{"column": "lab", "type": "classification"}],
            "analysis": {"bootstrap": 200, **analysis},
        }
    )
    task = cluster_task(s, resolve_tasks(s, rec))
    return run_clustering(s, rec["id"].to_numpy(), rec["split"].to_numpy(), task, feats)


def _val(m, fs, probe, metric):
    return m[(m.feature_set == fs) & (m.probe == probe) & (m.metric == metric)].iloc[0]


def test_planted_clusters_are_recovered_and_noise_is_not():
    rec, X = _planted()
    noise = np.random.default_rng(1).normal(size=X.shape)
    m, assign = _run(rec, {"planted": X, "noise": noise})
    for method in ("kmeans", "leiden"):
        assert _val(m, "planted", method, "ari").value > 0.95, method
        assert _val(m, "planted", method, "nmi").value > 0.95, method
    # HDBSCAN labels the sparse fringe of 40-point clusters in 12-d as noise, which costs ARI
    assert _val(m, "planted", "hdbscan", "ari").value > 0.7
    assert _val(m, "planted", "hdbscan", "n_clusters").value == 5
    assert 0 < _val(m, "planted", "hdbscan", "noise_fraction").value < 0.3
    r = _val(m, "planted", "kmeans", "ari")
    assert (r.value, r.ci_low, r.ci_high) == (1.0, 1.0, 1.0)
    assert _val(m, "planted", "kmeans", "n_clusters").value == 5
    assert _val(m, "planted", "labels", "silhouette").value > 0.3
    nk = _val(m, "noise", "kmeans", "ari")
    assert nk.ci_low < 0 < nk.ci_high and abs(nk.value) < 0.05
    assert _val(m, "noise", "labels", "silhouette").value < 0.05
    # one assignment row per feature set × method × item
    assert len(assign) == 2 * 3 * len(rec)
    assert set(assign.columns) == {
        "dataset",
        "task",
        "feature_set",
        "method",
        "id",
        "label",
        "cluster",
    }


def test_hdbscan_marks_noise_and_leiden_is_seeded():
    _, X = _planted(k=3, n_per=30)
    X = np.r_[X, np.random.default_rng(2).uniform(-30, 30, size=(10, X.shape[1]))]
    lab = hdbscan_labels(X, min_cluster_size=10, pca=0, seed=0)
    assert (lab[-10:] == -1).sum() >= 8 and len(set(lab[:90]) - {-1}) == 3
    a = leiden_labels(X, 10, 1.0, seed=3)
    assert np.array_equal(a, leiden_labels(X, 10, 1.0, seed=3))


def test_cluster_task_choice():
    rec, _ = _planted()
    rec["other"] = "x"
    s = Settings.from_params(
        {
            "tasks": [
                {"column": "other", "type": "classification"},
                {"column": "lab", "type": "classification", "cluster": True},
            ]
        }
    )
    assert cluster_task(s, resolve_tasks(s, rec)).name == "lab"
    s = Settings.from_params(
        {"tasks": [{"column": "lab", "type": "regression"}], "analysis": {"cluster_column": "lab"}}
    )
    rec["lab"] = np.arange(len(rec), dtype=float)
    with pytest.raises(SciclrError, match="not a classification task"):
        cluster_task(s, resolve_tasks(s, rec))


def test_cap_rows_is_a_seeded_stratified_subsample_of_exactly_cap():
    from sciclr.analysis.probes import cap_rows

    rows = np.arange(1000, 1600)
    labels = np.repeat(["a", "b", "c"], [450, 140, 10])
    sub = cap_rows(rows, 100, seed=4, labels=labels)
    assert len(sub) == 100 and np.all(np.diff(sub) > 0) and set(sub) <= set(rows)
    got = dict(zip(*np.unique(labels[sub - 1000], return_counts=True), strict=True))
    assert got == {"a": 75, "b": 23, "c": 2}  # shares 75 / 23.3 / 1.7: largest remainder
    assert np.array_equal(sub, cap_rows(rows, 100, seed=4, labels=labels))
    assert not np.array_equal(sub, cap_rows(rows, 100, seed=5, labels=labels))
    assert np.array_equal(cap_rows(rows, 600, seed=4), rows)  # at or below the cap: all
    rare = cap_rows(rows, 100, seed=0, labels=np.r_[["x"] * 599, ["y"]])
    assert len(rare) == 100 and 1599 in rare  # every class keeps at least one item


def test_subsampled_clustering_is_seeded_reported_and_differs_from_the_full_one():
    rec, X = _planted(k=4, n_per=75, sep=2.5, seed=3)  # overlapping: results depend on items
    feats = {"a": X, "b": X[:, ::-1].copy()}
    m1, a1 = _run(rec, feats, max_items_cluster=100)
    m2, a2 = _run(rec, feats, max_items_cluster=100)
    pd.testing.assert_frame_equal(m1, m2)
    pd.testing.assert_frame_equal(a1, a2)
    full, _ = _run(rec, feats)  # 300 test items, below the default cap
    for method in ("hdbscan", "leiden"):
        r = _val(m1, "a", method, "ari")
        assert r.n_test == 100 and r.param == "subsample 100 of 300 items (max_items_cluster)"
        ids = {fs: set(g.id) for fs, g in a1[a1.method == method].groupby("feature_set")}
        assert len(ids["a"]) == 100 and ids["a"] == ids["b"]  # the same items: paired
        assert _val(full, "a", method, "ari").n_test == 300
    km = _val(m1, "a", "kmeans", "ari")
    assert km.n_test == 300 and "centres fitted on 100 of 300 items" in km.param
    assert (a1.method == "kmeans").sum() == 2 * 300  # every item assigned
    assert _val(full, "a", "kmeans", "ari").param == "k=4"
    sub_vals = m1.set_index(["feature_set", "probe", "metric"]).value
    full_vals = full.set_index(["feature_set", "probe", "metric"]).value
    changed = (sub_vals - full_vals).abs() > 1e-9
    assert changed.any()  # a subsample gives another answer than the full clustering
    per_class = a1[(a1.method == "leiden") & (a1.feature_set == "a")].label.value_counts()
    assert per_class.tolist() == [25, 25, 25, 25]  # stratified
