"""Fine-tuning against training from scratch, scored: ``finetune.tsv`` and its comparisons.

Each run of ``sciclr finetune`` leaves its test predictions (``id, y_true, y_pred, score``).
Here every run is scored on the task's main metric with its 95 % bootstrap CI, exactly as the
probes are (:func:`sciclr.analysis.scoring.score_prediction`, the task's bootstrap seed), and
for each task and fraction the SSL-initialised run is compared with the from-scratch run by a
paired bootstrap over the same test items and the same resamples
(:func:`sciclr.analysis.bootstrap.paired_difference`): ``delta`` > 0 means fine-tuning the SSL
encoder did better, whatever the metric's direction (verdict columns, ``kind`` ``finetune``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sciclr.analysis.inputs import read_records
from sciclr.analysis.scoring import Prediction, score_prediction
from sciclr.analysis.spec import Settings, TaskData, resolve_tasks
from sciclr.analysis.verdict import VERDICT_COLUMNS, comparison_row, paired_main_metric, task_arrays
from sciclr.config import load_params
from sciclr.errors import SciclrError
from sciclr.io import write_table

__all__ = [
    "FINETUNE_COLUMNS",
    "FinetuneRun",
    "compare_finetune",
    "parse_runs",
    "read_run_predictions",
    "run_finetune_summary",
    "score_finetune",
]

#: Columns of ``finetune.tsv``: one row per task × init × fraction (the task's main metric).
FINETUNE_COLUMNS = [
    "dataset",
    "task",
    "task_type",
    "init",
    "fraction",
    "metric",
    "value",
    "ci_low",
    "ci_high",
]
INITS = ("ssl", "scratch")
RUN_COLUMNS = ["id", "y_true", "y_pred", "score"]


@dataclass
class FinetuneRun:
    """One run's test predictions (labels as written: ``str``)."""

    task: str
    init: str
    fraction: float
    predictions: pd.DataFrame


def parse_runs(items: Sequence[str]) -> list[tuple[str, str, float, Path]]:
    """``TASK/INIT/FRACTION=PREDICTIONS_TSV`` arguments → ``(task, init, fraction, path)``."""
    out, seen = [], set()
    for item in items:
        key, sep, path = item.partition("=")
        parts = key.rsplit("/", 2)
        if not sep or not path or len(parts) != 3 or not parts[0]:
            raise SciclrError(f"--runs: expected TASK/INIT/FRACTION=PATH, got {item!r}")
        task, init, frac = parts
        if init not in INITS:
            raise SciclrError(f"--runs: {item!r}: init {init!r} is not one of {list(INITS)}")
        try:
            fraction = float(frac)
        except ValueError:
            raise SciclrError(f"--runs: {item!r}: fraction {frac!r} is not a number") from None
        if (task, init, fraction) in seen:
            raise SciclrError(f"--runs: {task}/{init}/{frac} given twice")
        seen.add((task, init, fraction))
        out.append((task, init, fraction, Path(path)))
    return out


def read_run_predictions(path: str | Path) -> pd.DataFrame:
    """A run's ``predictions.tsv``, labels kept as written."""
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SciclrError(f"{path}: fine-tuning predictions not found") from None
    missing = [c for c in RUN_COLUMNS if c not in df.columns]
    if missing:
        raise SciclrError(f"{path}: column(s) {missing} missing")
    if df["id"].duplicated().any():
        raise SciclrError(f"{path}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]!r}")
    return df


def _task(tasks: Mapping[str, TaskData], name: str) -> TaskData:
    if name not in tasks:
        raise SciclrError(f"--runs: task {name!r} is not a task of this data set ({list(tasks)})")
    return tasks[name]


