"""Does SSL beat each baseline, by how much, and are the targets met?

Every comparison is a paired bootstrap over the same test items (the same resamples as the
metrics tables): ``delta`` is the improvement of the SSL representation over the baseline,
positive when SSL is better whatever the metric's direction, with its 95 % CI. A difference
whose CI excludes 0 is called ``better``/``worse``; otherwise ``no clear difference`` — the
honest answer on a small test split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sciclr.analysis import metrics as M
from sciclr.analysis.bootstrap import Estimate, paired_difference
from sciclr.analysis.scoring import metric_functions, task_seed
from sciclr.analysis.spec import HIGHER_IS_BETTER, Settings, Target, TaskData
from sciclr.errors import SciclrError

__all__ = [
    "VERDICT_COLUMNS",
    "check_targets",
    "compare_clusterings",
    "compare_predictions",
    "comparison_row",
    "verdict",
]

VERDICT_COLUMNS = [
    "dataset",
    "kind",
    "task",
    "metric",
    "feature_set",
    "probe",
    "value",
    "ci_low",
    "ci_high",
    "baseline_feature_set",
    "baseline_probe",
    "baseline_value",
    "baseline_ci_low",
    "baseline_ci_high",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "bound",
    "outcome",
    "summary",
    "statement",
    "fraction",
]


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.3f}"


def _signed(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.3f}"


def _ci(lo: float, hi: float, signed: bool = False) -> str:
    f = _signed if signed else _fmt
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no CI"
    return f"95 % CI {f(lo)} to {f(hi)}"


def comparison_row(
    settings: Settings,
    kind: str,
    task: str,
    metric: str,
    fs: str,
    probe: str,
    base_fs: str,
    base_probe: str,
    a: Estimate,
    b: Estimate,
    d: Estimate,
    summary: bool,
) -> dict[str, object]:
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    delta = Estimate(sign * d.value, *sorted((sign * d.ci_low, sign * d.ci_high)))
    if np.isfinite(delta.ci_low) and delta.ci_low > 0:
        outcome, verb = "better", "beats"
    elif np.isfinite(delta.ci_high) and delta.ci_high < 0:
        outcome, verb = "worse", "is worse than"
    else:
        outcome, verb = "no clear difference", "cannot be told apart from"
    unit = "lower is better" if sign < 0 else "higher is better"
    statement = (
        f"{fs}/{probe} {verb} {base_fs}/{base_probe} on {task} {metric} ({unit}): "
        f"{_fmt(a.value)} vs {_fmt(b.value)}, improvement {_signed(delta.value)} "
        f"({_ci(delta.ci_low, delta.ci_high, signed=True)})."
    )
    return {
        "dataset": settings.dataset,
        "kind": kind,
        "task": task,
        "metric": metric,
        "feature_set": fs,
        "probe": probe,
        "value": a.value,
        "ci_low": a.ci_low,
        "ci_high": a.ci_high,
        "baseline_feature_set": base_fs,
        "baseline_probe": base_probe,
        "baseline_value": b.value,
        "baseline_ci_low": b.ci_low,
        "baseline_ci_high": b.ci_high,
        "delta": delta.value,
        "delta_ci_low": delta.ci_low,
        "delta_ci_high": delta.ci_high,
        "bound": np.nan,
        "outcome": outcome,
        "summary": summary,
        "statement": statement,
        "fraction": np.nan,
    }


def task_arrays(
    df: pd.DataFrame, task: TaskData
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(y_true, y_pred, score)`` of a predictions table (``score`` None when it is empty),
    typed for the task's metrics."""
    if task.type == "regression":
        return df["y_true"].astype(float).to_numpy(), df["y_pred"].astype(float).to_numpy(), None
    score = pd.to_numeric(df["score"], errors="coerce").to_numpy()
    return (
        df["y_true"].to_numpy(),
        df["y_pred"].to_numpy(),
        None if np.isnan(score).all() else score,
    )


