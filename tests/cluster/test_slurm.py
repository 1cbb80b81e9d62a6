"""The workflow on a real single-node SLURM cluster, every rule submitted with sbatch (issue #6).

``local_slurm.sh`` starts munged, slurmctld and slurmd (Debian's slurm-wlm 22.05) in a private
state directory; the tests run Snakemake through ``--profile workflow/profiles/slurm`` plus the
small-node overlay ``tests/cluster/profile`` and check, through ``scontrol`` and the plugin's
per-job logs, that each job really was a SLURM job. The daemons are stopped by PID afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_workflow, require

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("slurm")]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "local_slurm.sh"
OVERLAY = HERE / "profile"
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
NEEDED = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "srun")

SUBMITTED = re.compile(
    r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", re.M
)
LOCALRULE = re.compile(r"^localrule (\w+):", re.M)


@dataclass(frozen=True)
class Cluster:
    state: Path
    env: dict[str, str]
    partition: str


def _require_slurm() -> None:
    """Skip where SLURM cannot run; under CI (CI=true or SCICLR_REQUIRE_CLUSTER=1) a failure."""
    missing = [b for b in NEEDED if shutil.which(b) is None]
    reason = ""
    if missing:
        reason = f"missing {', '.join(missing)} (apt-get install -y slurm-wlm munge)"
    elif os.geteuid() != 0:
        reason = "the local SLURM cluster needs root (slurmd starts jobs as the submitting user)"
    if reason:
        require(False, f"{reason}; or deselect with -m 'not cluster'")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left to a non-reaping init counts as gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""
    except OSError:
        return False


def _recorded_pids(state: Path) -> dict[str, int]:
    pids = state / "pids" if (state / "pids").exists() else state / "pids.stopped"
    return {
        name: int(pid) for name, pid in (line.split() for line in pids.read_text().splitlines())
    }


def _start(state: Path, cpus: int | None = None) -> Cluster:
    env = dict(os.environ, **({"LOCAL_SLURM_CPUS": str(cpus)} if cpus else {}))
    proc = subprocess.run(
        ["bash", str(SCRIPT), "start", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"local_slurm.sh start failed:\n{proc.stderr[-4000:]}")
    info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    env = dict(
        os.environ,
        SLURM_CONF=info["SLURM_CONF"],
        PATH=f"{info['LOCAL_SLURM_BIN']}{os.pathsep}{os.environ['PATH']}",
        PYTHONUNBUFFERED="1",
    )
    return Cluster(state=state, env=env, partition=info["LOCAL_SLURM_PARTITION"])


def _stop(state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "stop", str(state)], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def slurm() -> Iterator[Cluster]:
    """A running cluster for this module; its daemons are stopped by PID at the end."""
    _require_slurm()
    # short path: munge's and slurmd's unix sockets live inside it (107-byte limit)
    state = Path(tempfile.mkdtemp(prefix="sciclr-slurm.", dir="/tmp"))
    try:
        # 4 one-CPU job slots on the 2-core test machine: the jobs mostly wait (Python start-up,
        # status polls), which cuts the run time by a third; see tests/cluster/profile/
        yield _start(state, cpus=4)
    finally:
        stopped = _stop(state)
        left = [f"{n}:{p}" for n, p in _recorded_pids(state).items() if _alive(p)]
        shutil.rmtree(state, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr
        assert not left, f"daemons still running after stop: {left}"


def _scontrol_job(cluster: Cluster, job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # -o: one line of Key=Value pairs; values without spaces except Command/paths (not used)
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


def _job_stats(log: str) -> Counter:
    """The first 'Job stats' table Snakemake prints: rule -> number of jobs."""
    block = log.split("Job stats:", 1)[1].split("total", 1)[0]
    rows = (line.split() for line in block.splitlines())
    return Counter({r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()})


def _run_snakemake(cluster: Cluster, workdir: Path, *args: str, timeout: int = 1200):
    """Snakemake in the foreground; on timeout SIGINT first, which makes it scancel its jobs.

    The tiny run's 8 levels of jobs take ~5 min alone on 2 cores, each level ~15 s of work
    seen at the plugin's 30-s poll; beside the rest of the suite (3 pytest workers on the same 2
    cores) a job takes longer than that poll, and the run took over 8 min in CI. The limit only
    stops a hung run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"snakemake did not finish within {timeout} s:\n{out[-6000:]}")
    return proc.returncode, out


