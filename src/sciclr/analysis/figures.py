"""Figures of one data set, as PNG (embedded in the report) and SVG (for papers).

Each figure is written atomically and listed with its caption in ``figures.json`` (``figures``:
name, png, svg, caption, kind; ``notes``: figures skipped and why), which the report and the
workflow's ``report()`` captions read. Matplotlib's object API is used (no pyplot state), so
figures can be made in any thread or process.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sciclr.analysis.diagnostics import LABELS
from sciclr.analysis.probes import standardize
from sciclr.analysis.spec import Settings, TaskData
from sciclr.io import atomic_path, write_json

__all__ = [
    "confusion_figure",
    "embedding_2d",
    "label_efficiency_figure",
    "make_figures",
    "parity_figure",
    "save_figure",
    "similarity_figure",
    "training_figure",
    "umap_figure",
]

log = logging.getLogger(__name__)


def save_figure(fig: Figure, outdir: Path, name: str) -> dict[str, str]:
    """Write ``name.png`` and ``name.svg`` atomically; return their file names."""
    outdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for fmt in ("png", "svg"):
        with atomic_path(outdir / f"{name}.{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight")
        out[fmt] = f"{name}.{fmt}"
    return out


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def embedding_2d(X: np.ndarray, settings: Settings) -> tuple[np.ndarray, str]:
    """2-D embedding of standardised ``X`` ``(n, d)``: UMAP (McInnes et al. 2018) with cosine
    distance, after PCA to ``umap_pca`` dimensions when ``d`` is larger (the usual single-cell
    practice; it makes the neighbour search on 2,080-d 6-mer profiles about as fast as on
    embeddings), or PCA alone when UMAP is disabled or fails (the note says which and why)."""
    from sklearn.decomposition import PCA

    Z = standardize(X)[0]
    seed = int(settings["seed"])
    if settings["umap"]:
        try:
            import umap

            how = "UMAP"
            k = int(settings["umap_pca"])
            if k and Z.shape[1] > k and len(Z) > k:
                Z = PCA(n_components=k, random_state=seed).fit_transform(Z)
                how = f"UMAP of the first {k} principal components"
            reducer = umap.UMAP(
                n_neighbors=min(int(settings["umap_neighbors"]), len(Z) - 1),
                metric="cosine",
                random_state=seed,
                n_jobs=1,
            )
            return np.asarray(reducer.fit_transform(Z)), how
        except Exception as exc:  # any failure of the optional dependency → PCA, said plainly
            log.warning("UMAP failed (%s); using PCA", exc)
            note = f"PCA (UMAP failed: {type(exc).__name__}: {exc})"
    else:
        note = "PCA (UMAP disabled in config)"
    k = min(2, Z.shape[1], len(Z))
    P = PCA(n_components=k, random_state=seed).fit_transform(Z)
    if P.shape[1] < 2:
        P = np.c_[P, np.zeros(len(P))]
    return P, note


def umap_figure(E: np.ndarray, panels: Sequence[tuple[str, np.ndarray, str]], title: str) -> Figure:
    """Scatter of a 2-D embedding ``E`` ``(n, 2)``, one panel per (name, values, type)."""
    fig = Figure(figsize=(6.5 * len(panels), 5.0), layout="constrained")
    for i, (name, values, kind) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        if kind == "classification":
            classes = sorted(set(values.tolist()))
            cols = _palette(len(classes))
            for c, col in zip(classes, cols, strict=True):
                m = values == c
                ax.scatter(
                    E[m, 0], E[m, 1], s=4, color=col, label=str(c)[:28], alpha=0.8, linewidths=0
                )
            if len(classes) <= 20:
                ax.legend(
                    fontsize=7,
                    markerscale=3,
                    loc="center left",
                    bbox_to_anchor=(1.0, 0.5),
                    frameon=False,
                )
        else:
            sc = ax.scatter(
                E[:, 0], E[:, 1], s=4, c=values.astype(float), cmap="viridis", linewidths=0
            )
            fig.colorbar(sc, ax=ax, shrink=0.8)
        ax.set_title(f"{title}: {name}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def confusion_figure(y_true: np.ndarray, y_pred: np.ndarray, title: str) -> Figure:
    """Row-normalised confusion matrix (recall on the diagonal), counts annotated."""
    y_true, y_pred = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    classes = np.union1d(y_true, y_pred)
    k = len(classes)
    t, p = np.searchsorted(classes, y_true), np.searchsorted(classes, y_pred)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    rn = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * k + 2.5)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rn, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class")
    labels = [str(c)[:22] for c in classes]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if rn[i, j] > 0.5 else "black",
                    )
    ax.set_title(title, fontsize=10)
    return fig


def parity_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], unit: str = "") -> Figure:
    """Predicted vs true, one panel per (title, y_true, y_pred), with the identity line and MAE."""
    fig = Figure(figsize=(4.6 * len(panels), 4.4))
    allv = np.concatenate([np.r_[t, p] for _, t, p in panels])
    lo, hi = float(np.min(allv)), float(np.max(allv))
    pad = 0.03 * (hi - lo or 1.0)
    for i, (title, t, p) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.scatter(t, p, s=6, alpha=0.6, linewidths=0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", lw=1)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {unit}".strip())
        ax.set_ylabel(f"predicted {unit}".strip())
        ax.set_title(f"{title}\nMAE {np.mean(np.abs(t - p)):.3f}", fontsize=9)
    return fig


def training_figure(df: pd.DataFrame) -> Figure | None:
    """Training curves (one panel per quantity present; positive/negative similarity together)."""
    panels: list[list[str]] = []
    for col in ("loss", "temperature", "mi_bound", "margin", "alignment", "uniformity", "lr"):
        if col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any():
            panels.append([col])
    sims = [c for c in ("pos_sim", "neg_sim") if c in df.columns]
    if sims:
        panels.insert(2, sims)
    if not panels:
        return None
    phase = next((c for c in ("split", "phase") if c in df.columns), None)
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig = Figure(figsize=(4.4 * ncol, 3.0 * nrow))
    groups = list(df.groupby(phase, sort=False)) if phase else [("", df)]
    for i, cols in enumerate(panels):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for ph, g in groups:
            for col in cols:
                v = pd.to_numeric(g[col], errors="coerce")
                ok = v.notna().to_numpy()
                lab = " ".join(x for x in (str(ph), col if len(cols) > 1 else "") if x)
                ax.plot(g["step"].to_numpy()[ok], v.to_numpy()[ok], lw=1.2, label=lab or None)
        ax.set_title(" / ".join(LABELS.get(c, c) for c in cols), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(cols) > 1 or phase:
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def label_efficiency_figure(curve: pd.DataFrame, primary: str) -> Figure:
    """One panel per task: the metric against the fraction of train labels (log axis), one
    line per feature set and probe with its 95 % band (repeats and test items); SSL bold."""
    tasks = list(dict.fromkeys(curve["task"]))
    ncol = min(3, len(tasks))
    nrow = int(np.ceil(len(tasks) / ncol))
    fig = Figure(figsize=(4.8 * ncol, 3.6 * nrow), layout="constrained")
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        g = curve[curve["task"] == task]
        keys = list(dict.fromkeys(zip(g["feature_set"], g["probe"], strict=True)))
        for (fs, probe), col in zip(keys, _palette(len(keys)), strict=True):
            line = g[(g["feature_set"] == fs) & (g["probe"] == probe)].sort_values("fraction")
            x = line["fraction"].to_numpy(dtype=float)
            ax.plot(
                x,
                line["value"],
                marker="o",
                ms=3,
                color=col,
                lw=2.4 if fs == primary else 1.2,
                label=f"{fs}/{probe}",
            )
            lo, hi = line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=col, alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_xlabel("fraction of train labels", fontsize=8)
        metric = str(g["metric"].iloc[0])
        ax.set_ylabel(metric, fontsize=8)
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, frameon=False)
    return fig


def similarity_figure(pos: np.ndarray, neg: np.ndarray) -> Figure:
    """Histograms of positive- and negative-pair cosine similarities (densities)."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(-1.0, 1.0, 81)
    ax.hist(
        np.clip(neg, -1, 1),
        bins=bins,
        density=True,
        alpha=0.6,
        label=f"negative pairs (n={len(neg)})",
    )
    ax.hist(
        np.clip(pos, -1, 1),
        bins=bins,
        density=True,
        alpha=0.6,
        label=f"positive pairs (n={len(pos)})",
    )
    ax.set_xlabel("cosine similarity of projections")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, frameon=False)
    return fig


