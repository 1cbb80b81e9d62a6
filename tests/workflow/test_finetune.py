"""`snakemake finetune` on a finished tiny run: fine-tuned vs from-scratch tables for every task,
both inits and both fractions, without retraining the SSL encoder, every file declared."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from sciclr.analysis.finetune import FINETUNE_COLUMNS
from sciclr.analysis.verdict import VERDICT_COLUMNS
from tests.conftest import IO_AUDIT, copy_workflow, snakemake
from tests.workflow.test_declared_io import _accesses, _declared, _jobs

pytestmark = pytest.mark.slow

INITS = ("ssl", "scratch")
TASKS = {
    "genomics": {"label": "accuracy"},
    "materials": {  # config/test.yaml's finetune.tasks (band_gap is not fine-tuned)
        "formation_energy_per_atom": "mae",
        "crystal_system": "balanced_accuracy",
    },
}


@pytest.fixture(scope="module")
def finetuned(tiny_run, tmp_path_factory):
    work = tmp_path_factory.mktemp("finetune") / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    checkpoints = {
        ds: os.stat(work / f"results/{ds}/runs/ssl/checkpoint.pt").st_mtime_ns for ds in TASKS
    }
    audit = {
        "SCICLR_IO_AUDIT": str(work / ".io_audit"),
        "PYTHONPATH": os.pathsep.join(
            [str(IO_AUDIT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    proc = snakemake(
        work, "finetune", "--cores", "2", "--configfile", "config/test.yaml", env=audit
    )
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}"
            for p in sorted((work / "results/logs").rglob("finetune*/*.log"))
        )
        pytest.fail(f"snakemake finetune failed:\n{proc.stderr[-5000:]}\n{logs}")
    return work, proc.stdout + proc.stderr, checkpoints


def test_only_finetuning_jobs_ran(finetuned):
    work, log, checkpoints = finetuned
    stats = log[log.index("Job stats:") :].split("Select jobs")[0]
    counts = {
        words[0]: int(words[1])
        for words in (line.split() for line in stats.splitlines()[3:])
        if len(words) == 2 and words[1].isdigit() and words[0] != "total"
    }
    n_runs = sum(len(t) for t in TASKS.values()) * 2 * 2  # tasks x inits x fractions
    assert counts == {"finetune_run": n_runs, "finetune_summary": 2, "finetune": 1}, stats
    for ds, mtime in checkpoints.items():  # the SSL encoder was not retrained
        assert os.stat(work / f"results/{ds}/runs/ssl/checkpoint.pt").st_mtime_ns == mtime


@pytest.mark.parametrize("ds", sorted(TASKS))
def test_finetune_tables(finetuned, ds):
    work = finetuned[0]
    table = pd.read_csv(work / f"results/{ds}/metrics/finetune.tsv", sep="\t")
    assert list(table.columns) == FINETUNE_COLUMNS
    assert (table["dataset"] == ds).all()
    cells = {(t, i, f) for t, i, f in table[["task", "init", "fraction"]].itertuples(index=False)}
    assert cells == {(t, i, f) for t in TASKS[ds] for i in INITS for f in (0.1, 1.0)}
    assert dict(zip(table["task"], table["metric"], strict=True)) == TASKS[ds]
    assert np.isfinite(table["value"]).all()
    tol = 1e-9
    with_ci = table.dropna(subset=["ci_low", "ci_high"])
    assert len(with_ci) >= len(table) // 2
    assert (
        (with_ci["ci_low"] <= with_ci["value"] + tol)
        & (with_ci["value"] <= with_ci["ci_high"] + tol)
    ).all()

    comp = pd.read_csv(work / f"results/{ds}/metrics/finetune_comparisons.tsv", sep="\t")
    assert list(comp.columns) == VERDICT_COLUMNS
    assert len(comp) == 2 * len(TASKS[ds]) and (comp["kind"] == "finetune").all()
    for _, row in comp.iterrows():
        at = table[(table["task"] == row["task"]) & (table["fraction"] == row["fraction"])]
        ssl = at.loc[at["init"] == "ssl", "value"].item()
        scratch = at.loc[at["init"] == "scratch", "value"].item()
        sign = -1.0 if row["metric"] == "mae" else 1.0
        assert row["value"] == pytest.approx(ssl)
        assert row["baseline_value"] == pytest.approx(scratch)
        assert row["delta"] == pytest.approx(sign * (ssl - scratch))

    # each run kept its best val epoch, and both inits trained on the same labels
    for task in TASKS[ds]:
        for fraction in ("0.1", "1"):
            folder = {i: work / f"results/{ds}/finetune/{task}/{i}_{fraction}" for i in INITS}
            runs = {i: json.loads((folder[i] / "summary.json").read_text()) for i in INITS}
            assert runs["ssl"]["train_ids_sha256"] == runs["scratch"]["train_ids_sha256"]
            assert runs["ssl"]["checkpoint"].endswith(f"{ds}/runs/ssl/checkpoint.pt")
            assert runs["scratch"]["checkpoint"] is None
            for init, summary in runs.items():
                hist = pd.read_csv(folder[init] / "metrics.csv")
                assert summary["best_epoch"] == int(hist.loc[hist["best"], "epoch"].iloc[-1])


def test_every_finetuning_file_is_declared(finetuned):
    """The declared-I/O check of test_declared_io, on the jobs of the finetune target."""
    work = finetuned[0]
    jobs, accesses = _jobs(work), _accesses(work)
    mine = {log: files for log, files in accesses.items() if "finetune" in log}
    assert len(mine) == sum(len(t) for t in TASKS.values()) * 4 + len(TASKS), sorted(mine)
    problems = []
    for log, files in mine.items():
        job = jobs[log]
        outputs = job["outputs"] | job["logs"]
        for path, write in files:
            allowed = outputs if write else job["inputs"] | outputs
            if not _declared(path, allowed, set()):
                problems.append(f"{job['rule']} {'wrote' if write else 'read'} undeclared {path}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_a_misspelt_finetune_task_stops_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    (work / "bad.yaml").write_text("datasets:\n  genomics:\n    finetune: {tasks: [lable]}\n")
    proc = snakemake(work, "-n", "finetune", "--configfile", "config/test.yaml", "bad.yaml")
    assert proc.returncode != 0
    assert (
        "sciclr: config: datasets.genomics.finetune.tasks: ['lable'] not among the configured "
        "tasks ['label']" in proc.stderr
    ), proc.stderr[-2000:]
