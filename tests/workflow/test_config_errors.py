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
    "task column not in the label table": (
        "datasets:\n  genomics:\n    tasks: [{column: lable, type: classification}]\n",
        "datasets.genomics.tasks.0.column: column 'lable' is not in the header of "
        "resources/dna/tiny/labels.tsv",
    ),
    "wrong id column": (
        "datasets:\n  genomics:\n    id_column: accession\n",
        "datasets.genomics.id_column: column 'accession' is not in the header of "
        "resources/dna/tiny/labels.tsv",
    ),
    "wrong split column": (
        "datasets:\n  genomics:\n    split_column: fold\n",
        "datasets.genomics.split_column: column 'fold' is not in the header of",
    ),
    "folder of CIFs given to a dna data set": (
        "datasets:\n  genomics:\n    input: resources/materials/tiny/cif\n",
        "datasets.genomics.input: resources/materials/tiny/cif: is a folder; a dna data set "
        "reads FASTA or GenBank files",
    ),
    "FASTA given to a materials data set": (
        "datasets:\n  materials:\n    input: resources/dna/tiny/genomics_tiny.fasta\n",
        "datasets.materials.input: resources/dna/tiny/genomics_tiny.fasta: looks like FASTA (DNA "
        "sequences), not crystal structures",
    ),
    "a number YAML reads as text": (
        "datasets:\n  genomics:\n    train: {lr: 2e-3}\n",
        "datasets.genomics.train.lr: '2e-3' is not of type number (YAML reads a number without "
        "a decimal point before the exponent, such as 2e-3, as text: write 2.0e-3 or 0.002)",
    ),
    "materials tasks without labels": (
        "datasets:\n  materials:\n    input: resources/materials/tiny/cif\n",
        "datasets.materials.labels: the tasks need a label table",
    ),
    "unknown data set to run": (
        "run_datasets: [genomcs]\n",
        "run_datasets: ['genomcs'] not among the data sets",
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


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    work = copy_workflow(tmp_path / "yaml")
    text = (work / "config/config.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text) if t.strip().startswith("epochs:"))
    text[line] = text[line].replace("epochs:", "epochs: [10", 1)  # an unclosed bracket
    (work / "config/config.yaml").write_text("\n".join(text) + "\n")
    proc = snakemake(work, "-n")
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() if x.startswith("sciclr: config/config.yaml:")]
    assert len(lines) == 1 and "YAML syntax error" in lines[0], proc.stderr
    row = int(lines[0].split(":")[2])
    assert line + 1 <= row <= line + 3  # the parser notices within a line or two
    assert not (work / "results").exists()


def test_run_datasets_runs_only_the_named_data_set(work):
    (work / "only.yaml").write_text("run_datasets: [materials]\n")
    proc = snakemake(work, "-n", "--configfile", "config/test.yaml", "only.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "ds=materials" in proc.stdout and "ds=genomics" not in proc.stdout


def test_good_config_dry_run(work):
    proc = snakemake(work, "-n", "--configfile", "config/test.yaml")
    assert proc.returncode == 0, proc.stderr
    for rule in ("preprocess_shard", "gather", "train", "embed", "probe", "cluster", "report"):
        assert rule in proc.stdout
