"""The report, figures, diagnostics and sweep rendered from synthetic analysis outputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sciclr import cli
from sciclr.analysis import steps
from sciclr.analysis.diagnostics import read_training_metrics, summarize
from sciclr.analysis.report import build_report
from sciclr.analysis.report_data import REQUIRED
from sciclr.errors import SciclrError

from .conftest import toy_params

PARAMS = {"datasets": {"toy": toy_params()}}


def toy_inputs(results, sweep: bool = True) -> dict[str, str]:
    """The toy data set's report inputs, as the workflow's report rule names them."""
    base = results / "toy"
    kinds = {
        "probe_metrics": base / "metrics/probe.tsv",
        "recovery": base / "metrics/recovery.tsv",
        "cluster_metrics": base / "metrics/cluster.tsv",
        "verdict": base / "metrics/verdict.tsv",
        "figures": base / "figures",
        "preprocess_summary": base / "processed/summary.json",
        "train_summary": base / "runs/ssl/train_summary.json",
        "training_metrics": base / "runs/ssl/metrics.csv",
    }
    if sweep:
        kinds["sweep_table"] = base / "sweep/summary.tsv"
        kinds["sweep_figure"] = base / "sweep/summary.png"
    return {k: str(v) for k, v in kinds.items()}


def test_the_report_shows_what_the_embedding_kept(toy_results):
    html = (toy_results / "report.html").read_text()
    assert "What the embedding kept" in html and "kmer (7 dims)" in html


def n_images(html: str) -> int:
    return html.count('<img src="data:image/png;base64,')


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
    table = steps.run_diagnostics(toy_results / "toy/runs/ssl/metrics.csv", tmp_path / "d.tsv")
    row = table.set_index("quantity").loc["mi_bound"]
    assert row["last"] == pytest.approx(np.log(255) - df["loss"].iloc[-1])
    assert set(summarize(df.assign(split="train")).phase) == {"train"}


def test_a_missing_required_input_is_one_error_naming_it(toy_results, tmp_path):
    gone = tmp_path / "nowhere/verdict.tsv"
    with pytest.raises(SciclrError) as err:
        build_report({"toy": {**toy_inputs(toy_results), "verdict": str(gone)}}, PARAMS)
    msg = str(err.value)
    assert "\n" not in msg and str(gone) in msg and "verdict" in msg and "'toy'" in msg
    for kind in REQUIRED:  # not given at all: the kind and the data set are named
        inputs = toy_inputs(toy_results)
        del inputs[kind]
        with pytest.raises(SciclrError, match=rf"data set 'toy'.*kind '{kind}'"):
            build_report({"toy": inputs}, PARAMS)
    empty = tmp_path / "figures"
    empty.mkdir()
    with pytest.raises(SciclrError, match=r"figures.json: figures manifest of data set 'toy'"):
        build_report({"toy": {**toy_inputs(toy_results), "figures": str(empty)}}, PARAMS)
    with pytest.raises(SciclrError, match=r"unknown kind\(s\) \['records'\]"):
        build_report({"toy": {**toy_inputs(toy_results), "records": "x.tsv"}}, PARAMS)
    with pytest.raises(SciclrError, match=r"no section datasets\.toy"):
        build_report({"toy": toy_inputs(toy_results)}, {"datasets": {}})


def test_report_reads_only_the_files_it_is_given(toy_results, tmp_path):
    # a verdict kept elsewhere under another name; the one in the results folder is garbage
    results = tmp_path / "r"
    shutil.copytree(toy_results / "toy", results / "toy")
    (results / "toy/metrics/verdict.tsv").write_text("not a table\n\x00")
    v = pd.read_csv(toy_results / "toy/metrics/verdict.tsv", sep="\t")
    v["statement"] = v["statement"].str.replace("Target met", "Target (elsewhere) met")
    v.to_csv(tmp_path / "other-verdict.tsv", sep="\t", index=False)
    inputs = {**toy_inputs(results, sweep=False), "verdict": str(tmp_path / "other-verdict.tsv")}
    html = build_report({"toy": inputs}, PARAMS)
    assert "Target (elsewhere) met: ssl/kmeans ari on label" in html
    # the sweep's files lie in the folder but were not given: no sweep section
    assert (results / "toy/sweep/summary.tsv").exists()
    assert "Temperature sweep" not in html
    manifest = json.loads((results / "toy/figures/figures.json").read_text())
    assert n_images(html) == len(manifest["figures"])
    # given its table only: the section and its table, not its figure
    only_table = {**inputs, "sweep_table": str(results / "toy/sweep/summary.tsv")}
    html = build_report({"toy": only_table}, PARAMS)
    assert "Temperature sweep" in html and n_images(html) == len(manifest["figures"])
    assert "<th>τ</th>" in html


def test_text_in_the_page_is_escaped(toy_results, tmp_path):
    evil = "<script>alert(1)</script>"
    probe = pd.read_csv(toy_results / "toy/metrics/probe.tsv", sep="\t")
    probe["task"] = probe["task"].replace("energy", evil)
    probe.to_csv(tmp_path / "probe.tsv", sep="\t", index=False)
    inputs = {**toy_inputs(toy_results), "probe_metrics": str(tmp_path / "probe.tsv")}
    html = build_report({"toy": inputs}, PARAMS, title="a <b>bold</b> title")
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # the page's own image check
    assert "<b>bold</b>" not in html and "a &lt;b&gt;bold&lt;/b&gt; title" in html


def test_templates_ship_as_package_data():
    from fnmatch import fnmatch
    from importlib import resources

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root = Path(__file__).parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["sciclr"]
    templates = resources.files("sciclr") / "analysis" / "templates"
    names = [f.name for f in templates.iterdir() if f.is_file()]
    assert "report.html.j2" in names
    for name in names:
        assert any(fnmatch(f"analysis/templates/{name}", p) for p in patterns), name


def test_figures_without_similarities_say_so(toy, tmp_path):
    params = json.dumps(toy_params())
    man = steps.run_figures(params, toy["records"], [f"ssl={toy['ssl']}"], tmp_path / "f")
    assert any("similarity histogram skipped" in n for n in man["notes"])
    assert any("training curves skipped" in n for n in man["notes"])
    assert any("no predictions" in n for n in man["notes"])
    assert [f["kind"] for f in man["figures"]] == ["embedding"]
    assert "PCA (UMAP disabled in config)" in man["figures"][0]["caption"]


def test_cli_errors_are_one_line(toy, toy_results, tmp_path, capsys):
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
    missing = tmp_path / "probe.tsv"
    inputs = {"nope": {**toy_inputs(toy_results), "probe_metrics": str(missing)}}
    rc = cli.main(
        [
            "report",
            "--params",
            json.dumps({"datasets": {"nope": toy_params()}}),
            "--inputs",
            json.dumps(inputs),
            "--out",
            str(tmp_path / "r.html"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert f"{missing}: probe metrics TSV of data set 'nope' not found" in err[0]
    assert not (tmp_path / "r.html").exists()


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
