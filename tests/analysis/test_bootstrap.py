"""Bootstrap CIs with known answers: degenerate, chance-level, calibrated, paired."""

from __future__ import annotations

import numpy as np
import pytest

from sciclr.analysis import metrics as M
from sciclr.analysis.bootstrap import estimates, paired_difference, resample_weights


def test_resample_weights_are_multinomial_counts():
    Ws = list(resample_weights(50, 600, seed=3, chunk=250))
    assert [len(W) for W in Ws] == [250, 250, 100]
    W = np.concatenate(Ws)
    assert np.all(W.sum(axis=1) == 50)
    assert W.mean() == pytest.approx(1.0)
    assert W.var() == pytest.approx(1 - 1 / 50, rel=0.05)  # multinomial(n, 1/n) marginals
    again = np.concatenate(list(resample_weights(50, 600, seed=3, chunk=250)))
    assert np.array_equal(W, again)  # same seed, same resamples: the basis of pairing


def test_perfect_predictions_give_accuracy_one_with_zero_width_ci():
    t = np.arange(200) % 4
    (e,) = estimates([lambda W: M.accuracy(t, t, W)], 200, 500, seed=0)
    assert (e.value, e.ci_low, e.ci_high) == (1.0, 1.0, 1.0)


def test_calibration_of_the_percentile_interval():
    """Accuracy of a predictor that is right with probability 0.7: the 95 % CI should contain
    0.7 in about 95 % of repeated experiments (binomial sd over 200 runs ≈ 1.5 %)."""
    rng = np.random.default_rng(0)
    n, hits, runs = 300, 0, 200
    for _ in range(runs):
        correct = rng.random(n) < 0.7
        t = np.zeros(n, dtype=int)
        p = np.where(correct, 0, 1)
        (e,) = estimates(
            [lambda W, t=t, p=p: M.accuracy(t, p, W)], n, 400, seed=int(rng.integers(1 << 30))
        )
        hits += e.ci_low <= 0.7 <= e.ci_high
    assert 0.90 <= hits / runs <= 0.99


def test_paired_difference_of_identical_predictors_is_exactly_zero():
    rng = np.random.default_rng(1)
    t = rng.normal(size=100)
    p = t + rng.normal(size=100)
    fn = lambda W: M.mae(t, p, W)  # noqa: E731
    a, _, d = paired_difference(fn, fn, 100, 300, seed=2)
    assert (d.value, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0)
    assert a.ci_low < a.value < a.ci_high


def test_pairing_narrows_the_interval_of_a_difference():
    """Two predictors sharing most of their errors: the paired CI of the difference is much
    narrower than what the two marginal CIs suggest."""
    rng = np.random.default_rng(2)
    t = rng.normal(size=400)
    shared = rng.normal(size=400)
    pa = t + shared
    pb = t + shared + 0.3 * rng.normal(size=400)
    a, b, d = paired_difference(
        lambda W: M.mae(t, pa, W), lambda W: M.mae(t, pb, W), 400, 1000, seed=3
    )
    assert d.value == pytest.approx(a.value - b.value)
    assert (d.ci_high - d.ci_low) < 0.5 * min(a.ci_high - a.ci_low, b.ci_high - b.ci_low)


def test_undefined_metric_gives_no_interval():
    t = np.zeros(30, dtype=bool)  # a single class: ROC-AUC undefined everywhere
    (e,) = estimates([lambda W: M.roc_auc(t, np.arange(30.0), W)], 30, 200, seed=0)
    assert np.isnan(e.value) and np.isnan(e.ci_low) and np.isnan(e.ci_high)


@pytest.mark.parametrize("n", [37, 300])
def test_resamples_and_intervals_equal_scipy_bootstrap(n):
    """The multiplicity matrices are scipy.stats.bootstrap's resamples (the same generator draws
    for the same seed), so where scipy's paired percentile bootstrap is right for sciclr —
    defined metrics of independent items — the CIs are scipy's to rounding."""
    from scipy import stats
    from sklearn.metrics import accuracy_score, mean_absolute_error

    rng = np.random.default_rng(n)
    t = rng.integers(0, 3, n)
    p = np.where(rng.random(n) < 0.7, t, rng.integers(0, 3, n))
    yt, yp = rng.normal(size=n), rng.normal(size=n)
    acc, err = estimates(
        [lambda W: M.accuracy(t, p, W), lambda W: M.mae(yt, yp, W)], n, 600, seed=11
    )
    for e, data, stat in (
        (acc, (t, p), accuracy_score),
        (err, (yt, yp), mean_absolute_error),
    ):
        ref = stats.bootstrap(
            data,
            lambda a, b, stat=stat: stat(a, b),
            paired=True,
            vectorized=False,
            n_resamples=600,
            method="percentile",
            rng=np.random.default_rng(11),
        ).confidence_interval
        assert e.ci_low == pytest.approx(ref.low, abs=1e-12)
        assert e.ci_high == pytest.approx(ref.high, abs=1e-12)


def test_interval_from_the_defined_resamples():
    """A metric undefined on a minority of resamples (ROC-AUC of a resample without a positive)
    still gets a CI from the others; scipy's percentile bootstrap gives NaN then."""
    t = np.zeros(30, dtype=bool)
    t[:3] = True
    s = np.linspace(0.0, 1.0, 30)[::-1]  # the positives score highest: AUC 1 where defined
    W = np.concatenate(list(resample_weights(30, 500, seed=4)))
    undefined = ~np.isfinite(M.roc_auc(t, s, W))
    assert 0.01 < undefined.mean() < 0.5
    (e,) = estimates([lambda W: M.roc_auc(t, s, W)], 30, 500, seed=4)
    assert (e.value, e.ci_low, e.ci_high) == (1.0, 1.0, 1.0)


def test_resamples_do_not_depend_on_the_chunking_and_chunks_stay_bounded():
    from sciclr.analysis import bootstrap as bs

    n, B = 20_000, 300  # above 16,777 items a chunk holds fewer than 250 resamples
    chunks = list(bs.resample_weights(n, B, seed=11))
    assert max(c.shape[0] * c.shape[1] for c in chunks) <= bs.CHUNK_CELLS
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == B
    draws = np.random.default_rng(11).integers(0, n, size=(B, n))
    ref = np.stack([np.bincount(r, minlength=n) for r in draws])
    np.testing.assert_array_equal(np.concatenate(chunks), ref)
    small = np.concatenate(list(bs.resample_weights(50, 1000, seed=2)))
    one = np.concatenate(list(bs.resample_weights(50, 1000, seed=2, chunk=1000)))
    np.testing.assert_array_equal(small, one)
