"""What to evaluate: tasks (configured and derived), probe settings and targets, from a data set's
config section.

The analysis reads the data set's ``tasks`` (``column``, ``type``) and its ``analysis`` section.
Every key has a default here, so an empty ``analysis`` section gives a complete, honest
evaluation; :data:`ANALYSIS_DEFAULTS` is the single list of keys (the workflow schema mirrors it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sciclr.errors import SciclrError

__all__ = [
    "ANALYSIS_DEFAULTS",
    "HIGHER_IS_BETTER",
    "Settings",
    "Target",
    "TaskData",
    "resolve_tasks",
]

#: Every ``analysis`` key with its default. Types are checked in :meth:`Settings.from_params`.
ANALYSIS_DEFAULTS: dict[str, Any] = {
    "seed": 0,  # seeds bootstrap, CV folds, k-means, Leiden, UMAP, random forest
    "bootstrap": 1000,  # bootstrap resamples of the test set for 95 % CIs (0 = no CIs)
    "ci_level": 0.95,
    "cv_folds": 5,  # folds on train when there is no val split
    # inverse L2 strengths tried, in half-decade steps where standardised embeddings land:
    # a decade grid made the chosen C (and test accuracy) jump on one val item
    "logistic_c": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0, 100.0],
    "ridge_alpha": [0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0],
    "max_iter": 1000,  # logistic-regression iterations
    # class weights of the logistic probe: "auto" = balanced when the task's metric is
    # balanced_accuracy or macro_f1 (train for what is scored), "balanced", or "none"
    "class_weight": "auto",
    "probes": ["linear", "knn"],  # probes run for every feature set (dummy is always added)
    "knn_k": 10,
    "rf_features": [],  # feature sets that also get a random-forest probe (a strong baseline)
    "rf_trees": 300,
    "primary_feature_set": "ssl",  # the representation under test
    "verdict_probe": "linear",  # its probe compared with the baselines in the summary
    "primary_metric": {},  # task name -> metric used for selection and verdicts
    "derived_tasks": [],  # extra tasks computed from label columns (threshold / subset)
    # goals stated in the report: {task: {metric: bound}} (metric may carry a probe prefix,
    # e.g. kmeans_ari; ≥ for higher-is-better metrics, ≤ for mae/rmse) or a list of
    # {task, metric, min|max, feature_set=ssl, probe=linear}
    "targets": {},
    "cluster_column": None,  # task clusters are scored against (default: task with cluster: true, else first classification)
    "cluster_split": "test",
    "clustering": ["kmeans", "hdbscan", "leiden"],
    "cluster_scale": "standardize",  # standardize | l2 | none (applied before clustering)
    "hdbscan_min_cluster_size": 10,
    "hdbscan_min_samples": 5,  # neighbours defining core density (None = min_cluster_size)
    "hdbscan_pca": 20,  # PCA dimensions before HDBSCAN (0 = none); density is unreliable in 1000s of dims
    "leiden_neighbors": 15,
    "leiden_resolution": 1.0,
    "silhouette_max": 2000,  # items sampled for the silhouette (it is O(n^2))
    "umap": True,
    "umap_feature_sets": None,  # None = every feature set given to `sciclr figures`
    "umap_max_points": 2500,  # records embedded per feature set (UMAP time grows ~linearly)
    "umap_neighbors": 15,
    "umap_pca": 50,  # PCA dimensions before UMAP for wider features (0 = none)
}

#: Direction of every metric the analysis writes.
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
        """Read a data set's config section (``name``, ``domain``, ``tasks``, ``analysis``)."""
        section = params.get("analysis") or {}
        if not isinstance(section, Mapping):
            raise SciclrError("params: 'analysis' must be a mapping")
        unknown = sorted(set(section) - set(ANALYSIS_DEFAULTS))
        if unknown:
            raise SciclrError(
                f"params: unknown analysis key(s) {unknown}; known: {sorted(ANALYSIS_DEFAULTS)}"
            )
        values = {**ANALYSIS_DEFAULTS, **section}
        for key, default in ANALYSIS_DEFAULTS.items():
            _check_type(key, values[key], default)
        tasks = params.get("tasks") or []
        if not isinstance(tasks, Sequence) or not all(
            isinstance(t, Mapping) and "column" in t for t in tasks
        ):
            raise SciclrError("params: 'tasks' must be a list of {column, type} mappings")
        for t in [*tasks, *values["derived_tasks"]]:
            if t.get("type") not in ("classification", "regression"):
                raise SciclrError(
                    f"params: task {t.get('name', t.get('column'))!r} has type "
                    f"{t.get('type')!r}; expected 'classification' or 'regression'"
                )
        for t in values["derived_tasks"]:
            if "name" not in t or "column" not in t:
                raise SciclrError(f"params: derived task {dict(t)} needs 'name' and 'column'")
        _check_choices(values)
        targets = _parse_targets(values["targets"], values)
        tasks = list(tasks)
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
        name = dataset or str(params.get("name") or params.get("dataset") or "dataset")
        return cls(
            dataset=name,
            domain=str(params.get("domain", "")),
            tasks=tuple(dict(t) for t in tasks),
            values=values,
            targets=targets,
        )


_CHOICES = {
    "probes": ("linear", "knn", "rf"),
    "clustering": ("kmeans", "hdbscan", "leiden"),
}
_ONE_OF = {
    "cluster_scale": ("standardize", "l2", "none"),
    "class_weight": ("auto", "balanced", "none"),
    "cluster_split": ("train", "val", "test", "all"),
}


def _check_choices(values: Mapping[str, Any]) -> None:
    for key, allowed in _CHOICES.items():
        bad = [v for v in values[key] if v not in allowed]
        if bad:
            raise SciclrError(f"params: analysis.{key} has {bad}; allowed: {list(allowed)}")
    for key, allowed in _ONE_OF.items():
        if values[key] not in allowed:
            raise SciclrError(
                f"params: analysis.{key} is {values[key]!r}; expected one of {list(allowed)}"
            )
    if not 0 < float(values["ci_level"]) < 1:
        raise SciclrError(f"params: analysis.ci_level must be in (0, 1), got {values['ci_level']}")


def _check_type(key: str, value: Any, default: Any) -> None:
    if default is None or value is None or key == "targets":
        return
    expected: type | tuple[type, ...]
    if isinstance(default, bool):
        expected = bool
    elif isinstance(default, int):
        expected = int
    elif isinstance(default, float):
        expected = (int, float)
    else:
        expected = type(default)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise SciclrError(
            f"params: analysis.{key} must be {getattr(expected, '__name__', 'a number')}, "
            f"got {value!r}"
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