def paired_main_metric(
    settings: Settings,
    task: TaskData,
    y_true: np.ndarray,
    a: tuple[np.ndarray, np.ndarray | None],
    b: tuple[np.ndarray, np.ndarray | None],
) -> tuple[Estimate, Estimate, Estimate] | None:
    """The task's main metric of predictions ``a`` and ``b`` (``(y_pred, score)``) of the same
    test items, and their paired bootstrap difference (same resamples, the task's seed);
    None when the metric is undefined for them (e.g. ROC-AUC of one class)."""
    fa = metric_functions(task.type, [task.metric], y_true, a[0], a[1], task.positive)
    fb = metric_functions(task.type, [task.metric], y_true, b[0], b[1], task.positive)
    if task.metric not in fa or task.metric not in fb:
        return None
    return paired_difference(
        fa[task.metric],
        fb[task.metric],
        len(y_true),
        int(settings["bootstrap"]),
        task_seed(settings["seed"], task.name),
        float(settings["ci_level"]),
    )


def compare_predictions(
    settings: Settings, tasks: Sequence[TaskData], preds: pd.DataFrame
) -> list[dict[str, object]]:
    """SSL vs every baseline (feature set × probe) per task, on the task's primary metric.

    SSL's probe is the baseline's probe when SSL was run with it (linear vs linear, k-NN vs
    k-NN), else ``verdict_probe`` (SSL linear vs random forest, vs dummy).
    """
    primary = settings["primary_feature_set"]
    vprobe = settings["verdict_probe"]
    rows: list[dict[str, object]] = []
    for task in tasks:
        tp = preds[preds["task"] == task.name]
        if tp.empty:
            continue
        groups = {
            key: g.set_index("id") for key, g in tp.groupby(["feature_set", "probe"], sort=False)
        }
        ssl = {p: g for (fs, p), g in groups.items() if fs == primary}
        if not ssl:
            raise SciclrError(
                f"predictions: no rows for feature set {primary!r} (task {task.name!r}); "
                f"found {sorted({fs for fs, _ in groups})}"
            )
        for (fs, probe), g in groups.items():
            if fs == primary:
                continue
            sprobe = probe if probe in ssl else vprobe
            if sprobe not in ssl:
                continue
            a = ssl[sprobe]
            common = a.index.intersection(g.index)
            if len(common) != len(a) or len(common) != len(g):
                raise SciclrError(
                    f"predictions: task {task.name!r}: {primary}/{sprobe} and {fs}/{probe} "
                    "were scored on different test items"
                )
            g = g.loc[a.index]
            ta, pa, sa = task_arrays(a, task)
            _, pb, sb = task_arrays(g, task)
            paired = paired_main_metric(settings, task, ta, (pa, sa), (pb, sb))
            if paired is None:
                continue
            ea, eb, d = paired
            summary = sprobe == vprobe and (probe == vprobe or probe in ("rf", "dummy"))
            rows.append(
                comparison_row(
                    settings,
                    "baseline",
                    task.name,
                    task.metric,
                    primary,
                    sprobe,
                    fs,
                    probe,
                    ea,
                    eb,
                    d,
                    summary,
                )
            )
    return rows


def compare_clusterings(
    settings: Settings, assignments: pd.DataFrame, metric: str = "ari"
) -> list[dict[str, object]]:
    """SSL clusters vs each baseline's clusters (same method, same items), paired bootstrap."""
    primary = settings["primary_feature_set"]
    fn = {"ari": M.adjusted_rand, "nmi": M.normalized_mutual_info}[metric]
    rows: list[dict[str, object]] = []
    for (task, method), tg in assignments.groupby(["task", "method"], sort=False):
        groups = {fs: g.set_index("id") for fs, g in tg.groupby("feature_set", sort=False)}
        if primary not in groups:
            continue
        a = groups[primary]
        truth = a["label"].astype(str).to_numpy()
        ca = a["cluster"].to_numpy()
        for fs, g in groups.items():
            if fs == primary:
                continue
            cb = g.loc[a.index, "cluster"].to_numpy()
            ea, eb, d = paired_difference(
                lambda W, c=ca, t=truth: fn(t, c, W),
                lambda W, c=cb, t=truth: fn(t, c, W),
                len(truth),
                int(settings["bootstrap"]),
                task_seed(settings["seed"], "cluster:" + str(task)),
                float(settings["ci_level"]),
            )
            rows.append(
                comparison_row(
                    settings,
                    "clustering",
                    str(task),
                    metric,
                    primary,
                    str(method),
                    fs,
                    str(method),
                    ea,
                    eb,
                    d,
                    method == "kmeans",
                )
            )
    return rows


