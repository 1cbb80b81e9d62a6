"""The report's inputs, read and checked into plain objects that hold exactly what the page shows.

The caller names every file (:data:`KINDS`, one mapping per data set): nothing is discovered
from a folder layout, so what the report reads is what the workflow declared as its inputs. A
missing required file is one :class:`~sciclr.errors.SciclrError` naming it and its data set.
Numbers are formatted here (tables are rows of text cells); the template only lays them out and
escapes them, so a new section needs a field here and a block there, nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.analysis.diagnostics import LABELS, read_training_metrics, summarize
from sciclr.analysis.html import data_uri, png_size
from sciclr.analysis.spec import HIGHER_IS_BETTER
from sciclr.config import dataset_params
from sciclr.errors import SciclrError

__all__ = [
    "KINDS",
    "OPTIONAL",
    "REQUIRED",
    "UNIT_METRICS",
    "Cell",
    "ClusterTable",
    "DatasetReport",
    "Figure",
    "FigureGroup",
    "Finetune",
    "LabelEfficiency",
    "ProbeTable",
    "ReportData",
    "Row",
    "Statement",
    "Sweep",
    "Table",
    "headline",
    "load_report",
    "metric_label",
    "task_units",
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
    "label_efficiency": "label-efficiency TSV",
    "finetune": "fine-tuning metrics TSV",
    "finetune_comparisons": "fine-tuning comparisons TSV",
}
#: optional: the sweep and the fine-tuning when they were run; training files when the data set
#: trained its encoder (a pretrained encoder used as it is has none); the label-efficiency curve
#: (the workflow always declares it; a report built by hand may go without)
OPTIONAL = (
    "sweep_table",
    "sweep_figure",
    "train_summary",
    "training_metrics",
    "label_efficiency",
    "finetune",
    "finetune_comparisons",
)
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
    "label_efficiency": (
        "task",
        "feature_set",
        "probe",
        "fraction",
        "n_labels",
        "metric",
        "value",
        "ci_low",
        "ci_high",
    ),
    "finetune": ("task", "init", "fraction", "metric", "value", "ci_low", "ci_high"),
}
_COLUMNS["finetune_comparisons"] = _COLUMNS["verdict"]
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
#: metrics in the label's own units (the task's ``unit``); every other metric has none
UNIT_METRICS = ("mae", "rmse")
_CLUSTER_METRICS = ("ari", "nmi", "silhouette", "n_clusters", "noise_fraction")
#: metrics and columns that are counts: printed as integers
_COUNT_METRICS = ("n_clusters",)
_OUTCOME_CLASS = {
    "better": "better",
    "worse": "worse",
    "no clear difference": "unclear",
    "met": "met",
    "not met": "notmet",
    "missing": "notmet",
}
#: how the headline names probes and feature sets
_PROBE_WORDS = {
    "linear": "linear probe",
    "knn": "k-NN",
    "rf": "random forest",
    "dummy": "dummy predictor",
    "kmeans": "k-means",
    "hdbscan": "HDBSCAN",
    "leiden": "Leiden",
}
#: section titles of the figure kinds of ``figures.json`` (others: the kind itself)
_KIND_TITLES = {
    "embedding": "2-D embeddings",
    "confusion": "Confusion matrices (test split)",
    "parity": "Predicted vs true (test split)",
    "training": "Training curves",
    "similarity": "Pair similarities",
    "label_efficiency": "Label efficiency",
}
_INIT_WORDS = {"ssl": "SSL weights", "scratch": "scratch (random init)"}


def task_units(
    tasks: Sequence[Mapping[str, Any]], derived: Sequence[Mapping[str, Any]] = ()
) -> dict[str, str]:
    """Task name -> unit of its label (the task's ``unit`` in the config), for the tasks that
    have one. A derived regression task without a unit of its own takes the unit of the
    configured task on the same column; a derived classification task has none."""
    units: dict[str, str] = {}
    by_column: dict[str, str] = {}
    for t in tasks:
        if t.get("unit"):
            units[str(t.get("name", t["column"]))] = str(t["unit"])
            by_column.setdefault(str(t["column"]), str(t["unit"]))
    for t in derived:
        if t.get("type") != "regression" or "name" not in t:
            continue
        unit = t.get("unit") or by_column.get(str(t.get("column")))
        if unit:
            units[str(t["name"])] = str(unit)
    return units


def metric_label(metric: str, unit: str | None = None, arrow: bool = False) -> str:
    """A metric's display name, with the label's unit for MAE/RMSE (``MAE (eV/atom)``) and,
    if asked, its direction (↑ higher is better, ↓ lower)."""
    text = METRIC_NAMES.get(metric, metric)
    if unit and metric in UNIT_METRICS:
        text = f"{text} ({unit})"
    return f"{text}\u00a0{_arrow(metric)}" if arrow else text


# ---------------------------------------------------------------- what the template shows


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, right-aligned if numeric, plus a style (``best``, ``better``)."""

    text: str
    numeric: bool = False
    style: str = ""
    title: str = ""  # shown on hover (e.g. the 95 % interval of a compact cell)

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
    kind: str = ""  # figures.json's kind: embedding, confusion, parity, training, ...
    group: str = ""  # figures of one kind shown together (embeddings: the colouring task)
    width: int = 0  # natural width of the PNG in pixels (0: unknown)


@dataclass(frozen=True)
class FigureGroup:
    """Figures of one kind (and group), laid out in a grid of columns at least as wide as
    the widest of them (``column_px``), as many side by side as the page holds."""

    kind: str
    title: str
    figures: tuple[Figure, ...]

    @property
    def column_px(self) -> int:
        return max((f.width for f in self.figures), default=0) or 480


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
class LabelTable:
    """One task's label-efficiency numbers: rows feature set/probe, columns labels share."""

    task: str
    metric: str  # display name with unit and direction
    table: Table


@dataclass(frozen=True)
class LabelEfficiency:
    figure: Figure | None
    tables: tuple[LabelTable, ...]


@dataclass(frozen=True)
class Finetune:
    """Fine-tuning end to end: per task SSL-initialised vs from scratch, and the comparisons."""

    tables: tuple[ProbeTable, ...]
    comparison: Table | None


@dataclass(frozen=True)
class DatasetReport:
    """One data set's section, in page order."""

    name: str
    domain: str
    headline: str  # the one-sentence answer, from the verdict
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
    pairings: tuple[tuple[str, str], ...] = ()  # (views, what they share), per pairing
    label_efficiency: LabelEfficiency | None = None
    finetune: Finetune | None = None

    @property
    def figure_groups(self) -> tuple[FigureGroup, ...]:
        """The figures by kind (and group), in manifest order; the label-efficiency figure is
        shown in its own section, beside its table."""
        groups: dict[tuple[str, str], list[Figure]] = {}
        for f in self.figures:
            if f.kind == "label_efficiency" and self.label_efficiency is not None:
                continue
            groups.setdefault((f.kind, f.group), []).append(f)
        out = []
        for (kind, group), figs in groups.items():
            title = _KIND_TITLES.get(kind, kind.replace("_", " ") or "Figures")
            if group:
                title = (
                    f"{title} coloured by {group}" if kind == "embedding" else f"{title}: {group}"
                )
            out.append(FigureGroup(kind, title, tuple(figs)))
        return tuple(out)


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


def _count(x: Any) -> str:
    """A count: an integer however it was stored (``3.0`` read back from a table is ``3``)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if np.isfinite(v) and v == int(v):
        return f"{int(v):,}"
    return _num(x)


def _with_ci(v: Any, lo: Any, hi: Any, signed: bool = False, count: bool = False) -> str:
    def f(x: Any) -> str:
        s = _count(x) if count else _num(x)
        return f"+{s}" if signed and s != "–" and float(x) > 0 else s

    if pd.isna(lo) or pd.isna(hi):
        return f(v)
    return f"{f(v)} [{f(lo)}, {f(hi)}]"


def _value(v: Any) -> str:
    """A key-value table's value: whole numbers as integers (counts), other numbers to four
    digits, anything else as text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _count(v) if np.isfinite(v) and v == int(v) else _num(v, 4)
    return str(v)


def _arrow(metric: str) -> str:
    return "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓"


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[bool] | None = None,
    row_styles: Sequence[str] | None = None,
    cell_styles: Sequence[Sequence[str]] | None = None,
    titles: Sequence[Sequence[str]] | None = None,
) -> Table:
    numeric = numeric or [False] * len(header)
    return Table(
        header=tuple(header),
        rows=tuple(
            Row(
                cells=tuple(
                    Cell(
                        text,
                        bool(numeric[j]),
                        cell_styles[i][j] if cell_styles else "",
                        titles[i][j] if titles else "",
                    )
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


def _pct(fraction: Any) -> str:
    """A share of the train labels: ``all`` for 1 (or missing), else ``10 %``."""
    if pd.isna(fraction) or float(fraction) >= 1.0:
        return "all"
    return f"{100 * float(fraction):g} %"


def _labels(r: pd.Series) -> str:
    """The share of train labels a comparison's probes were fitted on."""
    return _pct(r.get("fraction", np.nan))


def _units_of(section: Mapping[str, Any]) -> dict[str, str]:
    return task_units(section.get("tasks") or [], section["analysis"]["derived_tasks"])


def _summary_rows(
    ds: str, v: pd.DataFrame, units: Mapping[str, str]
) -> tuple[list[list[str]], list[list[str]]]:
    """One row per (task, baseline) flagged for the summary: verdict first, then the numbers."""
    sel = v[(v["kind"] != "target") & _flagged(v)]
    rows, styles = [], []
    for _, r in sel.iterrows():
        rows.append(
            [
                ds,
                str(r["task"]),
                metric_label(str(r["metric"]), units.get(str(r["task"])), arrow=True),
                _labels(r),
                _pair(r["feature_set"], r["probe"]),
                _pair(r["baseline_feature_set"], r["baseline_probe"]),
                str(r["outcome"]),
                _with_ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"], signed=True),
                _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                _with_ci(r["baseline_value"], r["baseline_ci_low"], r["baseline_ci_high"]),
            ]
        )
        styles.append(["", "", "nw", "", "", "", _OUTCOME_CLASS.get(r["outcome"], ""), "", "", ""])
    return rows, styles


def _summary_table(
    verdicts: Mapping[str, pd.DataFrame], units: Mapping[str, Mapping[str, str]]
) -> Table | None:
    rows, styles = [], []
    for ds, v in verdicts.items():
        r, s = _summary_rows(ds, v, units.get(ds, {}))
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


def _flagged(v: pd.DataFrame) -> pd.Series:
    return v["summary"].astype(str).str.lower().eq("true")


def _targets(ds: str, v: pd.DataFrame) -> tuple[Statement, ...]:
    tg = v[v["kind"] == "target"]
    return tuple(
        Statement(ds, str(r["statement"]), r["outcome"] == "met") for _, r in tg.iterrows()
    )


# ---------------------------------------------------------------- the headline


def _who(fs: Any, probe: Any) -> str:
    """A feature set and probe in words: ``random forest on element fractions``."""
    fs, probe = str(fs), str(probe)
    if fs == "dummy" or probe == "dummy":
        return "the dummy predictor"
    what = "the untrained encoder" if fs == "untrained" else fs.replace("_", " ")
    return f"{_PROBE_WORDS.get(probe, probe)} on {what}"


def _best_baseline(rows: pd.DataFrame) -> pd.Series:
    """The comparison whose baseline scored best (in the metric's direction)."""
    vals = pd.to_numeric(rows["baseline_value"], errors="coerce")
    if not vals.notna().any():
        return rows.iloc[0]
    higher = HIGHER_IS_BETTER.get(str(rows["metric"].iloc[0]), True)
    return rows.loc[vals.idxmax() if higher else vals.idxmin()]


def _alternative(rows: pd.DataFrame) -> tuple[pd.Series, str]:
    """For a task SSL does not win outright: the baseline to name and how it compares. A
    baseline clearly better than SSL if there is one (the best-scoring of those), else the
    best-scoring one SSL cannot be told apart from."""
    worse = rows[rows["outcome"] == "worse"]
    if not worse.empty:
        return _best_baseline(worse), "better than SSL"
    return _best_baseline(rows[rows["outcome"] != "better"]), "no clear difference"


def _wins(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Tasks (in order) where SSL beats every baseline of ``rows``, and the others."""
    tasks = list(dict.fromkeys(rows["task"].astype(str)))
    won = [
        t for t in tasks if (rows.loc[rows["task"].astype(str) == t, "outcome"] == "better").all()
    ]
    return won, [t for t in tasks if t not in won]


def _n_tasks(k: int, n: int) -> str:
    return f"{k} of {n} task{'s' if n != 1 else ''}"


def headline(
    verdict: pd.DataFrame,
    finetune_comparisons: pd.DataFrame | None = None,
    ssl_probe: str = "linear",
) -> str:
    """The data set's answer in one sentence, from its verdict (no new numbers): on how many
    tasks the SSL embedding beats every baseline with all labels and with the share of labels
    the summary shows (10 %), the tasks where it does not clearly beat the dummy predictor,
    for each task it does not win the best alternative and whether that is clearly better or
    cannot be told apart, the clustering, and fine-tuning from the SSL weights vs from scratch.

    Only the comparisons flagged for the summary count (SSL's ``verdict_probe`` against each
    baseline's same probe, the random forest and the dummy); a difference counts when its
    paired 95 % CI excludes 0, as in the verdict."""
    flagged = verdict[_flagged(verdict)] if not verdict.empty else verdict
    base = flagged[flagged["kind"] == "baseline"]
    ssl = f"SSL ({_PROBE_WORDS.get(ssl_probe, ssl_probe)})"
    clauses = []
    if base.empty:
        clauses.append(f"no comparison of {ssl} with a baseline was made")
    else:
        won, lost = _wins(base)
        n = len(won) + len(lost)
        c = f"{ssl} beats every baseline on {_n_tasks(len(won), n)} with all labels"
        if won and lost:
            c += f" ({', '.join(won)})"
        clauses.append(c)
    frac = verdict[verdict["kind"] == "label_fraction"] if not verdict.empty else verdict
    if "fraction" not in frac.columns:
        frac = frac.iloc[0:0]
    frac = frac[pd.to_numeric(frac.get("fraction", pd.Series(dtype=float)), errors="coerce") < 1.0]
    if not frac.empty:
        fr = pd.to_numeric(frac["fraction"], errors="coerce")
        shown = fr[_flagged(frac)]
        f = float(shown.min() if shown.notna().any() else fr.min())
        won_f, lost_f = _wins(frac[fr == f])
        clauses.append(
            f"with {_pct(f)} of the labels it beats every baseline on "
            f"{len(won_f)} of {len(won_f) + len(lost_f)}"
        )
    if not base.empty:
        dummy = base[base["baseline_feature_set"].astype(str) == "dummy"]
        weak = [
            str(t) for t, g in dummy.groupby("task", sort=False) if (g["outcome"] != "better").any()
        ]
        if weak:
            clauses.append(f"it does not clearly beat the dummy predictor on {', '.join(weak)}")
        alts = []
        for task in lost:
            row, how = _alternative(base[base["task"].astype(str) == task])
            who = _who(row["baseline_feature_set"], row["baseline_probe"])
            alts.append(f"{task}: {who} ({how})")
        if alts:
            clauses.append("best alternative for " + ", for ".join(alts))
    clus = flagged[flagged["kind"] == "clustering"]
    for task, g in clus.groupby("task", sort=False):
        method = _PROBE_WORDS.get(str(g["probe"].iloc[0]), str(g["probe"].iloc[0]))
        if (g["outcome"] == "better").all():
            clauses.append(f"its {method} clusters match {task} better than every baseline's")
        else:
            row, how = _alternative(g)
            what = str(row["baseline_feature_set"]).replace("_", " ")
            clauses.append(f"best alternative for {method} clusters of {task}: {what} ({how})")
    if finetune_comparisons is not None and not finetune_comparisons.empty:
        out = finetune_comparisons["outcome"]
        n, k, w = len(out), int((out == "better").sum()), int((out == "worse").sum())
        c = (
            f"fine-tuned from the SSL weights it beats training from scratch in {k} of {n} "
            f"comparison{'s' if n != 1 else ''}"
        )
        if w:
            c += f" and is worse in {w}"
        clauses.append(c)
    text = "; ".join(clauses)
    return text[0].upper() + text[1:] + "."


# ---------------------------------------------------------------- tables


def _probe_tables(
    df: pd.DataFrame, primary: str, units: Mapping[str, str]
) -> tuple[ProbeTable, ...]:
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
            cells += [_count(first["n_train"]), _count(first["n_test"])]
            styles += ["", ""]
            rows.append(cells)
            cell_styles.append(styles)
            row_styles.append("primary" if fs == primary else "")
        header = [
            "features",
            "probe",
            "selected",
            *[metric_label(m, units.get(str(task)), arrow=True) for m in metrics],
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
                    _with_ci(
                        sub.loc[m, "value"],
                        sub.loc[m, "ci_low"],
                        sub.loc[m, "ci_high"],
                        count=m in _COUNT_METRICS,
                    )
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
    header = ["embedding", *[f"{t} ({_count(dims[t])} dims)" for t in targets]]
    return _table(header, rows, [0, *[1] * len(targets)])


def _comparison_table(v: pd.DataFrame, units: Mapping[str, str]) -> Table | None:
    """Every SSL-vs-baseline comparison of the data set (the summary shows the main ones)."""
    sel = v[v["kind"] != "target"]
    if sel.empty:
        return None
    rows, styles = [], []
    for _, r in sel.iterrows():
        rows.append(
            [
                str(r["task"]),
                metric_label(str(r["metric"]), units.get(str(r["task"]))),
                _labels(r),
                _pair(r["feature_set"], r["probe"]),
                _with_ci(r["value"], r["ci_low"], r["ci_high"]),
                _pair(r["baseline_feature_set"], r["baseline_probe"]),
                _with_ci(r["baseline_value"], r["baseline_ci_low"], r["baseline_ci_high"]),
                _with_ci(r["delta"], r["delta_ci_low"], r["delta_ci_high"], signed=True),
                str(r["outcome"]),
            ]
        )
        styles.append(["", "nw", *[""] * 6, _OUTCOME_CLASS.get(r["outcome"], "")])
    return _table(
        ["task", "metric", "labels", "SSL", "value", "baseline", "value", "improvement", "verdict"],
        rows,
        [0, 0, 0, 0, 1, 0, 1, 1, 0],
        cell_styles=styles,
    )


def _label_tables(
    df: pd.DataFrame, primary: str, units: Mapping[str, str]
) -> tuple[LabelTable, ...]:
    """Per task, compact: one row per feature set/probe, one column per share of the train
    labels (the mean over repeats; the 95 % interval on hover), the best of each column in
    bold, and a first row with the number of labels each share is."""
    out = []
    for task, g in df.groupby("task", sort=False):
        metric = str(g["metric"].iloc[0])
        fr = pd.to_numeric(g["fraction"], errors="coerce")
        fracs = sorted(fr.dropna().unique())
        keys = list(dict.fromkeys(zip(g["feature_set"], g["probe"], strict=True)))
        higher = HIGHER_IS_BETTER.get(metric, True)
        best = {}
        for f in fracs:
            gf = g[fr == f]
            vals = pd.to_numeric(gf["value"], errors="coerce")
            if vals.notna().any():
                i = vals.idxmax() if higher else vals.idxmin()
                best[f] = (gf.loc[i, "feature_set"], gf.loc[i, "probe"])
        counts = ["n labels"]
        for f in fracs:
            n = pd.to_numeric(g.loc[fr == f, "n_labels"], errors="coerce").dropna()
            counts.append(_count(n.iloc[0]) if len(n) else "–")
        rows, row_styles, cell_styles = [counts], ["count"], [[""] * len(counts)]
        titles = [[""] * len(counts)]
        for fs, probe in keys:
            line = g[(g["feature_set"] == fs) & (g["probe"] == probe)]
            lf = pd.to_numeric(line["fraction"], errors="coerce")
            cells, styles, tips = [_pair(fs, probe)], [""], [""]
            for f in fracs:
                hit = line[lf == f]
                if hit.empty:
                    cells.append("–")
                    tips.append("")
                else:
                    r = hit.iloc[0]
                    cells.append(_num(r["value"]))
                    ok = pd.notna(r["ci_low"]) and pd.notna(r["ci_high"])
                    tips.append(
                        f"95 % interval {_num(r['ci_low'])} to {_num(r['ci_high'])}" if ok else ""
                    )
                styles.append("best" if best.get(f) == (fs, probe) else "")
            rows.append(cells)
            cell_styles.append(styles)
            titles.append(tips)
            row_styles.append("primary" if fs == primary else "")
        header = ["features/probe", *[_pct(f) for f in fracs]]
        table = _table(header, rows, [0, *[1] * len(fracs)], row_styles, cell_styles, titles)
        out.append(
            LabelTable(str(task), metric_label(metric, units.get(str(task)), arrow=True), table)
        )
    return tuple(out)


def _finetune_tables(df: pd.DataFrame, units: Mapping[str, str]) -> tuple[ProbeTable, ...]:
    """Per task: one row per labels share and initialisation, value [CI] per metric, the
    better initialisation at each share in bold."""
    out = []
    for task, g in df.groupby("task", sort=False):
        metrics = list(dict.fromkeys(g["metric"].astype(str)))
        fr = pd.to_numeric(g["fraction"], errors="coerce").fillna(1.0)
        g = g.assign(_f=fr)
        inits = list(dict.fromkeys(g["init"].astype(str)))
        inits = sorted(inits, key=lambda i: (i != "ssl", i != "scratch", i))
        rows, row_styles, cell_styles = [], [], []
        for f in sorted(g["_f"].unique()):
            gf = g[g["_f"] == f]
            best = {}
            for m in metrics:
                gm = gf[gf["metric"].astype(str) == m]
                vals = pd.to_numeric(gm["value"], errors="coerce")
                if vals.notna().sum() > 1:
                    i = vals.idxmax() if HIGHER_IS_BETTER.get(m, True) else vals.idxmin()
                    best[m] = str(gm.loc[i, "init"])
            for init in inits:
                sub = gf[gf["init"].astype(str) == init]
                if sub.empty:
                    continue
                sub = sub.set_index(sub["metric"].astype(str))
                cells = [_pct(f), _INIT_WORDS.get(init, init)]
                styles = ["", ""]
                for m in metrics:
                    if m in sub.index:
                        r = sub.loc[m]
                        r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                        cells.append(_with_ci(r["value"], r["ci_low"], r["ci_high"]))
                    else:
                        cells.append("–")
                    styles.append("best" if best.get(m) == init else "")
                rows.append(cells)
                cell_styles.append(styles)
                row_styles.append("primary" if init == "ssl" else "")
        header = [
            "labels",
            "initialised from",
            *[metric_label(m, units.get(str(task)), arrow=True) for m in metrics],
        ]
        table = _table(header, rows, [0, 0, *[1] * len(metrics)], row_styles, cell_styles)
        task_type = str(g["task_type"].iloc[0]) if "task_type" in g.columns else ""
        out.append(ProbeTable(str(task), task_type, table))
    return tuple(out)


def _finetune(inp: _Inputs, units: Mapping[str, str]) -> Finetune | None:
    if not (inp.given("finetune") or inp.given("finetune_comparisons")):
        return None
    tables = _finetune_tables(inp.table("finetune"), units) if inp.given("finetune") else ()
    comparison = None
    if inp.given("finetune_comparisons"):
        comparison = _comparison_table(inp.table("finetune_comparisons"), units)
    if not tables and comparison is None:
        return None
    return Finetune(tables, comparison)


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
        width = png_size(png)[0]
        out.append(
            Figure(
                data_uri(png),
                caption,
                caption,
                str(f.get("kind", "")),
                str(f.get("group", "") or ""),
                width,
            )
        )
    return tuple(out), tuple(str(n) for n in obj.get("notes", []))


def _label_efficiency(
    inp: _Inputs, figures: Sequence[Figure], primary: str, units: Mapping[str, str]
) -> LabelEfficiency | None:
    figure = next((f for f in figures if f.kind == "label_efficiency"), None)
    tables = ()
    if inp.given("label_efficiency"):
        tables = _label_tables(inp.table("label_efficiency"), primary, units)
    if figure is None and not tables:
        return None
    return LabelEfficiency(figure, tables)


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
            _count(r["last_step"]),
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


def _sweep(inp: _Inputs, units: Mapping[str, str]) -> Sweep | None:
    if not (inp.given("sweep_table") or inp.given("sweep_figure")):
        return None
    figure = None
    if inp.given("sweep_figure"):
        path = inp.file("sweep_figure")
        figure = Figure(
            data_uri(path),
            "Probe quality (95 % CI) and embedding geometry against τ (log scale).",
            "temperature sweep",
            "sweep",
            "",
            png_size(path)[0],
        )
    table = None
    if inp.given("sweep_table"):
        table_df = inp.table("sweep_table")
        col = [
            f"{t} {p} {metric_label(str(m), units.get(str(t)))}"
            for t, p, m in zip(table_df["task"], table_df["probe"], table_df["metric"], strict=True)
        ]
        piv = table_df.assign(col=col).pivot_table(
            index="tau", columns="col", values="value", aggfunc="first", sort=False
        )
        rows = [
            [f"{float(t):g}", *[_num(x) for x in r]]
            for t, r in zip(piv.index, piv.to_numpy(), strict=True)
        ]
        table = _table(["τ", *map(str, piv.columns)], rows, [1] * (len(piv.columns) + 1))
    return Sweep(figure, table)


def _dataset(
    ds: str, inp: _Inputs, section: Mapping[str, Any], verdict: pd.DataFrame
) -> DatasetReport:
    primary = str(section["analysis"]["primary_feature_set"])
    units = _units_of(section)
    probe = inp.table("probe_metrics")
    clusters = inp.table("cluster_metrics")
    pre = inp.json("preprocess_summary")
    train_summary = inp.json("train_summary") if inp.given("train_summary") else {}
    training = inp.file("training_metrics") if inp.given("training_metrics") else None
    figures, notes = _figures(inp)
    notes = (*_subsample_notes(probe, clusters), *notes)
    finetune = _finetune(inp, units)
    ft_comp = inp.table("finetune_comparisons") if inp.given("finetune_comparisons") else None
    return DatasetReport(
        name=ds,
        domain=str(section.get("domain") or ""),
        headline=headline(verdict, ft_comp, str(section["analysis"]["verdict_probe"])),
        targets=_targets(ds, verdict),
        preprocessing=_kv_table(pre, ["count", "value"], numeric=True) if pre else None,
        probes=_probe_tables(probe, primary, units),
        comparison=_comparison_table(verdict, units),
        recovery=_recovery_table(inp.table("recovery")),
        clustering=_cluster_tables(clusters, primary) if not clusters.empty else (),
        figures=figures,
        training=_training_table(training) if training is not None else None,
        train_summary=_kv_table(train_summary, ["key", "value"], numeric=False),
        sweep=_sweep(inp, units),
        notes=notes,
        encoder=_encoder_origin(section),
        pairings=_pairings(section),
        label_efficiency=_label_efficiency(inp, figures, primary, units),
        finetune=finetune,
    )


#: the clause a probe's or clustering's ``param`` note carries when it ran on a subsample
_SUBSAMPLE = re.compile(
    r"(subsample [^;]*\(max_items[^)]*\)|centres fitted on [^;]*\(max_items[^)]*\))"
)


def _subsample_notes(probe: pd.DataFrame, clusters: pd.DataFrame) -> tuple[str, ...]:
    """One line per task and step that ran on a seeded subsample above ``analysis.max_items``
    (``max_items_cluster``), as its ``param`` notes say; none on data below the caps."""
    out: dict[str, None] = {}
    for step, df in (("probes", probe), ("clustering", clusters)):
        if df.empty or "param" not in df:
            continue
        for task, param in df[["task", "param"]].drop_duplicates().itertuples(index=False):
            for clause in _SUBSAMPLE.findall(str(param) if pd.notna(param) else ""):
                out[
                    f"{step}, task {task}: {clause.replace('(max_items', '(analysis.max_items')}"
                ] = None
    return tuple(out)


def _pairings(section: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What the views of each contrastive pairing share, as the data set's domain says."""
    from sciclr.domains import get_domain

    if not section.get("domain"):
        return ()
    return tuple(get_domain(section["domain"]).describe_pairing(section))


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

    ``params``: ``{"datasets": {name: section}}``, for each data set's domain, tasks (their
    units) and analysis settings (``primary_feature_set``), defaults filled from the schema.
    """
    if not isinstance(inputs, Mapping) or not inputs:
        raise SciclrError("report inputs: no data sets given")
    checked = {ds: _Inputs(str(ds), paths) for ds, paths in inputs.items()}
    sections = {ds: _section(params, ds) for ds in checked}
    verdicts = {ds: inp.table("verdict") for ds, inp in checked.items()}
    datasets = tuple(_dataset(ds, inp, sections[ds], verdicts[ds]) for ds, inp in checked.items())
    return ReportData(
        datasets=datasets,
        summary=_summary_table(verdicts, {ds: _units_of(sec) for ds, sec in sections.items()}),
        targets=tuple(t for d in datasets for t in d.targets),
    )
