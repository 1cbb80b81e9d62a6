"""The whole workflow on the tiny bundled data: metrics, report, reruns, --report, BYOD."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import copy_workflow, snakemake

pytestmark = pytest.mark.slow

BASELINES = {"genomics": ["kmer4"], "materials": ["element_fractions"]}
TASKS = {
    "genomics": {"label": "classification"},
    "materials": {
        "formation_energy_per_atom": "regression",
        "band_gap": "regression",
        "crystal_system": "classification",
    },
}


def read_tsv(path):
    return pd.read_csv(path, sep="\t")


@pytest.mark.parametrize("ds", sorted(TASKS))
def test_probe_metrics_cover_every_task_and_feature_set(tiny_run, ds):
    probe = read_tsv(tiny_run / "results" / ds / "metrics" / "probe.tsv")
    assert {"task", "feature_set", "probe", "metric", "value", "ci_low", "ci_high"} <= set(probe)
    assert set(TASKS[ds]) <= set(probe["task"])
    assert {"ssl", "untrained", "dummy", *BASELINES[ds]} <= set(probe["feature_set"])
    # a constant (dummy) prediction has no rank correlation: the only undefined value allowed
    undefined = (probe["feature_set"] == "dummy") & (probe["metric"] == "spearman")
    assert np.isfinite(probe.loc[~undefined, "value"]).all(), probe[~np.isfinite(probe["value"])]
    with_ci = probe.dropna(subset=["ci_low", "ci_high"])
    assert len(with_ci) > 0
    tol = 1e-9
    assert (
        (with_ci["ci_low"] <= with_ci["value"] + tol)
        & (with_ci["value"] <= with_ci["ci_high"] + tol)
    ).all()
    scores = probe[probe["metric"].isin(["accuracy", "balanced_accuracy", "macro_f1", "roc_auc"])]
    assert scores["value"].between(0, 1).all()


def test_dna_kmer_baseline_beats_dummy(tiny_run):
    """A real signal check: 4-mer profiles separate genomes far above the majority class."""
    probe = read_tsv(tiny_run / "results" / "genomics" / "metrics" / "probe.tsv")
    acc = probe[(probe["task"] == "label") & (probe["metric"] == "accuracy")]
    kmer = acc[(acc["feature_set"] == "kmer4") & (acc["probe"] == "linear")]["value"].max()
    dummy = acc[acc["feature_set"] == "dummy"]["value"].max()
    assert kmer > dummy + 0.3, (kmer, dummy)


def test_materials_composition_beats_dummy_on_formation_energy(tiny_run):
    probe = read_tsv(tiny_run / "results" / "materials" / "metrics" / "probe.tsv")
    mae = probe[(probe["task"] == "formation_energy_per_atom") & (probe["metric"] == "mae")]
    comp = mae[mae["feature_set"] == "element_fractions"]["value"].min()
    dummy = mae[mae["feature_set"] == "dummy"]["value"].min()
    assert comp < dummy, (comp, dummy)


@pytest.mark.parametrize("ds", sorted(TASKS))
def test_cluster_metrics(tiny_run, ds):
    cl = read_tsv(tiny_run / "results" / ds / "metrics" / "cluster.tsv")
    assert {"ari", "nmi"} <= {m.lower() for m in cl["metric"]}
    assert "ssl" in set(cl["feature_set"])
    vals = cl[cl["metric"].str.lower().isin(["ari", "nmi"])]["value"].dropna()
    assert vals.between(-1, 1).all()


@pytest.mark.parametrize("ds", sorted(TASKS))
def test_preprocessing_counts_and_rejects(tiny_run, ds):
    summary = json.loads((tiny_run / "results" / ds / "processed" / "summary.json").read_text())
    records = read_tsv(tiny_run / "results" / ds / "processed" / "records.tsv")
    rejects = read_tsv(tiny_run / "results" / ds / "processed" / "rejects.tsv")
    assert summary["out"] == len(records)
    assert summary["in"] == summary["out"] + summary["rejected"]
    assert summary["rejected"] == len(rejects)
    assert set(records["split"]) == {"train", "val", "test"}
    emb = np.load(tiny_run / "results" / ds / "embeddings" / "ssl.npz")
    assert emb["X"].shape[0] == len(records)
    assert list(emb["ids"]) == records["id"].astype(str).tolist()
    assert np.isfinite(emb["X"]).all()


def test_training_metrics_written(tiny_run):
    for ds in TASKS:
        m = pd.read_csv(tiny_run / "results" / ds / "runs" / "ssl" / "metrics.csv")
        assert {
            "loss",
            "lr",
            "temperature",
            "alignment",
            "uniformity",
            "mi_bound",
            "margin",
        } <= set(m)
        assert np.isfinite(m["loss"]).all() and len(m) >= 2


def test_report_has_both_domains(tiny_run):
    html = (tiny_run / "results" / "report.html").read_text()
    assert "genomics" in html and "materials" in html
    assert "<img" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_second_run_does_nothing(tiny_run):
    proc = snakemake(tiny_run, "-n", "--configfile", "config/test.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_training_param_change_reruns_training_not_preprocessing(tiny_run):
    (tiny_run / "lr.yaml").write_text("datasets:\n  genomics:\n    train: {lr: 0.005}\n")
    proc = snakemake(tiny_run, "-n", "--configfile", "config/test.yaml", "lr.yaml")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    jobs = out[out.rindex("Job stats:") :].split("Reasons:")[0]
    assert "train " in jobs and "probe " in jobs and "report " in jobs, out
    for rule in ("preprocess_shard", "gather", "features"):
        assert rule not in jobs, out
    assert "wildcards: ds=materials" not in out  # only the changed data set reruns


def test_snakemake_report_builds(tiny_run):
    proc = snakemake(tiny_run, "--configfile", "config/test.yaml", "--report", "report.zip")
    assert proc.returncode == 0, proc.stderr
    assert (tiny_run / "report.zip").stat().st_size > 10_000


def test_bring_your_own_data_by_overlay(tmp_path, repo):
    """Renamed files, columns and labels, no split column: a config overlay is enough."""
    work = copy_workflow(tmp_path / "byod", with_tiny_data=False)
    data = work / "mydata"
    data.mkdir()
    fasta = (repo / "resources/dna/tiny/genomics_tiny.fasta").read_text()
    (data / "reads.fa").write_text(fasta)
    lab = pd.read_csv(repo / "resources/dna/tiny/labels.tsv", sep="\t")
    lab = lab.rename(columns={"id": "accession", "label": "organism"}).drop(columns=["split"])
    lab[["accession", "organism", "gc"]].to_csv(data / "meta.csv", index=False)
    mat = pd.read_csv(repo / "resources/materials/tiny/materials.csv")
    mat = mat.rename(
        columns={"material_id": "mpid", "cif": "structure", "formation_energy_per_atom": "Ef"}
    )
    mat[["mpid", "structure", "Ef", "crystal_system"]].to_csv(data / "crystals.csv", index=False)
    (work / "byod.yaml").write_text(
        """
