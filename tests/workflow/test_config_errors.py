"""A bad config stops before any job runs, with one line naming the key or path."""

from __future__ import annotations

import pytest

from tests.conftest import copy_workflow, snakemake

CASES = {
    "misspelt key": (
        "datasets:\n  genomics:\n    train: {epoch: 3}\n",
        "datasets.genomics.train: unknown key 'epoch'",
    ),
    "wrong type": (
        "datasets:\n  materials:\n    train: {epochs: three}\n",
        "datasets.materials.train.epochs: 'three' is not of type integer",
    ),
    "bad enum": (
        "device: gpu\n",
        "device: 'gpu' is not one of",
    ),
    "domain-specific key": (
        "datasets:\n  materials:\n    preprocess: {cutof: 5}\n",
        "datasets.materials.preprocess: unknown key 'cutof'",
    ),
    "missing data file": (
        "datasets:\n  genomics:\n    labels: resources/dna/tiny/nothere.tsv\n",
        "datasets.genomics.labels: file not found: resources/dna/tiny/nothere.tsv",
    ),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("cfg"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_stops_with_one_line(work, case):
    overlay, expected = CASES[case]
    (work / "bad.yaml").write_text(overlay)
    proc = snakemake(work, "-n", "--configfile", "config/test.yaml", "bad.yaml")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("sciclr: config:")]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (work / "results").exists()


def test_good_config_dry_run(work):
    proc = snakemake(work, "-n", "--configfile", "config/test.yaml")
    assert proc.returncode == 0, proc.stderr
    for rule in ("preprocess_shard", "gather", "train", "embed", "probe", "cluster", "report"):
        assert rule in proc.stdout
