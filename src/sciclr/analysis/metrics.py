"""Test metrics as functions of per-item weights, vectorised over bootstrap resamples.

A bootstrap resample of ``n`` items is a row of multiplicities ``w`` (non-negative integers
summing to ``n``); the metric of the resample equals the metric of the original items
weighted by ``w``. Computing every metric from a weight matrix ``W`` of shape ``(B, n)`` turns
``B`` resamples into a few matrix products instead of ``B`` Python calls, and the point estimate
is simply ``W = ones((1, n))``. Definitions follow scikit-learn (accuracy, balanced accuracy,
macro-F1 over labels present, ROC-AUC with ties counted half, R², Spearman with mid-ranks,
ARI of Hubert & Arabie 1985, NMI with the arithmetic mean of entropies); the tests check
equality with scikit-learn/scipy at unit weights.

Why not ``sklearn.metrics`` (``python benchmarks/libraries.py --parts d e``, shared 2-core
machine): on the bundled test predictions they agree with it to ≤ 1e-16 at unit weight, but a
bootstrap with scikit-learn's metrics, one call per resample, was 53–220× slower for B = 1000
(they take no weight matrix); even a single unit-weight call was 1.5× (Spearman, scipy) to 77×
(accuracy) slower. With bootstrap weights scikit-learn is wrong for sciclr's use where a weight
must mean repetition: ``f1_score(sample_weight=w)`` keeps labels whose items all have weight 0
and averages in F1 = 0 for them (0.034 off on resamples of 40 crystal-system test items), ARI
and NMI take no weights, and ARI on repeated items counts pairs between copies (biased upwards:
+0.005 for a shuffled clustering of the 1,083 DNA test items, where the right mean is 0).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "adjusted_rand",
    "balanced_accuracy",
    "encode",
    "group_sums",
    "macro_f1",
    "mae",
    "normalized_mutual_info",
    "r2",
    "rmse",
    "roc_auc",
    "spearman",
]


def encode(*arrays: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Map labels of several arrays onto shared integer codes ``0..K-1``."""
    allv = np.concatenate([np.asarray(a).astype(str) for a in arrays])
    _, inv = np.unique(allv, return_inverse=True)
    out, start = [], 0
    for a in arrays:
        out.append(inv[start : start + len(a)])
        start += len(a)
    return out, int(inv.max()) + 1 if len(inv) else 0


