"""Label-efficiency curves: probe quality against the fraction of train labels used.

Self-supervised representations earn their keep where labels are scarce (SimCLR's 1 % / 10 %
label results, Chen et al. 2020; Hénaff et al. 2020, data-efficient CPC). For each fraction of
``analysis.label_fractions``, ``analysis.label_repeats`` seeded, class-stratified subsets of the
train split are drawn (at least one item per class); every feature set gets the same probes on
the same subsets (the linear probe, and the random forest for ``rf_features``), with the
regularisation chosen by cross-validation inside the subset (the val split stays unused), and is
scored on the whole test split.

The 95 % interval of a curve point covers both sources of variation: each bootstrap resample
draws test items (multiplicity weights, as everywhere in the analysis) *and* repeats (with
replacement) and averages the metric over the drawn repeats. Comparisons of SSL with a baseline
at a fraction are paired twice over: the same subsets (repeat seeds) and the same resamples.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning

from sciclr.analysis.bootstrap import Estimate, resample_weights
from sciclr.analysis.probes import fit_predict
from sciclr.analysis.scoring import metric_functions, task_seed
from sciclr.analysis.spec import Settings, TaskData
from sciclr.analysis.verdict import VERDICT_COLUMNS, comparison_row

__all__ = ["CURVE_COLUMNS", "draw_subset", "label_efficiency"]

log = logging.getLogger(__name__)

#: Columns of ``label_efficiency.tsv``.
CURVE_COLUMNS = [
    "dataset",
    "task",
    "task_type",
    "feature_set",
    "probe",
    "fraction",
    "n_labels",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "repeats",
]


def draw_subset(task: TaskData, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions into ``rows`` (train items with a label) of a seeded subset of about
    ``fraction`` of them.

    Classification subsets are stratified (each class keeps its share, rounded) and hold at
    least one item of every class, so a probe can be fitted at 1 %; regression subsets are
    uniform. A fraction of 1 (or more) is every row. Returns sorted positions.
    """
    n = len(rows)
    if fraction >= 1.0 or n == 0:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if task.type != "classification":
        k = max(2, round(fraction * n))
        return np.sort(rng.choice(n, size=min(k, n), replace=False))
    labels = task.y[rows].astype(str)
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, round(fraction * len(members)))
        picks.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(picks))


@dataclass
class _Point:
    """One (task, feature set, probe, fraction): the metric per repeat and per resample."""

    task: TaskData
    feature_set: str
    probe: str
    fraction: float
    n_labels: int
    per_repeat: np.ndarray  # (R,) metric of each repeat on the whole test split
    samples: np.ndarray  # (R, B) metric of each repeat on each test resample


