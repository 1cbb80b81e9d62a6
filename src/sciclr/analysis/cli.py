"""Command-line verbs of the analysis: ``probe``, ``cluster``, ``verdict``, ``diagnostics``,
``figures``, ``sweep-summary`` and ``report``.

:func:`register` adds them to the main ``sciclr`` parser; each sets ``func`` (called with the
parsed namespace). The ``run_*`` functions are the same steps for notebooks and tests. Every
output is written atomically.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sciclr.analysis.inputs import load_features, parse_named_paths, read_records
from sciclr.analysis.scoring import (
    METRIC_COLUMNS,
    predictions_frame,
    read_predictions,
    score_prediction,
)
from sciclr.analysis.spec import Settings, resolve_tasks
from sciclr.config import load_params
from sciclr.errors import SciclrError
from sciclr.io import write_table

__all__ = [
    "main",
    "register",
    "run_check_report",
    "run_cluster",
    "run_diagnostics",
    "run_figures",
    "run_probe",
    "run_report",
    "run_sweep_summary",
    "run_verdict",
]

log = logging.getLogger("sciclr.analysis")


def _setup(params: str, records: str | Path, dataset: str | None = None):
    settings = Settings.from_params(load_params(params), dataset)
    rec = read_records(records)
    tasks = resolve_tasks(settings, rec, str(records))
    return settings, rec, tasks


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(n)))


def _features(items: Sequence[str], ids: np.ndarray) -> dict[str, np.ndarray]:
    named = parse_named_paths(items)
    if "dummy" in named:
        raise SciclrError("--features: 'dummy' is reserved for the dummy predictor the probes add")
    return {name: load_features(path, ids) for name, path in named.items()}


def run_probe(
    params: str,
    records: str | Path,
    features: Sequence[str],
    out: str | Path,
    predictions: str | Path,
    threads: int = 1,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Probe every task × feature set (+ dummy); write the metrics and predictions TSVs."""
    from sciclr.analysis.probes import run_probes

    _threads(threads)
    settings, rec, tasks = _setup(params, records, dataset)
    ids = rec["id"].to_numpy().astype(str)
    feats = _features(features, ids)
    preds = run_probes(settings, ids, rec["split"].to_numpy(), tasks, feats, threads)
    by_name = {t.name: t for t in tasks}
    rows = []
    for p in preds:
        rows += score_prediction(
            p,
            by_name[p.task].metrics(),
            int(settings["bootstrap"]),
            int(settings["seed"]),
            float(settings["ci_level"]),
        )
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    write_table(out, table)
    write_table(predictions, predictions_frame(preds))
    return table


def run_cluster(
    params: str,
    records: str | Path,
    features: Sequence[str],
    out: str | Path,
    assignments: str | Path | None = None,
    threads: int = 1,
    dataset: str | None = None,
) -> pd.DataFrame:
    """k-means / HDBSCAN / Leiden per feature set against the cluster task; write TSVs."""
    from sciclr.analysis.clustering import cluster_task, run_clustering

    _threads(threads)
    settings, rec, tasks = _setup(params, records, dataset)
    ids = rec["id"].to_numpy().astype(str)
    feats = _features(features, ids)
    metrics, assign = run_clustering(
        settings, ids, rec["split"].to_numpy(), cluster_task(settings, tasks), feats
    )
    metrics = metrics.reindex(columns=METRIC_COLUMNS)
    write_table(out, metrics)
    if assignments:
        write_table(assignments, assign)
    return metrics


def run_verdict(
    params: str,
    records: str | Path,
    predictions: str | Path,
    metrics: str | Path,
    out: str | Path,
    cluster_metrics: str | Path | None = None,
    assignments: str | Path | None = None,
    dataset: str | None = None,
) -> pd.DataFrame:
    """SSL vs baselines (paired bootstrap) and target checks; write the verdict TSV."""
    from sciclr.analysis.verdict import verdict

    settings, _, tasks = _setup(params, records, dataset)
    preds = read_predictions(str(predictions))
    pm = _read_metrics(metrics)
    cm = _read_metrics(cluster_metrics) if cluster_metrics else None
    asg = None
    if assignments:
        if not Path(assignments).exists():
            raise SciclrError(f"{assignments}: cluster assignments not found")
        asg = pd.read_csv(assignments, sep="\t", dtype={"id": str, "label": str})
    table = verdict(settings, tasks, preds, pm, cm, asg)
    write_table(out, table)
    for statement in table.loc[table["summary"].astype(bool), "statement"]:
        log.info("%s", statement)
    return table


