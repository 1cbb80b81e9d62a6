"""Every job asks for memory that follows the size of its inputs (`resources: mem_mb`).

A SLURM job gets what it asks for, so a request fixed at the config's floor would be wrong at
every scale but one. The plans below are dry runs of the tiny config with the floors lowered to
100 MB: every job must ask for more than the floor (each rule has a measured model, MEM_MODEL
in workflow/rules/common.smk), and a larger input must raise the request of the jobs reading it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_workflow, planned_jobs

FLOOR = 100
TARGETS = ("all", "finetune")  # rules that only name files
PLAN = "config/plan.yaml"


def _plan(work: Path, config: dict) -> dict[tuple[str, str], int]:
    """``{(rule, wildcards): mem_mb}`` of a dry run of the default and `finetune` targets."""
    (work / PLAN).write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work, "--cores", "2", *TARGETS, "--configfile", PLAN)
    return {(rule, wc): int(res["mem_mb"]) for rule, wc, res in jobs if rule not in TARGETS}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("resources"))


@pytest.fixture(scope="module")
def config(work) -> dict:
    cfg = yaml.safe_load((work / "config" / "test.yaml").read_text())
    for step in cfg["compute"].values():
        step["mem_mb"] = FLOOR
    return cfg


def test_every_job_asks_for_its_measured_need_not_the_floor(work, config):
    plan = _plan(work, config)
    rules = {rule for rule, _ in plan}
    assert {"preprocess_shard", "train", "embed", "probe", "figures", "report"} <= rules
    assert {"finetune_run", "finetune_summary"} <= rules
    at_floor = sorted(rule for (rule, _), mem in plan.items() if mem <= FLOOR)
    assert not at_floor, f"jobs asking for the bare floor: {at_floor}"


def test_a_larger_input_raises_the_request_of_the_jobs_reading_it(work, config):
    small = _plan(work, config)
    # 40 MB of FASTA: 20,000 records of 2 kb with unique ids (the plan reads only the size)
    big = work / "resources" / "dna" / "big.fasta"
    record = "ACGT" * 500
    big.write_text("".join(f">r{i}\n{record}\n" for i in range(20_000)))
    size_mb = big.stat().st_size / 2**20
    grown = dict(config, datasets=dict(config["datasets"]))
    grown["datasets"]["genomics"] = dict(grown["datasets"]["genomics"], input=str(big))
    large = _plan(work, grown)
    shard = [key for key in small if key[0] == "preprocess_shard" and "ds=genomics" in key[1]]
    assert shard
    for key in shard:
        # every DNA shard parses the whole file: at least 5 MB more per MB of FASTA
        assert large[key] - small[key] >= 5 * size_mb, (key, small[key], large[key])
    untouched = [key for key in small if "ds=materials" in key[1]]
    assert untouched and all(large[key] == small[key] for key in untouched)
