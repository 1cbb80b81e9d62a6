"""The fine-tuning summary on hand-made predictions: its columns, values equal to the metric
computed by hand, CIs paired with the comparisons, and delta > 0 = SSL better whatever the
metric's direction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis.finetune import FINETUNE_COLUMNS, parse_runs, run_finetune_summary
from sciclr.analysis.verdict import VERDICT_COLUMNS
from sciclr.cli import main
from sciclr.errors import SciclrError

N = 60  # test items per task
CLASSES = ["a", "b", "c"]


def _params() -> dict:
    return {
        "name": "toy",
        "tasks": [
            {"column": "label", "type": "classification"},
            {"column": "energy", "type": "regression"},
        ],
        "analysis": {"bootstrap": 300},
    }


@pytest.fixture
def toy(tmp_path):
    """records.tsv and four runs per task: ssl clearly better on energy (MAE, lower is better),
    scratch clearly better on label (accuracy, higher is better), at fractions 0.1 and 1."""
    rng = np.random.default_rng(0)
    n_all = N + 20
    ids = np.array([f"r{i:03d}" for i in range(n_all)])
    split = np.array(["train"] * 10 + ["val"] * 10 + ["test"] * N)
    label = np.array(CLASSES)[rng.integers(0, 3, n_all)]
    energy = rng.normal(size=n_all)
    pd.DataFrame({"id": ids, "split": split, "label": label, "energy": energy}).to_csv(
        tmp_path / "records.tsv", sep="\t", index=False
    )
    test = slice(20, None)
    runs = []
    for fraction in ("0.1", "1"):
        for init, err, wrong in (("ssl", 0.1, 0.5), ("scratch", 1.0, 0.1)):
            pred = energy[test] + rng.normal(0.0, err, N)
            path = tmp_path / f"energy_{init}_{fraction}.tsv"
            pd.DataFrame(
                {"id": ids[test], "y_true": energy[test], "y_pred": pred, "score": np.nan}
            ).to_csv(path, sep="\t", index=False)
            runs.append(f"energy/{init}/{fraction}={path}")
            flip = rng.random(N) < wrong
            lab = np.where(flip, np.roll(label[test], 1), label[test])
            path = tmp_path / f"label_{init}_{fraction}.tsv"
            # rows in another order than the other init's: matched by id, not by position
            order = rng.permutation(N)
            pd.DataFrame(
                {"id": ids[test][order], "y_true": label[test][order], "y_pred": lab[order]}
            ).assign(score="").to_csv(path, sep="\t", index=False)
            runs.append(f"label/{init}/{fraction}={path}")
    return tmp_path, runs, energy[test], label[test]


def test_columns_values_and_sign_convention(toy):
    root, runs, energy, _ = toy
    table, comp = run_finetune_summary(
        _params(), root / "records.tsv", runs, root / "ft.tsv", root / "cmp.tsv"
    )
    assert list(pd.read_csv(root / "ft.tsv", sep="\t").columns) == FINETUNE_COLUMNS
    assert list(pd.read_csv(root / "cmp.tsv", sep="\t").columns) == VERDICT_COLUMNS
    assert len(table) == 8 and set(table["init"]) == {"ssl", "scratch"}
    assert set(table["fraction"]) == {0.1, 1.0}
    assert dict(zip(table["task"], table["metric"], strict=True)) == {
        "energy": "mae",
        "label": "accuracy",
    }
    assert ((table["ci_low"] <= table["value"]) & (table["value"] <= table["ci_high"])).all()
    # the value is the metric itself, computed here by hand
    got = table.query("task == 'energy' and init == 'ssl' and fraction == 0.1")["value"].item()
    pred = pd.read_csv(root / "energy_ssl_0.1.tsv", sep="\t")["y_pred"].to_numpy()
    assert got == pytest.approx(np.mean(np.abs(pred - energy)), rel=1e-12)

    assert len(comp) == 4 and (comp["kind"] == "finetune").all()
    assert set(comp["fraction"]) == {0.1, 1.0}
    assert (comp[["feature_set", "probe"]].to_numpy() == ["ssl", "finetune"]).all()
    assert (
        comp[["baseline_feature_set", "baseline_probe"]].to_numpy() == ["scratch", "finetune"]
    ).all()
    energy_rows = comp[comp["task"] == "energy"]
    label_rows = comp[comp["task"] == "label"]
    # SSL's MAE is lower: a positive delta although the metric is lower-is-better
    assert (energy_rows["value"] < energy_rows["baseline_value"]).all()
    assert (energy_rows["delta"] > 0).all() and (energy_rows["delta_ci_low"] > 0).all()
    assert (energy_rows["outcome"] == "better").all()
    np.testing.assert_allclose(
        energy_rows["delta"], energy_rows["baseline_value"] - energy_rows["value"], rtol=1e-12
    )
    # scratch has the higher accuracy: negative delta, SSL worse
    assert (label_rows["delta"] < 0).all() and (label_rows["delta_ci_high"] < 0).all()
    assert (label_rows["outcome"] == "worse").all()
    assert label_rows["statement"].str.startswith("Fine-tuned end to end on 10 % ").any()
    # paired: the comparisons' marginal CIs are the table's (same resamples)
    for _, row in comp.iterrows():
        at = table[(table["task"] == row["task"]) & (table["fraction"] == row["fraction"])]
        ssl = at[at["init"] == "ssl"].iloc[0]
        scratch = at[at["init"] == "scratch"].iloc[0]
        assert (row["value"], row["ci_low"], row["ci_high"]) == pytest.approx(
            (ssl["value"], ssl["ci_low"], ssl["ci_high"])
        )
        assert row["baseline_ci_low"] == pytest.approx(scratch["ci_low"])


def test_the_cli_writes_the_same_tables(toy):
    root, runs, _, _ = toy
    rc = main(
        [
            "finetune-summary",
            "--params",
            json.dumps(_params()),
            "--records",
            str(root / "records.tsv"),
            "--runs",
            *runs,
            "--out",
            str(root / "cli.tsv"),
            "--comparisons",
            str(root / "cli_cmp.tsv"),
        ]
    )
    assert rc == 0
    direct, _ = run_finetune_summary(
        _params(), root / "records.tsv", runs, root / "ft.tsv", root / "cmp.tsv"
    )
    pd.testing.assert_frame_equal(pd.read_csv(root / "cli.tsv", sep="\t"), direct)


def test_runs_on_different_items_and_bad_arguments_are_errors(toy):
    root, runs, _, _ = toy
    bad = root / "short.tsv"
    pd.read_csv(root / "energy_scratch_1.tsv", sep="\t").iloc[:-1].to_csv(
        bad, sep="\t", index=False
    )
    runs = [r for r in runs if not r.startswith("energy/scratch/1=")] + [f"energy/scratch/1={bad}"]
    with pytest.raises(SciclrError, match="different test items"):
        run_finetune_summary(_params(), root / "records.tsv", runs, root / "a", root / "b")
    with pytest.raises(SciclrError, match="expected TASK/INIT/FRACTION=PATH"):
        parse_runs(["energy/ssl=x.tsv"])
    with pytest.raises(SciclrError, match="init 'warm' is not one of"):
        parse_runs(["energy/warm/0.1=x.tsv"])
    with pytest.raises(SciclrError, match="given twice"):
        parse_runs(["e/ssl/0.1=x", "e/ssl/0.10=y"])
    assert parse_runs(["a/b/ssl/1=p"])[0][:3] == ("a/b", "ssl", 1.0)
