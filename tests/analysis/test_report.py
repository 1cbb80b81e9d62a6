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

# its fixtures run a small analysis once: keep the module on one xdist worker
pytestmark = pytest.mark.xdist_group("report")

PARAMS = {"datasets": {"toy": toy_params()}}


def toy_inputs(results, sweep: bool = True) -> dict[str, str]:
    """The toy data set's report inputs, as the workflow's report rule names them."""
    base = results / "toy"
    kinds = {
        "probe_metrics": base / "metrics/probe.tsv",
        "recovery": base / "metrics/recovery.tsv",
        "cluster_metrics": base / "metrics/cluster.tsv",
        "verdict": base / "metrics/verdict.tsv",
        "label_efficiency": base / "metrics/label_efficiency.tsv",
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
    assert kinds == {
        "embedding",
        "confusion",
        "parity",
        "training",
        "similarity",
        "label_efficiency",
    }
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
    # one figure per colouring: the cluster task and the first regression task
    assert [(f["kind"], f["group"]) for f in man["figures"]] == [
        ("embedding", "label"),
        ("embedding", "energy"),
    ]
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


# ---------------------------------------------------------------- read at a glance


def verdict_rows(*rows: dict) -> pd.DataFrame:
    """A verdict table of hand-made comparison rows (verdict columns; unset ones empty)."""
    from sciclr.analysis.verdict import VERDICT_COLUMNS

    base = {
        "dataset": "d",
        "kind": "baseline",
        "metric": "mae",
        "feature_set": "ssl",
        "probe": "linear",
        "value": 0.5,
        "ci_low": 0.4,
        "ci_high": 0.6,
        "baseline_probe": "linear",
        "baseline_ci_low": np.nan,
        "baseline_ci_high": np.nan,
        "delta": 0.0,
        "delta_ci_low": -0.1,
        "delta_ci_high": 0.1,
        "bound": np.nan,
        "summary": True,
        "statement": "",
        "fraction": np.nan,
    }
    return pd.DataFrame([{**base, **r} for r in rows], columns=VERDICT_COLUMNS)


def row(task, fs, outcome, baseline_value, probe="linear", ssl_probe="linear", **kw) -> dict:
    """A comparison of SSL (``ssl_probe``) with baseline ``fs``/``probe`` on ``task``."""
    return {
        "task": task,
        "probe": ssl_probe,
        "baseline_feature_set": fs,
        "baseline_probe": probe,
        "outcome": outcome,
        "baseline_value": baseline_value,
        **kw,
    }


def test_the_headline_counts_wins_and_names_the_best_alternative():
    from sciclr.analysis.report_data import headline

    v = verdict_rows(
        # gap: SSL beats all three baselines
        row("gap", "dummy", "better", 0.9, probe="dummy"),
        row("gap", "element_fractions", "better", 0.8),
        row("gap", "untrained", "better", 0.7),
        # energy (MAE, lower is better): the RF is clearly better; the lattice probe scores
        # better still but cannot be told apart from SSL; the dummy is not clearly beaten
        row("energy", "dummy", "no clear difference", 0.9, probe="dummy"),
        row("energy", "element_fractions", "worse", 0.30, probe="rf"),
        row("energy", "lattice", "no clear difference", 0.25),
        # system (accuracy): no clear difference with either; untrained scores best of them
        row("system", "dummy", "better", 0.2, probe="dummy", metric="accuracy"),
        row("system", "lattice", "no clear difference", 0.6, metric="accuracy"),
        row("system", "untrained", "no clear difference", 0.7, metric="accuracy"),
        # not flagged for the summary (SSL k-NN vs k-NN): does not count
        row("gap", "lattice", "worse", 0.1, probe="knn", summary=False),
        # with 10 % of the labels (flagged) SSL wins energy only; at 1 % nothing (not shown)
        row("energy", "element_fractions", "better", 0.9, kind="label_fraction", fraction=0.1),
        row("gap", "lattice", "worse", 0.1, kind="label_fraction", fraction=0.1),
        row(
            "energy",
            "lattice",
            "worse",
            0.1,
            kind="label_fraction",
            fraction=0.01,
            summary=False,  # the verdict flags the 10 % comparisons only
        ),
        # clustering: untrained cannot be told apart
        row(
            "system",
            "untrained",
            "no clear difference",
            0.4,
            probe="kmeans",
            ssl_probe="kmeans",
            kind="clustering",
            metric="ari",
        ),
        # targets never count
        {"kind": "target", "task": "gap", "outcome": "not met"},
    )
    assert headline(v) == (
        "SSL (linear probe) beats every baseline on 1 of 3 tasks with all labels (gap); "
        "with 10 % of the labels it beats every baseline on 1 of 2; "
        "it does not clearly beat the dummy predictor on energy; "
        "best alternative for energy: random forest on element fractions (better than SSL), "
        "for system: linear probe on the untrained encoder (no clear difference); "
        "best alternative for k-means clusters of system: untrained (no clear difference)."
    )
    # every task won, no label-efficiency rows: no alternatives to name
    won = verdict_rows(row("gap", "dummy", "better", 0.9, probe="dummy"))
    assert headline(won, ssl_probe="knn") == (
        "SSL (k-NN) beats every baseline on 1 of 1 task with all labels."
    )
    assert headline(verdict_rows()) == (
        "No comparison of SSL (linear probe) with a baseline was made."
    )
    ft = verdict_rows(
        row("gap", "scratch", "better", 0.5, kind="finetune", fraction=0.1),
        row("gap", "scratch", "no clear difference", 0.5, kind="finetune", fraction=1.0),
        row("energy", "scratch", "worse", 0.5, kind="finetune", fraction=0.1),
    )
    assert headline(won, ft).endswith(
        "; fine-tuned from the SSL weights it beats training from scratch in 1 of 3 "
        "comparisons and is worse in 1."
    )


def test_the_report_opens_with_the_headline_of_each_data_set(toy_results):
    html = (toy_results / "report.html").read_text()
    top = html.index('id="at-a-glance"')
    assert top < html.index('id="summary"')
    # the planted toy: SSL separates everything; the label-efficiency rows at 10 % say so too
    expected = (
        "SSL (linear probe) beats every baseline on 4 of 4 tasks with all labels; with 10 % "
        "of the labels it beats every baseline on 4 of 4; its k-means clusters match label "
        "better than every baseline&#39;s."
    )
    assert f'<p class="headline" id="headline-toy"><strong>toy:</strong> {expected}</p>' in html
    assert html.count(expected) == 2  # at the top and at the top of the data set's section


def _unit_params() -> dict:
    p = toy_params()
    p["tasks"][1]["unit"] = "eV/atom"  # energy
    return {"datasets": {"toy": p}}


def test_units_label_the_metrics_in_the_labels_units(toy_results):
    html = build_report({"toy": toy_inputs(toy_results)}, _unit_params())
    energy = html[html.index("<h4>energy ") : html.index("<h4>gap ")]
    assert "<th>MAE (eV/atom)\u00a0↓</th>" in energy and "<th>RMSE (eV/atom)\u00a0↓</th>" in energy
    assert "<th>R²\u00a0↑</th>" in energy  # unitless metrics say nothing
    summary = re.search(r'<table id="summary">(.*?)</table>', html, re.S).group(1)
    assert '<td>energy</td><td class="nw">MAE (eV/atom)\u00a0↓</td>' in summary
    assert '<td>gap</td><td class="nw">MAE\u00a0↓</td>' in summary  # no unit configured for gap
    assert "energy knn MAE (eV/atom)" in html  # the sweep table's column
    # the label-efficiency table of energy
    assert '<h4>energy <span class="meta">(MAE (eV/atom)\u00a0↓)</span></h4>' in html
    without = build_report({"toy": toy_inputs(toy_results)}, PARAMS)
    assert "eV/atom" not in without


def test_task_units_come_from_the_config_and_pass_to_derived_regressions():
    from sciclr.analysis.report_data import metric_label, task_units
    from sciclr.config import dataset_params

    section = dataset_params(
        {
            "domain": "materials",
            "tasks": [
                {"column": "e_form", "type": "regression", "unit": "eV/atom", "name": "energy"},
                {"column": "band_gap", "type": "regression", "binarize_above": 0.0},
            ],
            "analysis": {
                "derived_tasks": [
                    {"name": "e_metals", "column": "e_form", "type": "regression"},
                    {"name": "e_sign", "column": "e_form", "type": "classification"},
                    {"name": "g_ev", "column": "band_gap", "type": "regression", "unit": "eV"},
                ]
            },
        },
        required=(),
    )
    assert section["tasks"][1]["unit"] is None  # the schema's default
    units = task_units(section["tasks"], section["analysis"]["derived_tasks"])
    assert units == {"energy": "eV/atom", "e_metals": "eV/atom", "g_ev": "eV"}
    assert metric_label("rmse", "eV") == "RMSE (eV)"
    assert metric_label("spearman", "eV", arrow=True) == "Spearman ρ\u00a0↑"


def test_a_unit_must_be_text():
    from sciclr.config import dataset_params

    with pytest.raises(SciclrError, match="unit"):
        dataset_params(
            {"domain": "dna", "tasks": [{"column": "a", "type": "regression", "unit": 3}]}
        )


def test_parity_and_colour_axes_carry_the_unit():
    from sciclr.analysis.figures import label_efficiency_figure, parity_figure, umap_figure

    t = np.array([0.0, 1.0, 2.0])
    fig = parity_figure([("ssl/linear", t, t + 0.5)], "energy", "eV/atom")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "true energy (eV/atom)"
    assert ax.get_ylabel() == "predicted energy (eV/atom)"
    assert ax.get_title() == "ssl/linear\nMAE 0.500 eV/atom"
    assert parity_figure([("x", t, t)], "gap").axes[0].get_xlabel() == "true gap"
    E = np.random.default_rng(0).normal(size=(3, 2))
    fig = umap_figure(E, [("energy", t, "regression")], "ssl", {"energy": "eV/atom"})
    assert fig.axes[1].get_ylabel() == "energy (eV/atom)"  # the colour bar
    curve = pd.DataFrame(
        {
            "task": "energy",
            "feature_set": "ssl",
            "probe": "linear",
            "fraction": [0.1, 1.0],
            "metric": "mae",
            "value": [0.3, 0.2],
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    )
    fig = label_efficiency_figure(curve, "ssl", {"energy": "eV/atom"})
    assert fig.axes[0].get_ylabel() == "MAE (eV/atom)"


def test_class_names_are_never_cut():
    from sciclr.analysis.figures import confusion_figure, umap_figure

    long = "Akkermansia_muciniphila_ATCC_BAA-835"
    y = np.array([long, "Bacillus_subtilis", long, "Bacillus_subtilis"])
    fig = confusion_figure(y, y[::-1], "label")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "Akkermansia_muciniphila_ATCC_BAA-835",
        "Bacillus_subtilis",
    ]
    assert ax.get_yticklabels()[0].get_text() == long
    short = confusion_figure(np.array(["a", "b"]), np.array(["a", "b"]), "label")
    assert fig.get_size_inches()[0] > short.get_size_inches()[0] + 2  # room for the names
    E = np.zeros((4, 2))
    fig = umap_figure(E, [("label", y, "classification")], "ssl")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [long, "Bacillus_subtilis"]
    # the saved figure holds the whole legend: nothing is clipped at the canvas edge
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert box.x1 <= fig.bbox.x1 + 1


def test_colour_limits_ignore_outliers():
    from sciclr.analysis.figures import robust_limits, umap_figure

    v = np.r_[np.linspace(0.0, 1.0, 99), 1000.0, np.nan]  # one outlier, one missing label
    lo, hi = robust_limits(v)
    finite = v[np.isfinite(v)]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(finite, [2, 98])))
    assert hi < 1.5  # the outlier does not stretch the scale
    E = np.random.default_rng(0).normal(size=(len(v), 2))
    fig = umap_figure(E, [("energy", v, "regression")], "ssl")
    norm = fig.axes[0].collections[0].norm
    assert (norm.vmin, norm.vmax) == pytest.approx((lo, hi))
    assert fig.axes[1].collections or fig.axes[1].get_ylabel() == "energy"
    assert robust_limits(np.full(5, 2.0)) == (1.5, 2.5)  # constant: a unit-wide scale


