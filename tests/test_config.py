"""The config module: one schema fills every default and every violation is one line naming
the key path; ``--params`` is read as JSON text or a file; the schema path can be overridden."""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from sciclr.config import (
    dataset_params,
    load_config,
    load_params,
    load_schema,
    read_yaml,
    schema_path,
    validate_config,
)
from sciclr.domains.checks import check_datasets
from sciclr.errors import SciclrError
from tests.conftest import REPO

DNA_FASTA = "resources/dna/tiny/genomics_tiny.fasta"
DNA_LABELS = "resources/dna/tiny/labels.tsv"
MAT_CSV = "resources/materials/tiny/materials.csv"


def _dna(**extra: Any) -> dict[str, Any]:
    ds = {
        "domain": "dna",
        "input": DNA_FASTA,
        "id_column": "id",
        "tasks": [{"column": "label", "type": "classification"}],
    }
    ds.update(extra)
    return ds


def _mat(**extra: Any) -> dict[str, Any]:
    ds = {
        "domain": "materials",
        "input": MAT_CSV,
        "id_column": "material_id",
        "tasks": [{"column": "formation_energy_per_atom", "type": "regression"}],
    }
    ds.update(extra)
    return ds


# --- what the schema says, read independently of the validator -----------------------------


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _defaults(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The object an empty instance of ``node`` becomes once every default is filled."""
    out: dict[str, Any] = {}
    for key, prop in node.get("properties", {}).items():
        prop = _resolve(prop, schema)
        if "default" in prop:
            value = copy.deepcopy(prop["default"])
            if isinstance(value, dict) and "properties" in prop:
                value = {**_defaults(prop, schema), **value}
            out[key] = value
    return out


def _dataset_defaults(domain: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Generic data set defaults plus the domain's own section defaults."""
    out = _defaults(schema["$defs"]["dataset"], schema)
    sections = schema["$defs"][{"dna": "dna_sections", "materials": "materials_sections"}[domain]]
    for key, prop in sections["properties"].items():
        if "properties" in prop:
            out[key] = {**out[key], **_defaults(prop, schema)}
    return out


def _leaves(d: Any) -> int:
    return sum(_leaves(v) for v in d.values()) if isinstance(d, dict) and d else 1


def _task(column: str, type_: str) -> dict[str, Any]:
    return {"column": column, "type": type_, "cluster": False, "binarize_above": None, "unit": None}


# --- validate_config: defaults ---------------------------------------------------------------


def test_validate_config_fills_every_schema_default_per_domain():
    schema = load_schema()
    config = {"device": "cpu", "datasets": {"g": _dna(), "m": _mat()}}
    assert validate_config(config) is config  # in place

    top = {**_defaults(schema, schema), "device": "cpu"}
    assert {"results", "device", "run_datasets", "compute", "temperature_sweep"} <= set(top)
    assert {k: config[k] for k in top} == top
    assert config["compute"]["train"] == {
        "threads": 2,
        "mem_mb": 1000,
        "mem_mb_per_input_mb": None,
        "runtime": 60,
        "gpus": 0,
    }

    for name, domain, user in (("g", "dna", _dna()), ("m", "materials", _mat())):
        expected = _dataset_defaults(domain, schema)
        assert _leaves(expected) > 80  # the helper really read the schema
        expected.update(user)
        expected.update(
            input=[user["input"]],
            name=name,
            device="cpu",
            tasks=[_task(t["column"], t["type"]) for t in user["tasks"]],
        )
        assert config["datasets"][name] == expected


def test_domain_sections_never_leak_into_the_other_domain():
    config = validate_config({"datasets": {"g": _dna(), "m": _mat()}})
    g, m = config["datasets"]["g"], config["datasets"]["m"]
    # same section names, domain-specific contents
    assert g["preprocess"]["min_length"] == 100 and "cutoff" not in g["preprocess"]
    assert m["preprocess"]["cutoff"] == 6.0 and "min_length" not in m["preprocess"]
    assert m["preprocess"]["xrd"]["bins"] == 320 and "xrd" not in g["preprocess"]
    assert g["baselines"] == {"kmer_k": [4, 6]} and m["baselines"] == {}
    assert g["model"]["pairing"] == "kmer" and m["model"]["pairing"] == ["composition", "xrd"]
    assert "encoder" not in m["model"] and "hidden" not in g["model"]
    assert "atom_mask" not in g["views"] and "crop_min" not in m["views"]


def test_user_values_win_and_empty_sections_mean_defaults():
    config = validate_config(
        {
            "datasets": {
                "g": _dna(preprocess={"min_length": 200}, train=None, input=[DNA_FASTA, "b.fa"])
            }
        }
    )
    g = config["datasets"]["g"]
    assert g["preprocess"]["min_length"] == 200 and g["preprocess"]["max_length"] == 4096
    assert g["train"]["epochs"] == 10 and g["train"]["lr"] == 0.001
    assert g["input"] == [DNA_FASTA, "b.fa"]
    assert g["name"] == "g" and g["device"] == "auto"  # the global default device


def test_two_data_sets_never_share_a_default_object():
    config = validate_config({"datasets": {"a": _dna(), "b": _dna()}})
    a, b = config["datasets"]["a"], config["datasets"]["b"]
    before = copy.deepcopy(b)
    a["model"]["dilations"].append(99)
    a["train"]["lr"] = 0.5
    a["split_fractions"]["train"] = 0.1
    a["analysis"]["probes"].append("rf")
    a["baselines"]["kmer_k"].clear()
    assert b == before
    # nor with the schema's cached copy: a later config still gets the pristine defaults
    again = validate_config({"datasets": {"c": _dna()}})["datasets"]["c"]
    assert again["model"]["dilations"] == [1, 2, 4, 8]
    assert again["analysis"]["probes"] == ["linear", "knn"]
    assert again["split_fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}


def test_load_schema_returns_a_copy():
    schema = load_schema()
    schema["properties"]["device"]["default"] = "cuda"
    assert load_schema()["properties"]["device"]["default"] == "auto"
    assert validate_config({"datasets": {"g": _dna()}})["device"] == "auto"


# --- validate_config: one-line errors ---------------------------------------------------------

ERRORS = {
    "unknown key": (
        {"datasets": {"g": _dna(train={"epoch": 3})}},
        "config: datasets.g.train: unknown key 'epoch'; allowed keys: ['amp', 'batch_size'",
    ),
    "unknown top-level key": (
        {"resluts": "x", "datasets": {"g": _dna()}},
        "config: (top level): unknown key 'resluts'; allowed keys: ['compute', 'datasets', "
        "'device', 'results', ",
    ),
    "materials key in a dna data set": (
        {"datasets": {"g": _dna(preprocess={"cutoff": 5.0})}},
        "config: datasets.g.preprocess: unknown key 'cutoff'; allowed keys: ['max_length', "
        "'max_n_fraction', 'min_length', 'shards', 'token_k']",
    ),
    "dna key in a materials data set": (
        {"datasets": {"m": _mat(baselines={"kmer_k": [4]})}},
        "config: datasets.m.baselines: unknown key 'kmer_k'; allowed keys: []",
    ),
    "wrong type": (
        {"datasets": {"g": _dna(train={"epochs": "three"})}},
        "config: datasets.g.train.epochs: 'three' is not of type integer",
    ),
    "enum": (
        {"device": "gpu", "datasets": {"g": _dna()}},
        "config: device: 'gpu' is not one of ['auto', 'cpu', 'cuda']",
    ),
    "domain enum": (
        {"datasets": {"g": _dna(model={"encoder": "rnn"})}},
        "config: datasets.g.model.encoder: 'rnn' is not one of ['cnn', 'transformer']",
    ),
    "oneOf (materials pairing)": (
        {"datasets": {"m": _mat(model={"pairing": "smiles"})}},
        "config: datasets.m.model.pairing: 'smiles' is not valid; expected one of ['augment', "
        "'composition', 'xrd'] or a list of ['augment', 'composition', 'xrd']",
    ),
    "oneOf (dna rc_invariant)": (
        {"datasets": {"g": _dna(model={"rc_invariant": "yes"})}},
        "config: datasets.g.model.rc_invariant: 'yes' is not valid; expected boolean or one of "
        "['embed']",
    ),
    "list item of a task": (
        {"datasets": {"g": _dna(tasks=[{"column": "label", "type": "ranking"}])}},
        "config: datasets.g.tasks.0.type: 'ranking' is not one of ['classification', 'regression']",
    ),
    "missing required key": (
        {"datasets": {"g": {k: v for k, v in _dna().items() if k != "id_column"}}},
        "config: datasets.g: 'id_column' is a required property",
    ),
    "minimum": (
        {"datasets": {"g": _dna(train={"batch_size": 1})}},
        "config: datasets.g.train.batch_size: 1 is less than the minimum of 2",
    ),
    "bad data set name": (
        {"datasets": {"1st": _dna()}},
        "config: datasets: '1st' does not match",
    ),
    "no data set": ({"datasets": {}}, "config: datasets: {} should be non-empty"),
    "run_datasets names an unknown data set": (
        {"run_datasets": ["g", "x"], "datasets": {"g": _dna()}},
        "config: run_datasets: ['x'] not among the data sets ['g']",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_violations_are_one_line_naming_the_key_path(case):
    config, expected = ERRORS[case]
    with pytest.raises(SciclrError) as err:
        validate_config(copy.deepcopy(config))
    msg = str(err.value)
    assert msg.startswith(expected), msg
    assert "\n" not in msg
    assert "YAML reads a number" not in msg


def test_a_yaml_exponent_without_decimal_point_is_explained(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "datasets:\n  g:\n    domain: dna\n    input: x.fa\n    id_column: id\n"
        "    tasks: [{column: label, type: classification}]\n    train: {lr: 2e-3}\n"
    )
    raw = read_yaml(tmp_path / "c.yaml")
    assert raw["datasets"]["g"]["train"]["lr"] == "2e-3"  # the YAML 1.1 pitfall itself
    with pytest.raises(SciclrError) as err:
        validate_config(raw)
    msg = str(err.value)
    assert msg.startswith("config: datasets.g.train.lr: '2e-3' is not of type number (")
    assert "2.0e-3 or 0.002" in msg and "\n" not in msg
    # the same value written with a decimal point is a number
    raw["datasets"]["g"]["train"]["lr"] = yaml.safe_load("lr: 2.0e-3")["lr"]
    assert validate_config(raw)["datasets"]["g"]["train"]["lr"] == 0.002


# --- dataset_params ---------------------------------------------------------------------------


def test_dataset_params_partial_gets_the_workflow_defaults():
    out = dataset_params({"domain": "dna"})
    full = validate_config({"datasets": {"g": _dna()}})["datasets"]["g"]
    for key in ("preprocess", "baselines", "views", "model", "train", "analysis"):
        assert out[key] == full[key], key
    assert out["device"] == "auto" and out["split_fractions"] == full["split_fractions"]
    assert "input" not in out and "tasks" not in out and "name" not in out


def test_dataset_params_required():
    with pytest.raises(SciclrError, match=r"^params: \(top level\): 'domain' is a required"):
        dataset_params({})
    out = dataset_params({}, required=())
    assert out["analysis"]["bootstrap"] == 1000 and out["train"]["epochs"] == 10
    assert out["preprocess"] == {} and out["model"] == {}  # no domain, no domain sections
    with pytest.raises(SciclrError, match=r"^params: \(top level\): 'input' is a required"):
        dataset_params({"domain": "dna"}, required=("domain", "input"))


def test_dataset_params_errors_name_the_data_set():
    with pytest.raises(SciclrError) as err:
        dataset_params({"name": "gx", "domain": "dna", "train": {"epoch": 1}})
    assert str(err.value).startswith("params of 'gx': train: unknown key 'epoch'; allowed keys:")
    with pytest.raises(SciclrError, match=r"^params: model\.pairing: 'smiles' is not valid"):
        dataset_params({"domain": "materials", "model": {"pairing": "smiles"}})
    with pytest.raises(SciclrError, match=r"^params: expected a mapping, got list$"):
        dataset_params([("domain", "dna")])


def test_dataset_params_plug_in_domain():
    out = dataset_params(
        {"domain": "tests.train.synthetic_domain:DOMAIN", "preprocess": {"anything": 1}}
    )
    assert out["preprocess"] == {"anything": 1}  # its sections are only checked to be mappings
    assert out["train"]["epochs"] == 10  # the generic sections are still filled
    with pytest.raises(SciclrError, match=r"^params: preprocess: 3 is not of type object$"):
        dataset_params({"domain": "pkg.mod:DOMAIN", "preprocess": 3})
    with pytest.raises(SciclrError, match=r"^params: train: unknown key 'epoch'"):
        dataset_params({"domain": "pkg.mod:DOMAIN", "train": {"epoch": 1}})
    with pytest.raises(SciclrError, match=r"^params: domain: "):
        dataset_params({"domain": "no domain"})


def test_dataset_params_leaves_its_input_alone_and_is_idempotent():
    params = {"domain": "materials", "input": MAT_CSV, "train": {"epochs": 2}, "model": None}
    frozen = copy.deepcopy(params)
    out = dataset_params(types.MappingProxyType(params))
    assert params == frozen
    assert out["input"] == [MAT_CSV] and out["model"]["hidden"] == 128
    out["train"]["lr"] = 9.0
    assert "lr" not in params["train"]
    again = dataset_params(dataset_params(params))
    assert again == dataset_params(params)


def test_dataset_params_of_a_validated_data_set_changes_nothing():
    """What the workflow hands a step via --params is already complete."""
    config = validate_config({"device": "cpu", "datasets": {"g": _dna(), "m": _mat()}})
    for ds in config["datasets"].values():
        assert dataset_params(json.loads(json.dumps(ds))) == ds


# --- read_yaml, load_config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("a: 1\nb: c: d\n", "2:5", "mapping values are not allowed here"),
        ("a: 1\nb: [1, 2\nc: 3\n", "3:2", "expected ',' or ']', but got ':'"),
    ],
)
def test_read_yaml_syntax_error_names_file_line_column(tmp_path, text, where, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SciclrError) as err:
        read_yaml(path)
    assert str(err.value) == f"{path}:{where}: YAML syntax error: {problem}"


def test_read_yaml_empty_list_and_missing(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "comments.yaml").write_text("# nothing here\n\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert read_yaml(tmp_path / "empty.yaml") == {}
    assert read_yaml(tmp_path / "comments.yaml") == {}
    with pytest.raises(SciclrError) as err:
        read_yaml(tmp_path / "list.yaml")
    assert str(err.value) == f"{tmp_path / 'list.yaml'}: expected a mapping of keys, got list"
    with pytest.raises(SciclrError, match=r"nothere\.yaml: cannot read"):
        read_yaml(tmp_path / "nothere.yaml")


def test_load_config_merges_overlays_like_snakemake(tmp_path, monkeypatch):
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "device": "cpu",
                "datasets": {
                    "g": _dna(
                        labels=DNA_LABELS,
                        split_column="split",
                        train={"epochs": 2, "batch_size": 32},
                        model={"channels": 16},
                    )
                },
            }
        )
    )
    one = tmp_path / "one.yaml"
    one.write_text(
        "results: out1\n"
        "datasets:\n  g:\n    train: {epochs: 5}\n    model: {blocks: 3}\n"
        f"  m:\n    domain: materials\n    input: {MAT_CSV}\n    id_column: material_id\n"
        "    tasks: [{column: band_gap, type: regression}]\n"
    )
    two = tmp_path / "two.yaml"
    two.write_text(
        "results: out2\ndatasets:\n  g:\n    train: {epochs: 7}\n"
        "    tasks: [{column: phylum, type: classification}]\n"
    )
    monkeypatch.chdir(REPO)
    config = load_config(base, one, two)
    g = config["datasets"]["g"]
    assert config["results"] == "out2" and config["device"] == "cpu"
    assert g["train"]["epochs"] == 7  # the last file wins
    assert g["train"]["batch_size"] == 32  # nested keys of earlier files survive
    assert g["model"]["channels"] == 16 and g["model"]["blocks"] == 3
    assert g["train"]["lr"] == 0.001  # then defaults are filled
    assert g["tasks"] == [_task("phylum", "classification")]  # a list is replaced, not appended
    assert g["labels"] == DNA_LABELS and g["input"] == [DNA_FASTA]
    assert config["datasets"]["m"]["domain"] == "materials"  # an overlay may add a data set
    assert config["datasets"]["m"]["device"] == "cpu"
    assert read_yaml(base)["datasets"]["g"]["train"] == {"epochs": 2, "batch_size": 32}


