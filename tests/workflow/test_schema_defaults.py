"""The workflow schema and the package state the same defaults.

The workflow fills defaults from ``workflow/schemas/config.schema.yaml``; the package repeats them
so that its API and CLI work with partial configs. These tests fail as soon as the two drift, so a
default changed in one place only cannot make the workflow and the API train different models.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from sciclr.analysis.spec import ANALYSIS_DEFAULTS
from sciclr.data.dna import PREPROCESS_DEFAULTS as DNA_PREPROCESS_DEFAULTS
from sciclr.domains import dna, materials
from sciclr.train.config import TrainConfig

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def _defaults(properties: dict[str, Any]) -> dict[str, Any]:
    return {k: v["default"] for k, v in properties.items() if "default" in v}


def _section(domain: str, key: str) -> dict[str, Any]:
    return _schema()["$defs"][f"{domain}_sections"]["properties"][key]["properties"]


@pytest.mark.parametrize(
    ("domain", "key", "package"),
    [
        ("dna", "model", dna.MODEL_DEFAULTS),
        ("dna", "views", dna.VIEW_DEFAULTS),
        ("materials", "model", materials.MODEL_DEFAULTS),
        ("materials", "views", materials.VIEW_DEFAULTS),
    ],
)
def test_domain_sections_match(domain: str, key: str, package: dict[str, Any]) -> None:
    props = _section(domain, key)
    assert set(props) == set(package), f"{domain}.{key}: keys differ"
    assert _defaults(props) == package


def test_dna_preprocess_matches() -> None:
    schema = _defaults(_section("dna", "preprocess"))
    schema.pop("shards")  # a workflow-only key: the number of parallel jobs
    schema["kmer_k"] = _defaults(_section("dna", "baselines"))["kmer_k"]
    assert schema == DNA_PREPROCESS_DEFAULTS


def test_train_matches() -> None:
    props = _schema()["$defs"]["train"]["properties"]
    package = {f.name: f.default for f in fields(TrainConfig)}
    assert set(props) == set(package)
    assert _defaults(props) == package


def test_analysis_matches() -> None:
    props = _schema()["$defs"]["analysis"]["properties"]
    assert set(props) >= set(ANALYSIS_DEFAULTS)
    schema = _defaults(props)
    assert {k: schema.get(k) for k in ANALYSIS_DEFAULTS} == ANALYSIS_DEFAULTS