def _read_metrics(path: str | Path) -> pd.DataFrame:
    if not Path(path).exists():
        raise SciclrError(f"{path}: metrics table not found")
    df = pd.read_csv(path, sep="\t")
    missing = [
        c for c in ("task", "feature_set", "probe", "metric", "value") if c not in df.columns
    ]
    if missing:
        raise SciclrError(f"{path}: column(s) {missing} missing")
    return df


def run_diagnostics(training_metrics: str | Path, out: str | Path) -> pd.DataFrame:
    """Summary table (first/last/min/max per quantity) of the training metrics CSV."""
    from sciclr.analysis.diagnostics import read_training_metrics, summarize

    table = summarize(read_training_metrics(training_metrics))
    write_table(out, table)
    return table


def run_figures(
    params: str,
    records: str | Path,
    features: Sequence[str],
    outdir: str | Path,
    predictions: str | Path | None = None,
    run_dir: str | Path | None = None,
    training_metrics: str | Path | None = None,
    similarities: str | Path | None = None,
    threads: int = 1,
    dataset: str | None = None,
) -> dict:
    """Every figure its inputs allow, PNG + SVG, plus ``figures.json`` in ``outdir``.

    ``run_dir`` (a training run folder) supplies ``metrics.csv`` and ``similarities.npz``
    unless they are given one by one; a missing ``similarities.npz`` only skips its figure.
    """
    from sciclr.analysis.clustering import cluster_task
    from sciclr.analysis.diagnostics import read_training_metrics
    from sciclr.analysis.figures import make_figures

    if run_dir is not None:
        training_metrics = training_metrics or Path(run_dir) / "metrics.csv"
        similarities = similarities or Path(run_dir) / "similarities.npz"
    _threads(threads)
    settings, rec, tasks = _setup(params, records, dataset)
    ids = rec["id"].to_numpy().astype(str)
    feats = _features(features, ids)
    preds = read_predictions(str(predictions)) if predictions else None
    training = read_training_metrics(training_metrics) if training_metrics else None
    sims = None
    if similarities and Path(similarities).exists():
        try:
            with np.load(similarities, allow_pickle=False) as z:
                sims = (np.asarray(z["pos"], dtype=float), np.asarray(z["neg"], dtype=float))
        except (KeyError, OSError, ValueError) as exc:
            raise SciclrError(f"{similarities}: expected arrays 'pos' and 'neg' ({exc})") from None
    try:
        ctask = cluster_task(settings, tasks)
    except SciclrError:
        ctask = None
    return make_figures(settings, tasks, feats, preds, training, sims, outdir, ctask)


def run_sweep_summary(
    inputs: Sequence[str],
    out: str | Path,
    figure: str | Path | None = None,
    params: str | None = None,
) -> pd.DataFrame:
    """Collect the sweep's per-τ tables (``TAU=PROBE_TSV[=TRAINING_CSV]``) into one TSV and a
    figure."""
    from sciclr.analysis.figures import save_figure
    from sciclr.analysis.sweep import parse_sweep_inputs, sweep_figure, sweep_summary

    settings = Settings.from_params(load_params(params) if params else {})
    if figure and Path(figure).suffix != ".png":
        raise SciclrError(f"--figure: {figure} must end in .png (an .svg is written next to it)")
    table = sweep_summary(parse_sweep_inputs(inputs), settings["primary_feature_set"])
    write_table(out, table)
    if figure:
        primary = dict(settings["primary_metric"])
        primary.update(
            {t.get("name", t["column"]): t["metric"] for t in settings.tasks if t.get("metric")}
        )
        fpath = Path(figure)
        fig = sweep_figure(table, primary, settings["verdict_probe"])
        log.info("sweep figure: %s", save_figure(fig, fpath.parent, fpath.stem))
    return table


def run_report(
    results: str | Path,
    datasets: Sequence[str],
    out: str | Path,
    params: str | None = None,
    title: str = "sciclr report",
) -> None:
    """Render the self-contained HTML report (``params``: the config, or its ``datasets``)."""
    from sciclr.analysis.report import write_report

    write_report(out, results, datasets, load_params(params) if params else None, title)


# ---------------------------------------------------------------- argparse


