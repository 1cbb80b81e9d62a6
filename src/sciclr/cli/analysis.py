"""``sciclr probe``, ``cluster``, ``verdict``, ``diagnostics``, ``figures``, ``sweep-summary``,
``finetune-summary``: argument parsing only; the steps are :mod:`sciclr.analysis.steps` (and
:mod:`sciclr.analysis.finetune`)."""

from __future__ import annotations

import argparse

from sciclr.cli.common import add_params

__all__ = ["register"]


def _common(p: argparse.ArgumentParser, features: bool = True) -> None:
    add_params(p)
    p.add_argument("--records", required=True, help="processed/records.tsv of the data set")
    if features:
        p.add_argument(
            "--features",
            nargs="+",
            required=True,
            metavar="NAME=PATH",
            help="feature matrices (.npz with arrays ids, X), e.g. ssl=... kmer4=...",
        )
        p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument(
        "--dataset", default=None, help="data set name in the outputs (default: params 'name')"
    )


def _probe(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_probe

    run_probe(a.params, a.records, a.features, a.out, a.predictions, a.threads, a.dataset)


def _cluster(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_cluster

    run_cluster(a.params, a.records, a.features, a.out, a.assignments, a.threads, a.dataset)


def _label_efficiency(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_label_efficiency

    run_label_efficiency(
        a.params, a.records, a.features, a.out, a.comparisons, a.threads, a.dataset
    )


def _recovery(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_recovery

    run_recovery(a.params, a.records, a.embeddings, a.targets, a.out, a.threads, a.dataset)


def _verdict(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_verdict

    run_verdict(
        a.params,
        a.records,
        a.predictions,
        a.metrics,
        a.out,
        a.cluster_metrics,
        a.assignments,
        a.dataset,
        a.label_comparisons,
    )


def _diagnostics(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_diagnostics

    run_diagnostics(a.training_metrics, a.out)


def _figures(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_figures

    run_figures(
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
        a.label_efficiency,
        a.train_summary,
    )


def _sweep(a: argparse.Namespace) -> None:
    from sciclr.analysis.steps import run_sweep_summary

    run_sweep_summary(a.params, a.inputs, a.out, a.figure)


def _finetune_summary(a: argparse.Namespace) -> None:
    from sciclr.analysis.finetune import run_finetune_summary

    run_finetune_summary(a.params, a.records, a.runs, a.out, a.comparisons, a.dataset)


def _register_finetune_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune-summary",
        help="score fine-tuned vs from-scratch runs (bootstrap CIs, paired differences)",
        description="Reads the test predictions of `sciclr finetune` runs; writes each run's "
        "main metric with its bootstrap CI and, per task and fraction, the paired bootstrap "
        "of SSL-initialised minus from-scratch (delta > 0 = SSL better).",
    )
    _common(p, features=False)
    p.add_argument(
        "--runs",
        nargs="+",
        required=True,
        metavar="TASK/INIT/FRACTION=PATH",
        help="predictions.tsv of each run, e.g. label/ssl/0.1=runs/label/ssl_0.1/predictions.tsv "
        "(INIT: ssl or scratch)",
    )
    p.add_argument("--out", required=True, help="finetune.tsv (one row per task, init, fraction)")
    p.add_argument(
        "--comparisons",
        required=True,
        help="finetune_comparisons.tsv (verdict columns, kind finetune)",
    )
    p.set_defaults(func=_finetune_summary)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the analysis verbs to the ``sciclr`` parser."""
    p = sub.add_parser("probe", help="linear / k-NN / RF / dummy probes with bootstrap CIs")
    _common(p)
    p.add_argument("--out", required=True, help="metrics TSV (long format)")
    p.add_argument("--predictions", required=True, help="test predictions TSV")
    p.set_defaults(func=_probe)

    p = sub.add_parser(
        "cluster", help="k-means / HDBSCAN / Leiden vs labels (ARI, NMI, silhouette)"
    )
    _common(p)
    p.add_argument("--out", required=True, help="metrics TSV (long format)")
    p.add_argument("--assignments", default=None, help="cluster assignments TSV (for the verdict)")
    p.set_defaults(func=_cluster)

    p = sub.add_parser(
        "label-efficiency", help="probe quality against the fraction of train labels"
    )
    _common(p)
    p.add_argument("--out", required=True, help="curve TSV (label_efficiency.tsv)")
    p.add_argument(
        "--comparisons", required=True, help="SSL-vs-baseline comparisons per fraction (TSV)"
    )
    p.set_defaults(func=_label_efficiency)

    p = sub.add_parser(
        "recovery", help="what an embedding kept: R² of a ridge to each handcrafted feature set"
    )
    _common(p, features=False)
    p.add_argument(
        "--embeddings", nargs="+", required=True, metavar="NAME=PATH", help="embeddings (.npz)"
    )
    p.add_argument(
        "--targets",
        nargs="+",
        required=True,
        metavar="NAME=PATH",
        help="handcrafted feature sets to predict (.npz)",
    )
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--out", required=True, help="recovery TSV")
    p.set_defaults(func=_recovery)

    p = sub.add_parser("verdict", help="SSL vs baselines (paired bootstrap) and targets")
    _common(p, features=False)
    p.add_argument("--predictions", required=True, help="test predictions TSV of `sciclr probe`")
    p.add_argument("--metrics", required=True, help="probe metrics TSV of `sciclr probe`")
    p.add_argument("--cluster-metrics", default=None, help="metrics TSV of `sciclr cluster`")
    p.add_argument("--assignments", default=None, help="assignments TSV of `sciclr cluster`")
    p.add_argument(
        "--label-comparisons",
        default=None,
        help="comparisons TSV of `sciclr label-efficiency` (appended as kind label_fraction)",
    )
    p.add_argument("--out", required=True, help="verdict TSV")
    p.set_defaults(func=_verdict)

    p = sub.add_parser("diagnostics", help="summary table of the training metrics CSV")
    p.add_argument("--training-metrics", required=True, help="metrics.csv of `sciclr train`")
    p.add_argument("--out", required=True, help="summary TSV")
    p.set_defaults(func=_diagnostics)

    p = sub.add_parser("figures", help="UMAP, confusion, parity, training curves (PNG+SVG)")
    _common(p)
    p.add_argument("--predictions", default=None, help="test predictions TSV of `sciclr probe`")
    p.add_argument(
        "--run-dir", default=None, help="training run folder: metrics.csv, similarities.npz"
    )
    p.add_argument("--training-metrics", default=None, help="overrides RUN_DIR/metrics.csv")
    p.add_argument(
        "--similarities",
        default=None,
        help="npz with arrays pos, neg; overrides RUN_DIR/similarities.npz (figure skipped if "
        "absent)",
    )
    p.add_argument(
        "--train-summary",
        default=None,
        help="train_summary.json (val evaluations per epoch, chosen epoch); overrides "
        "RUN_DIR/train_summary.json",
    )
    p.add_argument(
        "--label-efficiency",
        default=None,
        help="label_efficiency.tsv of `sciclr label-efficiency` (figure skipped if not given)",
    )
    p.add_argument("--out-dir", "--outdir", dest="outdir", required=True, help="figures folder")
    p.set_defaults(func=_figures)

    p = sub.add_parser("sweep-summary", help="probe quality and uniformity against τ")
    add_params(p)
    p.add_argument(
        "--inputs",
        nargs="+",
        required=True,
        metavar="TAU=PROBE_TSV[=TRAINING_CSV]",
        help="one per temperature: its probe metrics and (optionally) training metrics",
    )
    p.add_argument("--out", required=True, help="summary TSV")
    p.add_argument("--figure", default=None, help="PNG path (an SVG is written next to it)")
    p.set_defaults(func=_sweep)

    _register_finetune_summary(sub)
