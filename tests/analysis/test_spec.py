"""Config parsing, derived tasks and input checks: bad input is one clear SciclrError."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis.inputs import load_features, parse_named_paths, read_records
from sciclr.analysis.spec import Settings, resolve_tasks
from sciclr.config import load_params
from sciclr.errors import SciclrError

REC = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d", "e"],
        "split": ["train", "train", "val", "test", "test"],
        "gap": [0.0, 1.5, None, 0.0, 2.0],
        "system": ["cubic", "cubic", "hexagonal", "", "hexagonal"],
    }
)


def test_defaults_and_unknown_keys():
    """Defaults come from the schema; what the schema rejects is one line naming the key."""
    s = Settings.from_params({"name": "x"})
    assert s.dataset == "x" and s["bootstrap"] == 1000 and s["probes"] == ["linear", "knn"]
    with pytest.raises(SciclrError, match=r"params: analysis: unknown key 'bootstrapp'"):
        Settings.from_params({"analysis": {"bootstrapp": 10}})
    with pytest.raises(SciclrError, match=r"analysis\.knn_k: 'ten' is not of type integer"):
        Settings.from_params({"analysis": {"knn_k": "ten"}})
    with pytest.raises(SciclrError, match=r"tasks\.0\.type: 'ranking' is not one of"):
        Settings.from_params({"tasks": [{"column": "y", "type": "ranking"}]})


def test_targets_mapping_and_list_forms():
    s = Settings.from_params(
        {
            "analysis": {
                "targets": {"label": {"accuracy": 0.9, "kmeans_ari": 0.6}, "ef": {"mae": 0.15}}
            }
        }
    )
    got = {(t.task, t.probe, t.metric, t.is_min, t.bound) for t in s.targets}
    assert got == {
        ("label", "linear", "accuracy", True, 0.9),
        ("label", "kmeans", "ari", True, 0.6),
        ("ef", "linear", "mae", False, 0.15),
    }
    s = Settings.from_params(
        {"analysis": {"targets": [{"task": "y", "metric": "r2", "min": 0.5, "probe": "knn"}]}}
    )
    assert (
        s.targets[0].probe == "knn" and s.targets[0].met(0.6) and not s.targets[0].met(float("nan"))
    )
    with pytest.raises(SciclrError, match="unknown metric"):
        Settings.from_params({"analysis": {"targets": {"y": {"acc": 0.9}}}})


def test_tasks_binarize_subset_and_missing_labels():
    s = Settings.from_params(
        {
            "tasks": [
                {"column": "gap", "type": "regression", "binarize_above": 0.0},
                {"column": "system", "type": "classification"},
            ],
            "analysis": {
                "derived_tasks": [
                    {
                        "name": "gap_pos",
                        "column": "gap",
                        "type": "regression",
                        "where": {"column": "gap", "gt": 0},
                    }
                ],
                "primary_metric": {"system": "balanced_accuracy"},
            },
        }
    )
    tasks = {t.name: t for t in resolve_tasks(s, REC)}
    assert set(tasks) == {"gap", "system", "gap>0", "gap_pos"}
    assert tasks["gap"].valid.tolist() == [True, True, False, True, True]
    b = tasks["gap>0"]
    assert b.is_binary and b.positive == "True" and b.metric == "roc_auc"
    assert b.y[b.valid].tolist() == ["False", "True", "False", "True"]
    assert tasks["gap_pos"].valid.tolist() == [False, True, False, False, True]
    assert tasks["system"].valid.tolist() == [True, True, True, False, True]  # "" = no label
    assert tasks["system"].metric == "balanced_accuracy"


def test_regression_label_must_be_numeric():
    rec = REC.assign(gap=["0", "1", "x", "2", "3"])
    s = Settings.from_params({"tasks": [{"column": "gap", "type": "regression"}]})
    with pytest.raises(SciclrError, match=r"non-numeric value 'x'.*record 3"):
        resolve_tasks(s, rec)
    s = Settings.from_params({"tasks": [{"column": "nope", "type": "regression"}]})
    with pytest.raises(SciclrError, match="label column 'nope'"):
        resolve_tasks(s, rec)


def test_load_params_inline_and_file(tmp_path):
    assert load_params('{"a": 1}') == {"a": 1}
    (tmp_path / "p.json").write_text('{"b": 2}')
    assert load_params(str(tmp_path / "p.json")) == {"b": 2}
    with pytest.raises(SciclrError, match="neither a JSON object nor an existing file"):
        load_params(str(tmp_path / "missing.json"))
    with pytest.raises(SciclrError, match="invalid JSON"):
        load_params("{oops")


def test_records_and_features_are_checked(tmp_path):
    REC.to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    rec = read_records(tmp_path / "r.tsv")
    assert rec["id"].tolist() == ["a", "b", "c", "d", "e"]
    REC.assign(split=["train", "dev", "val", "test", "test"]).to_csv(
        tmp_path / "bad.tsv", sep="\t", index=False
    )
    with pytest.raises(SciclrError, match="record 'b': split 'dev'"):
        read_records(tmp_path / "bad.tsv")

    X = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.savez(
        tmp_path / "f.npz", ids=np.array(["e", "d", "c", "b", "a", "zz"]), X=np.r_[X[::-1], X[:1]]
    )
    np.testing.assert_array_equal(load_features(tmp_path / "f.npz", rec["id"]), X)  # by id
    np.savez(tmp_path / "g.npz", ids=np.array(["a", "b", "c", "d"]), X=X[:4])
    with pytest.raises(SciclrError, match="record 'e' has no feature row"):
        load_features(tmp_path / "g.npz", rec["id"])
    Xn = X.copy()
    Xn[2, 1] = np.nan
    np.savez(tmp_path / "h.npz", ids=rec["id"].to_numpy().astype(str), X=Xn)
    with pytest.raises(SciclrError, match="record 'c' has non-finite"):
        load_features(tmp_path / "h.npz", rec["id"])
    np.savez(tmp_path / "k.npz", feats=X)
    with pytest.raises(SciclrError, match="expected arrays 'ids' and 'X'"):
        load_features(tmp_path / "k.npz", rec["id"])
    with pytest.raises(SciclrError, match="NAME=PATH"):
        parse_named_paths(["ssl:path"])


def test_a_target_sets_the_tasks_main_metric():
    """crystal_system is scored by balanced accuracy when that is what the target asks for."""
    s = Settings.from_params(
        {
            "tasks": [{"column": "system", "type": "classification"}],
            "analysis": {"targets": {"system": {"balanced_accuracy": 0.6, "kmeans_ari": 0.2}}},
        }
    )
    (task,) = resolve_tasks(s, REC)
    assert task.metric == "balanced_accuracy"
    s = Settings.from_params(
        {
            "tasks": [{"column": "system", "type": "classification"}],
            "analysis": {"targets": {"system": {"kmeans_ari": 0.2}}},
        }
    )
    assert resolve_tasks(s, REC)[0].metric == "roc_auc"  # the default of a binary task


def test_feature_matrix_rows_index_like_the_dense_array_in_record_order(tmp_path):
    from sciclr.io import save_matrix

    X = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    ids = np.array([f"r{i}" for i in range(50)])
    save_matrix(tmp_path / "a.npz", ids, X)
    F = load_features(tmp_path / "a.npz", ids[::-1])  # the records in another order
    dense = X[::-1]
    keys = [slice(None), slice(3, 40, 3), slice(-5, None), np.array([0, -1, 5]), [2, 3], 4, -2]
    for key in [*keys, np.arange(50) % 3 == 0, np.array([], dtype=int)]:
        np.testing.assert_array_equal(F[key], dense[key])
    for bad in (50, -51, np.array([1, 60])):
        with pytest.raises(IndexError):
            F[bad]
