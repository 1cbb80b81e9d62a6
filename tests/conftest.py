"""Shared fixtures: the repository root and a tiny end-to-end run of the workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def strict_requirements() -> bool:
    """Under CI (``CI=true``, as ``.ci/run`` runs the suite) a missing system package is a
    failure; on a developer's machine the tests that need it skip, saying how to enable them."""
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("SCICLR_REQUIRE_CLUSTER") == "1"
    )


def require(available: bool, what: str) -> None:
    """Skip (or, under CI, fail) a test whose system prerequisite ``what`` is missing."""
    if not available:
        if strict_requirements():
            pytest.fail(f"{what} (required under CI)")
        pytest.skip(what)


#: session fixtures that run a whole workflow: every test using one (directly or through another
#: fixture) goes to the same xdist worker (``--dist loadgroup``), so each is built once
SHARED_RUNS = ("tiny_run",)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        for name in SHARED_RUNS:
            if name in item.fixturenames and not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(name))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Tests marked ``browser`` need headless Chromium (a system package): checked before any
    fixture is built, so a skip costs nothing."""
    if item.get_closest_marker("browser"):
        from sciclr.analysis.browser import find_chromium

        require(
            find_chromium() is not None,
            "chromium is not installed: apt-get install -y chromium (Debian; .ci/run installs "
            "it), or deselect with -m 'not browser'",
        )


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


PLANNED_JOB = re.compile(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", re.M)


def planned_jobs(workdir: Path, *args: str) -> list[tuple[str, str, dict[str, str]]]:
    """``(rule, wildcards, resources)`` of every job a dry run (``snakemake -n *args``) plans:
    what a cluster would be asked for, without running anything."""
    proc = snakemake(workdir, "--dry-run", *args, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = []
    for rule, block in PLANNED_JOB.findall(proc.stdout + proc.stderr):
        fields = dict(line.strip().split(": ", 1) for line in block.splitlines())
        resources = fields.get("resources", "")
        res = dict(kv.split("=", 1) for kv in resources.split(", ")) if resources else {}
        jobs.append((rule, fields.get("wildcards", ""), res))
    assert jobs
    return jobs


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
