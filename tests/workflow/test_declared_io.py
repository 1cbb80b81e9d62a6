"""Every file a rule's command touches under results/ is declared by that rule.

The tiny end-to-end run records, for each job's Python process, the files it opened (see
``tests/workflow/io_audit/sitecustomize.py``); Snakemake's own records
(``.snakemake/metadata``) give each job's declared inputs, outputs, log and params. A read must be
a declared input (or the job's own output), a write a declared output or log (a file inside a
declared ``directory()`` input or output counts); the only other files a job may touch are those its rule
names in ``params:`` (the training resume state). Temporary siblings of atomic writes
(``.<name>.<random>.tmp``) are judged by the file they are renamed to.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TMP = re.compile(r"^\..+\.[^.]+\.tmp$")


def _jobs(work: Path) -> dict[str, dict]:
    """Declared files per job, keyed by the job's log file (absolute path)."""
    by_hash: dict[int, dict] = defaultdict(lambda: {"outputs": set()})
    for meta in (work / ".snakemake" / "metadata").iterdir():
        record = json.loads(meta.read_text())
        output = base64.b64decode(meta.name).decode()
        job = by_hash[record["job_hash"]]
        job["outputs"].add(str((work / output).resolve()))
        job["rule"] = record["rule"]
        job["inputs"] = {str((work / p).resolve()) for p in record["input"]}
        job["logs"] = {str((work / p).resolve()) for p in record["log"]}
        words = " ".join(record["params"]).replace("'", " ").split()
        job["params"] = {str((work / w).resolve()) for w in words if w.startswith("results/")}
    jobs = {}
    for job in by_hash.values():
        for log in job["logs"]:
            jobs[log] = job
    return jobs


def _accesses(work: Path) -> dict[str, list[tuple[str, bool]]]:
    """Files under results/ each job's processes opened, keyed by the job's log file."""
    results = str((work / "results").resolve())
    out: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for path in (work / ".io_audit").glob("*.jsonl"):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        stdout = lines[0]["stdout"]
        if not stdout.startswith(str((work / "results" / "logs").resolve())):
            continue  # not a rule's command (Snakemake itself, a helper process)
        for rec in lines[1:]:
            if rec["path"].startswith(results + "/"):
                out[stdout].append((rec["path"], rec["write"]))
    return out


def _declared(path: str, names: set[str], dirs: set[str]) -> bool:
    p = Path(path)
    if TMP.match(p.name):  # atomic write: the rename onto the final name is what counts
        return True
    return path in names or any(path.startswith(d + "/") for d in dirs)


def test_every_touched_file_is_declared(tiny_run):
    jobs, accesses = _jobs(tiny_run), _accesses(tiny_run)
    assert len(accesses) >= 20, f"too few audited jobs: {sorted(accesses)}"
    rules_seen = {jobs[log]["rule"] for log in accesses if log in jobs}
    assert {"parse_shard", "preprocess_shard", "gather", "train", "embed", "report"} <= rules_seen
    problems = []
    for log, files in sorted(accesses.items()):
        job = jobs.get(log)
        assert job is not None, f"{log}: a process wrote to a log no job declares"
        outputs = job["outputs"] | job["logs"]
        dirs = {o for o in job["outputs"] if Path(o).is_dir()}
        in_dirs = {i for i in job["inputs"] if Path(i).is_dir()}  # a directory() input
        # params name the resume state; a params folder that holds declared outputs is no licence
        named = {p for p in job["params"] if not any(o.startswith(p + "/") for o in outputs)}
        for path, write in files:
            allowed = outputs | named if write else job["inputs"] | outputs | named
            prefixes = dirs | {p for p in named if Path(p).is_dir()} | (set() if write else in_dirs)
            if not _declared(path, allowed, prefixes):
                what = "wrote" if write else "read"
                problems.append(f"{job['rule']} ({Path(log).name}) {what} undeclared {path}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_the_audit_sees_reads_and_writes(tiny_run):
    """The check is only as good as the recording: the train job's own files must be in it."""
    accesses = _accesses(tiny_run)
    train = next(v for k, v in accesses.items() if k.endswith("genomics/train_ssl.log"))
    paths = {(Path(p).name, w) for p, w in train}
    assert ("data.pt", False) in paths and ("records.tsv", False) in paths
    assert ("checkpoint.pt", True) in paths and ("last.pt", True) in paths
