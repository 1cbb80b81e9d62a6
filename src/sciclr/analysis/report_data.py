"""The report's inputs, read and checked into plain objects that hold exactly what the page shows.

The caller names every file (:data:`KINDS`, one mapping per data set): nothing is discovered
from a folder layout, so what the report reads is what the workflow declared as its inputs. A
missing required file is one :class:`~sciclr.errors.SciclrError` naming it and its data set.
Numbers are formatted here (tables are rows of text cells); the template only lays them out and
escapes them, so a new section needs a field here and a block there, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.analysis.diagnostics import LABELS, read_training_metrics, summarize
from sciclr.analysis.html import data_uri
from sciclr.analysis.spec import HIGHER_IS_BETTER
from sciclr.config import dataset_params
from sciclr.errors import SciclrError

__all__ = [
    "KINDS",
    "OPTIONAL",
    "REQUIRED",
    "Cell",
    "ClusterTable",
    "DatasetReport",
    "Figure",
    "ProbeTable",
    "ReportData",
    "Row",
    "Statement",
    "Sweep",
    "Table",
    "load_report",
]

#: Input kinds of one data set and what each is (used in messages).
KINDS = {
    "probe_metrics": "probe metrics TSV",
    "recovery": "recovery TSV (what the embedding kept)",
    "cluster_metrics": "cluster metrics TSV",
    "verdict": "verdict TSV",
    "figures": "figures folder (with figures.json)",
    "preprocess_summary": "preprocessing summary.json",
    "train_summary": "train_summary.json",
    "training_metrics": "training metrics.csv",
    "sweep_table": "temperature sweep summary.tsv",
    "sweep_figure": "temperature sweep summary.png",
}
#: optional: the sweep when it was run; training files when the data set trained its encoder
#: (a pretrained encoder used as it is has none)
OPTIONAL = ("sweep_table", "sweep_figure", "train_summary", "training_metrics")
REQUIRED = tuple(k for k in KINDS if k not in OPTIONAL)

# the columns each table must have: the ones read below
_COLUMNS = {
    "probe_metrics": (
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
    ),
    "recovery": ("embedding", "target", "metric", "value", "target_dim"),
    "cluster_metrics": (
        "task",
        "feature_set",
        "probe",
        "metric",
        "value",
        "ci_low",
        "ci_high",
        "n_test",
    ),
    "verdict": (
        "kind",
        "task",
        "metric",
        "feature_set",
        "probe",
        "value",
        "ci_low",
        "ci_high",
        "baseline_feature_set",
        "baseline_probe",
        "baseline_value",
        "baseline_ci_low",
        "baseline_ci_high",
        "delta",
        "delta_ci_low",
        "delta_ci_high",
        "outcome",
        "summary",
        "statement",
    ),
    "sweep_table": ("tau", "task", "probe", "metric", "value"),
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
_CLUSTER_METRICS = ("ari", "nmi", "silhouette", "n_clusters", "noise_fraction")
_OUTCOME_CLASS = {
    "better": "better",
    "worse": "worse",
    "no clear difference": "unclear",
    "met": "met",
    "not met": "notmet",
    "missing": "notmet",
}


# ---------------------------------------------------------------- what the template shows


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, right-aligned if numeric, plus a style (``best``, ``better``)."""

    text: str
    numeric: bool = False
    style: str = ""

    @property
    def classes(self) -> str:
        return " ".join(c for c in ("num" if self.numeric else "", self.style) if c)


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]
    style: str = ""  # "primary": the representation under test


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Figure:
    uri: str  # data: URI of the PNG
    caption: str
    alt: str


@dataclass(frozen=True)
class Statement:
    """A target check in words; ``met`` picks its colour."""

    dataset: str
    text: str
    met: bool


@dataclass(frozen=True)
class ProbeTable:
    task: str
    task_type: str
    table: Table


@dataclass(frozen=True)
class ClusterTable:
    task: str
    n_items: int
    table: Table


@dataclass(frozen=True)
class Sweep:
    figure: Figure | None
    table: Table | None


