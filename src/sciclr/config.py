"""Load and check a sciclr configuration against the workflow's JSON schema.

One schema (``workflow/schemas/config.schema.yaml`` and the per-domain files it references) is
the single source of truth for keys, types and defaults: the Snakefile validates with
``snakemake.utils.validate`` and tests/notebooks use :func:`load_config`, which does the same.
Errors are reported as one line naming the key path and what was expected.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sciclr.errors import SciclrError

SECTIONS = ("preprocess", "baselines", "views", "model", "train", "analysis")


def schema_path() -> Path:
    """Path of the workflow's config schema (``$SCICLR_SCHEMA`` overrides)."""
    env = os.environ.get("SCICLR_SCHEMA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _registry(schema_file: Path):
    from referencing import Registry, Resource

    def retrieve(uri: str) -> Resource:
        name = uri.rsplit("/", 1)[-1]
        return Resource.from_contents(yaml.safe_load((schema_file.parent / name).read_text()))

    return Registry(retrieve=retrieve)


def _format_error(err: Any) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"config: {path}: unknown key {', '.join(map(repr, extra))}; allowed keys: {allowed}"
    if err.validator == "required":
        return f"config: {path}: {err.message}"
    if err.validator == "enum":
        return f"config: {path}: {err.instance!r} is not one of {err.validator_value}"
    if err.validator == "type":
        return f"config: {path}: {err.instance!r} is not of type {err.validator_value}"
    return f"config: {path}: {err.message}"


def _iter_leaf_errors(errors):
    for err in errors:
        if err.context:
            yield from _iter_leaf_errors(err.context)
        else:
            yield err


def check_schema(config: Mapping[str, Any], schema_file: Path | None = None) -> None:
    """Raise :class:`SciclrError` with a one-line message if ``config`` violates the schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import relevance

    schema_file = Path(schema_file or schema_path()).resolve()
    schema = yaml.safe_load(schema_file.read_text())
    schema["$id"] = schema_file.as_uri()
    validator = Draft202012Validator(schema, registry=_registry(schema_file))
    errors = list(_iter_leaf_errors(validator.iter_errors(config)))
    if errors:
        # deepest error first: it names the exact key, not the enclosing if/then
        best = max(errors, key=lambda e: (len(e.absolute_path), -relevance(e)[0]))
        raise SciclrError(_format_error(best))


def prepare_sections(config: dict[str, Any]) -> None:
    """Give every data set its own section dicts before default filling.

    ``snakemake.utils.validate`` inserts a schema's ``default: {}`` object itself; without this,
    two data sets would share (and fill) one dict and a DNA default could leak into materials.
    """
    for ds in (config.get("datasets") or {}).values():
        if isinstance(ds, dict):
            for key in SECTIONS:
                ds[key] = dict(ds.get(key) or {})


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """After default filling: inputs as lists, each data set knows its name and the device."""
    for name, ds in config["datasets"].items():
        ds["name"] = name
        if isinstance(ds["input"], str):
            ds["input"] = [ds["input"]]
        ds["device"] = config["device"]
    return config


def check_inputs(config: Mapping[str, Any], base: Path | None = None) -> None:
    """Every input file/folder and label table must exist: fail before any job runs."""
    base = Path(base or ".")
    for name, ds in config["datasets"].items():
        paths = [("input", p) for p in ds["input"]]
        if ds.get("labels"):
            paths.append(("labels", ds["labels"]))
        for key, p in paths:
            if not (base / p).exists():
                raise SciclrError(f"config: datasets.{name}.{key}: file not found: {p}")


def fill_defaults(config: dict[str, Any], schema_file: Path | None = None) -> dict[str, Any]:
    """Validate and fill defaults exactly as the Snakefile does (``snakemake.utils.validate``)."""
    from snakemake.utils import validate

    validate(config, str(Path(schema_file or schema_path()).resolve()))
    return config


def load_config(
    path: str | os.PathLike[str], *overlays: str | os.PathLike[str], base: Path | None = None
) -> dict[str, Any]:
    """Read a config file (plus overlays, deep-merged in order), check and fill it."""
    config: dict[str, Any] = {}
    for p in (path, *overlays):
        with open(p, encoding="utf-8") as fh:
            config = deep_merge(config, yaml.safe_load(fh) or {})
    check_schema(config)
    prepare_sections(config)
    fill_defaults(config)
    normalize(config)
    check_inputs(config, base)
    return config


def deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``b`` into a copy of ``a`` (dicts recursively; anything else replaced), as
    Snakemake merges ``--configfile`` overlays."""
    out = copy.deepcopy(dict(a))
    for k, v in b.items():
        out[k] = (
            deep_merge(out[k], v)
            if isinstance(v, Mapping) and isinstance(out.get(k), Mapping)
            else copy.deepcopy(v)
        )
    return out


def load_params(value: str) -> dict[str, Any]:
    """Parse ``--params``: a JSON object, or the path of a file holding one (``@`` prefix
    optional, as for the other ``sciclr`` verbs)."""
    text, where = value, "--params"
    if not value.lstrip().startswith("{"):
        path = Path(value[1:] if value.startswith("@") else value)
        if not path.exists():
            raise SciclrError(f"--params {value}: neither a JSON object nor an existing file")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SciclrError(f"{where}: invalid JSON ({exc})") from None
    if not isinstance(params, dict):
        raise SciclrError(f"{where}: expected a JSON object, got {type(params).__name__}")
    return params
