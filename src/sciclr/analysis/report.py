"""``results/report.html``: one self-contained page answering "are these embeddings better than
what I already have, how sure are we, and what did training do?"

Reads the analysis outputs of each data set at the paths of :data:`LAYOUT` (relative to
``results/{dataset}/``). The first table is the SSL-vs-baseline verdict of every data set; targets
follow in plain words (a missed target is said so, with its number); then one section per data
set with metrics tables, clustering, figures, training diagnostics and preprocessing counts.
Images are embedded, nothing is fetched: the file can be mailed or archived as is.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.analysis.diagnostics import LABELS, read_training_metrics, summarize
from sciclr.analysis.html import CSS, SCRIPT, esc, img_tag, table
from sciclr.analysis.spec import HIGHER_IS_BETTER
from sciclr.errors import SciclrError
from sciclr.io import write_text

__all__ = ["LAYOUT", "build_report", "write_report"]

#: Where the report looks for each input, relative to ``results/{dataset}/``.
LAYOUT = {
    "records": "processed/records.tsv",
    "preprocess_summary": "processed/summary.json",
    "probe_metrics": "metrics/probe.tsv",
    "predictions": "metrics/predictions.tsv",
    "cluster_metrics": "metrics/cluster.tsv",
    "assignments": "metrics/cluster_assignments.tsv",
    "verdict": "metrics/verdict.tsv",
    "figures": "figures/figures.json",
    "training_metrics": "runs/ssl/metrics.csv",
    "train_summary": "runs/ssl/train_summary.json",
    "sweep_table": "sweep/summary.tsv",
    "sweep_figure": "sweep/summary.png",
}
METRIC_NAMES = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro-F1",
    "roc_auc": "ROC-AUC",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
    "spearman": "Spearman ρ",
    "ari": "ARI",
    "nmi": "NMI",
    "silhouette": "silhouette",
    "n_clusters": "clusters",
    "noise_fraction": "noise fraction",
}
_OUTCOME_CLASS = {
    "better": "better",
    "worse": "worse",
    "no clear difference": "unclear",
    "met": "met",
    "not met": "notmet",
    "missing": "notmet",
}


def _num(x: Any, digits: int = 3) -> str:
    """A number for a table cell: integers with thousands separators, others to ``digits``."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return esc(x)
    if not np.isfinite(v):
        return "–"
    if abs(v) >= 1000 or (v == int(v) and abs(v) >= 10):
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _with_ci(v: Any, lo: Any, hi: Any, signed: bool = False) -> str:
    def f(x: Any) -> str:
        s = _num(x)
        return f"+{s}" if signed and s not in ("–",) and float(x) > 0 else s

    if pd.isna(lo) or pd.isna(hi):
        return f(v)
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def _read_tsv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_csv(path, sep="\t", keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SciclrError(f"{path}: cannot read table ({exc})") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SciclrError(f"{path}: invalid JSON ({exc})") from None
    return obj if isinstance(obj, dict) else {"value": obj}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += _flatten(v, key + ".")
        elif isinstance(v, (list, tuple)):
            if len(v) <= 8 and all(not isinstance(x, (Mapping, list)) for x in v):
                out.append((key, ", ".join(str(x) for x in v)))
        else:
            out.append((key, v))
    return out


def _domain(name: str, params: Mapping[str, Any] | None, *sources: Mapping[str, Any] | None) -> str:
    """The data set's domain from the config, else from its summary files."""
    for src in (_section_config(name, params), *sources):
        if isinstance(src, Mapping) and src.get("domain"):
            return str(src["domain"])
    return ""


# ---------------------------------------------------------------- summary (first table)


def _summary_table(verdicts: Mapping[str, pd.DataFrame]) -> str:
    """One row per (data set, task, baseline): the verdict first, then the numbers behind it."""
    rows, ccls = [], []
    for ds, v in verdicts.items():
        sel = v[(v["kind"] != "target") & v["summary"].astype(str).str.lower().eq("true")]
        for _, r in sel.iterrows():
            metric = METRIC_NAMES.get(r["metric"], r["metric"])
            arrow = "↑" if HIGHER_IS_BETTER.get(r["metric"], True) else "↓"
            rows.append(
                [
                    esc(ds),
                    esc(r["task"]),
                    f"{esc(metric)}&nbsp;{arrow}",
                    f"{esc(r['feature_set'])}/{esc(r['probe'])}",
                    f"{esc(r['baseline_feature_set'])}/{esc(r['baseline_probe'])}",
                    esc(r["outcome"]),
                    _with_ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"], signed=True),
                    _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                    _with_ci(r["baseline_value"], r["baseline_ci_low"], r["baseline_ci_high"]),
                ]
            )
            ccls.append([""] * 5 + [_OUTCOME_CLASS.get(r["outcome"], "")] + [""] * 3)
    header = [
        "data set",
        "task",
        "metric",
        "SSL",
        "baseline",
        "verdict",
        "SSL improvement [95 % CI]",
        "SSL value [95 % CI]",
        "baseline value [95 % CI]",
    ]
    if not rows:
        return '<p class="fail">No SSL-vs-baseline comparisons were found.</p>'
    return table(
        header,
        rows,
        table_id="summary",
        numeric=[0, 0, 0, 0, 0, 0, 1, 1, 1],
        cell_classes=ccls,
        raw=True,
    )


def _targets_block(ds: str, v: pd.DataFrame) -> str:
    tg = v[v["kind"] == "target"]
    if tg.empty:
        return f'<p class="meta">{esc(ds)}: no targets configured.</p>'
    items = []
    for _, r in tg.iterrows():
        cls = "note" if r["outcome"] == "met" else "fail"
        items.append(f'<div class="{cls}"><strong>{esc(ds)}</strong>: {esc(r["statement"])}</div>')
    return "".join(items)


# ---------------------------------------------------------------- per data set


def _probe_tables(df: pd.DataFrame, primary: str) -> str:
    parts = []
    for task, g in df.groupby("task", sort=False):
        metrics = list(dict.fromkeys(g["metric"]))
        keys = list(dict.fromkeys(zip(g["feature_set"], g["probe"], strict=True)))
        best = {}
        for m in metrics:
            gm = g[g["metric"] == m]
            vals = gm["value"].astype(float)
            if vals.notna().any():
                i = vals.idxmax() if HIGHER_IS_BETTER.get(m, True) else vals.idxmin()
                best[m] = (gm.loc[i, "feature_set"], gm.loc[i, "probe"])
        rows, rcls, ccls = [], [], []
        for fs, probe in keys:
            sub = g[(g["feature_set"] == fs) & (g["probe"] == probe)].set_index("metric")
            first = sub.iloc[0]
            cells = [
                esc(fs),
                esc(probe),
                esc(first.get("param", "") if pd.notna(first.get("param", "")) else ""),
            ]
            cls = ["", "", ""]
            for m in metrics:
                if m in sub.index:
                    r = sub.loc[m]
                    cells.append(_with_ci(r["value"], r["ci_low"], r["ci_high"]))
                else:
                    cells.append("–")
                cls.append("best" if best.get(m) == (fs, probe) else "")
            cells.append(_num(first["n_train"], 0))
            cells.append(_num(first["n_test"], 0))
            cls += ["", ""]
            rows.append(cells)
            ccls.append(cls)
            rcls.append("primary" if fs == primary else "")
        task_type = g["task_type"].iloc[0]
        header = [
            "features",
            "probe",
            "selected",
            *[
                f"{METRIC_NAMES.get(m, m)} {'↑' if HIGHER_IS_BETTER.get(m, True) else '↓'}"
                for m in metrics
            ],
            "n train",
            "n test",
        ]
        parts.append(
            f"<h4>{esc(task)} <span class=meta>({esc(task_type)}, test split, value [95 % CI], best in bold)</span></h4>"
        )
        parts.append(
            table(
                header,
                rows,
                numeric=[0, 0, 0, *[1] * len(metrics), 1, 1],
                row_classes=rcls,
                cell_classes=ccls,
                raw=True,
            )
        )
    return "".join(parts)


def _cluster_table(df: pd.DataFrame, primary: str) -> str:
    parts = []
    for task, g in df.groupby("task", sort=False):
        metrics = [
            m
            for m in ("ari", "nmi", "silhouette", "n_clusters", "noise_fraction")
            if m in set(g["metric"])
        ]
        rows, rcls = [], []
        for (fs, probe), sub in g.groupby(["feature_set", "probe"], sort=False):
            sub = sub.set_index("metric")
            cells = [esc(fs), esc(probe if probe != "labels" else "true labels")]
            for m in metrics:
                cells.append(
                    _with_ci(sub.loc[m, "value"], sub.loc[m, "ci_low"], sub.loc[m, "ci_high"])
                    if m in sub.index
                    else "–"
                )
            rows.append(cells)
            rcls.append("primary" if fs == primary else "")
        n_test = int(g["n_test"].iloc[0])
        parts.append(
            f"<h4>against {esc(task)} <span class=meta>({n_test} items; ARI/NMI with 95 % CI; "
            "silhouette (cosine) of the clusters, and of the true labels)</span></h4>"
        )
        parts.append(
            table(
                ["features", "method", *[METRIC_NAMES.get(m, m) for m in metrics]],
                rows,
                numeric=[0, 0, *[1] * len(metrics)],
                row_classes=rcls,
                raw=True,
            )
        )
    return "".join(parts)


def _comparison_table(v: pd.DataFrame) -> str:
    sel = v[v["kind"] != "target"]
    if sel.empty:
        return ""
    rows, ccls = [], []
    for _, r in sel.iterrows():
        rows.append(
            [
                esc(r["task"]),
                esc(METRIC_NAMES.get(r["metric"], r["metric"])),
                f"{esc(r['feature_set'])}/{esc(r['probe'])}",
                _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                f"{esc(r['baseline_feature_set'])}/{esc(r['baseline_probe'])}",
                _with_ci(r["baseline_value"], r["baseline_ci_low"], r["baseline_ci_high"]),
                _with_ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"], signed=True),
                esc(r["outcome"]),
            ]
        )
        ccls.append([""] * 7 + [_OUTCOME_CLASS.get(r["outcome"], "")])
    return table(
        ["task", "metric", "SSL", "value", "baseline", "value", "improvement", "verdict"],
        rows,
        numeric=[0, 0, 0, 1, 0, 1, 1, 0],
        cell_classes=ccls,
        raw=True,
    )


def _figures_block(manifest_path: Path) -> tuple[str, list[str]]:
    manifest = _read_json(manifest_path)
    if manifest is None:
        return "", [f"figures: {manifest_path} not found"]
    parts = []
    for f in manifest.get("figures", []):
        png = manifest_path.parent / f["png"]
        if not png.exists():
            raise SciclrError(f"{manifest_path}: figure file {png} is listed but missing")
        parts.append(
            f"<figure>{img_tag(png, f['caption'])}<figcaption>{esc(f['caption'])}</figcaption></figure>"
        )
    return "".join(parts), list(manifest.get("notes", []))


def _training_block(metrics_path: Path, summary: Mapping[str, Any] | None) -> str:
    parts = []
    if metrics_path.exists():
        s = summarize(read_training_metrics(metrics_path))
        rows = [
            [
                esc(r["phase"]),
                esc(LABELS.get(r["quantity"], r["quantity"])),
                _num(r["first"], 4),
                _num(r["last"], 4),
                _num(r["min"], 4),
                _num(r["max"], 4),
                _num(r["last_step"], 0),
            ]
            for _, r in s.iterrows()
        ]
        if rows:
            parts.append(
                table(
                    ["phase", "quantity", "first", "last", "min", "max", "last step"],
                    rows,
                    numeric=[0, 0, 1, 1, 1, 1, 1],
                    raw=True,
                )
            )
    if summary:
        kv = _flatten(summary)
        if kv:
            parts.append("<details><summary>train_summary.json</summary>")
            parts.append(
                table(
                    ["key", "value"],
                    [
                        [
                            esc(k),
                            _num(v, 4)
                            if isinstance(v, (int, float)) and not isinstance(v, bool)
                            else esc(v),
                        ]
                        for k, v in kv
                    ],
                    raw=True,
                )
            )
            parts.append("</details>")
    return "".join(parts) or '<p class="meta">No training metrics found.</p>'


def _section_config(ds: str, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The data set's config section from ``params`` (whole config, its ``datasets``, or a list)."""
    if not params:
        return None
    entries = params.get("datasets", params)
    if isinstance(entries, Mapping):
        sec = entries.get(ds)
    elif isinstance(entries, list):
        sec = next((e for e in entries if isinstance(e, Mapping) and e.get("name") == ds), None)
    else:
        sec = None
    return dict(sec) if isinstance(sec, Mapping) else None


def _verdict_from_files(base: Path, ds: str, section: Mapping[str, Any]) -> pd.DataFrame | None:
    """Compute the verdict while rendering when no verdict table was written (same code)."""
    from sciclr.analysis.inputs import read_records
    from sciclr.analysis.scoring import read_predictions
    from sciclr.analysis.spec import Settings, resolve_tasks
    from sciclr.analysis.verdict import verdict
    from sciclr.config import dataset_params

    paths = {k: base / LAYOUT[k] for k in ("records", "predictions", "probe_metrics")}
    if not all(p.exists() for p in paths.values()):
        return None
    settings = Settings.from_params(dataset_params(section), ds)
    tasks = resolve_tasks(settings, read_records(paths["records"]), str(paths["records"]))
    assign = base / LAYOUT["assignments"]
    return verdict(
        settings,
        tasks,
        read_predictions(str(paths["predictions"])),
        pd.read_csv(paths["probe_metrics"], sep="\t"),
        _read_tsv(base / LAYOUT["cluster_metrics"]),
        pd.read_csv(assign, sep="\t", dtype={"id": str, "label": str}) if assign.exists() else None,
    )


def _sweep_block(base: Path) -> str:
    table_path, figure = base / LAYOUT["sweep_table"], base / LAYOUT["sweep_figure"]
    if not table_path.exists() and not figure.exists():
        return ""
    out = [
        "<h3>Temperature sweep</h3>",
        "<p>Probe quality of the SSL embeddings and the final uniformity/alignment of training "
        "for each temperature τ the sweep trained with (everything else as in the main run).</p>",
    ]
    if figure.exists():
        out.append(
            f"<figure>{img_tag(figure, 'temperature sweep')}<figcaption>Probe quality (95 % CI) "
            "and embedding geometry against τ (log scale).</figcaption></figure>"
        )
    if table_path.exists():
        df = pd.read_csv(table_path, sep="\t")
        piv = df.assign(col=df["task"] + " " + df["probe"] + " " + df["metric"]).pivot_table(
            index="tau", columns="col", values="value", aggfunc="first"
        )
        rows = [
            [_num(t, 4), *[_num(x) for x in r]]
            for t, r in zip(piv.index, piv.to_numpy(), strict=True)
        ]
        out.append(table(["τ", *piv.columns], rows, numeric=[1] * (len(piv.columns) + 1), raw=True))
    return "".join(out)


def _kv_table(kv: Sequence[tuple[str, Any]], header: Sequence[str]) -> str:
    rows = [
        [esc(k), _num(v, 4) if isinstance(v, (int, float)) and not isinstance(v, bool) else esc(v)]
        for k, v in kv
    ]
    return table(list(header), rows, numeric=[0, 1], raw=True)


def _dataset_section(
    results: Path, ds: str, params: Mapping[str, Any] | None
) -> tuple[str, pd.DataFrame | None]:
    base = results / ds
    section = _section_config(ds, params)
    analysis = (section or {}).get("analysis") or {}
    primary = str(analysis.get("primary_feature_set", "ssl"))
    probe = _read_tsv(base / LAYOUT["probe_metrics"])
    if probe is None:
        raise SciclrError(
            f"{base / LAYOUT['probe_metrics']}: probe metrics not found for data set {ds!r}"
        )
    clusters = _read_tsv(base / LAYOUT["cluster_metrics"])
    pre = _read_json(base / LAYOUT["preprocess_summary"])
    train_summary = _read_json(base / LAYOUT["train_summary"])
    domain = _domain(ds, params, train_summary, pre)
    notes = []
    verdict = _read_tsv(base / LAYOUT["verdict"])
    if verdict is None and section is not None:
        verdict = _verdict_from_files(base, ds, section)
        if verdict is not None:
            notes.append(f"verdict computed while rendering ({LAYOUT['verdict']} was not written)")
    if verdict is None:
        notes.append(f"no verdict: {base / LAYOUT['verdict']} not found")
    title = f"{esc(ds)}{f' <span class=meta>({esc(domain)})</span>' if domain else ''}"
    out = [f'<section id="ds-{esc(ds)}"><h2>{title}</h2>']
    if verdict is not None:
        out.append("<h3>Targets</h3>" + _targets_block(ds, verdict))
    if pre:
        out.append("<h3>Preprocessing</h3>" + _kv_table(_flatten(pre), ["count", "value"]))
    out.append("<h3>Probes on frozen features</h3>" + _probe_tables(probe, primary))
    if verdict is not None:
        comp = _comparison_table(verdict)
        if comp:
            out.append("<h3>SSL vs baselines (paired bootstrap over test items)</h3>" + comp)
    if clusters is not None and not clusters.empty:
        out.append("<h3>Clustering</h3>" + _cluster_table(clusters, primary))
    figs, fig_notes = _figures_block(base / LAYOUT["figures"])
    notes += fig_notes
    if figs:
        out.append("<h3>Figures</h3>" + figs)
    out.append(
        "<h3>Training diagnostics</h3>"
        + _training_block(base / LAYOUT["training_metrics"], train_summary)
    )
    out.append(_sweep_block(base))
    if notes:
        out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    out.append("</section>")
    return "".join(out), verdict


def build_report(
    results: str | Path,
    datasets: Sequence[str],
    params: Mapping[str, Any] | None = None,
    title: str = "sciclr report",
) -> str:
    """The report's HTML as a string (see module docstring for what it contains).

    ``params``: the config (or its ``datasets``), for each data set's domain and analysis
    settings; needed only to compute a verdict that is not on disk.
    """
    results = Path(results)
    if not datasets:
        raise SciclrError("report: no data sets given")
    sections, verdicts = [], {}
    for ds in datasets:
        html_part, v = _dataset_section(results, ds, params)
        sections.append(html_part)
        if v is not None:
            verdicts[ds] = v
    targets = "".join(_targets_block(ds, v) for ds, v in verdicts.items())
    missed = sum(
        int((v["kind"].eq("target") & ~v["outcome"].eq("met")).sum()) for v in verdicts.values()
    )
    total = sum(int(v["kind"].eq("target").sum()) for v in verdicts.values())
    if missed:
        headline = (
            f'<p class="fail"><strong>{missed} of {total} targets not met.</strong> '
            "The numbers are below; nothing was tuned on the test split.</p>"
        )
    else:
        headline = f'<p class="note"><strong>All {total} targets met.</strong></p>' if total else ""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<li><a href="#ds-{esc(ds)}">{esc(ds)}</a></li>' for ds in datasets)
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Generated {esc(now)} by sciclr. Data sets: {esc(", ".join(datasets))}. '
        "All metrics on the held-out test split; brackets are 95 % bootstrap confidence "
        "intervals; ↑ higher is better, ↓ lower is better.</p>",
        f"<nav><ul>{toc}</ul></nav>",
        '<section id="summary-section"><h2>Summary: do the SSL embeddings beat the baselines?</h2>',
        "<p>Each row compares the SSL representation with one baseline on the task's main "
        "metric, scored on the same test items; the improvement's CI comes from a paired "
        "bootstrap. <em>better</em>/<em>worse</em>: the CI excludes 0; otherwise the data "
        "cannot tell them apart.</p>",
        _summary_table(verdicts),
        "<h3>Targets</h3>",
        headline,
        targets or '<p class="meta">No targets configured.</p>',
        "</section>",
        *sections,
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body data-images="pending">{"".join(body)}<script>{SCRIPT}</script></body></html>\n'
    )


def write_report(
    out: str | Path,
    results: str | Path,
    datasets: Sequence[str],
    params: Mapping[str, Any] | None = None,
    title: str = "sciclr report",
) -> None:
    """Build the report (see :func:`build_report`) and write it atomically."""
    write_text(out, build_report(results, datasets, params, title))