def score_finetune(
    settings: Settings, tasks: Mapping[str, TaskData], runs: Sequence[FinetuneRun]
) -> pd.DataFrame:
    """Every run's main metric with its bootstrap CI (:data:`FINETUNE_COLUMNS`)."""
    rows = []
    for run in runs:
        task = _task(tasks, run.task)
        y_true, y_pred, score = task_arrays(run.predictions, task)
        pred = Prediction(
            dataset=settings.dataset,
            task=task.name,
            task_type=task.type,
            feature_set=run.init,
            probe="finetune",
            ids=run.predictions["id"].to_numpy(),
            y_true=y_true,
            y_pred=y_pred,
            score=score,
            positive=task.positive,
        )
        scored = score_prediction(
            pred,
            [task.metric],
            int(settings["bootstrap"]),
            int(settings["seed"]),
            float(settings["ci_level"]),
        )
        for r in scored:
            rows.append(
                {
                    "dataset": settings.dataset,
                    "task": task.name,
                    "task_type": task.type,
                    "init": run.init,
                    "fraction": run.fraction,
                    "metric": r["metric"],
                    "value": r["value"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                }
            )
    table = pd.DataFrame(rows, columns=FINETUNE_COLUMNS)
    return table.sort_values(["task", "fraction", "init"], kind="stable", ignore_index=True)


def compare_finetune(
    settings: Settings, tasks: Mapping[str, TaskData], runs: Sequence[FinetuneRun]
) -> pd.DataFrame:
    """SSL-initialised minus from-scratch per task and fraction: paired bootstrap on the same
    test items and resamples (:data:`~sciclr.analysis.verdict.VERDICT_COLUMNS`, ``kind``
    ``finetune``; delta > 0 = SSL better)."""
    by_key = {(r.task, r.init, r.fraction): r for r in runs}
    rows = []
    for (name, init, fraction), ssl in sorted(by_key.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        base = by_key.get((name, "scratch", fraction))
        if init != "ssl" or base is None:
            continue
        task = _task(tasks, name)
        a = ssl.predictions.set_index("id")
        b = base.predictions.set_index("id")
        if len(a) != len(b) or not a.index.isin(b.index).all():
            raise SciclrError(
                f"--runs: task {name!r} at fraction {fraction:g}: the ssl and scratch runs "
                "were scored on different test items"
            )
        b = b.loc[a.index]
        ya, pa, sa = task_arrays(a, task)
        yb, pb, sb = task_arrays(b, task)
        if not np.array_equal(np.asarray(ya).astype(str), np.asarray(yb).astype(str)):
            raise SciclrError(
                f"--runs: task {name!r} at fraction {fraction:g}: the runs disagree on y_true"
            )
        paired = paired_main_metric(settings, task, ya, (pa, sa), (pb, sb))
        if paired is None:
            continue
        ea, eb, d = paired
        row = comparison_row(
            settings,
            "finetune",
            task.name,
            task.metric,
            "ssl",
            "finetune",
            "scratch",
            "finetune",
            ea,
            eb,
            d,
            summary=True,
        )
        row["fraction"] = fraction
        row["statement"] = (
            f"Fine-tuned end to end on {100 * fraction:g} % of the train labels: "
            + row["statement"]
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def run_finetune_summary(
    params: str | Mapping[str, Any],
    records: str | Path,
    runs: Sequence[str],
    out: str | Path,
    comparisons: str | Path,
    dataset: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score the runs named in ``runs`` (``TASK/INIT/FRACTION=PREDICTIONS_TSV``); write
    ``finetune.tsv`` (``out``) and the SSL-vs-scratch comparisons (``comparisons``)."""
    settings = Settings.from_params(load_params(params), dataset)
    rec = read_records(records)
    tasks = {t.name: t for t in resolve_tasks(settings, rec, str(records))}
    loaded = [
        FinetuneRun(task, init, fraction, read_run_predictions(path))
        for task, init, fraction, path in parse_runs(runs)
    ]
    table = score_finetune(settings, tasks, loaded)
    comp = compare_finetune(settings, tasks, loaded)
    write_table(out, table)
    write_table(comparisons, comp)
    return table, comp