def test_start_and_stop_touch_only_recorded_daemons():
    """The bring-up script gives a usable node, and stop ends exactly the PIDs it recorded."""
    _require_slurm()
    state = Path(tempfile.mkdtemp(prefix="sciclr-slurm.", dir="/tmp"))
    bystander = subprocess.Popen(["sleep", "120"])  # an unrelated process that must survive
    try:
        cluster = _start(state)
        pids = _recorded_pids(state)
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
        assert all(_alive(p) for p in pids.values())
        sinfo = subprocess.run(
            ["sinfo", "-h", "-o", "%P %T %c"], env=cluster.env, capture_output=True, text=True
        ).stdout.split()
        assert sinfo[0] == f"{cluster.partition}*"  # the default partition
        assert sinfo[1] == "idle"
        assert int(sinfo[2]) == os.cpu_count()
        stopped = _stop(state)
        assert stopped.returncode == 0, stopped.stderr
        assert not any(_alive(p) for p in pids.values())
        assert bystander.poll() is None
        # a second stop is a no-op, not an error (nothing recorded as running any more)
        assert _stop(state).returncode == 0
    finally:
        _stop(state)
        bystander.kill()
        bystander.wait()
        shutil.rmtree(state, ignore_errors=True)


def test_tiny_workflow_runs_every_rule_through_sbatch(slurm, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    # one data set (the one with a parse stage) in one shard: every rule runs, and the
    # chain of jobs stays short enough for the suite's time budget
    (work / "one.yaml").write_text(
        "run_datasets: [materials]\ndatasets:\n  materials:\n    preprocess: {shards: 1}\n"
    )
    code, log = _run_snakemake(
        slurm,
        work,
        "--profile", str(SLURM_PROFILE),
        "--profile", str(OVERLAY),
        "--configfile", "config/test.yaml", "one.yaml",
    )  # fmt: skip
    assert code == 0, log[-8000:]

    stats = _job_stats(log)
    local = Counter(LOCALRULE.findall(log))
    assert set(local) <= {"all"}, f"rules run outside SLURM: {local}"
    submitted = SUBMITTED.findall(log)
    expected = sum(n for rule, n in stats.items() if rule not in local)
    assert expected > 0
    assert len(submitted) == expected, (stats, submitted)

    per_rule: Counter = Counter()
    for _, slurm_id, job_log in submitted:
        job = _scontrol_job(slurm, slurm_id)
        assert job["JobState"] == "COMPLETED", (slurm_id, job)
        assert job["Partition"] == slurm.partition
        assert Path(job["WorkDir"]).resolve() == work.resolve()
        rule = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        per_rule[rule] += 1
        if rule == "train":  # no GPU requested on the test cluster
            assert "gres/gpu" not in job["TRES"], job["TRES"]
        # the plugin's per-job log: the rule ran inside that SLURM job, through srun
        text = Path(job_log).read_text()
        assert f"rule {rule}:" in text
        assert "1 of 1 steps (100%) done" in text
        assert Path(job_log).parent.is_relative_to(work / "logs" / "slurm" / f"rule_{rule}")
    assert per_rule == Counter({r: n for r, n in stats.items() if r not in local})

    # the outputs the tiny run must produce, as in the local end-to-end test
    results = work / "results"
    assert (results / "report.html").stat().st_size > 0
    for ds in ("materials",):
        assert (results / ds / "runs" / "ssl" / "checkpoint.pt").stat().st_size > 0
        assert (results / ds / "embeddings" / "ssl.npz").stat().st_size > 0
        assert (results / ds / "metrics" / "probe.tsv").stat().st_size > 0