@dataclass(frozen=True)
class DatasetReport:
    """One data set's section, in page order."""

    name: str
    domain: str
    targets: tuple[Statement, ...]
    preprocessing: Table | None
    probes: tuple[ProbeTable, ...]
    comparison: Table | None
    recovery: Table | None
    clustering: tuple[ClusterTable, ...]
    figures: tuple[Figure, ...]
    training: Table | None
    train_summary: Table | None
    sweep: Sweep | None
    notes: tuple[str, ...] = ()
    encoder: str = "trained on this data set"  # where the SSL encoder comes from


@dataclass(frozen=True)
class ReportData:
    """The whole page: the summary table over all data sets, then one section each."""

    datasets: tuple[DatasetReport, ...]
    summary: Table | None  # None: no SSL-vs-baseline comparison in any verdict
    targets: tuple[Statement, ...]  # of every data set, in page order

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.datasets]

    @property
    def targets_total(self) -> int:
        return len(self.targets)

    @property
    def targets_missed(self) -> int:
        return sum(not t.met for t in self.targets)


# ---------------------------------------------------------------- formatting


def _num(x: Any, digits: int = 3) -> str:
    """A number for a table cell: integers with thousands separators, others to ``digits``."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "–"
    if abs(v) >= 1000 or (v == int(v) and abs(v) >= 10):
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _with_ci(v: Any, lo: Any, hi: Any, signed: bool = False) -> str:
    def f(x: Any) -> str:
        s = _num(x)
        return f"+{s}" if signed and s != "–" and float(x) > 0 else s

    if pd.isna(lo) or pd.isna(hi):
        return f(v)
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def _value(v: Any) -> str:
    """A key-value table's value: numbers formatted, anything else as text."""
    return _num(v, 4) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _arrow(metric: str) -> str:
    return "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓"


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    row_styles: Sequence[str] | None = None,
    cell_styles: Sequence[Sequence[str]] | None = None,
) -> Table:
    numeric = numeric or [False] * len(header)
    return Table(
        header=tuple(header),
        rows=tuple(
            Row(
                cells=tuple(
                    Cell(text, bool(numeric[j]), cell_styles[i][j] if cell_styles else "")
                    for j, text in enumerate(cells)
                ),
                style=row_styles[i] if row_styles else "",
            )
            for i, cells in enumerate(rows)
        ),
    )


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


def _pair(fs: Any, probe: Any) -> str:
    return f"{fs}/{probe}"


# ---------------------------------------------------------------- reading


