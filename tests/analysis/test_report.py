"""The report, figures, diagnostics and sweep rendered from synthetic analysis outputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis import cli
from sciclr.analysis.diagnostics import read_training_metrics, summarize
from sciclr.analysis.report import build_report

from .conftest import toy_params


def test_metrics_tables_have_the_documented_layout_and_known_answers(toy_results):
    m = pd.read_csv(toy_results / "toy/metrics/probe.tsv", sep="\t")
    assert list(m.columns) == [
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
    assert set(m.feature_set) == {"ssl", "kmer", "untrained", "dummy"}
    assert set(m.task) == {"label", "energy", "gap", "gap>0"}
    acc = m[(m.task == "label") & (m.metric == "accuracy")].set_index(["feature_set", "probe"])[
        "value"
    ]
    assert acc["ssl", "linear"] == 1.0 and acc["ssl", "knn"] == 1.0
    assert 0.3 < acc["kmer", "linear"] < 0.85  # weak planted signal
    assert acc["untrained", "linear"] < 0.45 and acc["dummy", "dummy"] == 0.25
    assert (m[m.task == "label"].n_test == 56).all() and (m[m.task == "label"].n_train == 144).all()
    ef = m[
        (m.task == "energy")
        & (m.metric == "mae")
        & (m.feature_set == "ssl")
        & (m.probe == "linear")
    ].iloc[0]
    assert ef.value < 0.1 and ef.ci_low <= ef.value <= ef.ci_high  # noise sd 0.05
    assert "(val)" in ef.param
    assert (
        m[
            (m.task == "gap>0")
            & (m.metric == "roc_auc")
            & (m.feature_set == "ssl")
            & (m.probe == "linear")
        ].value.iloc[0]
        > 0.99
    )
    assert "rf" in set(m[m.feature_set == "kmer"].probe)
    c = pd.read_csv(toy_results / "toy/metrics/cluster.tsv", sep="\t")
    ari = c[(c.metric == "ari") & (c.probe == "kmeans")].set_index("feature_set")["value"]
    assert ari["ssl"] == 1.0 and ari["untrained"] < 0.1


def test_report_shows_summary_targets_figures_and_no_external_resources(toy_results):
    html = (toy_results / "report.html").read_text()
    v = pd.read_csv(toy_results / "toy/metrics/verdict.tsv", sep="\t")
    summary = re.search(r'<table id="summary">(.*?)</table>', html, re.S)
    assert summary, "summary table missing"
    n_rows = summary.group(1).count("<tr") - 1  # minus the header row
    assert n_rows == int(((v.kind != "target") & v.summary).sum()) > 0
    assert html.index('id="summary"') < html.index('id="ds-toy"')  # the first table
    assert "1 of 3 targets not met" in html
    assert "Target NOT met: ssl/linear mae on energy" in html
    assert "Target met: ssl/kmeans ari on label" in html
    manifest = json.loads((toy_results / "toy/figures/figures.json").read_text())
    assert manifest["notes"] == []
    kinds = {f["kind"] for f in manifest["figures"]}
    assert kinds == {"embedding", "confusion", "parity", "training", "similarity"}
    n_img = html.count('<img src="data:image/png;base64,')
    assert n_img == len(manifest["figures"]) + 1  # + the sweep figure
    assert html.count("<img") == n_img
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "external resource in report"
    assert "Temperature sweep" in html and "ln K − L" in html and "rejected" in html


def test_sweep_summary_has_both_temperatures(toy_results):
    s = pd.read_csv(toy_results / "toy/sweep/summary.tsv", sep="\t")
    assert sorted(s.tau.unique()) == [0.1, 0.5]
    acc = s[(s.task == "label") & (s.probe == "linear") & (s.metric == "accuracy")].set_index(
        "tau"
    )["value"]
    assert acc[0.1] == 1.0 and acc[0.5] < acc[0.1]
    uni = s[(s.task == "training") & (s.metric == "uniformity")]
    assert len(uni) == 2 and (toy_results / "toy/sweep/summary.svg").exists()


def test_diagnostics_derives_the_mi_bound(toy_results, tmp_path):
    df = read_training_metrics(toy_results / "toy/runs/ssl/metrics.csv")
    np.testing.assert_allclose(df["mi_bound"], np.log(255) - df["loss"])
    table = cli.run_diagnostics(toy_results / "toy/runs/ssl/metrics.csv", tmp_path / "d.tsv")
    row = table.set_index("quantity").loc["mi_bound"]
    assert row["last"] == pytest.approx(np.log(255) - df["loss"].iloc[-1])
    assert set(summarize(df.assign(split="train")).phase) == {"train"}


def test_report_computes_a_missing_verdict_from_the_config(toy_results, tmp_path):
    import shutil

    results = tmp_path / "r"
    shutil.copytree(toy_results / "toy", results / "toy")
    (results / "toy/metrics/verdict.tsv").unlink()
    html = build_report(results, ["toy"], {"datasets": {"toy": toy_params()}})
    assert '<table id="summary">' in html and "verdict computed while rendering" in html
    html = build_report(results, ["toy"], None)
    assert "No SSL-vs-baseline comparisons" in html


def test_figures_without_similarities_say_so(toy, tmp_path):
    params = json.dumps(toy_params())
    man = cli.run_figures(params, toy["records"], [f"ssl={toy['ssl']}"], tmp_path / "f")
    assert any("similarity histogram skipped" in n for n in man["notes"])
    assert any("training curves skipped" in n for n in man["notes"])
    assert any("no predictions" in n for n in man["notes"])
    assert [f["kind"] for f in man["figures"]] == ["embedding"]
    assert "PCA (UMAP disabled in config)" in man["figures"][0]["caption"]


def test_cli_errors_are_one_line(toy, tmp_path, capsys):
    params = json.dumps(toy_params())
    rc = cli.main(
        [
            "probe",
            "--params",
            params,
            "--records",
            str(toy["records"]),
            "--features",
            f"ssl={tmp_path / 'missing.npz'}",
            "--out",
            str(tmp_path / "m.tsv"),
            "--predictions",
            str(tmp_path / "p.tsv"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "missing.npz: feature file not found" in err[0]
    assert not (tmp_path / "m.tsv").exists()
    rc = cli.main(
        [
            "report",
            "--results",
            str(tmp_path),
            "--datasets",
            "nope",
            "--out",
            str(tmp_path / "r.html"),
        ]
    )
    assert rc == 2 and "probe metrics not found for data set 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_umap_embedding(tmp_path):
    """UMAP itself (numba JIT: ~15–30 s on 2 cores, hence slow): planted classes stay apart."""
    from sklearn.metrics import silhouette_score

    from sciclr.analysis.figures import embedding_2d
    from sciclr.analysis.spec import Settings

    rng = np.random.default_rng(0)
    code = np.repeat(np.arange(3), 50)
    X = rng.normal(size=(150, 8))
    X[np.arange(150), code] += 8
    E, how = embedding_2d(X, Settings.from_params({}))
    assert how == "UMAP" and E.shape == (150, 2)
    assert silhouette_score(E, code) > 0.5
