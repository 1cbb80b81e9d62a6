"""Synthetic inputs with known answers for the analysis tests, and a rendered report.

``toy`` writes what the pipeline would write for one data set (records, features, training
metrics) with planted structure: the ``ssl`` features separate the four classes by ~10 σ, the
``kmer`` baseline by ~1.4 σ, ``untrained`` is noise; ``energy`` is linear in the ssl features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis import steps

CLASSES = ["alpha", "beta", "gamma", "delta"]
SPLIT_SIZES = {"train": 36, "val": 10, "test": 14}  # per class


def toy_params(**analysis) -> dict:
    base = {
        "bootstrap": 200,
        "rf_features": ["kmer"],
        "rf_trees": 50,
        "umap": False,
        "targets": {"label": {"accuracy": 0.9, "kmeans_ari": 0.6}, "energy": {"mae": 0.01}},
    }
    base.update(analysis)
    return {
        "name": "toy",
        "domain": "dna",
        "tasks": [
            {"column": "label", "type": "classification", "cluster": True},
            {"column": "energy", "type": "regression"},
            {"column": "gap", "type": "regression", "binarize_above": 0.0},
        ],
        "analysis": base,
    }


def make_toy(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write records.tsv and ssl/kmer/untrained .npz under ``root``; return their paths."""
    rng = np.random.default_rng(seed)
    labels, splits = [], []
    for c in CLASSES:
        for s, n in SPLIT_SIZES.items():
            labels += [c] * n
            splits += [s] * n
    labels, splits = np.array(labels), np.array(splits)
    n = len(labels)
    code = np.searchsorted(np.array(sorted(CLASSES)), labels)
    centres = 10.0 * np.eye(len(CLASSES))
    z = rng.normal(size=(n, 3))  # continuous properties, carried by the ssl features only
    ssl = np.c_[centres[code] + rng.normal(size=(n, len(CLASSES))), z]
    kmer = 0.15 * np.c_[centres[code], np.zeros((n, 3))] + rng.normal(size=(n, 7))
    untrained = rng.normal(size=(n, 7))
    energy = 0.5 * z[:, 0] - 0.3 * z[:, 1] + 0.05 * rng.normal(size=n)
    gap = np.maximum(0.0, z[:, 2])
    ids = np.array([f"r{i:04d}" for i in range(n)])
    order = rng.permutation(n)  # records in shuffled order, as real data would be
    root.mkdir(parents=True, exist_ok=True)
    rec = pd.DataFrame(
        {"id": ids, "split": splits, "label": labels, "energy": energy, "gap": gap}
    ).iloc[order]
    rec.to_csv(root / "records.tsv", sep="\t", index=False)
    paths = {"records": root / "records.tsv"}
    for name, X in (("ssl", ssl), ("kmer", kmer), ("untrained", untrained)):
        np.savez(root / f"{name}.npz", ids=ids, X=X.astype(np.float32))  # original order
        paths[name] = root / f"{name}.npz"
    return paths


