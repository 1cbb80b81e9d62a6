"""SSL-vs-baseline verdicts and target statements on predictions with known differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis.scoring import Prediction, predictions_frame
from sciclr.analysis.spec import Settings, resolve_tasks
from sciclr.analysis.verdict import check_targets, compare_clusterings, compare_predictions

N = 200


def _setup(task_type="classification", **analysis):
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], size=N) if task_type == "classification" else rng.normal(size=N)
    rec = pd.DataFrame({"id": [f"i{j}" for j in range(N)], "split": "test", "y": y})
    s = Settings.from_params(
        {
            "name": "d",
            "tasks": [{"column": "y", "type": task_type}],
            "analysis": {"bootstrap": 500, **analysis},
        }
    )
    return s, resolve_tasks(s, rec), rec, rng


def _pred(rec, fs, probe, y_pred, task_type="classification"):
    return Prediction(
        "d",
        "y",
        task_type,
        fs,
        probe,
        rec["id"].to_numpy(),
        rec["y"].to_numpy(),
        np.asarray(y_pred),
    )


def _as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """What read_predictions gives back: every column as str."""
    return frame.astype(str)


def test_classification_verdicts_better_tie_and_worse():
    s, tasks, rec, rng = _setup()
    y = rec["y"].to_numpy()
    ssl = np.where(rng.random(N) < 0.9, y, "a")  # ~90 % right
    same = ssl.copy()
    weak = np.where(rng.random(N) < 0.5, y, "a")
    strong = y.copy()
    preds = [
        _pred(rec, "ssl", "linear", ssl),
        _pred(rec, "weak", "linear", weak),
        _pred(rec, "same", "linear", same),
        _pred(rec, "strong", "rf", strong),
        _pred(rec, "dummy", "dummy", np.full(N, "a")),
    ]
    rows = {
        r["baseline_feature_set"]: r
        for r in compare_predictions(s, tasks, _as_read(predictions_frame(preds)))
    }
    assert rows["weak"]["outcome"] == "better" and rows["weak"]["delta_ci_low"] > 0
    assert rows["same"]["outcome"] == "no clear difference"
    assert (rows["same"]["delta"], rows["same"]["delta_ci_low"], rows["same"]["delta_ci_high"]) == (
        0,
        0,
        0,
    )
    assert rows["strong"]["outcome"] == "worse" and rows["strong"]["probe"] == "linear"
    acc_ssl = np.mean(ssl == y)
    assert rows["weak"]["value"] == pytest.approx(acc_ssl)
    assert rows["weak"]["delta"] == pytest.approx(acc_ssl - np.mean(weak == y))
    assert rows["dummy"]["summary"] and rows["strong"]["summary"]
    assert "beats weak/linear" in rows["weak"]["statement"]


def test_lower_is_better_metrics_count_improvement_as_positive():
    s, tasks, rec, rng = _setup("regression")
    y = rec["y"].to_numpy()
    preds = [
        _pred(rec, "ssl", "linear", y + 0.1 * rng.normal(size=N), "regression"),
        _pred(rec, "base", "linear", y + 1.0 * rng.normal(size=N), "regression"),
    ]
    (row,) = compare_predictions(s, tasks, _as_read(predictions_frame(preds)))
    assert row["metric"] == "mae" and row["value"] < row["baseline_value"]
    assert row["delta"] == pytest.approx(row["baseline_value"] - row["value"])
    assert row["delta_ci_low"] > 0 and row["outcome"] == "better"


def test_cluster_comparison_and_targets():
    s, _, rec, rng = _setup(targets={"y": {"kmeans_ari": 0.5, "accuracy": 0.95}})
    y = rec["y"].to_numpy()
    assign = pd.concat(
        [
            pd.DataFrame(
                {
                    "task": "y",
                    "method": "kmeans",
                    "feature_set": fs,
                    "id": rec["id"],
                    "label": y,
                    "cluster": c,
                }
            )
            for fs, c in (
                ("ssl", np.searchsorted(["a", "b", "c"], y)),
                ("base", rng.integers(0, 3, N)),
            )
        ]
    )
    (row,) = compare_clusterings(s, assign)
    assert row["value"] == 1.0 and abs(row["baseline_value"]) < 0.05 and row["outcome"] == "better"
    metrics = pd.DataFrame(
        [
            {
                "task": "y",
                "feature_set": "ssl",
                "probe": "kmeans",
                "metric": "ari",
                "value": 1.0,
                "ci_low": 1.0,
                "ci_high": 1.0,
            },
            {
                "task": "y",
                "feature_set": "ssl",
                "probe": "linear",
                "metric": "accuracy",
                "value": 0.9,
                "ci_low": 0.85,
                "ci_high": 0.94,
            },
        ]
    )
    rows = {r["metric"]: r for r in check_targets(s, [metrics])}
    assert rows["ari"]["outcome"] == "met"
    assert rows["accuracy"]["outcome"] == "not met"
    assert rows["accuracy"]["statement"].startswith("Target NOT met")
    assert "0.900" in rows["accuracy"]["statement"] and "by 0.050" in rows["accuracy"]["statement"]
    missing = check_targets(s, [metrics.iloc[:1]])
    assert [r["outcome"] for r in missing] == ["met", "missing"]
