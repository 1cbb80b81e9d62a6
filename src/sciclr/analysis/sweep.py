"""The temperature sweep: probe quality and embedding geometry as functions of τ.

τ sets how hard InfoNCE focuses on the closest negatives (Wang & Liu 2021, "Understanding the
behaviour of contrastive loss"): small τ spreads embeddings (low uniformity) but can break
semantic neighbourhoods. Plotting probe quality next to uniformity/alignment against τ shows
where the useful range is for a data set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sciclr.analysis.diagnostics import LABELS, read_training_metrics
from sciclr.analysis.scoring import METRIC_COLUMNS
from sciclr.errors import SciclrError

__all__ = ["SWEEP_COLUMNS", "parse_sweep_inputs", "sweep_figure", "sweep_summary"]

#: The metric columns that identify a score and its CI, with the run's temperature first.
SWEEP_COLUMNS = ["tau"] + [
    c for c in METRIC_COLUMNS if c not in ("task_type", "n_train", "n_test", "param")
]
_TRAINING = ("uniformity", "alignment", "loss", "mi_bound", "pos_sim", "neg_sim")


def parse_sweep_inputs(items: Sequence[str]) -> list[tuple[float, Path, Path | None]]:
    """Parse ``TAU=PROBE_TSV[=TRAINING_CSV]`` arguments."""
    out = []
    for item in items:
        parts = item.split("=")
        try:
            tau = float(parts[0])
        except ValueError:
            tau = float("nan")
        if len(parts) not in (2, 3) or not all(parts[1:]) or not np.isfinite(tau) or tau <= 0:
            raise SciclrError(
                f"--inputs: expected TAU=PROBE_TSV[=TRAINING_CSV] with TAU > 0, got {item!r}"
            )
        out.append((tau, Path(parts[1]), Path(parts[2]) if len(parts) == 3 else None))
    return out


def _read_metrics(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise SciclrError(f"{path}: metrics table not found")
    df = pd.read_csv(path, sep="\t")
    need = {"task", "feature_set", "probe", "metric", "value"}
    if not need <= set(df.columns):
        raise SciclrError(f"{path}: columns {sorted(need - set(df.columns))} missing")
    return df


def sweep_summary(
    inputs: Sequence[tuple[float, Path, Path | None]], primary_feature_set: str = "ssl"
) -> pd.DataFrame:
    """Long table (:data:`SWEEP_COLUMNS`): the SSL rows of each τ's metrics table, and the last
    value of each training diagnostic (task ``training``, probe ``final``)."""
    if not inputs:
        raise SciclrError("sweep-summary: no inputs given")
    parts = []
    for tau, probe_path, training_path in inputs:
        df = _read_metrics(probe_path)
        df = df[df["feature_set"] == primary_feature_set].copy()
        df["tau"] = tau
        for c in ("dataset", "ci_low", "ci_high"):
            if c not in df.columns:
                df[c] = np.nan
        parts.append(df[SWEEP_COLUMNS])
        if training_path is None:
            continue
        tm = read_training_metrics(training_path)
        ds = str(df["dataset"].iloc[0]) if len(df) else ""
        rows = []
        for col in _TRAINING:
            if col not in tm.columns:
                continue
            v = pd.to_numeric(tm[col], errors="coerce").dropna()
            if len(v):
                rows.append(
                    {
                        "tau": tau,
                        "dataset": ds,
                        "task": "training",
                        "feature_set": primary_feature_set,
                        "probe": "final",
                        "metric": col,
                        "value": float(v.iloc[-1]),
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                    }
                )
        parts.append(pd.DataFrame(rows, columns=SWEEP_COLUMNS))
    out = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    return out.sort_values(["task", "probe", "metric", "tau"], kind="stable").reset_index(drop=True)


def _quality_rows(
    df: pd.DataFrame, primary_metric: Mapping[str, str], probe: str
) -> dict[str, pd.DataFrame]:
    """Per task the metric to plot: configured, else roc_auc > accuracy > mae (as the probes)."""
    out = {}
    for task, g in df[df["task"] != "training"].groupby("task", sort=False):
        order = [primary_metric.get(task)] if task in primary_metric else []
        order += ["roc_auc", "accuracy", "mae"]
        for m in order:
            sel = g[(g["metric"] == m) & (g["probe"] == probe)]
            if not sel.empty:
                out[f"{task} {m} ({probe})"] = sel
                break
        km = g[(g["metric"] == "ari") & (g["probe"] == "kmeans")]
        if not km.empty:
            out[f"{task} ari (k-means)"] = km
    return out


def sweep_figure(
    df: pd.DataFrame, primary_metric: Mapping[str, str] | None = None, probe: str = "linear"
) -> Figure:
    """Probe quality (with CIs) and training geometry against τ (log axis)."""
    quality = _quality_rows(df, primary_metric or {}, probe)
    geometry = [
        m
        for m in ("uniformity", "alignment")
        if ((df["task"] == "training") & (df["metric"] == m)).any()
    ]
    n = max(1, len(quality)) + len(geometry)
    fig = Figure(figsize=(4.2 * n, 3.4))
    i = 0
    for name, sel in quality.items():
        i += 1
        ax = fig.add_subplot(1, n, i)
        sel = sel.sort_values("tau")
        lo = (sel["value"] - sel["ci_low"]).clip(lower=0).fillna(0)
        hi = (sel["ci_high"] - sel["value"]).clip(lower=0).fillna(0)
        ax.errorbar(sel["tau"], sel["value"], yerr=[lo, hi], marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("temperature τ")
        ax.set_title(name, fontsize=9)
    for m in geometry:
        i += 1
        ax = fig.add_subplot(1, n, i)
        sel = df[(df["task"] == "training") & (df["metric"] == m)].sort_values("tau")
        ax.plot(sel["tau"], sel["value"], marker="o", color="tab:red")
        ax.set_xscale("log")
        ax.set_xlabel("temperature τ")
        ax.set_title(f"final {LABELS.get(m, m)}", fontsize=9)
    fig.tight_layout()
    return fig
