"""What to evaluate: tasks (configured and derived), probe settings and targets, from a data set's
config section.

The analysis reads the data set's ``tasks`` (``column``, ``type``) and its ``analysis`` section,
already checked and filled from the schema (``$defs/analysis``, :func:`sciclr.config.dataset_params`),
so an empty ``analysis`` section gives a complete, honest evaluation. What the schema cannot
state — targets naming known metrics, derived tasks — is checked here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sciclr.config import dataset_params
from sciclr.errors import SciclrError

__all__ = [
    "HIGHER_IS_BETTER",
    "KNN_WORKING_MEMORY_MB",
    "Settings",
    "Target",
    "TaskData",
    "resolve_tasks",
]

#: Direction of every metric the analysis writes.
#: scikit-learn's ``working_memory`` (MB) for brute-force k-NN queries: the distance block it
#: holds per chunk of query rows (its default, 1,024 MB, was most of the DNA probe's 1.9 GB peak
#: at 4x the bundled data); the neighbours found do not depend on it
KNN_WORKING_MEMORY_MB = 256

HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "macro_f1": True,
    "roc_auc": True,
    "mae": False,
    "rmse": False,
    "r2": True,
    "spearman": True,
    "ari": True,
    "nmi": True,
    "silhouette": True,
    "noise_fraction": False,
    "n_clusters": True,
}

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2", "spearman")
_OPS = {
    "gt": np.greater,
    "ge": np.greater_equal,
    "lt": np.less,
    "le": np.less_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


@dataclass(frozen=True)
class Target:
    """A success criterion, e.g. SSL linear-probe accuracy on ``label`` ≥ 0.90."""

    task: str
    metric: str
    bound: float
    is_min: bool  # True: value must be >= bound; False: value must be <= bound
    feature_set: str = "ssl"
    probe: str = "linear"

    def met(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value >= self.bound if self.is_min else value <= self.bound

    @property
    def op(self) -> str:
        return "≥" if self.is_min else "≤"


@dataclass(frozen=True)
class Settings:
    """The ``analysis`` section with defaults filled in, plus the data set's name and tasks."""

    dataset: str
    domain: str
    tasks: tuple[dict[str, Any], ...]
    values: Mapping[str, Any]
    targets: tuple[Target, ...]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @classmethod
    def from_params(cls, params: Mapping[str, Any], dataset: str | None = None) -> Settings:
        """Read a data set's config section (``name``, ``domain``, ``tasks``, ``analysis``);
        missing keys take the schema's defaults (:func:`sciclr.config.dataset_params`)."""
        params = dataset_params(params, required=())
        values = dict(params["analysis"])
        tasks = list(params.get("tasks") or [])
        for t in values["derived_tasks"]:
            if "name" not in t or "column" not in t:
                raise SciclrError(f"params: derived task {dict(t)} needs 'name' and 'column'")
            if t.get("type") not in ("classification", "regression"):
                raise SciclrError(
                    f"params: derived task {t['name']!r} has type {t.get('type')!r}; "
                    "expected 'classification' or 'regression'"
                )
        targets = _parse_targets(values["targets"], values)
        derived = list(values["derived_tasks"])
        for t in tasks:  # a regression label also scored as binary: band_gap > 0 = non-metal
            x = t.get("binarize_above")
            if x is not None:
                name = f"{t.get('name', t['column'])}>{float(x):g}"
                derived.append(
                    {
                        "name": name,
                        "column": t["column"],
                        "type": "classification",
                        "threshold": float(x),
                        "positive": "True",
                    }
                )
        values["derived_tasks"] = derived
        name = dataset or str(params.get("name") or "dataset")
        return cls(
            dataset=name,
            domain=str(params.get("domain", "")),
            tasks=tuple(dict(t) for t in tasks),
            values=values,
            targets=targets,
        )


_PROBES = ("kmeans", "hdbscan", "leiden", "linear", "knn", "rf", "dummy")


def _parse_targets(spec: Any, values: Mapping[str, Any]) -> tuple[Target, ...]:
    """Targets from ``{task: {metric: bound}}`` or a list of explicit target mappings."""
    if isinstance(spec, Mapping):
        items = []
        for task, goals in spec.items():
            if not isinstance(goals, Mapping):
                raise SciclrError(f"params: analysis.targets.{task} must map metric -> bound")
            for key, bound in goals.items():
                probe, _, metric = str(key).partition("_")
                if probe not in _PROBES or metric not in HIGHER_IS_BETTER:
                    probe, metric = "", str(key)
                if metric not in HIGHER_IS_BETTER:
                    raise SciclrError(
                        f"params: analysis.targets.{task}.{key}: unknown metric; known: "
                        f"{sorted(HIGHER_IS_BETTER)} (optionally prefixed kmeans_, knn_, ...)"
                    )
                item = {
                    "task": task,
                    "metric": metric,
                    ("min" if HIGHER_IS_BETTER[metric] else "max"): bound,
                }
                if probe:
                    item["probe"] = probe
                items.append(item)
        spec = items
    if not isinstance(spec, Sequence):
        raise SciclrError("params: analysis.targets must be a mapping or a list")
    return tuple(_parse_target(t, values) for t in spec)


