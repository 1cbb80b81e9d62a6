"""The Snakemake profiles resolve to the intended per-job resources (dry runs, no cluster).

The cluster test replaces the SLURM profile's resource keys with small-node values, so what the
profile itself asks of a real cluster (a GPU for ``train``, CPUs following ``threads``) is
checked here, on the job plans Snakemake prints for the tiny config.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, copy_workflow, planned_jobs

PROFILES = REPO / "workflow" / "profiles"
OVERLAY = Path(__file__).resolve().parent / "profile"


def _plan(work: Path, *profiles: Path) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job of a dry run on the tiny config."""
    args = [arg for p in profiles for arg in ("--profile", str(p))]
    jobs = planned_jobs(work, "--cores", "64", *args, "--configfile", "config/test.yaml")
    return [(rule, res) for rule, _, res in jobs]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    return copy_workflow(tmp_path_factory.mktemp("profiles"))


def test_slurm_profile_gives_train_a_gpu_and_cpus_from_threads(work):
    jobs = _plan(work, PROFILES / "slurm")
    train = [res for rule, res in jobs if rule == "train"]
    assert train
    for res in train:
        assert res["gpu"] == "1"
        assert res["cpus_per_task"] == "8"  # set-threads: train: 8
        assert res["mem_mb"] == "32000"
        assert res["runtime"] == "720"
    for rule, res in jobs:
        if rule not in ("train", "all"):
            assert "gpu" not in res, rule
            # config/test.yaml asks for 1 thread everywhere; cpus_per_task follows threads
            assert res["cpus_per_task"] == "1", (rule, res)


def test_cluster_overlay_fits_one_small_cpu_node(work):
    jobs = _plan(work, PROFILES / "slurm", OVERLAY)
    for rule, res in jobs:
        if rule == "all":
            continue
        assert res["slurm_partition"] == "sciclr-test"
        assert res["cpus_per_task"] == "1", (rule, res)
        assert int(res["mem_mb"]) <= 2000, (rule, res)
        if rule == "train":
            assert res["gpu"] == "0"


def test_local_profile_plans_the_whole_workflow(work):
    jobs = _plan(work, PROFILES / "local")
    assert {"preprocess_shard", "train", "embed", "probe", "report"} <= {r for r, _ in jobs}
