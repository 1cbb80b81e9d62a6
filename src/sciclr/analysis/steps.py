"""The analysis steps, one function per ``sciclr`` verb: ``probe``, ``cluster``, ``verdict``,
``diagnostics``, ``figures``, ``sweep-summary``, ``report`` and ``check-report``.

The command line (:mod:`sciclr.cli.analysis`) only parses arguments and calls these; notebooks
and tests call them directly. ``params`` is the data set's config section (a mapping, JSON text
or a JSON file); its defaults are filled from the schema here. Every output is written
atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


Params = str | Mapping[str, Any]


def settings_of(params: Params, dataset: str | None = None) -> Settings:
    """The analysis settings of a data set's ``params`` (JSON, file or mapping), defaults
    filled from the schema."""
    return Settings.from_params(load_params(params), dataset)


def _setup(params: Params, records: str | Path, dataset: str | None = None):
    settings = settings_of(params, dataset)
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
    params: Params,
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


def run_label_efficiency(
    params: Params,
    records: str | Path,
    features: Sequence[str],
    out: str | Path,
    comparisons: str | Path,
    threads: int = 1,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Label-efficiency curves of every feature set; write the curve TSV and the SSL-vs-baseline
    comparisons at each fraction (verdict columns) that the verdict step appends."""
    from sciclr.analysis.label_efficiency import CURVE_COLUMNS, label_efficiency

    _threads(threads)
    settings, rec, tasks = _setup(params, records, dataset)
    ids = rec["id"].to_numpy().astype(str)
    feats = _features(features, ids)
    if settings["label_fractions"]:
        curve, comp = label_efficiency(
            settings, ids, rec["split"].to_numpy(), tasks, feats, threads
        )
    else:
        from sciclr.analysis.verdict import VERDICT_COLUMNS

        curve, comp = pd.DataFrame(columns=CURVE_COLUMNS), pd.DataFrame(columns=VERDICT_COLUMNS)
    write_table(out, curve)
    write_table(comparisons, comp)
    return curve


def run_recovery(
    params: Params,
    records: str | Path,
    embeddings: Sequence[str],
    targets: Sequence[str],
    out: str | Path,
    threads: int = 1,
    dataset: str | None = None,
) -> pd.DataFrame:
    """What each embedding kept: R² of a ridge from it to each handcrafted feature set."""
    from sciclr.analysis.recovery import feature_recovery

    _threads(threads)
    settings, rec, _ = _setup(params, records, dataset)
    ids = rec["id"].to_numpy().astype(str)
    table = feature_recovery(
        settings, rec["split"].to_numpy(), _features(embeddings, ids), _features(targets, ids)
    )
    write_table(out, table)
    return table


def run_cluster(
    params: Params,
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
    params: Params,
    records: str | Path,
    predictions: str | Path,
    metrics: str | Path,
    out: str | Path,
    cluster_metrics: str | Path | None = None,
    assignments: str | Path | None = None,
    dataset: str | None = None,
    label_comparisons: str | Path | None = None,
) -> pd.DataFrame:
    """SSL vs baselines (paired bootstrap) and target checks (plus the label-efficiency
    comparisons of :func:`run_label_efficiency`); write the verdict TSV."""
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
    lab = None
    if label_comparisons:
        if not Path(label_comparisons).exists():
            raise SciclrError(f"{label_comparisons}: label-efficiency comparisons not found")
        lab = pd.read_csv(label_comparisons, sep="\t")
    table = verdict(settings, tasks, preds, pm, cm, asg, lab)
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
    params: Params,
    records: str | Path,
    features: Sequence[str],
    outdir: str | Path,
    predictions: str | Path | None = None,
    run_dir: str | Path | None = None,
    training_metrics: str | Path | None = None,
    similarities: str | Path | None = None,
    threads: int = 1,
    dataset: str | None = None,
    label_efficiency: str | Path | None = None,
    train_summary: str | Path | None = None,
) -> dict:
    """Every figure its inputs allow, PNG + SVG, plus ``figures.json`` in ``outdir``.

    ``run_dir`` (a training run folder) supplies ``metrics.csv``, ``similarities.npz`` and
    ``train_summary.json`` (the val evaluations drawn beside the loss) unless they are given
    one by one; a missing ``similarities.npz`` or ``train_summary.json`` there only skips what
    it would add.
    """
    import json

    from sciclr.analysis.clustering import cluster_task
    from sciclr.analysis.diagnostics import read_training_metrics
    from sciclr.analysis.figures import make_figures

    if run_dir is not None:
        training_metrics = training_metrics or Path(run_dir) / "metrics.csv"
        similarities = similarities or Path(run_dir) / "similarities.npz"
        if train_summary is None and (Path(run_dir) / "train_summary.json").exists():
            train_summary = Path(run_dir) / "train_summary.json"
    _threads(threads)
    settings, rec, tasks = _setup(params, records, dataset)
    ids = rec["id"].to_numpy().astype(str)
    feats = _features(features, ids)
    preds = read_predictions(str(predictions)) if predictions else None
    training = read_training_metrics(training_metrics) if training_metrics else None
    summary = None
    if train_summary:
        try:
            summary = json.loads(Path(train_summary).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SciclrError(f"{train_summary}: train summary not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SciclrError(f"{train_summary}: invalid JSON ({exc})") from None
        if not isinstance(summary, dict):
            raise SciclrError(f"{train_summary}: expected a JSON object")
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
    curves = None
    if label_efficiency:
        if not Path(label_efficiency).exists():
            raise SciclrError(f"{label_efficiency}: label-efficiency table not found")
        curves = pd.read_csv(label_efficiency, sep="\t")
    return make_figures(
        settings, tasks, feats, preds, training, sims, outdir, ctask, curves, summary
    )


def run_sweep_summary(
    params: Params,
    inputs: Sequence[str],
    out: str | Path,
    figure: str | Path | None = None,
) -> pd.DataFrame:
    """Collect the sweep's per-τ tables (``TAU=PROBE_TSV[=TRAINING_CSV]``) into one TSV and a
    figure."""
    from sciclr.analysis.figures import save_figure
    from sciclr.analysis.sweep import parse_sweep_inputs, sweep_figure, sweep_summary

    settings = settings_of(params)
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
    params: Params,
    inputs: Params,
    out: str | Path,
    title: str = "sciclr report",
) -> None:
    """Render the self-contained HTML report from exactly the files named in ``inputs``
    (data set -> {kind: path}, in page order; JSON, file or mapping). ``params``:
    ``{"datasets": {name: section}}``, each section's defaults filled from the schema."""
    from sciclr.analysis.report import write_report

    write_report(out, load_params(inputs, "--inputs"), load_params(params), title)


def run_check_report(
    html: str | Path,
    screenshot: str | Path | None = None,
    window: tuple[int, int] = (1300, 2400),
) -> None:
    """Open the report in headless Chromium (offline) in a ``window`` (width, height) px;
    error unless every image loaded, the summary table and a headline are there and no
    figure is wider than the page."""
    from sciclr.analysis.browser import check_report

    res = check_report(html, screenshot, window=window)
    log.info("report check: %s", res)
    if not res.ok:
        raise SciclrError(
            f"{html}: {res.broken} of {res.images} images broken (status {res.status}), "
            f"summary table {'present' if res.has_summary else 'missing'}, "
            f"{max(res.headlines, 0)} headline(s), {max(res.wide_figures, 0)} figure(s) wider "
            f"than the {res.page_width}px page"
            + (", the page scrolls sideways" if res.page_overflow else "")
        )