def _parse_target(t: Mapping[str, Any], values: Mapping[str, Any]) -> Target:
    if "task" not in t or "metric" not in t or ("min" in t) == ("max" in t):
        raise SciclrError(
            f"params: target {dict(t)} needs 'task', 'metric' and exactly one of 'min'/'max'"
        )
    metric = str(t["metric"])
    if metric not in HIGHER_IS_BETTER:
        raise SciclrError(
            f"params: target metric {metric!r} unknown; known: {sorted(HIGHER_IS_BETTER)}"
        )
    is_min = "min" in t
    default_probe = "kmeans" if metric in ("ari", "nmi", "silhouette") else values["verdict_probe"]
    return Target(
        task=str(t["task"]),
        metric=metric,
        bound=float(t["min"] if is_min else t["max"]),
        is_min=is_min,
        feature_set=str(t.get("feature_set", values["primary_feature_set"])),
        probe=str(t.get("probe", default_probe)),
    )


@dataclass
class TaskData:
    """One prediction task over all records.

    y: labels per record, shape ``(n,)``: ``str`` objects for classification, float for
        regression; ``valid`` marks records that take part (label present, subset filter met).
    classes: sorted class labels seen in ``valid`` records (classification only).
    positive: the positive class of a binary task (ROC-AUC is computed only then).
    """

    name: str
    type: str
    column: str
    y: np.ndarray
    valid: np.ndarray
    metric: str
    classes: tuple[str, ...] = ()
    positive: str | None = None
    cluster: bool = False

    @property
    def is_binary(self) -> bool:
        return self.type == "classification" and len(self.classes) == 2

    def metrics(self) -> tuple[str, ...]:
        if self.type == "regression":
            return REGRESSION_METRICS
        return CLASSIFICATION_METRICS if self.is_binary else CLASSIFICATION_METRICS[:3]


def _label_column(records: pd.DataFrame, column: str, where: str) -> pd.Series:
    if column not in records.columns:
        raise SciclrError(
            f"{where}: label column {column!r} not in records.tsv (columns: {list(records.columns)})"
        )
    return records[column]


def _as_float(col: pd.Series, name: str, where: str) -> np.ndarray:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    bad = col.notna().to_numpy() & np.isnan(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SciclrError(
            f"{where}: task {name!r}: non-numeric value {col.iloc[i]!r} for regression "
            f"(record {i + 1})"
        )
    return values


def _as_labels(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    valid = np.array(col.notna().to_numpy(), dtype=bool)
    y = np.where(valid, col.astype(str).str.strip().to_numpy(dtype=object), "")
    valid &= y != ""
    return y.astype(object), valid


def _default_positive(classes: Sequence[str]) -> str:
    for pos in ("True", "true", "1", "yes", "positive"):
        if pos in classes:
            return pos
    return sorted(classes)[-1]


def resolve_tasks(
    settings: Settings, records: pd.DataFrame, where: str = "records.tsv"
) -> list[TaskData]:
    """Build every configured and derived task over ``records`` (row order kept)."""
    out: list[TaskData] = []
    specs = [(dict(t), False) for t in settings.tasks]
    specs += [(dict(t), True) for t in settings["derived_tasks"]]
    for spec, derived in specs:
        name = str(spec.get("name", spec["column"]))
        col = _label_column(records, spec["column"], where)
        valid_extra = np.ones(len(records), dtype=bool)
        if derived and spec.get("where"):
            cond = spec["where"]
            ops = [k for k in cond if k in _OPS]
            if "column" not in cond or len(ops) != 1:
                raise SciclrError(
                    f"params: derived task {name!r}: 'where' needs 'column' and one of {sorted(_OPS)}"
                )
            ref = _as_float(_label_column(records, cond["column"], where), name, where)
            with np.errstate(invalid="ignore"):
                valid_extra = _OPS[ops[0]](ref, float(cond[ops[0]])) & ~np.isnan(ref)
        if derived and "threshold" in spec:
            values = _as_float(col, name, where)
            valid = ~np.isnan(values) & valid_extra
            y = np.where(values > float(spec["threshold"]), "True", "False").astype(object)
        elif spec["type"] == "regression":
            y = _as_float(col, name, where)
            valid = ~np.isnan(y) & valid_extra
        else:
            y, valid = _as_labels(col)
            valid &= valid_extra
        task_type = spec["type"]
        classes: tuple[str, ...] = ()
        positive = None
        if task_type == "classification":
            classes = tuple(sorted(set(y[valid].tolist())))
            if len(classes) == 2:
                positive = str(spec.get("positive", _default_positive(classes)))
                if positive not in classes:
                    raise SciclrError(
                        f"params: task {name!r}: positive class {positive!r} not among {classes}"
                    )
        default_metric = (
            "mae" if task_type == "regression" else ("roc_auc" if len(classes) == 2 else "accuracy")
        )
        # the task's main metric: explicit, else the metric of its (supervised) target, else
        # the default — what is selected on and compared is what the scientist asked for
        target_metric = next(
            (
                t.metric
                for t in settings.targets
                if t.task == name
                and t.probe not in ("kmeans", "hdbscan", "leiden")
                and t.metric
                in (REGRESSION_METRICS if task_type == "regression" else CLASSIFICATION_METRICS)
            ),
            None,
        )
        metric = str(
            spec.get("metric")
            or settings["primary_metric"].get(name)
            or target_metric
            or default_metric
        )
        task = TaskData(
            name,
            task_type,
            spec["column"],
            y,
            valid,
            metric,
            classes,
            positive,
            bool(spec.get("cluster", False)),
        )
        if metric not in task.metrics():
            raise SciclrError(
                f"params: task {name!r}: metric {metric!r} not available; choose from {task.metrics()}"
            )
        out.append(task)
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise SciclrError(f"params: task names repeat: {names}")
    return out