class _Inputs:
    """One data set's named files; every lookup says which file and data set went wrong."""

    def __init__(self, ds: str, paths: Any) -> None:
        if not isinstance(paths, Mapping):
            raise SciclrError(f"report inputs: data set {ds!r}: expected a mapping of kind -> path")
        unknown = sorted(set(paths) - set(KINDS))
        if unknown:
            raise SciclrError(
                f"report inputs: data set {ds!r}: unknown kind(s) {unknown} "
                f"(expected {', '.join(KINDS)})"
            )
        missing = [k for k in REQUIRED if not paths.get(k)]
        if missing:
            raise SciclrError(
                f"report inputs: data set {ds!r}: no {KINDS[missing[0]]} given "
                f"(kind {missing[0]!r})"
            )
        self.ds = ds
        self.paths = {k: Path(str(v)) for k, v in paths.items() if v}

    def given(self, kind: str) -> bool:
        return kind in self.paths

    def file(self, kind: str) -> Path:
        """The file of ``kind``, checked to exist (required kinds are always given)."""
        path = self.paths[kind]
        if not path.is_file():
            raise SciclrError(f"{path}: {KINDS[kind]} of data set {self.ds!r} not found")
        return path

    def table(self, kind: str) -> pd.DataFrame:
        path = self.file(kind)
        try:
            df = pd.read_csv(path, sep="\t", keep_default_na=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SciclrError(f"{path}: cannot read {KINDS[kind]} ({exc})") from None
        missing = [c for c in _COLUMNS[kind] if c not in df.columns]
        if missing:
            raise SciclrError(f"{path}: {KINDS[kind]} lacks column(s) {missing}")
        return df

    def json(self, kind: str, path: Path | None = None) -> dict[str, Any]:
        path = path or self.file(kind)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SciclrError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise SciclrError(f"{path}: expected a JSON object, got {type(obj).__name__}")
        return obj


def _section(params: Mapping[str, Any], ds: str) -> dict[str, Any]:
    """The data set's config section, defaults filled from the schema."""
    sections = params.get("datasets") if isinstance(params, Mapping) else None
    if not isinstance(sections, Mapping) or not isinstance(sections.get(ds), Mapping):
        raise SciclrError(f"report params: no section datasets.{ds} (domain, tasks, analysis)")
    return dataset_params(sections[ds])


# ---------------------------------------------------------------- tables


def _labels(r: pd.Series) -> str:
    """The share of train labels a comparison's probes were fitted on."""
    f = r.get("fraction", np.nan)
    return "all" if pd.isna(f) or float(f) >= 1.0 else f"{100 * float(f):g} %"


def _summary_rows(ds: str, v: pd.DataFrame) -> tuple[list[list[str]], list[list[str]]]:
    """One row per (task, baseline) flagged for the summary: verdict first, then the numbers."""
    sel = v[(v["kind"] != "target") & v["summary"].astype(str).str.lower().eq("true")]
    rows, styles = [], []
    for _, r in sel.iterrows():
        metric = METRIC_NAMES.get(r["metric"], r["metric"])
        rows.append(
            [
                ds,
                str(r["task"]),
                f"{metric}\u00a0{_arrow(r['metric'])}",
                _labels(r),
                _pair(r["feature_set"], r["probe"]),
                _pair(r["baseline_feature_set"], r["baseline_probe"]),
                str(r["outcome"]),
                _with_ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"], signed=True),
                _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                _with_ci(r["baseline_value"], r["baseline_ci_low"], r["baseline_ci_high"]),
            ]
        )
        styles.append([""] * 6 + [_OUTCOME_CLASS.get(r["outcome"], "")] + [""] * 3)
    return rows, styles


def _summary_table(verdicts: Mapping[str, pd.DataFrame]) -> Table | None:
    rows, styles = [], []
    for ds, v in verdicts.items():
        r, s = _summary_rows(ds, v)
        rows += r
        styles += s
    if not rows:
        return None
    header = [
        "data set",
        "task",
        "metric",
        "labels",
        "SSL",
        "baseline",
        "verdict",
        "SSL improvement [95 % CI]",
        "SSL value [95 % CI]",
        "baseline value [95 % CI]",
    ]
    return _table(header, rows, [0, 0, 0, 0, 0, 0, 0, 1, 1, 1], cell_styles=styles)


def _targets(ds: str, v: pd.DataFrame) -> tuple[Statement, ...]:
    tg = v[v["kind"] == "target"]
    return tuple(
        Statement(ds, str(r["statement"]), r["outcome"] == "met") for _, r in tg.iterrows()
    )


def _probe_tables(df: pd.DataFrame, primary: str) -> tuple[ProbeTable, ...]:
    """Per task: every feature set × probe, value [CI] per metric, the best of each in bold."""
    out = []
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
        rows, row_styles, cell_styles = [], [], []
        for fs, probe in keys:
            sub = g[(g["feature_set"] == fs) & (g["probe"] == probe)].set_index("metric")
            first = sub.iloc[0]
            param = first.get("param", "")
            cells = [str(fs), str(probe), str(param) if pd.notna(param) else ""]
            styles = ["", "", ""]
            for m in metrics:
                if m in sub.index:
                    r = sub.loc[m]
                    cells.append(_with_ci(r["value"], r["ci_low"], r["ci_high"]))
                else:
                    cells.append("–")
                styles.append("best" if best.get(m) == (fs, probe) else "")
            cells += [_num(first["n_train"], 0), _num(first["n_test"], 0)]
            styles += ["", ""]
            rows.append(cells)
            cell_styles.append(styles)
            row_styles.append("primary" if fs == primary else "")
        header = [
            "features",
            "probe",
            "selected",
            *[f"{METRIC_NAMES.get(m, m)} {_arrow(m)}" for m in metrics],
            "n train",
            "n test",
        ]
        table = _table(header, rows, [0, 0, 0, *[1] * len(metrics), 1, 1], row_styles, cell_styles)
        out.append(ProbeTable(str(task), str(g["task_type"].iloc[0]), table))
    return tuple(out)


def _cluster_tables(df: pd.DataFrame, primary: str) -> tuple[ClusterTable, ...]:
    out = []
    for task, g in df.groupby("task", sort=False):
        metrics = [m for m in _CLUSTER_METRICS if m in set(g["metric"])]
        rows, row_styles = [], []
        for (fs, probe), sub in g.groupby(["feature_set", "probe"], sort=False):
            sub = sub.set_index("metric")
            cells = [str(fs), "true labels" if probe == "labels" else str(probe)]
            for m in metrics:
                cells.append(
                    _with_ci(sub.loc[m, "value"], sub.loc[m, "ci_low"], sub.loc[m, "ci_high"])
                    if m in sub.index
                    else "–"
                )
            rows.append(cells)
            row_styles.append("primary" if fs == primary else "")
        table = _table(
            ["features", "method", *[METRIC_NAMES.get(m, m) for m in metrics]],
            rows,
            [0, 0, *[1] * len(metrics)],
            row_styles,
        )
        out.append(ClusterTable(str(task), int(g["n_test"].iloc[0]), table))
    return tuple(out)


def _recovery_table(df: pd.DataFrame) -> Table | None:
    """Embeddings (rows) × handcrafted feature sets (columns): test R² of a ridge between them."""
    if df.empty:
        return None
    targets = list(dict.fromkeys(df["target"]))
    rows = []
    for emb, g in df.groupby("embedding", sort=False):
        values = g.set_index("target")["value"]
        rows.append([str(emb), *[_num(values.get(t, np.nan)) for t in targets]])
    dims = df.drop_duplicates("target").set_index("target")["target_dim"]
    header = ["embedding", *[f"{t} ({int(dims[t])} dims)" for t in targets]]
    return _table(header, rows, [0, *[1] * len(targets)])


def _comparison_table(v: pd.DataFrame) -> Table | None:
    """Every SSL-vs-baseline comparison of the data set (the summary shows the main ones)."""
    sel = v[v["kind"] != "target"]
    if sel.empty:
        return None
    rows, styles = [], []
    for _, r in sel.iterrows():
        rows.append(
            [
                str(r["task"]),
                str(METRIC_NAMES.get(r["metric"], r["metric"])),
                _labels(r),
                _pair(r["feature_set"], r["probe"]),
                _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                _pair(r["baseline_feature_set"], r["baseline_probe"]),
                _with_ci(r["baseline_value"], r["baseline_ci_low"], r["baseline_ci_high"]),
                _with_ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"], signed=True),
                str(r["outcome"]),
            ]
        )
        styles.append([""] * 8 + [_OUTCOME_CLASS.get(r["outcome"], "")])
    return _table(
        ["task", "metric", "labels", "SSL", "value", "baseline", "value", "improvement", "verdict"],
        rows,
        [0, 0, 0, 0, 1, 0, 1, 1, 0],
        cell_styles=styles,
    )


def _figures(inp: _Inputs) -> tuple[tuple[Figure, ...], tuple[str, ...]]:
    """The manifest's PNGs (paths relative to it) with captions, and its notes."""
    folder = inp.paths["figures"]
    manifest = folder / "figures.json" if folder.suffix != ".json" else folder
    if not manifest.is_file():
        raise SciclrError(f"{manifest}: figures manifest of data set {inp.ds!r} not found")
    obj = inp.json("figures", manifest)
    figs = obj.get("figures", [])
    if not isinstance(figs, list) or not all(
        isinstance(f, Mapping) and isinstance(f.get("png"), str) for f in figs
    ):
        raise SciclrError(f"{manifest}: 'figures' must be a list of {{png, caption}} objects")
    out = []
    for f in figs:
        png = manifest.parent / f["png"]
        if not png.is_file():
            raise SciclrError(f"{manifest}: figure file {png} is listed but missing")
        caption = str(f.get("caption", ""))
        out.append(Figure(data_uri(png), caption, caption))
    return tuple(out), tuple(str(n) for n in obj.get("notes", []))


def _training_table(path: Path) -> Table | None:
    s = summarize(read_training_metrics(path))
    if s.empty:
        return None
    rows = [
        [
            str(r["phase"]),
            LABELS.get(r["quantity"], str(r["quantity"])),
            _num(r["first"], 4),
            _num(r["last"], 4),
            _num(r["min"], 4),
            _num(r["max"], 4),
            _num(r["last_step"], 0),
        ]
        for _, r in s.iterrows()
    ]
    return _table(
        ["phase", "quantity", "first", "last", "min", "max", "last step"],
        rows,
        [0, 0, 1, 1, 1, 1, 1],
    )


def _kv_table(d: Mapping[str, Any], header: Sequence[str], numeric: bool) -> Table | None:
    kv = _flatten(d)
    if not kv:
        return None
    return _table(header, [[k, _value(v)] for k, v in kv], [0, 1] if numeric else None)


def _sweep(inp: _Inputs) -> Sweep | None:
    if not (inp.given("sweep_table") or inp.given("sweep_figure")):
        return None
    figure = None
    if inp.given("sweep_figure"):
        figure = Figure(
            data_uri(inp.file("sweep_figure")),
            "Probe quality (95 % CI) and embedding geometry against τ (log scale).",
            "temperature sweep",
        )
    table = None
    if inp.given("sweep_table"):
        table_df = inp.table("sweep_table")
        col = table_df["task"] + " " + table_df["probe"] + " " + table_df["metric"]
        piv = table_df.assign(col=col).pivot_table(
            index="tau", columns="col", values="value", aggfunc="first"
        )
        rows = [
            [_num(t, 4), *[_num(x) for x in r]]
            for t, r in zip(piv.index, piv.to_numpy(), strict=True)
        ]
        table = _table(["τ", *map(str, piv.columns)], rows, [1] * (len(piv.columns) + 1))
    return Sweep(figure, table)


def _dataset(
    ds: str, inp: _Inputs, section: Mapping[str, Any], verdict: pd.DataFrame
) -> DatasetReport:
    primary = str(section["analysis"]["primary_feature_set"])
    probe = inp.table("probe_metrics")
    clusters = inp.table("cluster_metrics")
    pre = inp.json("preprocess_summary")
    train_summary = inp.json("train_summary") if inp.given("train_summary") else {}
    training = inp.file("training_metrics") if inp.given("training_metrics") else None
    figures, notes = _figures(inp)
    return DatasetReport(
        name=ds,
        domain=str(section.get("domain") or ""),
        targets=_targets(ds, verdict),
        preprocessing=_kv_table(pre, ["count", "value"], numeric=True) if pre else None,
        probes=_probe_tables(probe, primary),
        comparison=_comparison_table(verdict),
        recovery=_recovery_table(inp.table("recovery")),
        clustering=_cluster_tables(clusters, primary) if not clusters.empty else (),
        figures=figures,
        training=_training_table(training) if training is not None else None,
        train_summary=_kv_table(train_summary, ["key", "value"], numeric=False),
        sweep=_sweep(inp),
        notes=notes,
        encoder=_encoder_origin(section),
    )


def _encoder_origin(section: Mapping[str, Any]) -> str:
    """Where the data set's SSL encoder comes from, in words (``pretrained:``)."""
    source = section.get("pretrained") or {}
    if not source:
        return "trained on this data set"
    origin = (
        f"the encoder trained on data set {source['dataset']!r}"
        if "dataset" in source
        else f"the checkpoint {source['checkpoint']}"
    )
    if section["train"]["epochs"] == 0:
        return f"{origin}, used as it is (not retrained on this data set)"
    return f"{origin}, trained further on this data set for {section['train']['epochs']} epochs"


def load_report(inputs: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]) -> ReportData:
    """Read every data set's named files (``inputs``: data set -> {kind: path}, in page order).

    ``params``: ``{"datasets": {name: section}}``, for each data set's domain and analysis
    settings (``primary_feature_set``), defaults filled from the schema.
    """
    if not isinstance(inputs, Mapping) or not inputs:
        raise SciclrError("report inputs: no data sets given")
    checked = {ds: _Inputs(str(ds), paths) for ds, paths in inputs.items()}
    sections = {ds: _section(params, ds) for ds in checked}
    verdicts = {ds: inp.table("verdict") for ds, inp in checked.items()}
    datasets = tuple(_dataset(ds, inp, sections[ds], verdicts[ds]) for ds, inp in checked.items())
    return ReportData(
        datasets=datasets,
        summary=_summary_table(verdicts),
        targets=tuple(t for d in datasets for t in d.targets),
    )