def check_targets(settings: Settings, tables: Sequence[pd.DataFrame]) -> list[dict[str, object]]:
    """Each configured target against the metrics tables, with a plain-language statement."""
    allm = (
        pd.concat([t for t in tables if not t.empty], ignore_index=True)
        if tables
        else pd.DataFrame()
    )
    rows = []
    for t in settings.targets:
        hit = (
            allm[
                (allm["task"] == t.task)
                & (allm["metric"] == t.metric)
                & (allm["feature_set"] == t.feature_set)
                & (allm["probe"] == t.probe)
            ]
            if not allm.empty
            else allm
        )
        rows.append(_target_row(settings, t, hit))
    return rows


def _target_row(settings: Settings, t: Target, hit: pd.DataFrame) -> dict[str, object]:
    what = f"{t.feature_set}/{t.probe} {t.metric} on {t.task}"
    if hit.empty:
        v, lo, hi = np.nan, np.nan, np.nan
        outcome = "missing"
        statement = f"Target {what} {t.op} {t.bound:g}: no result was produced for it."
    else:
        v, lo, hi = (float(hit.iloc[0][c]) for c in ("value", "ci_low", "ci_high"))
        ok = t.met(v)
        outcome = "met" if ok else "not met"
        gap = abs(v - t.bound)
        statement = (
            f"Target met: {what} = {_fmt(v)} ({_ci(lo, hi)}), target {t.op} {t.bound:g}."
            if ok
            else f"Target NOT met: {what} = {_fmt(v)} ({_ci(lo, hi)}), short of the target "
            f"{t.op} {t.bound:g} by {gap:.3f}."
        )
    return {
        "dataset": settings.dataset,
        "kind": "target",
        "task": t.task,
        "metric": t.metric,
        "feature_set": t.feature_set,
        "probe": t.probe,
        "value": v,
        "ci_low": lo,
        "ci_high": hi,
        "baseline_feature_set": "",
        "baseline_probe": "",
        "baseline_value": np.nan,
        "baseline_ci_low": np.nan,
        "baseline_ci_high": np.nan,
        "delta": np.nan,
        "delta_ci_low": np.nan,
        "delta_ci_high": np.nan,
        "bound": t.bound,
        "outcome": outcome,
        "summary": True,
        "statement": statement,
        "fraction": np.nan,
    }


def verdict(
    settings: Settings,
    tasks: Sequence[TaskData],
    predictions: pd.DataFrame,
    probe_metrics: pd.DataFrame,
    cluster_metrics: pd.DataFrame | None = None,
    assignments: pd.DataFrame | None = None,
    label_comparisons: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All comparisons and target checks of one data set (:data:`VERDICT_COLUMNS`), with the
    label-efficiency comparisons (``kind`` = ``label_fraction``) appended when given."""
    rows = check_targets(
        settings, [probe_metrics, *([cluster_metrics] if cluster_metrics is not None else [])]
    )
    rows += compare_predictions(settings, tasks, predictions)
    if assignments is not None and not assignments.empty:
        rows += compare_clusterings(settings, assignments)
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    if label_comparisons is not None and not label_comparisons.empty:
        table = pd.concat([table, label_comparisons[VERDICT_COLUMNS]], ignore_index=True)
    return table