def _repeat_draws(n_repeats: int, n_boot: int, seed: int) -> np.ndarray:
    """``(B, R)`` repeat indices drawn with replacement, shared by every feature set."""
    return np.random.default_rng(seed).integers(0, n_repeats, size=(n_boot, n_repeats))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    s = samples[np.isfinite(samples)]
    if len(s) < max(10, 0.5 * len(samples)):
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(s, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _scores(
    task: TaskData,
    y_true: np.ndarray,
    preds: Sequence[tuple[np.ndarray, np.ndarray | None]],
    n_boot: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Metric of each repeat's predictions: at unit weights ``(R,)`` and per resample
    ``(R, B)`` (the same resamples for every feature set: ``seed`` is the task's)."""
    fns = [
        metric_functions(task.type, [task.metric], y_true, p, s, task.positive).get(task.metric)
        for p, s in preds
    ]
    ones = np.ones((1, len(y_true)))
    point = np.array([float(fn(ones)[0]) if fn else np.nan for fn in fns])
    if n_boot <= 0:
        return point, np.empty((len(preds), 0))
    parts = [
        np.stack([fn(W) if fn else np.full(len(W), np.nan) for fn in fns])
        for W in resample_weights(len(y_true), n_boot, seed)
    ]
    return point, np.concatenate(parts, axis=1)


def _fit_one(
    probe: str, task: TaskData, X: np.ndarray, sub: np.ndarray, test: np.ndarray, settings: Settings
) -> tuple[np.ndarray, np.ndarray | None]:
    rows = {"train": sub, "val": np.array([], dtype=np.int64), "test": test}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        y_pred, score, _ = fit_predict(probe, task, X, rows, settings, 1)
    return y_pred, score


def _fit_all(
    task: TaskData,
    features: Mapping[str, np.ndarray],
    fits: Sequence[tuple[str, str, np.ndarray]],
    test: np.ndarray,
    settings: Settings,
    threads: int,
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Test predictions of every ``(feature set, probe, train subset)`` fit, in order.

    The fits are independent: with ``threads`` > 1 that many run at once in worker processes
    (joblib's loky backend, one BLAS/OpenMP thread each; the feature matrices reach them
    memory-mapped, not copied). Threads would not do: the L-BFGS fits hold the GIL between
    their array operations, and two of them in threads ran the materials curves 4x slower
    than one after the other (default run, 2 cores). The results do not depend on
    ``threads`` (tested)."""
    if int(threads) <= 1 or len(fits) <= 1:
        return [_fit_one(probe, task, features[fs], sub, test, settings) for fs, probe, sub in fits]
    return Parallel(n_jobs=int(threads))(
        delayed(_fit_one)(probe, task, features[fs], sub, test, settings) for fs, probe, sub in fits
    )


def label_efficiency(
    settings: Settings,
    ids: np.ndarray,
    splits: np.ndarray,
    tasks: Sequence[TaskData],
    features: Mapping[str, np.ndarray],
    threads: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The curve table (:data:`CURVE_COLUMNS`) and the SSL-vs-baseline comparison at every
    fraction (:data:`~sciclr.analysis.verdict.VERDICT_COLUMNS`, ``kind`` = ``label_fraction``)."""
    fractions = sorted({float(f) for f in settings["label_fractions"]})
    n_repeats = int(settings["label_repeats"])
    n_boot, level = int(settings["bootstrap"]), float(settings["ci_level"])
    points: list[_Point] = []
    for task in tasks:
        train = np.flatnonzero((splits == "train") & task.valid)
        test = np.flatnonzero((splits == "test") & task.valid)
        if len(train) == 0 or len(test) == 0:
            continue
        seed = task_seed(settings["seed"], task.name)
        for fraction in fractions:
            repeats = 1 if fraction >= 1.0 else n_repeats
            subsets = [train[draw_subset(task, train, fraction, seed + r)] for r in range(repeats)]
            cells = [
                (fs, probe)
                for fs in features
                for probe in ["linear", *(["rf"] if fs in settings["rf_features"] else [])]
            ]
            fits = [(fs, probe, sub) for fs, probe in cells for sub in subsets]
            preds = _fit_all(task, features, fits, test, settings, threads)
            for k, (fs, probe) in enumerate(cells):
                mine = preds[k * repeats : (k + 1) * repeats]
                point, samples = _scores(task, task.y[test], mine, n_boot, seed)
                points.append(_Point(task, fs, probe, fraction, len(subsets[0]), point, samples))
                log.info(
                    "label efficiency %s / %s / %s at %g: %s = %.4f",
                    task.name,
                    fs,
                    probe,
                    fraction,
                    task.metric,
                    float(np.nanmean(point)),
                )
    sizes = {len(p.per_repeat) for p in points}
    draws = {r: _repeat_draws(r, n_boot, int(settings["seed"])) for r in sizes}
    curve = pd.DataFrame(
        [_curve_row(settings, p, draws, level) for p in points], columns=CURVE_COLUMNS
    )
    return curve, _comparisons(settings, points, draws, level)


def _averaged(p: _Point, draws: Mapping[int, np.ndarray]) -> np.ndarray:
    """``(B,)``: per resample, the metric averaged over the resample's draw of repeats."""
    if p.samples.shape[1] == 0:
        return np.empty(0)
    idx = draws[len(p.per_repeat)]  # (B, R)
    return p.samples[idx, np.arange(p.samples.shape[1])[:, None]].mean(axis=1)


def _curve_row(
    settings: Settings, p: _Point, draws: Mapping[int, np.ndarray], level: float
) -> dict[str, object]:
    lo, hi = _interval(_averaged(p, draws), level) if p.samples.size else (np.nan, np.nan)
    return {
        "dataset": settings.dataset,
        "task": p.task.name,
        "task_type": p.task.type,
        "feature_set": p.feature_set,
        "probe": p.probe,
        "fraction": p.fraction,
        "n_labels": p.n_labels,
        "metric": p.task.metric,
        "value": float(np.mean(p.per_repeat)),
        "ci_low": lo,
        "ci_high": hi,
        "repeats": len(p.per_repeat),
    }


def _comparisons(
    settings: Settings,
    points: Sequence[_Point],
    draws: Mapping[int, np.ndarray],
    level: float,
) -> pd.DataFrame:
    """SSL (``primary_feature_set`` / linear) against every other feature set and probe at
    each fraction, paired by subsets and resamples."""
    primary = settings["primary_feature_set"]
    rows = []
    by_key = {(p.task.name, p.feature_set, p.probe, p.fraction): p for p in points}
    for (task, fs, probe, fraction), base in by_key.items():
        ssl = by_key.get((task, primary, "linear", fraction))
        if fs == primary or ssl is None:
            continue
        a, b = _averaged(ssl, draws), _averaged(base, draws)
        va, vb = float(np.mean(ssl.per_repeat)), float(np.mean(base.per_repeat))
        ea = Estimate(va, *(_interval(a, level) if a.size else (np.nan, np.nan)))
        eb = Estimate(vb, *(_interval(b, level) if b.size else (np.nan, np.nan)))
        d = Estimate(va - vb, *(_interval(a - b, level) if a.size else (np.nan, np.nan)))
        metric = ssl.task.metric
        row = comparison_row(
            settings,
            "label_fraction",
            task,
            metric,
            primary,
            "linear",
            fs,
            probe,
            ea,
            eb,
            d,
            summary=fraction == 0.1,
        )
        row["fraction"] = fraction
        pct = f"{100 * fraction:g} % of the train labels ({ssl.n_labels})"
        row["statement"] = f"With {pct}: {row['statement']}"
        rows.append(row)
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)