def write_training(run_dir: Path, steps: int = 60, seed: int = 0) -> None:
    """A training metrics CSV with the engine's columns, similarities and a summary."""
    rng = np.random.default_rng(seed)
    s = np.arange(steps)
    k = 255
    loss = 4.0 * np.exp(-s / 20) + 1.0 + 0.02 * rng.normal(size=steps)
    df = pd.DataFrame(
        {
            "step": s,
            "epoch": s // 20,
            "loss": loss,
            "lr": 1e-3,
            "temperature": 0.1,
            "pos_sim": 0.9 - 0.5 * np.exp(-s / 20),
            "neg_sim": 0.1 * np.exp(-s / 20),
            "alignment": 0.2 + 0.5 * np.exp(-s / 20),
            "uniformity": -3 + 2 * np.exp(-s / 20),
            "k": k,
            "margin": 0.1 * np.log(k),
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(run_dir / "metrics.csv", index=False)
    np.savez(
        run_dir / "similarities.npz", pos=rng.normal(0.8, 0.1, 500), neg=rng.normal(0, 0.2, 5000)
    )
    (run_dir / "train_summary.json").write_text(
        json.dumps({"domain": "dna", "epochs": 3, "seconds": 1.5})
    )


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> dict[str, Path]:
    return make_toy(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def toy_results(tmp_path_factory, toy) -> Path:
    """A results folder laid out as the workflow writes it, produced by the analysis verbs."""
    results = tmp_path_factory.mktemp("results")
    base = results / "toy"
    params = json.dumps(toy_params())
    feats = [f"{n}={toy[n]}" for n in ("ssl", "kmer", "untrained")]
    (base / "processed").mkdir(parents=True)
    pd.read_csv(toy["records"], sep="\t").to_csv(
        base / "processed/records.tsv", sep="\t", index=False
    )
    (base / "processed/summary.json").write_text(
        json.dumps({"in": 250, "out": 240, "rejected": 10})
    )
    write_training(base / "runs/ssl")
    # the engine's val evaluations (k-NN accuracy at the end of each epoch), epoch 2 kept
    summary = json.loads((base / "runs/ssl/train_summary.json").read_text())
    summary.update(
        steps_per_epoch=20,
        chosen_epoch=2,
        evaluations=[
            {"epoch": e, "step": 20 * e, "metric": "knn_accuracy", "value": v}
            for e, v in ((1, 0.61), (2, 0.83), (3, 0.79))
        ],
    )
    (base / "runs/ssl/train_summary.json").write_text(json.dumps(summary))
    m = base / "metrics"
    steps.run_probe(params, toy["records"], feats, m / "probe.tsv", m / "predictions.tsv")
    steps.run_cluster(
        params, toy["records"], feats, m / "cluster.tsv", m / "cluster_assignments.tsv"
    )
    steps.run_label_efficiency(  # two shares, two repeats: enough for the curve and the table
        json.dumps(toy_params(label_fractions=[0.1, 1.0], label_repeats=2)),
        toy["records"],
        feats,
        m / "label_efficiency.tsv",
        m / "label_efficiency_comparisons.tsv",
    )
    steps.run_verdict(
        params,
        toy["records"],
        m / "predictions.tsv",
        m / "probe.tsv",
        m / "verdict.tsv",
        m / "cluster.tsv",
        m / "cluster_assignments.tsv",
        label_comparisons=m / "label_efficiency_comparisons.tsv",
    )
    steps.run_figures(
        params,
        toy["records"],
        feats,
        base / "figures",
        m / "predictions.tsv",
        base / "runs/ssl",
        label_efficiency=m / "label_efficiency.tsv",
    )
    # a two-temperature sweep: τ = 0.1 is the main run; τ = 0.5 a noisier ssl embedding
    noisy = np.load(toy["ssl"])
    X = noisy["X"] + np.random.default_rng(5).normal(scale=4.0, size=noisy["X"].shape)
    np.savez(base / "tau0.5.npz", ids=noisy["ids"], X=X.astype(np.float32))
    sweep_params = json.dumps(toy_params(probes=["linear"], rf_features=[]))
    steps.run_probe(
        sweep_params,
        toy["records"],
        [f"ssl={base / 'tau0.5.npz'}"],
        base / "sweep/tau0.5/probe.tsv",
        base / "sweep/tau0.5/predictions.tsv",
    )
    write_training(base / "runs/tau0.5", seed=1)
    steps.run_sweep_summary(
        sweep_params,
        [
            f"0.1={m / 'probe.tsv'}={base / 'runs/ssl/metrics.csv'}",
            f"0.5={base / 'sweep/tau0.5/probe.tsv'}={base / 'runs/tau0.5/metrics.csv'}",
        ],
        base / "sweep/summary.tsv",
        base / "sweep/summary.png",
    )
    steps.run_recovery(
        params,
        toy["records"],
        [f"ssl={toy['ssl']}", f"untrained={toy['untrained']}"],
        [f"kmer={toy['kmer']}"],
        m / "recovery.tsv",
    )
    steps.run_report(  # the report reads exactly these files
        {"datasets": {"toy": toy_params()}},
        {
            "toy": {
                "probe_metrics": str(m / "probe.tsv"),
                "recovery": str(m / "recovery.tsv"),
                "cluster_metrics": str(m / "cluster.tsv"),
                "verdict": str(m / "verdict.tsv"),
                "label_efficiency": str(m / "label_efficiency.tsv"),
                "figures": str(base / "figures"),
                "preprocess_summary": str(base / "processed/summary.json"),
                "train_summary": str(base / "runs/ssl/train_summary.json"),
                "training_metrics": str(base / "runs/ssl/metrics.csv"),
                "sweep_table": str(base / "sweep/summary.tsv"),
                "sweep_figure": str(base / "sweep/summary.png"),
            }
        },
        results / "report.html",
    )
    return results
