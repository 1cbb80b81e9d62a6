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
from sciclr.analysis.report_data import metric_label, task_units
from sciclr.analysis.spec import Settings, TaskData
from sciclr.io import atomic_path, write_json

__all__ = [
    "confusion_figure",
    "embedding_2d",
    "label_efficiency_figure",
    "make_figures",
    "parity_figure",
    "robust_limits",
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


#: percentiles a continuous colour scale spans (outside: the end colours, arrows on the bar)
COLOR_PERCENTILES = (2.0, 98.0)


def robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Colour limits of a continuous scale: the :data:`COLOR_PERCENTILES` of the finite values,
    so a few outliers do not squeeze everything else into one colour (min/max when the
    percentiles coincide)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, COLOR_PERCENTILES))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _ordinal(x: float) -> str:
    n = f"{x:g}"
    if not n.isdigit():
        return n
    k = int(n)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{n}{suffix}"


def _with_unit(label: str, unit: str | None) -> str:
    return f"{label} ({unit})" if unit else label


def umap_figure(
    E: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, str]],
    title: str,
    units: Mapping[str, str | None] | None = None,
) -> Figure:
    """Scatter of a 2-D embedding ``E`` ``(n, 2)``, one panel per (name, values, type).

    Class names are shown in full (the legend sits outside the axes and the saved figure
    grows to hold it); a continuous colour scale spans the 2nd–98th percentile
    (:func:`robust_limits`), its bar labelled with the quantity's unit (``units``: name ->
    unit)."""
    units = units or {}
    # long class names go below the axes, in as many columns as the panel's width holds; the
    # figure grows by the legend's rows so the scatter keeps its size
    longest = max(
        (len(str(c)) for _, v, k in panels if k == "classification" for c in set(v.tolist())),
        default=0,
    )
    below = longest > 14
    ncol = max(1, min(3, int(4.8 // (0.058 * longest + 0.3)))) if below else 1
    n_classes = max(
        (len(set(v.tolist())) for _, v, k in panels if k == "classification"), default=0
    )
    rows = int(np.ceil(n_classes / ncol)) if below and n_classes <= 20 else 0
    fig = Figure(figsize=(4.8 * len(panels), 4.0 + 0.17 * rows), layout="constrained")
    for i, (name, values, kind) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        if kind == "classification":
            classes = sorted(set(values.tolist()))
            cols = _palette(len(classes))
            for c, col in zip(classes, cols, strict=True):
                m = values == c
                ax.scatter(E[m, 0], E[m, 1], s=5, color=col, label=str(c), alpha=0.8, linewidths=0)
            if len(classes) <= 20:
                if below:
                    where = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.02), "ncol": ncol}
                else:
                    where = {"loc": "center left", "bbox_to_anchor": (1.0, 0.5)}
                ax.legend(fontsize=8, markerscale=3, frameon=False, **where)
        else:
            v = values.astype(float)
            lo, hi = robust_limits(v)
            finite = v[np.isfinite(v)]
            below, above = bool((finite < lo).any()), bool((finite > hi).any())
            extend = {(True, True): "both", (True, False): "min", (False, True): "max"}
            sc = ax.scatter(
                E[:, 0], E[:, 1], s=5, c=v, cmap="viridis", vmin=lo, vmax=hi, linewidths=0
            )
            fig.colorbar(
                sc,
                ax=ax,
                shrink=0.85,
                extend=extend.get((below, above), "neither"),
                label=_with_unit(name, units.get(name)),
            )
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
    # full class names: the canvas grows by the longest name (7 pt ≈ 0.06 in a character)
    labels = [str(c) for c in classes]
    extra = 0.065 * max((len(c) for c in labels), default=0)
    size = max(4.0, 0.45 * k + 2.5)
    fig = Figure(figsize=(size + 1.0 + extra, size + extra), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rn, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class")
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


def parity_figure(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    quantity: str = "",
    unit: str | None = None,
) -> Figure:
    """Predicted vs true ``quantity`` (axes in ``unit``), one panel per (title, y_true, y_pred),
    with the identity line and the MAE."""
    fig = Figure(figsize=(4.6 * len(panels), 4.4), layout="constrained")
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
        ax.set_xlabel(_with_unit(f"true {quantity}".strip(), unit))
        ax.set_ylabel(_with_unit(f"predicted {quantity}".strip(), unit))
        mae = f"MAE {np.mean(np.abs(t - p)):.3f}" + (f" {unit}" if unit else "")
        ax.set_title(f"{title}\n{mae}", fontsize=9)
    return fig


def _epoch_axis(df: pd.DataFrame, steps_per_epoch: float | None) -> np.ndarray:
    """Each logged step's position in epochs (end of epoch E = E, as the val evaluations are
    numbered): ``step / steps_per_epoch``, the steps per epoch from the train summary or, when
    it is not given, from the metrics' own ``epoch`` column (the largest step between the
    last logged steps of consecutive epochs; an unfinished last epoch only shortens one)."""
    step = pd.to_numeric(df["step"], errors="coerce").to_numpy(dtype=float)
    if not steps_per_epoch and "epoch" in df.columns:
        ep = pd.to_numeric(df["epoch"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(ep) & np.isfinite(step)
        if ok.any():
            ends = pd.Series(step[ok]).groupby(ep[ok]).max().sort_index()
            if len(ends) >= 2:
                steps_per_epoch = float(np.diff(ends.to_numpy()).max())
            elif ends.index[0] > 0:
                steps_per_epoch = float(ends.iloc[0] / ends.index[0])
    if not steps_per_epoch or steps_per_epoch <= 0:
        return step
    return step / float(steps_per_epoch)


def training_figure(
    df: pd.DataFrame,
    evaluations: Sequence[Mapping[str, Any]] = (),
    steps_per_epoch: float | None = None,
    chosen_epoch: float | None = None,
) -> Figure | None:
    """Training curves against the epoch (one panel per quantity present; positive/negative
    similarity together), with the val metric of each evaluation (``evaluations``: epoch,
    metric, value, as in ``train_summary.json``) in the panel beside the loss and the chosen
    epoch marked."""
    panels: list[list[str]] = []
    for col in ("loss", "temperature", "mi_bound", "margin", "alignment", "uniformity", "lr"):
        if col in df.columns and pd.to_numeric(df[col], errors="coerce").notna().any():
            panels.append([col])
    sims = [c for c in ("pos_sim", "neg_sim") if c in df.columns]
    if sims:
        panels.insert(min(2, len(panels)), sims)
    evals = [
        e
        for e in evaluations
        if isinstance(e, Mapping)
        and isinstance(e.get("value"), (int, float))
        and isinstance(e.get("epoch"), (int, float))
    ]
    if evals:
        panels.insert(1 if panels and panels[0] == ["loss"] else 0, ["__val__"])
    if not panels:
        return None
    x_all = _epoch_axis(df, steps_per_epoch) if "step" in df.columns else np.arange(len(df))
    xlabel = "epoch" if ("epoch" in df.columns or steps_per_epoch) else "step"
    phase = next((c for c in ("split", "phase") if c in df.columns), None)
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig = Figure(figsize=(4.2 * ncol, 3.0 * nrow), layout="constrained")
    groups = list(df.groupby(phase, sort=False)) if phase else [("", df)]
    for i, cols in enumerate(panels):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        if cols == ["__val__"]:
            metrics = list(dict.fromkeys(str(e.get("metric", "val metric")) for e in evals))
            for m in metrics:
                pts = sorted(
                    (float(e["epoch"]), float(e["value"]))
                    for e in evals
                    if str(e.get("metric", "val metric")) == m
                )
                ax.plot(*zip(*pts, strict=True), marker="o", ms=4, lw=1.2, label=m)
            names = [m[4:] if m.startswith("val_") else m for m in metrics]
            ax.set_title(f"val split: {' / '.join(names)} per evaluation", fontsize=9)
            if len(metrics) > 1:
                ax.legend(fontsize=7, frameon=False)
        else:
            for ph, g in groups:
                x = x_all[df.index.get_indexer(g.index)]
                for col in cols:
                    v = pd.to_numeric(g[col], errors="coerce")
                    ok = v.notna().to_numpy()
                    lab = " ".join(w for w in (str(ph), col if len(cols) > 1 else "") if w)
                    ax.plot(x[ok], v.to_numpy()[ok], lw=1.2, label=lab or None)
            ax.set_title(" / ".join(LABELS.get(c, c) for c in cols), fontsize=9)
            if len(cols) > 1 or phase:
                ax.legend(fontsize=7, frameon=False)
        if chosen_epoch is not None and cols in (["loss"], ["__val__"]):
            ax.axvline(float(chosen_epoch), color="grey", ls="--", lw=1, label="chosen epoch")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    return fig


def label_efficiency_figure(
    curve: pd.DataFrame, primary: str, units: Mapping[str, str | None] | None = None
) -> Figure:
    """One panel per task: the metric against the fraction of train labels (log axis), one
    line per feature set and probe with its 95 % band (repeats and test items); SSL bold; a
    metric in the label's units (MAE, RMSE) says which (``units``: task -> unit)."""
    units = units or {}
    tasks = list(dict.fromkeys(curve["task"]))
    ncol = min(2, len(tasks))  # narrow enough for the report's table beside it
    nrow = int(np.ceil(len(tasks) / ncol))
    fig = Figure(figsize=(3.1 * ncol, 2.8 * nrow), layout="constrained")
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
        ax.set_ylabel(metric_label(metric, units.get(task)), fontsize=8)
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
    train_summary: Mapping[str, Any] | None = None,
) -> dict[str, list[Any]]:
    """Make every figure that its inputs allow; write them and ``figures.json`` into ``outdir``."""
    outdir = Path(outdir)
    ds = settings.dataset
    figs: list[dict[str, str]] = []
    notes: list[str] = []

    clock = [time.perf_counter()]

    def add(
        fig: Figure | None, name: str, caption: str, kind: str, group: str | None = None
    ) -> None:
        if fig is None:
            return
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)  # task names such as band_gap>0
        entry = {"name": name, "kind": kind, "caption": caption}
        if group is not None:
            entry["group"] = group  # figures of one kind shown side by side, e.g. per colouring
        figs.append({**entry, **save_figure(fig, outdir, name)})
        now = time.perf_counter()
        log.info("figure %s: %.1f s", name, now - clock[0])
        clock[0] = now

    units = task_units(settings.tasks, settings["derived_tasks"])

    # embeddings coloured by label: one figure per feature set and colouring, shown in a grid
    # (one row of feature sets per colouring); each 2-D embedding is computed once
    color_tasks = [t for t in [cluster_task] if t is not None]
    reg = [t for t in tasks if t.type == "regression"]
    color_tasks += reg[:1]
    wanted = settings["umap_feature_sets"] or list(features)
    if color_tasks:
        valid = np.logical_or.reduce([t.valid for t in color_tasks])
        rows = np.flatnonzero(valid)
        rows = rows[_subsample(len(rows), int(settings["umap_max_points"]), int(settings["seed"]))]
        maps: dict[str, tuple[np.ndarray, str]] = {}
        for fs in wanted:
            if fs not in features:
                notes.append(f"UMAP of {fs!r} skipped: no such feature set was given")
                continue
            maps[fs] = embedding_2d(features[fs][rows], settings)
        for t in color_tasks:
            ok = t.valid[rows]
            vals = t.y[rows].copy()
            if t.type == "regression":
                vals = np.where(ok, vals, np.nan)
                scale = (
                    f" Colour scale: {_ordinal(COLOR_PERCENTILES[0])} to "
                    f"{_ordinal(COLOR_PERCENTILES[1])} percentile (values beyond it take the "
                    "end colours)" + (f", in {units[t.name]}" if units.get(t.name) else "") + "."
                )
            else:
                vals = np.where(ok, vals, "(no label)")
                scale = ""
            for fs, (E, how) in maps.items():
                add(
                    umap_figure(E, [(t.name, vals, t.type)], f"{fs} ({how.split(' ')[0]})", units),
                    f"embedding_{fs}_{t.name}",
                    f"{ds}: 2-D {how} of the {fs} features of {len(rows)} records (all "
                    f"splits), coloured by {t.name}.{scale}",
                    "embedding",
                    group=t.name,
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
                    parity_figure(panels, t.name, units.get(t.name)),
                    f"parity_{t.name}",
                    f"{ds}: predicted vs true {t.name} on the test split for the {primary} "
                    f"{vprobe} probe and the baseline with the lowest MAE.",
                    "parity",
                )
    else:
        notes.append("confusion/parity plots skipped: no predictions given")

    if training is not None and not training.empty:
        summary = train_summary or {}
        evaluations = summary.get("evaluations") or []
        chosen = summary.get("chosen_epoch")
        chosen = float(chosen) if isinstance(chosen, (int, float)) else None
        val = "the val-split selection metric at each evaluation beside it, " if evaluations else ""
        kept = f" Dashed: epoch {chosen:g}, the one kept." if chosen is not None else ""
        add(
            training_figure(training, evaluations, summary.get("steps_per_epoch"), chosen),
            "training_curves",
            f"{ds}: training diagnostics against the epoch: InfoNCE loss, {val}temperature τ, "
            "positive/negative cosine similarity, ln K − L (InfoNCE lower bound on the mutual "
            "information between views), effective margin β + τ ln K, alignment and uniformity "
            f"(Wang & Isola 2020).{kept}",
            "training",
        )
    else:
        notes.append("training curves skipped: no training metrics given")

    if label_curves is not None and not label_curves.empty:
        add(
            label_efficiency_figure(label_curves, primary, units),
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