def group_sums(W: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the columns of ``W`` ``(B, n)`` by group ``codes`` ``(n,)`` → ``(B, n_groups)``."""
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    out = np.zeros((W.shape[0], n_groups), dtype=np.float64)
    if len(sc):
        out[:, sc[starts]] = np.add.reduceat(W[:, order], starts, axis=1)
    return out


def _onehot(codes: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((len(codes), k), dtype=np.float64)
    m[np.arange(len(codes)), codes] = 1.0
    return m


def accuracy(t: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    return W @ (t == p).astype(np.float64) / W.sum(axis=1)


def balanced_accuracy(t: np.ndarray, p: np.ndarray, W: np.ndarray, k: int) -> np.ndarray:
    """Mean recall over the classes present in the (resampled) truth."""
    T = _onehot(t, k)
    support = W @ T
    hits = W @ (T * (t == p)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    return np.nanmean(recall, axis=1)


def macro_f1(t: np.ndarray, p: np.ndarray, W: np.ndarray, k: int) -> np.ndarray:
    """Unweighted mean F1 over labels present in truth or prediction."""
    T, P = _onehot(t, k), _onehot(p, k)
    tp = W @ (T * P)
    denom = W @ T + W @ P
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
    return np.nanmean(f1, axis=1)


def roc_auc(positive: np.ndarray, score: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Mann–Whitney AUC; NaN for a resample with a single class."""
    u, grp = np.unique(score, return_inverse=True)
    pos = positive.astype(np.float64)
    P = group_sums(W * pos, grp, len(u))
    N = group_sums(W * (1.0 - pos), grp, len(u))
    below = np.cumsum(N, axis=1) - N
    num = (P * (below + 0.5 * N)).sum(axis=1)
    den = P.sum(axis=1) * N.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def mae(t: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    return W @ np.abs(t - p) / W.sum(axis=1)


def rmse(t: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    return np.sqrt(W @ (t - p) ** 2 / W.sum(axis=1))


def r2(t: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    sw = W.sum(axis=1)
    mean = W @ t / sw
    ss_tot = W @ (t * t) - sw * mean**2
    ss_res = W @ (t - p) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 1e-12 * np.maximum(sw, 1), 1.0 - ss_res / ss_tot, np.nan)


def _midranks(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-item mid-rank of ``x`` within each weighted resample, shape ``(B, n)``."""
    u, grp = np.unique(x, return_inverse=True)
    G = group_sums(W, grp, len(u))
    rank = np.cumsum(G, axis=1) - G + (G + 1.0) / 2.0
    return rank[:, grp]


def _weighted_pearson(a: np.ndarray, b: np.ndarray, W: np.ndarray) -> np.ndarray:
    sw = W.sum(axis=1, keepdims=True)
    ma = (W * a).sum(axis=1, keepdims=True) / sw
    mb = (W * b).sum(axis=1, keepdims=True) / sw
    da, db = a - ma, b - mb
    cov = (W * da * db).sum(axis=1)
    var = (W * da * da).sum(axis=1) * (W * db * db).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(var), np.nan)


def spearman(t: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    return _weighted_pearson(_midranks(t, W), _midranks(p, W), W)


def _contingency(t: np.ndarray, c: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, int, int]:
    _, tc = np.unique(t.astype(str), return_inverse=True)
    _, cc = np.unique(c.astype(str), return_inverse=True)
    kt, kc = int(tc.max()) + 1, int(cc.max()) + 1
    return group_sums(W, tc * kc + cc, kt * kc).reshape(-1, kt, kc), kt, kc


def _comb2(x: np.ndarray) -> np.ndarray:
    return x * (x - 1.0) / 2.0


def adjusted_rand(t: np.ndarray, c: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Adjusted Rand index of clustering ``c`` against truth ``t`` per weighted resample.

    Pairs are pairs of *distinct* items weighted ``w_i w_j``: the pairs between copies of one
    item in a bootstrap resample agree trivially and would bias the index upwards, so their
    count ``D = Σ_i C(w_i, 2)`` is removed from every pair count (``D = 0`` at unit weights,
    which is the usual ARI).
    """
    M, _, _ = _contingency(t, c, W)
    D = _comb2(W).sum(axis=1)
    index = _comb2(M).sum(axis=(1, 2)) - D
    a = _comb2(M.sum(axis=2)).sum(axis=1) - D
    b = _comb2(M.sum(axis=1)).sum(axis=1) - D
    total = _comb2(M.sum(axis=(1, 2))) - D
    expected = a * b / np.maximum(total, 1e-300)
    max_index = (a + b) / 2.0
    den = max_index - expected
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(den) > 1e-12, (index - expected) / den, 1.0)


def normalized_mutual_info(t: np.ndarray, c: np.ndarray, W: np.ndarray) -> np.ndarray:
    """NMI with arithmetic-mean normalisation (scikit-learn's default)."""
    M, _, _ = _contingency(t, c, W)
    n = M.sum(axis=(1, 2), keepdims=True)
    P = M / n
    pt, pc = P.sum(axis=2), P.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        logterm = np.where(P > 0, np.log(P / (pt[:, :, None] * pc[:, None, :])), 0.0)
        ht = -np.where(pt > 0, pt * np.log(pt), 0.0).sum(axis=1)
        hc = -np.where(pc > 0, pc * np.log(pc), 0.0).sum(axis=1)
    mi = np.maximum((P * logterm).sum(axis=(1, 2)), 0.0)
    den = (ht + hc) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-15, mi / den, 1.0)
