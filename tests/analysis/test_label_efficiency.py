"""Label-efficiency curves: the subsets (properties), the table, and that the result depends on
the seed alone, not on how many fits run at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from sciclr.analysis.label_efficiency import CURVE_COLUMNS, draw_subset, label_efficiency
from sciclr.analysis.spec import Settings, TaskData


def _classification(labels: np.ndarray) -> TaskData:
    y = labels.astype(str).astype(object)
    return TaskData(
        name="c",
        type="classification",
        column="c",
        y=y,
        valid=np.ones(len(y), bool),
        metric="accuracy",
        classes=tuple(sorted(set(y))),
    )


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    fraction=st.floats(0.001, 0.999),
    seed=st.integers(0, 2**31 - 1),
)
def test_a_classification_subset_keeps_every_class_and_its_share(counts, fraction, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    task = _classification(labels)
    rows = np.arange(len(labels))
    pos = draw_subset(task, rows, fraction, seed)
    assert np.all(np.diff(pos) > 0)  # sorted, no repeats
    picked = labels[pos]
    for c, n in enumerate(counts):
        assert (picked == c).sum() == max(1, round(fraction * n))
    np.testing.assert_array_equal(pos, draw_subset(task, rows, fraction, seed))


def test_all_labels_is_every_row_and_regression_is_uniform():
    task = _classification(np.arange(10) % 2)
    np.testing.assert_array_equal(draw_subset(task, np.arange(10), 1.0, 0), np.arange(10))
    reg = TaskData("r", "regression", "r", np.arange(100.0), np.ones(100, bool), "mae")
    pos = draw_subset(reg, np.arange(100), 0.1, 3)
    assert len(pos) == 10 and len(set(pos)) == 10
    assert not np.array_equal(pos, draw_subset(reg, np.arange(100), 0.1, 4))


def _settings(seed: int = 0) -> Settings:
    analysis = {"label_fractions": [0.05, 0.5, 1.0], "label_repeats": 3, "bootstrap": 200}
    return Settings.from_params({"analysis": {**analysis, "seed": seed}})


def _problem(n: int = 240, seed: int = 0):
    """Two classes that the informative features separate and the noise features do not."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = rng.normal(size=(n, 4)) + 2.0 * y[:, None]
    noise = rng.normal(size=(n, 4))
    splits = np.array(["train", "test"])[(np.arange(n) % 3 == 0).astype(int)]
    task = _classification(y)
    cfg = _settings()
    ids = np.array([f"r{i}" for i in range(n)])
    return cfg, ids, splits, task, {"ssl": good, "noise": noise}


def test_the_table_and_its_intervals():
    cfg, ids, splits, task, feats = _problem()
    curve, comparisons = label_efficiency(cfg, ids, splits, [task], feats)
    assert list(curve.columns) == CURVE_COLUMNS
    assert sorted(set(curve["fraction"])) == [0.05, 0.5, 1.0]
    assert set(curve["feature_set"]) == {"ssl", "noise"}
    assert (curve.loc[curve["fraction"] < 1, "repeats"] == 3).all()
    assert (curve.loc[curve["fraction"] == 1, "repeats"] == 1).all()
    assert ((curve["ci_low"] <= curve["value"]) & (curve["value"] <= curve["ci_high"])).all()
    ssl = curve[curve["feature_set"] == "ssl"].set_index("fraction")["value"]
    noise = curve[curve["feature_set"] == "noise"].set_index("fraction")["value"]
    assert (ssl > noise + 0.2).all()  # informative features win at every fraction
    wins = comparisons[comparisons["baseline_feature_set"] == "noise"]
    assert len(wins) == 3 and (wins["delta_ci_low"] > 0).all()


def test_the_result_depends_on_the_seed_not_on_the_threads():
    cfg, ids, splits, task, feats = _problem()
    one = label_efficiency(cfg, ids, splits, [task], feats, threads=1)
    two = label_efficiency(cfg, ids, splits, [task], feats, threads=2)
    for a, b in zip(one, two, strict=True):
        pd.testing.assert_frame_equal(a, b)
    again = label_efficiency(_settings(), ids, splits, [task], feats, threads=2)
    pd.testing.assert_frame_equal(one[0], again[0])
    reseeded = label_efficiency(_settings(seed=1), ids, splits, [task], feats)[0]
    small = one[0]["fraction"] < 1  # other subsets under another seed
    assert not np.allclose(one[0].loc[small, "value"], reseeded.loc[small, "value"])
