"""Shared fixtures: the repository root and a tiny end-to-end run of the workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def copy_workflow(dest: Path, with_tiny_data: bool = True) -> Path:
    """A runnable copy of the workflow (Snakefile, workflow/, config/) plus the tiny data."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    shutil.copy(REPO / "environment.yml", dest / "environment.yml")
    shutil.copytree(REPO / "workflow", dest / "workflow")
    shutil.copytree(REPO / "config", dest / "config")
    if with_tiny_data:
        for domain in ("dna", "materials"):
            shutil.copytree(
                REPO / "resources" / domain / "tiny", dest / "resources" / domain / "tiny"
            )
    return dest


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with this interpreter's environment (plus ``env``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


IO_AUDIT = REPO / "tests" / "workflow" / "io_audit"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole workflow on the tiny data (config/test.yaml), run once per test session.

    Every job's Python process records the files it opens into ``.io_audit/`` (see
    ``tests/workflow/io_audit/sitecustomize.py``), for the declared-I/O test.
    """
    work = copy_workflow(tmp_path_factory.mktemp("tiny_run"))
    (work / ".io_audit").mkdir()
    audit = {
        "SCICLR_IO_AUDIT": str(work / ".io_audit"),
        "PYTHONPATH": os.pathsep.join(
            [str(IO_AUDIT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    proc = snakemake(work, "--cores", "2", "--configfile", "config/test.yaml", env=audit)
    if proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}"
            for p in sorted((work / "results" / "logs").rglob("*.log"))
        )
        pytest.fail(f"tiny workflow run failed:\n{proc.stderr[-5000:]}\n{logs}")
    return work
