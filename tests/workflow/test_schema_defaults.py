"""The schema is the one source of defaults: change a default there, and the workflow and the
direct API / CLI both follow (no second copy in the code to keep in step)."""

from __future__ import annotations

import json
import re

import yaml

from sciclr.config import dataset_params, load_schema
from sciclr.train.config import TrainConfig
from tests.conftest import copy_workflow, snakemake


def _changed_schema(tmp_path) -> str:
    """A copy of the package's schema with new defaults for train.weight_decay (every domain)
    and the DNA CNN's width."""
    schema = load_schema()
    schema["$defs"]["train"]["properties"]["weight_decay"]["default"] = 0.000123
    dna_model = schema["$defs"]["dna_sections"]["properties"]["model"]["properties"]
    dna_model["channels"]["default"] = 24
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema, sort_keys=False))
    return str(path)


def test_a_schema_default_reaches_the_api(tmp_path, monkeypatch):
    before = dataset_params({"domain": "dna"})
    assert before["train"]["weight_decay"] != 0.000123 and before["model"]["channels"] != 24
    monkeypatch.setenv("SCICLR_SCHEMA", _changed_schema(tmp_path))
    after = dataset_params({"domain": "dna"})
    assert after["train"]["weight_decay"] == 0.000123 and after["model"]["channels"] == 24
    assert TrainConfig.from_mapping(after["train"]).weight_decay == 0.000123
    # and the CLI's model: the DNA domain builds a 24-channel CNN from the same params
    from sciclr.domains.dna.model import build_encoder

    assert build_encoder(after["model"], 0).out_dim != build_encoder(before["model"], 0).out_dim


def test_a_schema_default_reaches_the_workflow(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    env = {"SCICLR_SCHEMA": _changed_schema(tmp_path)}
    proc = snakemake(work, "-n", "-p", "--configfile", "config/test.yaml", env=env)
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stdout.splitlines() if "sciclr train --params" in line]
    assert len(commands) == 2, proc.stdout  # genomics and materials
    for line in commands:
        params = json.loads(re.search(r"--params '(\{.*?\})'", line).group(1))
        assert params["train"]["weight_decay"] == 0.000123  # neither config sets it