def _common(p: argparse.ArgumentParser, features: bool = True) -> None:
    p.add_argument("--params", required=True, help="data set config section: JSON text or file")
    p.add_argument("--records", required=True, help="processed/records.tsv")
    if features:
        p.add_argument(
            "--features",
            nargs="+",
            required=True,
            metavar="NAME=PATH",
            help="feature matrices (.npz with ids, X); e.g. ssl=... kmer4=...",
        )
        p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default=None, help="data set name (default: params 'name')")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the analysis verbs to the ``sciclr`` command line."""
    p = subparsers.add_parser("probe", help="linear / k-NN / RF / dummy probes with bootstrap CIs")
    _common(p)
    p.add_argument("--out", required=True, help="metrics TSV (long format)")
    p.add_argument("--predictions", required=True, help="test predictions TSV")
    p.set_defaults(
        func=lambda a: run_probe(
            a.params, a.records, a.features, a.out, a.predictions, a.threads, a.dataset
        )
    )

    p = subparsers.add_parser(
        "cluster", help="k-means / HDBSCAN / Leiden vs labels (ARI, NMI, silhouette)"
    )
    _common(p)
    p.add_argument("--out", required=True, help="metrics TSV (long format)")
    p.add_argument("--assignments", default=None, help="cluster assignments TSV (for the verdict)")
    p.set_defaults(
        func=lambda a: run_cluster(
            a.params, a.records, a.features, a.out, a.assignments, a.threads, a.dataset
        )
    )

    p = subparsers.add_parser("verdict", help="SSL vs baselines (paired bootstrap) and targets")
    _common(p, features=False)
    p.add_argument("--predictions", required=True)
    p.add_argument("--metrics", required=True, help="probe metrics TSV")
    p.add_argument("--cluster-metrics", default=None)
    p.add_argument("--assignments", default=None)
    p.add_argument("--out", required=True)
    p.set_defaults(
        func=lambda a: run_verdict(
            a.params,
            a.records,
            a.predictions,
            a.metrics,
            a.out,
            a.cluster_metrics,
            a.assignments,
            a.dataset,
        )
    )

    p = subparsers.add_parser("diagnostics", help="summary table of the training metrics CSV")
    p.add_argument("--training-metrics", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=lambda a: run_diagnostics(a.training_metrics, a.out))

    p = subparsers.add_parser("figures", help="UMAP, confusion, parity, training curves (PNG+SVG)")
    _common(p)
    p.add_argument("--predictions", default=None)
    p.add_argument(
        "--run-dir", default=None, help="training run folder: metrics.csv, similarities.npz"
    )
    p.add_argument("--training-metrics", default=None, help="overrides RUN_DIR/metrics.csv")
    p.add_argument(
        "--similarities", default=None, help="npz with pos, neg (figure skipped if absent)"
    )
    p.add_argument("--out-dir", "--outdir", dest="outdir", required=True)
    p.set_defaults(
        func=lambda a: run_figures(
            a.params,
            a.records,
            a.features,
            a.outdir,
            a.predictions,
            a.run_dir,
            a.training_metrics,
            a.similarities,
            a.threads,
            a.dataset,
        )
    )

    p = subparsers.add_parser("sweep-summary", help="probe quality and uniformity against τ")
    p.add_argument("--inputs", nargs="+", required=True, metavar="TAU=PROBE_TSV[=TRAINING_CSV]")
    p.add_argument("--params", default=None, help="data set config (primary metrics)")
    p.add_argument("--out", required=True)
    p.add_argument("--figure", default=None, help="PNG path (an SVG is written next to it)")
    p.set_defaults(func=lambda a: run_sweep_summary(a.inputs, a.out, a.figure, a.params))

    p = subparsers.add_parser("report", help="self-contained HTML report")
    p.add_argument(
        "--results", required=True, help="results folder holding one folder per data set"
    )
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--params", default=None, help="config JSON (domains; verdicts if not on disk)")
    p.add_argument("--title", default="sciclr report")
    p.set_defaults(func=lambda a: run_report(a.results, a.datasets, a.out, a.params, a.title))

    p = subparsers.add_parser("check-report", help="open a report in headless Chromium (offline)")
    p.add_argument("--html", required=True)
    p.add_argument("--screenshot", default=None)
    p.set_defaults(func=lambda a: run_check_report(a.html, a.screenshot))


def run_check_report(html: str | Path, screenshot: str | Path | None = None) -> None:
    """Open the report in headless Chromium (offline); error unless every image loaded."""
    from sciclr.analysis.browser import check_report

    res = check_report(html, screenshot)
    log.info("report check: %s", res)
    if not res.ok:
        raise SciclrError(
            f"{html}: {res.broken} of {res.images} images broken (status {res.status}), "
            f"summary table {'present' if res.has_summary else 'missing'}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (the package's ``sciclr`` command registers the same verbs)."""
    import sys

    parser = argparse.ArgumentParser(prog="sciclr-analysis")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        args.func(args)
    except SciclrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