def test_training_curves_show_the_val_metric_per_epoch_beside_the_loss(toy_results):
    from sciclr.analysis.figures import training_figure

    df = read_training_metrics(toy_results / "toy/runs/ssl/metrics.csv")
    evals = [
        {"epoch": 1, "metric": "knn_accuracy", "value": 0.5},
        {"epoch": 2, "metric": "knn_accuracy", "value": 0.7},
    ]
    fig = training_figure(df, evals, steps_per_epoch=20, chosen_epoch=2)
    loss, val = fig.axes[0], fig.axes[1]
    assert loss.get_title() == "InfoNCE loss L" and loss.get_xlabel() == "epoch"
    x = loss.get_lines()[0].get_xdata()
    np.testing.assert_allclose(x, df["step"] / 20)  # steps in epochs
    assert val.get_title() == "val split: knn_accuracy per evaluation"
    vx, vy = val.get_lines()[0].get_data()
    assert list(vx) == [1.0, 2.0] and list(vy) == [0.5, 0.7]
    assert [ln.get_xdata()[0] for ln in val.get_lines()[1:]] == [2.0]  # the chosen epoch
    # without the train summary's steps per epoch: from the metrics' own epoch column
    fig = training_figure(df, evals)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), df["step"] / 20)
    # the engine's numbering: steps 1.., epochs 1..; the last epoch unfinished
    engine = pd.DataFrame({"step": np.arange(1, 26), "epoch": (np.arange(25) // 10) + 1})
    engine["loss"] = 1.0
    x = training_figure(engine).axes[0].get_lines()[0].get_xdata()
    np.testing.assert_allclose(x, engine["step"] / 10)
    assert "val split" not in training_figure(df).axes[1].get_title()
    # the engine's own names (val_knn_accuracy) are not prefixed twice
    fig = training_figure(df, [{"epoch": 1, "metric": "val_knn_accuracy", "value": 0.5}])
    assert fig.axes[1].get_title() == "val split: knn_accuracy per evaluation"
    manifest = json.loads((toy_results / "toy/figures/figures.json").read_text())
    caption = next(f["caption"] for f in manifest["figures"] if f["kind"] == "training")
    assert "against the epoch" in caption and "Dashed: epoch 2, the one kept." in caption
    assert "selection metric at each evaluation beside it" in caption


def test_counts_are_integers(toy_results, tmp_path):
    html = (toy_results / "report.html").read_text()
    clustering = html[html.index("<h3>Clustering") : html.index("<h3>Figures")]
    kmeans = re.search(r"<td>ssl</td><td>kmeans</td>(.*?)</tr>", clustering).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", kmeans)
    assert cells[3] == "4"  # n_clusters, stored as 4.0
    assert '>144</td><td class="num">56</td>' in html  # n train, n test
    pre = tmp_path / "summary.json"
    pre.write_text(
        json.dumps({"in": 250.0, "rejected": 3.0, "splits": {"test": 14.0}, "share": 0.25})
    )
    html = build_report(
        {"toy": {**toy_inputs(toy_results), "preprocess_summary": str(pre)}}, PARAMS
    )
    pre_html = html[html.index("<h3>Preprocessing") : html.index("<h3>Probes")]
    assert '<td>in</td><td class="num">250</td>' in pre_html
    assert '<td>rejected</td><td class="num">3</td>' in pre_html
    assert '<td>splits.test</td><td class="num">14</td>' in pre_html
    assert '<td>share</td><td class="num">0.2500</td>' in pre_html


def test_met_targets_are_styled_as_success(toy_results):
    html = (toy_results / "report.html").read_text()
    assert '<div class="ok"><strong>toy</strong>: Target met: ssl/linear accuracy' in html
    assert '<div class="fail"><strong>toy</strong>: Target NOT met: ssl/linear mae' in html
    assert '<div class="note"><strong>toy</strong>: Target met' not in html
    css = (Path(steps.__file__).parent / "templates/report.css").read_text()
    assert ".ok{background:#dafbe1" in css


def test_figures_of_one_kind_share_a_grid(toy_results):
    from sciclr.analysis.html import png_size

    html = (toy_results / "report.html").read_text()
    manifest = json.loads((toy_results / "toy/figures/figures.json").read_text())
    grids = re.findall(
        r'<h4>([^<]*)</h4>\s*<div class="figure-grid" data-kind="([^"]*)" style="--col: (\d+)px">'
        r"(.*?)</div>",
        html,
        re.S,
    )
    got = {(title, kind): (int(col), body.count("<figure>")) for title, kind, col, body in grids}
    figs = manifest["figures"]
    for group in ("label", "energy"):
        members = [f for f in figs if f["kind"] == "embedding" and f["group"] == group]
        widest = max(png_size(toy_results / "toy/figures" / f["png"])[0] for f in members)
        assert got["2-D embeddings coloured by " + group, "embedding"] == (widest, 3)
    assert got["Confusion matrices (test split)", "confusion"][1] == 2
    assert got["Predicted vs true (test split)", "parity"][1] == 2
    # the label-efficiency figure sits beside its table, not in a grid
    assert all(kind != "label_efficiency" for _, kind in got)
    side = html[html.index("<h3>Label efficiency") : html.index("<h3>What the embedding")]
    assert side.count("<figure") == 1 and '<div class="side">' in side
    width = png_size(toy_results / "toy/figures/label_efficiency.png")[0]
    assert f'<figure style="max-width:min(100%, {width}px)">' in side  # caption wraps to it


def test_the_label_efficiency_table_sits_beside_its_figure(toy_results):
    html = (toy_results / "report.html").read_text()
    curve = pd.read_csv(toy_results / "toy/metrics/label_efficiency.tsv", sep="\t")
    side = html[html.index("<h3>Label efficiency") : html.index("<h3>What the embedding")]
    label = side[side.index("<h4>label ") : side.index("<h4>energy ")]
    assert "<th>features/probe</th><th>10 %</th><th>all</th>" in label
    n = curve[(curve.task == "label") & (curve.feature_set == "ssl")].set_index("fraction")[
        "n_labels"
    ]
    assert (
        f'<tr class="count"><td>n labels</td><td class="num">{n[0.1]}</td><td class="num">{n[1.0]}</td>'
        in label
    )
    assert (n[0.1], n[1.0]) == (16, 144)  # 10 % of 36 per class, rounded; all 144
    r = curve[
        (curve.task == "energy")
        & (curve.feature_set == "kmer")
        & (curve.probe == "rf")
        & (curve.fraction == 0.1)
    ].iloc[0]
    energy = side[side.index("<h4>energy ") : side.index("<h4>gap ")]
    tip = f"95 % interval {r.ci_low:.3f} to {r.ci_high:.3f}"
    assert f'<td class="num" title="{tip}">{r.value:.3f}</td>' in energy
    assert '<tr class="primary"><td>ssl/linear</td><td class="num best"' in energy


def write_finetune(folder: Path) -> dict[str, str]:
    """Hand-made fine-tuning tables as `snakemake finetune` writes them."""
    rows = []
    for fraction, ssl, scratch in ((0.1, 0.80, 0.55), (1.0, 0.93, 0.91)):
        for init, value in (("ssl", ssl), ("scratch", scratch)):
            rows.append(
                {
                    "dataset": "toy",
                    "task": "label",
                    "task_type": "classification",
                    "init": init,
                    "fraction": fraction,
                    "metric": "accuracy",
                    "value": value,
                    "ci_low": value - 0.05,
                    "ci_high": value + 0.04,
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "finetune.tsv", sep="\t", index=False)
    comp = verdict_rows(
        row(
            "label",
            "scratch",
            "better",
            0.55,
            kind="finetune",
            fraction=0.1,
            metric="accuracy",
            feature_set="ssl",
            probe="finetune",
            baseline_probe="finetune",
            value=0.80,
            delta=0.25,
            delta_ci_low=0.1,
            delta_ci_high=0.4,
        ),
        row(
            "label",
            "scratch",
            "no clear difference",
            0.91,
            kind="finetune",
            fraction=1.0,
            metric="accuracy",
            feature_set="ssl",
            probe="finetune",
            baseline_probe="finetune",
            value=0.93,
            delta=0.02,
            delta_ci_low=-0.03,
            delta_ci_high=0.06,
        ),
    )
    comp.to_csv(folder / "finetune_comparisons.tsv", sep="\t", index=False)
    return {
        "finetune": str(folder / "finetune.tsv"),
        "finetune_comparisons": str(folder / "finetune_comparisons.tsv"),
    }


def test_fine_tuning_results_are_shown_when_given(toy_results, tmp_path):
    plain = build_report({"toy": toy_inputs(toy_results)}, PARAMS)
    assert "Fine-tuning" not in plain and "fine-tuned from the SSL weights" not in plain
    html = build_report({"toy": {**toy_inputs(toy_results), **write_finetune(tmp_path)}}, PARAMS)
    section = html[html.index("<h3>Fine-tuning") : html.index("<h3>What the embedding")]
    assert "<th>labels</th><th>initialised from</th><th>accuracy\u00a0↑</th>" in section
    assert (
        '<tr class="primary"><td>10 %</td><td>SSL weights</td>'
        '<td class="num best">0.800 [0.750, 0.840]</td>' in section
    )
    assert (
        '<td>10 %</td><td>scratch (random init)</td><td class="num">0.550 [0.500, 0.590]</td>'
        in section
    )
    assert (
        '<td>all</td><td>SSL weights</td><td class="num best">0.930 [0.880, 0.970]</td>' in section
    )
    assert '+0.250 [+0.100, +0.400]</td><td class="better">better</td>' in section
    assert '+0.020 [-0.030, +0.060]</td><td class="unclear">no clear difference</td>' in section
    assert (
        "fine-tuned from the SSL weights it beats training from scratch in 1 of 2 comparisons."
        in html
    )
    # only the comparisons: the section with their table
    only = {"finetune_comparisons": write_finetune(tmp_path / "b")["finetune_comparisons"]}
    html = build_report({"toy": {**toy_inputs(toy_results), **only}}, PARAMS)
    assert "<h3>Fine-tuning" in html and "initialised from" not in html
    bad = tmp_path / "bad.tsv"
    bad.write_text("task\tinit\nlabel\tssl\n")
    with pytest.raises(
        SciclrError, match=r"fine-tuning metrics TSV lacks column\(s\) \['fraction'"
    ):
        build_report({"toy": {**toy_inputs(toy_results), "finetune": str(bad)}}, PARAMS)


def test_the_report_says_what_each_pairing_shares(toy_results):
    html = (toy_results / "report.html").read_text()
    assert "Contrastive views" in html
    assert "crop ↔ k-mer profile</strong>: a crop and the canonical 4-mer profile" in html


def test_a_subsampled_step_is_named_in_the_notes_and_a_full_one_is_not():
    from sciclr.analysis.report_data import _subsample_notes

    probe = pd.DataFrame(
        {
            "task": ["t", "t", "u"],
            "param": [
                "C=0.1; subsample 20,000 of 81,000 train items (max_items)",
                "C=1; subsample 20,000 of 81,000 train items (max_items)",  # same subsample
                "C=1",
            ],
        }
    )
    clusters = pd.DataFrame(
        {
            "task": ["t"],
            "param": ["k=11; centres fitted on 10,000 of 39,000 items (max_items_cluster)"],
        }
    )
    assert _subsample_notes(probe, clusters) == (
        "probes, task t: subsample 20,000 of 81,000 train items (analysis.max_items)",
        "clustering, task t: centres fitted on 10,000 of 39,000 items (analysis.max_items_cluster)",
    )
    assert _subsample_notes(probe[probe["task"] == "u"], clusters.iloc[:0]) == ()
