"""Configuration: one JSON schema, shipped with the package, holds every key, type and default.

``src/sciclr/schemas/config.schema.yaml`` is the single source of truth. The same validator
serves both ways in:

* :func:`validate_config` — the whole workflow config (the Snakefile calls it once): checks it,
  fills every default in place and gives each data set its ``name`` and ``device``;
* :func:`dataset_params` — one data set's section as a ``sciclr`` verb or a notebook receives it
  (``--params``; possibly only the sections a step reads): the same checks, the same defaults.

Validation happens here and nowhere else: code below this module reads filled-in values and does
not re-check what the schema states. A violation is one line naming the key path and what was
expected (``jsonschema.exceptions.best_match`` picks the error).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sciclr.errors import SciclrError

__all__ = [
    "SECTIONS",
    "dataset_params",
    "load_config",
    "load_params",
    "load_schema",
    "read_yaml",
    "schema_path",
    "validate_config",
]

#: A data set's sub-sections; ``train:`` left empty in YAML (None) means "all defaults".
SECTIONS = ("preprocess", "baselines", "views", "model", "train", "analysis")
#: text YAML 1.1 does not read as a number although it is one: an exponent without a dot
_EXPONENT_TEXT = re.compile(r"^[-+]?(\d+|\.\d+)[eE][-+]?\d+$")


def schema_path() -> Path:
    """The schema file inside the installed package (``$SCICLR_SCHEMA`` overrides it: tests)."""
    env = os.environ.get("SCICLR_SCHEMA")
    if env:
        return Path(env)
    return Path(str(resources.files("sciclr") / "schemas" / "config.schema.yaml"))


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def load_schema() -> dict[str, Any]:
    """The parsed schema (a fresh copy: callers may not change the cached one)."""
    return copy.deepcopy(_load_schema(str(schema_path())))


def _filling_validator(schema: Mapping[str, Any]):
    """A Draft 2020-12 validator that also inserts each missing property's ``default``.

    Defaults are deep copies (two data sets never share one default dict); objects inserted
    this way are then validated, so their own defaults are filled too. The schema puts every
    default on plain ``properties`` (never inside ``oneOf``/``anyOf`` branches), so a branch
    that fails cannot leave a default behind.
    """
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties(validator, props, instance, sub):
        if validator.is_type(instance, "object"):
            for key, prop in props.items():
                if key not in instance and isinstance(prop, Mapping) and "default" in prop:
                    instance[key] = copy.deepcopy(prop["default"])
        yield from check_properties(validator, props, instance, sub)

    cls = validators.extend(Draft202012Validator, {"properties": properties})
    return cls(schema)


def _format_error(err: Any, prefix: str) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    head = f"{prefix}: {path}"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return f"{head}: unknown key {', '.join(map(repr, extra))}; allowed keys: {allowed}"
    if err.validator == "enum":
        return f"{head}: {err.instance!r} is not one of {err.validator_value}"
    if err.validator in ("oneOf", "anyOf"):
        forms = [_describe(sub) for sub in err.validator_value]
        return f"{head}: {err.instance!r} is not valid; expected {' or '.join(forms)}"
    if err.validator == "type":
        expected = err.validator_value
        msg = f"{head}: {err.instance!r} is not of type {expected}"
        wants_number = {"number", "integer"} & set(
            [expected] if isinstance(expected, str) else expected
        )
        if wants_number and isinstance(err.instance, str) and _EXPONENT_TEXT.match(err.instance):
            msg += (
                " (YAML reads a number without a decimal point before the exponent, such as "
                "2e-3, as text: write 2.0e-3 or 0.002)"
            )
        return msg
    return f"{head}: {err.message}"


def _describe(sub: Mapping[str, Any]) -> str:
    """A schema branch in words, for the error of a value that matches none."""
    if "enum" in sub:
        return f"one of {sub['enum']}"
    if "const" in sub:
        return repr(sub["const"])
    items = sub.get("items")
    if sub.get("type") == "array" and isinstance(items, Mapping) and "enum" in items:
        return f"a list of {items['enum']}"
    if "pattern" in sub:
        return f"a string matching {sub['pattern']!r}"
    bound = [f"{k} {sub[k]}" for k in ("minimum", "exclusiveMinimum") if k in sub]
    return f"{sub.get('type', 'a value')}" + (f" ({', '.join(bound)})" if bound else "")


def _validate(instance: dict[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_filling_validator(schema).iter_errors(instance))
    if error is not None:
        raise SciclrError(_format_error(error, prefix))


def _empty_sections_as_defaults(ds: Any) -> None:
    if isinstance(ds, dict):
        for key in SECTIONS:
            if key in ds and ds[key] is None:
                ds[key] = {}


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check the workflow config against the schema and fill every default, in place.

    Afterwards every data set holds all of its keys, its ``input`` is a list, and it knows its
    ``name`` and the global ``device`` (what each step's ``--params`` carries).
    """
    for ds in (config.get("datasets") or {}).values():
        _empty_sections_as_defaults(ds)
    _validate(config, load_schema(), "config")
    unknown = [d for d in config["run_datasets"] if d not in config["datasets"]]
    if unknown:
        raise SciclrError(
            f"config: run_datasets: {unknown} not among the data sets {sorted(config['datasets'])}"
        )
    for name, ds in config["datasets"].items():
        ds["name"] = name
        if isinstance(ds["input"], str):
            ds["input"] = [ds["input"]]
        ds["device"] = config["device"]
    for name in config["datasets"]:
        _resolve_pretrained(config["datasets"], name)
    return config