def test_load_config_validates_but_leaves_inputs_to_check_datasets(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"datasets": {"g": _dna(input="nothere.fa")}}))
    assert load_config(cfg)["datasets"]["g"]["input"] == ["nothere.fa"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  g:\n    train: {epoch: 1}\n")
    with pytest.raises(SciclrError, match=r"^config: datasets\.g\.train: unknown key 'epoch'"):
        load_config(cfg, bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("datasets:\n  g: [\n")
    with pytest.raises(SciclrError, match=rf"^{broken}:3:1: YAML syntax error"):
        load_config(cfg, broken)


# --- load_params ------------------------------------------------------------------------------


def test_load_params_forms(tmp_path, monkeypatch):
    obj = {"domain": "dna", "train": {"epochs": 3}}
    assert load_params(json.dumps(obj)) == obj
    assert load_params("  \n" + json.dumps(obj)) == obj
    path = tmp_path / "p.json"
    path.write_text(json.dumps(obj))
    assert load_params(f"@{path}") == obj
    assert load_params(str(path)) == obj
    monkeypatch.chdir(tmp_path)
    assert load_params("@p.json") == obj and load_params("p.json") == obj
    given = {"domain": "dna"}
    copied = load_params(given)
    assert copied == given and copied is not given
    copied["x"] = 1
    assert "x" not in given


def test_load_params_errors(tmp_path):
    with pytest.raises(SciclrError, match=r"^--params: invalid JSON \(Expecting"):
        load_params('{"domain": ')
    with pytest.raises(SciclrError, match=r"^--params nothere\.json: neither a JSON object nor"):
        load_params("nothere.json")
    with pytest.raises(SciclrError, match=r"^--params \[1, 2\]: neither a JSON object nor"):
        load_params("[1, 2]")
    bad = tmp_path / "bad.json"
    bad.write_text("{'single': 'quotes'}")
    with pytest.raises(SciclrError) as err:
        load_params(f"@{bad}")
    assert str(err.value).startswith(f"{bad}: invalid JSON (")
    with pytest.raises(SciclrError, match=r"^--inputs x\.json: neither a JSON object nor"):
        load_params("x.json", option="--inputs")
    with pytest.raises(SciclrError, match=r"^--inputs: invalid JSON"):
        load_params("{", option="--inputs")
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(SciclrError) as err:
        load_params(str(lst))
    assert str(err.value) == f"{lst}: expected a JSON object, got list"


# --- the input check (was config.check_inputs; now sciclr.domains.checks.check_datasets) ------


def test_check_datasets_names_the_missing_file(tmp_path, monkeypatch):
    (tmp_path / "a.fa").write_text(">x\nACGTACGT\n")
    (tmp_path / "labels.tsv").write_text("id\tlabel\nx\tA\n")
    config = validate_config(
        {
            "datasets": {
                "g": _dna(input=["a.fa", "b.fa"], labels="labels.tsv"),
                "h": _dna(input="a.fa", labels="nolabels.tsv"),
            }
        }
    )
    with pytest.raises(SciclrError) as err:
        check_datasets(config, tmp_path)
    assert str(err.value) == "config: datasets.g.input: file not found: b.fa"

    (tmp_path / "b.fa").write_text(">y\nACGTACGT\n")
    with pytest.raises(SciclrError) as err:
        check_datasets(config, tmp_path)
    assert str(err.value) == "config: datasets.h.labels: file not found: nolabels.tsv"
    config["datasets"]["h"]["labels"] = "labels.tsv"
    check_datasets(config, tmp_path)  # everything there
    # without base, paths are relative to the working directory
    monkeypatch.chdir(REPO)
    with pytest.raises(SciclrError, match=r"^config: datasets\.g\.input: file not found: a\.fa$"):
        check_datasets(config)
    monkeypatch.chdir(tmp_path)
    check_datasets(config)


# --- SCICLR_SCHEMA ----------------------------------------------------------------------------


def _schema_copy(path: Path, epochs: int, extra_device: str | None = None) -> Path:
    schema = load_schema()
    schema["$defs"]["train"]["properties"]["epochs"]["default"] = epochs
    schema["$defs"]["dna_sections"]["properties"]["preprocess"]["properties"]["min_length"][
        "default"
    ] = epochs * 10
    if extra_device:
        schema["properties"]["device"]["enum"].append(extra_device)
    path.write_text(yaml.safe_dump(schema, sort_keys=False, allow_unicode=True))
    return path


def test_sciclr_schema_overrides_the_schema(tmp_path, monkeypatch):
    packaged = schema_path()
    assert packaged.name == "config.schema.yaml" and packaged.exists()
    with pytest.raises(SciclrError, match=r"device: 'mps' is not one of"):
        validate_config({"device": "mps", "datasets": {"g": _dna()}})

    first = _schema_copy(tmp_path / "one.yaml", 7, extra_device="mps")
    second = _schema_copy(tmp_path / "two.yaml", 8)
    monkeypatch.setenv("SCICLR_SCHEMA", str(first))
    assert schema_path() == first
    config = validate_config({"device": "mps", "datasets": {"g": _dna()}})
    assert config["datasets"]["g"]["train"]["epochs"] == 7
    assert config["datasets"]["g"]["preprocess"]["min_length"] == 70
    assert config["datasets"]["g"]["device"] == "mps"
    assert dataset_params({"domain": "dna"})["train"]["epochs"] == 7

    # a new path is read fresh (the parsed schema is cached per path)
    monkeypatch.setenv("SCICLR_SCHEMA", str(second))
    assert dataset_params({"domain": "dna"})["train"]["epochs"] == 8
    assert dataset_params({"domain": "dna"})["preprocess"]["min_length"] == 80
    with pytest.raises(SciclrError, match=r"device: 'mps' is not one of"):
        validate_config({"device": "mps", "datasets": {"g": _dna()}})

    monkeypatch.delenv("SCICLR_SCHEMA")
    assert schema_path() == packaged
    assert dataset_params({"domain": "dna"})["train"]["epochs"] == 10
