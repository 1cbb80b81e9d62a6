"""Weighted, vectorised metrics equal scikit-learn/scipy, and resampling weights mean repetition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from sklearn import metrics as skm

from sciclr.analysis import metrics as M


def _one(fn, *args):
    n = len(args[0])
    return float(fn(*args, np.ones((1, n)))[0])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 6, 300))  # class 5 only predicted
    (tc, pc), k = M.encode(t, p)
    assert _one(M.accuracy, tc, pc) == pytest.approx(skm.accuracy_score(t, p))
    W = np.ones((1, 300))
    assert M.balanced_accuracy(tc, pc, W, k)[0] == pytest.approx(skm.balanced_accuracy_score(t, p))
    assert M.macro_f1(tc, pc, W, k)[0] == pytest.approx(skm.f1_score(t, p, average="macro"))


def test_roc_auc_with_ties_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    assert _one(M.roc_auc, y, s) == pytest.approx(skm.roc_auc_score(y, s))


def test_regression_metrics_match_sklearn_scipy():
    rng = np.random.default_rng(2)
    t = rng.normal(size=150)
    p = np.round(t + rng.normal(scale=0.5, size=150), 1)
    assert _one(M.mae, t, p) == pytest.approx(skm.mean_absolute_error(t, p))
    assert _one(M.rmse, t, p) == pytest.approx(np.sqrt(skm.mean_squared_error(t, p)))
    assert _one(M.r2, t, p) == pytest.approx(skm.r2_score(t, p))
    assert _one(M.spearman, t, p) == pytest.approx(spearmanr(t, p).statistic)


def test_cluster_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 4, 200)
    c = np.where(rng.random(200) < 0.5, t, rng.integers(0, 6, 200))
    assert _one(M.adjusted_rand, t, c) == pytest.approx(skm.adjusted_rand_score(t, c))
    assert _one(M.normalized_mutual_info, t, c) == pytest.approx(
        skm.normalized_mutual_info_score(t, c)
    )
    assert _one(M.adjusted_rand, t, t) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=5, max_size=40
    )
)
def test_integer_weights_equal_repetition(rows):
    """A bootstrap weight w_i must act exactly like w_i copies of item i."""
    t = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows], dtype=float)
    if w.sum() == 0:
        w[0] = 1
    rep = np.repeat(np.arange(len(t)), w.astype(int))
    (tc, pc), k = M.encode(t, p)
    W = w[None, :]
    assert M.accuracy(tc, pc, W)[0] == pytest.approx(skm.accuracy_score(t[rep], p[rep]))
    assert M.macro_f1(tc, pc, W, k)[0] == pytest.approx(
        skm.f1_score(t[rep], p[rep], average="macro")
    )
    tr, pr = t.astype(float), p.astype(float) + 0.1 * np.arange(len(p))
    assert M.mae(tr, pr, W)[0] == pytest.approx(skm.mean_absolute_error(tr[rep], pr[rep]))
    if len(np.unique(tr[rep])) > 1:
        assert M.spearman(tr, pr, W)[0] == pytest.approx(spearmanr(tr[rep], pr[rep]).statistic)
    pos = t == 1
    if 0 < pos[rep].sum() < len(rep):
        assert M.roc_auc(pos, pr, W)[0] == pytest.approx(skm.roc_auc_score(pos[rep], pr[rep]))
    assert M.normalized_mutual_info(t, p, W)[0] == pytest.approx(
        skm.normalized_mutual_info_score(t[rep], p[rep]), abs=1e-9
    )


def test_ari_ignores_pairs_of_copies():
    """Copies of one item agree trivially; the ARI of a resample counts distinct pairs only, so
    unrelated clusterings average 0 over resamples, where the naive ARI of the repeated items
    is biased upwards (by about 1/n)."""
    rng = np.random.default_rng(4)
    n = 60
    t = rng.integers(0, 4, n)
    c = rng.integers(0, 4, n)
    W = np.zeros((400, n))
    for b in range(400):
        np.add.at(W[b], rng.integers(0, n, n), 1.0)
    corrected = M.adjusted_rand(t, c, W) - M.adjusted_rand(t, c, np.ones((1, n)))[0]
    naive = np.array(
        [
            skm.adjusted_rand_score(np.repeat(t, w.astype(int)), np.repeat(c, w.astype(int)))
            for w in W
        ]
    ) - skm.adjusted_rand_score(t, c)
    assert naive.mean() > 0.01
    assert abs(corrected.mean()) < naive.mean() / 3


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_weights_equal_sklearn_sample_weight_where_it_means_repetition():
    rng = np.random.default_rng(5)
    n = 120
    t = rng.integers(0, 4, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, 4, n))
    y, yh = rng.normal(size=n), rng.normal(size=n)
    score = rng.random(n) + 0.3 * (t == 1)
    (tc, pc), k = M.encode(t, p)
    W = np.concatenate([np.ones((1, n)), rng.multinomial(n, np.full(n, 1 / n), size=20)])
    for w, row in zip(W, W[:, None, :], strict=True):
        assert M.accuracy(tc, pc, row)[0] == pytest.approx(
            skm.accuracy_score(t, p, sample_weight=w)
        )
        assert M.balanced_accuracy(tc, pc, row, k)[0] == pytest.approx(
            skm.balanced_accuracy_score(t, p, sample_weight=w)
        )
        assert M.roc_auc(t == 1, score, row)[0] == pytest.approx(
            skm.roc_auc_score(t == 1, score, sample_weight=w)
        )
        assert M.mae(y, yh, row)[0] == pytest.approx(
            skm.mean_absolute_error(y, yh, sample_weight=w)
        )
        assert M.r2(y, yh, row)[0] == pytest.approx(skm.r2_score(y, yh, sample_weight=w))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_macro_f1_drops_labels_absent_from_the_resample():
    """A label whose items all have weight 0 is absent from the resample: the repeated items (and
    sciclr) do not average it in, sklearn's ``sample_weight`` scores it F1 = 0 — why the
    bootstrap cannot use sklearn's weighted F1."""
    t = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    w = np.array([1.0, 1.0, 2.0, 1.0, 0.0, 0.0])
    rep = np.repeat(np.arange(6), w.astype(int))
    (tc, pc), k = M.encode(t, p)
    repeated = skm.f1_score(t[rep], p[rep], average="macro")
    assert M.macro_f1(tc, pc, w[None, :], k)[0] == pytest.approx(repeated)
    assert skm.f1_score(t, p, average="macro", sample_weight=w) < repeated - 0.2
