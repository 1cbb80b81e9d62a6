"""Turning test-set predictions into metric rows with bootstrap CIs (long format).

Shared by the probes (which score what they just predicted) and the verdict (which re-reads the
predictions table to bootstrap *differences* between predictors on the same items).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sciclr.analysis import metrics as M
from sciclr.analysis.bootstrap import MetricFn, estimates
from sciclr.errors import SciclrError

__all__ = [
    "METRIC_COLUMNS",
    "PREDICTION_COLUMNS",
    "Prediction",
    "metric_functions",
    "predictions_frame",
    "read_predictions",
    "score_prediction",
    "task_seed",
]

#: Columns of every metrics TSV written by the analysis (one row per task × feature set × probe × metric).
METRIC_COLUMNS = [
    "dataset",
    "task",
    "task_type",
    "feature_set",
    "probe",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n_train",
    "n_test",
    "param",
]
#: Columns of the predictions TSV (one row per task × feature set × probe × test item).
PREDICTION_COLUMNS = [
    "dataset",
    "task",
    "task_type",
    "feature_set",
    "probe",
    "id",
    "y_true",
    "y_pred",
    "score",
]


@dataclass
class Prediction:
    """Test-set output of one probe.

    ids, y_true, y_pred: ``(n_test,)``; labels as ``str`` (classification) or float.
    score: ``(n_test,)`` probability of the positive class for binary tasks, else ``None``.
    """

    dataset: str
    task: str
    task_type: str
    feature_set: str
    probe: str
    ids: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray | None = None
    positive: str | None = None
    n_train: int = 0
    param: str = ""


def task_seed(seed: int, task: str) -> int:
    """Bootstrap seed of a task: equal for all predictors of the task, so CIs are paired."""
    return (int(seed) + zlib.crc32(task.encode())) % (2**32)


def metric_functions(
    task_type: str,
    names: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    score: np.ndarray | None = None,
    positive: str | None = None,
) -> dict[str, MetricFn]:
    """Vectorised metric closures ``W (B, n) -> (B,)`` for the named metrics."""
    fns: dict[str, MetricFn] = {}
    if task_type == "regression":
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
        table = {"mae": M.mae, "rmse": M.rmse, "r2": M.r2, "spearman": M.spearman}
        for name in names:
            fn = table[name]
            fns[name] = lambda W, fn=fn: fn(t, p, W)
        return fns
    (tc, pc), k = M.encode(np.asarray(y_true), np.asarray(y_pred))
    for name in names:
        if name == "accuracy":
            fns[name] = lambda W: M.accuracy(tc, pc, W)
        elif name == "balanced_accuracy":
            fns[name] = lambda W: M.balanced_accuracy(tc, pc, W, k)
        elif name == "macro_f1":
            fns[name] = lambda W: M.macro_f1(tc, pc, W, k)
        elif name == "roc_auc":
            if score is None or positive is None:
                continue
            pos = np.asarray(y_true).astype(str) == positive
            s = np.asarray(score, dtype=np.float64)
            fns[name] = lambda W, pos=pos, s=s: M.roc_auc(pos, s, W)
        else:
            raise KeyError(name)
    return fns


def score_prediction(
    pred: Prediction, names: Sequence[str], n_boot: int, seed: int, level: float
) -> list[dict[str, object]]:
    """Metric rows (see :data:`METRIC_COLUMNS`) of one prediction, with bootstrap CIs."""
    fns = metric_functions(
        pred.task_type, names, pred.y_true, pred.y_pred, pred.score, pred.positive
    )
    ests = estimates(
        list(fns.values()), len(pred.y_true), n_boot, task_seed(seed, pred.task), level
    )
    return [
        {
            "dataset": pred.dataset,
            "task": pred.task,
            "task_type": pred.task_type,
            "feature_set": pred.feature_set,
            "probe": pred.probe,
            "metric": name,
            "value": e.value,
            "ci_low": e.ci_low,
            "ci_high": e.ci_high,
            "n_train": pred.n_train,
            "n_test": len(pred.y_true),
            "param": pred.param,
        }
        for name, e in zip(fns, ests, strict=True)
    ]


def predictions_frame(preds: Sequence[Prediction]) -> pd.DataFrame:
    """All predictions in long format (:data:`PREDICTION_COLUMNS`)."""
    frames = []
    for p in preds:
        n = len(p.ids)
        frames.append(
            pd.DataFrame(
                {
                    "dataset": [p.dataset] * n,
                    "task": [p.task] * n,
                    "task_type": [p.task_type] * n,
                    "feature_set": [p.feature_set] * n,
                    "probe": [p.probe] * n,
                    "id": p.ids,
                    "y_true": p.y_true,
                    "y_pred": p.y_pred,
                    "score": p.score if p.score is not None else [np.nan] * n,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


def read_predictions(path: str) -> pd.DataFrame:
    """Read a predictions TSV keeping labels as written (``y_true``/``y_pred`` as str)."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SciclrError(f"{path}: predictions table not found") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise SciclrError(f"{path}: column(s) {missing} missing")
    return df
