"""Percentile bootstrap confidence intervals over test items (Efron & Tibshirani 1993, ch. 13).

Resamples are drawn as multiplicity matrices ``W`` of shape ``(B, n)`` (multinomial counts) and
fed to the vectorised metrics of :mod:`sciclr.analysis.metrics`. The same seed gives the same
resamples for every feature set scored on the same test items, so differences between two
predictors are *paired*: the CI of a difference comes from one set of resamples, which is what
"SSL beats the baseline by Δ" needs (two overlapping marginal CIs say little about Δ).

Why not ``scipy.stats.bootstrap`` (``python benchmarks/libraries.py --parts d``, B = 1000,
the bundled test splits of 320–1,083 items, a shared 2-core machine). The resamples are the
very draws scipy makes for the same seed (``Generator.integers(0, n, (B, n))``; the tests check
equal CIs), but
* with scikit-learn's metrics (``vectorized=False``: they take no ``axis``) scipy was 53–560×
  slower: 200× for accuracy, 140× balanced accuracy, 53–195× MAE, 200× ROC-AUC, 160× ARI,
  220× for the three classification metrics of one prediction, 560× for a paired difference;
* as the engine around sciclr's weighted metrics (indices turned into multiplicities) it was
  1.3–1.6× slower and wrong for sciclr's use: its percentile interval is NaN as soon as one
  resample is undefined (a small test set whose resample lacks a positive: ROC-AUC with 2
  positives in 30 items has 14 % such resamples), where :func:`estimates` uses the defined
  resamples while they are at least half; and resampled *items* give ARI the pairs between
  copies of one item (see :func:`sciclr.analysis.metrics.adjusted_rand`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate", "bootstrap", "estimates", "paired_difference", "resample_weights"]

MetricFn = Callable[[np.ndarray], np.ndarray]  # weights (B, n) -> values (B,)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile confidence interval (NaN bounds when not computed)."""

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")


#: most cells (resamples x items) of one chunk of bootstrap weights: 32 MB of float64, so the
#: metrics' temporaries stay bounded however many test items there are
CHUNK_CELLS = 1 << 22


def resample_weights(n: int, n_boot: int, seed: int, chunk: int = 250) -> Iterator[np.ndarray]:
    """Yield bootstrap multiplicity matrices in chunks of at most ``chunk`` rows, ``(b, n)``,
    and at most :data:`CHUNK_CELLS` cells (fewer rows above 16,777 items).

    The resamples do not depend on the chunking: each chunk continues the generator's stream
    row by row, so the concatenated chunks are the draws of one ``integers(0, n, (n_boot, n))``
    call (tested); memory is O(``CHUNK_CELLS``) and time O(``n_boot`` x ``n``)."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(int(chunk), CHUNK_CELLS // max(int(n), 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        flat = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def bootstrap(
    fns: Sequence[MetricFn], n: int, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Point values ``(k,)`` and bootstrap samples ``(n_boot, k)`` of ``k`` metrics."""
    ones = np.ones((1, n))
    point = np.array([float(fn(ones)[0]) for fn in fns])
    if n_boot <= 0 or n == 0:
        return point, np.empty((0, len(fns)))
    parts = [np.stack([fn(W) for fn in fns], axis=1) for W in resample_weights(n, n_boot, seed)]
    return point, np.concatenate(parts, axis=0)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    s = samples[np.isfinite(samples)]
    if len(s) < max(10, 0.5 * len(samples)):  # too many undefined resamples: no honest CI
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(s, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def estimates(
    fns: Sequence[MetricFn], n: int, n_boot: int, seed: int, level: float = 0.95
) -> list[Estimate]:
    """Each metric with its percentile CI, from one shared set of resamples."""
    point, samples = bootstrap(fns, n, n_boot, seed)
    out = []
    for j, v in enumerate(point):
        lo, hi = _interval(samples[:, j], level) if len(samples) else (np.nan, np.nan)
        out.append(Estimate(float(v), lo, hi))
    return out


def paired_difference(
    fn_a: MetricFn, fn_b: MetricFn, n: int, n_boot: int, seed: int, level: float = 0.95
) -> tuple[Estimate, Estimate, Estimate]:
    """Metric of ``a``, of ``b`` and of ``a − b`` on the same items, from one set of resamples.

    With the seed used for the metrics tables, the first two equal those tables' CIs.
    """
    point, samples = bootstrap([fn_a, fn_b], n, n_boot, seed)
    diff = float(point[0] - point[1])
    if not len(samples):
        return Estimate(float(point[0])), Estimate(float(point[1])), Estimate(diff)
    out = [Estimate(float(point[j]), *_interval(samples[:, j], level)) for j in range(2)]
    lo, hi = _interval(samples[:, 0] - samples[:, 1], level)
    return out[0], out[1], Estimate(diff, lo, hi)