datasets:
  genomics:
    input: mydata/reads.fa
    labels: mydata/meta.csv
    id_column: accession
    split_column: null
    split_fractions: {train: 0.6, val: 0.2, test: 0.2}
    tasks:
      - {column: organism, type: classification, cluster: true}
      - {column: gc, type: regression}
    train: {epochs: 1}
    analysis: {targets: {}, clustering: [kmeans]}
  materials:
    input: mydata/crystals.csv
    cif_column: structure
    id_column: mpid
    split_column: null
    tasks:
      - {column: Ef, type: regression}
      - {column: crystal_system, type: classification, cluster: true}
    train: {epochs: 1}
    analysis: {targets: {}, clustering: [kmeans]}
    finetune: {tasks: [Ef]}
"""
    )
    # up to the probes: what the overlay changes (inputs, columns, labels, splits) ends there
    probes = [f"results/{ds}/metrics/probe.tsv" for ds in ("genomics", "materials")]
    proc = snakemake(work, *probes, "--cores", "2", "--configfile", "config/test.yaml", "byod.yaml")
    assert proc.returncode == 0, proc.stderr[-5000:]
    dna = read_tsv(work / "results/genomics/metrics/probe.tsv")
    assert {"organism", "gc"} <= set(dna["task"])
    recs = read_tsv(work / "results/genomics/processed/records.tsv")
    assert set(recs["split"]) == {"train", "val", "test"}
    assert list(recs.columns[:2]) == ["id", "split"] and "organism" in recs
    mat_probe = read_tsv(work / "results/materials/metrics/probe.tsv")
    assert {"Ef", "crystal_system"} <= set(mat_probe["task"])


@pytest.mark.browser
def test_tiny_report_renders_in_chromium(tiny_run, tmp_path):
    """The report of the end-to-end run, opened offline in headless Chromium: every image
    loads, each data set has its one-sentence answer, and no figure is wider than the page,
    on a desktop and on a narrow window."""
    from tests.analysis.test_browser import check_report_html

    report = tiny_run / "results" / "report.html"
    check_report_html(report, tmp_path / "report.png")
    check_report_html(report, tmp_path / "narrow.png", window=(700, 1200))
    html = report.read_text()
    assert html.count('<p class="headline" id="headline-') == 2  # genomics, materials
    assert "MAE (eV/atom)" in html and "MAE (eV)" in html  # config/test.yaml's units


@pytest.mark.parametrize("ds", sorted(TASKS))
def test_verdict_table(tiny_run, ds):
    verdict = read_tsv(tiny_run / "results" / ds / "metrics" / "verdict.tsv")
    assert len(verdict) > 0
    assert {"untrained", "dummy"} <= set(verdict["baseline_feature_set"].dropna())
    assert set(TASKS[ds]) & set(verdict["task"])
    compared = verdict.dropna(subset=["delta", "delta_ci_low", "delta_ci_high"])
    assert (compared["delta_ci_low"] <= compared["delta_ci_high"]).all()


def test_temperature_sweep_target(tiny_run):
    """`snakemake sweep` retrains at each configured τ and summarises probe quality vs τ."""
    proc = snakemake(tiny_run, "sweep", "--cores", "2", "--configfile", "config/test.yaml")
    assert proc.returncode == 0, proc.stderr[-5000:]
    summary = read_tsv(tiny_run / "results" / "materials" / "sweep" / "summary.tsv")
    assert sorted(set(summary["tau"])) == [0.1, 0.5]
    assert np.isfinite(summary["value"]).any()
    assert (tiny_run / "results" / "materials" / "sweep" / "summary.png").stat().st_size > 1000
    for tau in ("0.1", "0.5"):
        m = pd.read_csv(tiny_run / "results" / "materials" / "runs" / f"tau{tau}" / "metrics.csv")
        assert np.allclose(m["temperature"], float(tau), rtol=1e-5)


def _embed_new(tiny_run, ds: str, inputs: list, out) -> tuple[np.ndarray, np.ndarray]:
    """The documented command: `sciclr embed --checkpoint ... --input ... --out ...`."""
    import subprocess

    ckpt = tiny_run / "results" / ds / "runs" / "ssl" / "checkpoint.pt"
    cmd = ["sciclr", "embed", "--checkpoint", str(ckpt), "--input", *map(str, inputs)]
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = np.load(out)
    ref = np.load(tiny_run / "results" / ds / "embeddings" / "ssl.npz")
    row = list(ref["ids"]).index(got["ids"][0])
    return got["X"], ref["X"][row]


def test_a_trained_model_embeds_one_new_fasta_record(tiny_run, tmp_path):
    """One record, no labels, no splits: preprocessed with the checkpoint's own settings and
    embedded exactly as the workflow embedded it."""
    text = (tiny_run / "resources/dna/tiny/genomics_tiny.fasta").read_text()
    kept = set(read_tsv(tiny_run / "results/genomics/processed/records.tsv")["id"])
    records = [">" + r for r in text.split(">") if r]
    one = next(r for r in records if r.split()[0][1:] in kept)
    (tmp_path / "one.fasta").write_text(one)
    x, ref = _embed_new(tiny_run, "genomics", [tmp_path / "one.fasta"], tmp_path / "one.npz")
    assert x.shape == (1, len(ref))
    np.testing.assert_allclose(x[0], ref, atol=1e-6, rtol=0)
    assert read_tsv(tmp_path / "one.rejects.tsv").empty


def test_a_trained_model_embeds_a_folder_with_one_cif(tiny_run, tmp_path):
    kept = set(read_tsv(tiny_run / "results/materials/processed/records.tsv")["id"])
    cif = next(
        p
        for p in sorted((tiny_run / "resources/materials/tiny/cif").glob("*.cif"))
        if p.stem in kept
    )
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / cif.name).write_text(cif.read_text())
    x, ref = _embed_new(tiny_run, "materials", [folder], tmp_path / "one.npz")
    np.testing.assert_allclose(x[0], ref, atol=1e-6, rtol=0)


def test_a_data_set_can_take_its_encoder_from_another_run(tiny_run, tmp_path):
    """`pretrained: {dataset: genomics}` with `train.epochs: 0`: no training job runs for it,
    its SSL embeddings are the source encoder's on the same items, the report says so."""
    import shutil

    work = tmp_path / "transfer"
    shutil.copytree(tiny_run, work, symlinks=True)
    (work / "transfer.yaml").write_text(
        """
run_datasets: [genomics_copy]
datasets:
  genomics_copy:
    domain: dna
    input: resources/dna/tiny/genomics_tiny.fasta
    labels: resources/dna/tiny/labels.tsv
    id_column: id
    split_column: split
    tasks: [{column: label, type: classification, cluster: true}]
    preprocess: {min_length: 200}
    baselines: {kmer_k: [4]}
    pretrained: {dataset: genomics}
    train: {epochs: 0}
    analysis: {bootstrap: 50, cv_folds: 2, knn_k: 3, umap: false, clustering: [kmeans],
               label_fractions: [0.1, 1.0], label_repeats: 2}
"""
    )
    proc = snakemake(work, "--cores", "2", "--configfile", "config/test.yaml", "transfer.yaml")
    assert proc.returncode == 0, proc.stderr[-5000:]
    log = proc.stdout + proc.stderr
    jobs = log[log.index("Job stats:") :].split("Select jobs")[0]
    assert "train" not in jobs and "embed" in jobs and "report" in jobs, jobs
    assert not (work / "results/genomics_copy/runs").exists()
    copy = np.load(work / "results/genomics_copy/embeddings/ssl.npz")
    source = np.load(work / "results/genomics/embeddings/ssl.npz")
    rows = {i: k for k, i in enumerate(source["ids"])}
    assert len(copy["ids"]) > 100 and set(copy["ids"]) <= set(rows)
    np.testing.assert_allclose(
        copy["X"], source["X"][[rows[i] for i in copy["ids"]]], atol=1e-6, rtol=0
    )
    html = (work / "results/report.html").read_text()
    assert "the encoder trained on data set &#39;genomics&#39;, used as it is" in html