def _subsample(n: int, m: int, seed: int) -> np.ndarray:
    if n <= m:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def make_figures(
    settings: Settings,
    tasks: Sequence[TaskData],
    features: Mapping[str, np.ndarray],
    predictions: pd.DataFrame | None,
    training: pd.DataFrame | None,
    similarities: tuple[np.ndarray, np.ndarray] | None,
    outdir: str | Path,
    cluster_task: TaskData | None = None,
    label_curves: pd.DataFrame | None = None,
) -> dict[str, list[Any]]:
    """Make every figure that its inputs allow; write them and ``figures.json`` into ``outdir``."""
    outdir = Path(outdir)
    ds = settings.dataset
    figs: list[dict[str, str]] = []
    notes: list[str] = []

    clock = [time.perf_counter()]

    def add(fig: Figure | None, name: str, caption: str, kind: str) -> None:
        if fig is None:
            return
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)  # task names such as band_gap>0
        figs.append(
            {"name": name, "kind": kind, "caption": caption, **save_figure(fig, outdir, name)}
        )
        now = time.perf_counter()
        log.info("figure %s: %.1f s", name, now - clock[0])
        clock[0] = now

    # embeddings coloured by label
    color_tasks = [t for t in [cluster_task] if t is not None]
    reg = [t for t in tasks if t.type == "regression"]
    color_tasks += reg[:1]
    wanted = settings["umap_feature_sets"] or list(features)
    if color_tasks:
        valid = np.logical_or.reduce([t.valid for t in color_tasks])
        rows = np.flatnonzero(valid)
        rows = rows[_subsample(len(rows), int(settings["umap_max_points"]), int(settings["seed"]))]
        for fs in wanted:
            if fs not in features:
                notes.append(f"UMAP of {fs!r} skipped: no such feature set was given")
                continue
            E, how = embedding_2d(features[fs][rows], settings)
            panels = []
            for t in color_tasks:
                ok = t.valid[rows]
                vals = t.y[rows].copy()
                if t.type == "regression":
                    vals = np.where(ok, vals, np.nan)
                else:
                    vals = np.where(ok, vals, "(no label)")
                panels.append((t.name, vals, t.type))
            add(
                umap_figure(E, panels, f"{fs} ({how.split(' ')[0]})"),
                f"embedding_{fs}",
                f"{ds}: 2-D {how} of the {fs} features of {len(rows)} records (all splits), "
                f"coloured by {', '.join(t.name for t in color_tasks)}.",
                "embedding",
            )
    else:
        notes.append("embedding plots skipped: no task to colour by")

    primary, vprobe = settings["primary_feature_set"], settings["verdict_probe"]
    if predictions is not None and not predictions.empty:
        for t in tasks:
            tp = predictions[predictions["task"] == t.name]
            ssl = tp[(tp["feature_set"] == primary) & (tp["probe"] == vprobe)]
            if ssl.empty:
                notes.append(f"{t.name}: no {primary}/{vprobe} predictions to plot")
                continue
            if t.type == "classification":
                add(
                    confusion_figure(
                        ssl["y_true"].astype(str).to_numpy(),
                        ssl["y_pred"].astype(str).to_numpy(),
                        f"{t.name}: {primary}/{vprobe} (test)",
                    ),
                    f"confusion_{t.name}",
                    f"{ds}: confusion matrix of the {primary} {vprobe} probe for {t.name} on the "
                    "test split; rows normalised (diagonal = recall), cells show counts.",
                    "confusion",
                )
            else:
                panels = [
                    (
                        f"{primary}/{vprobe}",
                        ssl["y_true"].astype(float).to_numpy(),
                        ssl["y_pred"].astype(float).to_numpy(),
                    )
                ]
                others = tp[(tp["feature_set"] != primary) & (tp["feature_set"] != "dummy")]
                if not others.empty:
                    mae = others.assign(
                        err=(others["y_true"].astype(float) - others["y_pred"].astype(float)).abs()
                    )
                    best = mae.groupby(["feature_set", "probe"])["err"].mean().idxmin()
                    b = others[(others["feature_set"] == best[0]) & (others["probe"] == best[1])]
                    panels.append(
                        (
                            f"best baseline {best[0]}/{best[1]}",
                            b["y_true"].astype(float).to_numpy(),
                            b["y_pred"].astype(float).to_numpy(),
                        )
                    )
                add(
                    parity_figure(panels),
                    f"parity_{t.name}",
                    f"{ds}: predicted vs true {t.name} on the test split for the {primary} "
                    f"{vprobe} probe and the baseline with the lowest MAE.",
                    "parity",
                )
    else:
        notes.append("confusion/parity plots skipped: no predictions given")

    if training is not None and not training.empty:
        add(
            training_figure(training),
            "training_curves",
            f"{ds}: training diagnostics per step: InfoNCE loss, temperature τ, positive/negative "
            "cosine similarity, ln K − L (InfoNCE lower bound on the mutual information between "
            "views), effective margin β + τ ln K, alignment and uniformity (Wang & Isola 2020).",
            "training",
        )
    else:
        notes.append("training curves skipped: no training metrics given")

    if label_curves is not None and not label_curves.empty:
        add(
            label_efficiency_figure(label_curves, primary),
            "label_efficiency",
            f"{ds}: probe quality on the test split against the fraction of train labels the "
            "probe was fitted on (seeded class-stratified subsets, regularisation by "
            "cross-validation inside the subset); bands: 95 % intervals over repeats and test "
            f"items; {primary} bold.",
            "label_efficiency",
        )

    if similarities is not None:
        pos, neg = similarities
        add(
            similarity_figure(pos, neg),
            "similarity_histogram",
            f"{ds}: cosine similarities of positive vs negative pairs under the trained "
            "projection head; separated modes mean the views are recognised among negatives.",
            "similarity",
        )
    else:
        notes.append("similarity histogram skipped: the training engine wrote no similarities.npz")

    manifest = {"dataset": ds, "figures": figs, "notes": notes}
    write_json(outdir / "figures.json", manifest)
    return manifest