#: preprocessing keys an encoder's weights depend on (the graphs it reads)
ENCODER_PREPROCESS_KEYS = {"materials": ("cutoff", "max_neighbors")}


def _resolve_pretrained(datasets: dict[str, Any], name: str, seen: tuple[str, ...] = ()) -> None:
    """A data set whose encoder comes from another one takes that one's model section (its
    weights must fit the model built from it) and must read data prepared the same way."""
    ds = datasets[name]
    src_name = (ds["pretrained"] or {}).get("dataset")
    if src_name is None:
        return
    where = f"config: datasets.{name}.pretrained.dataset"
    if src_name not in datasets or src_name == name or src_name in seen:
        what = "is not a data set of this config" if src_name not in datasets else "is a cycle"
        raise SciclrError(f"{where}: {src_name!r} {what}")
    _resolve_pretrained(datasets, src_name, (*seen, name))
    src = datasets[src_name]
    if src["domain"] != ds["domain"]:
        raise SciclrError(
            f"{where}: {src_name!r} is a {src['domain']} data set; this one is {ds['domain']}"
        )
    for key in ENCODER_PREPROCESS_KEYS.get(ds["domain"], ()):
        if ds["preprocess"][key] != src["preprocess"][key]:
            raise SciclrError(
                f"config: datasets.{name}.preprocess.{key}: {ds['preprocess'][key]!r} differs "
                f"from {src['preprocess'][key]!r} of {src_name!r}, whose encoder it uses"
            )
    ds["model"] = copy.deepcopy(src["model"])


def _params_schema(required: Sequence[str]) -> dict[str, Any]:
    """The data set schema for one step's ``--params``: only ``required`` keys are required (a
    step gets the sections it reads), plus the ``name`` and ``device`` the workflow adds."""
    schema = load_schema()
    params = copy.deepcopy(schema["$defs"]["dataset"])
    params["properties"]["name"] = {"type": "string"}
    params["properties"]["device"] = schema["properties"]["device"]
    # a plug-in domain given as "module:attribute" (code outside the workflow, e.g. tests);
    # its own sections are then only checked to be mappings
    params["properties"]["domain"] = {
        "anyOf": [
            params["properties"]["domain"],
            {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"},
        ]
    }
    params["required"] = list(required)
    return {
        "$schema": schema.get("$schema"),
        "$defs": {**schema["$defs"], "params": params},
        "$ref": "#/$defs/params",
    }


def dataset_params(
    params: Mapping[str, Any], required: Sequence[str] = ("domain",)
) -> dict[str, Any]:
    """One data set's section checked against the schema, with every default filled.

    The entry point of direct API and CLI use: a notebook can pass ``{"domain": "dna"}`` and
    gets exactly what the workflow would run. The domain's own sections (``preprocess``,
    ``model``, ...) are filled only when ``domain`` is given; steps that do not need it (the
    analysis) pass ``required=()``. Returns a new dict; ``params`` is not changed.
    """
    if not isinstance(params, Mapping):
        raise SciclrError(f"params: expected a mapping, got {type(params).__name__}")
    out = copy.deepcopy(dict(params))
    _empty_sections_as_defaults(out)
    if isinstance(out.get("input"), str):
        out["input"] = [out["input"]]
    name = out.get("name")
    _validate(out, _params_schema(required), f"params of {name!r}" if name else "params")
    return out


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping from ``path``; a syntax error names the file, line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SciclrError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SciclrError(f"{where}: YAML syntax error: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SciclrError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    return data


def load_config(path: str | os.PathLike[str], *overlays: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file plus overlays (merged in order, as ``snakemake --configfile a b``
    merges them), validate and fill defaults (the inputs themselves are checked by
    :func:`sciclr.domains.checks.check_datasets`)."""
    from snakemake.utils import update_config

    config: dict[str, Any] = {}
    for p in (path, *overlays):
        update_config(config, read_yaml(p))
    return validate_config(config)


def load_params(value: str | Mapping[str, Any], option: str = "--params") -> dict[str, Any]:
    """A JSON-object argument (``--params``, or ``option``): JSON text, or the path of a file
    holding one (``@`` prefix optional). A mapping is returned as a copy (API callers)."""
    if isinstance(value, Mapping):
        return dict(value)
    text, where = value, option
    if not value.lstrip().startswith("{"):
        path = Path(value[1:] if value.startswith("@") else value)
        if not path.exists():
            raise SciclrError(f"{option} {value}: neither a JSON object nor an existing file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SciclrError(f"{where}: invalid JSON ({exc})") from None
    if not isinstance(params, dict):
        raise SciclrError(f"{where}: expected a JSON object, got {type(params).__name__}")
    return params
