"""Registry of domains: the data set's ``domain:`` key picks one of these code paths."""

from __future__ import annotations

import importlib

from sciclr.domains.base import ContrastiveModel, DataSource, Domain, Processed
from sciclr.errors import SciclrError

__all__ = ["DOMAINS", "ContrastiveModel", "DataSource", "Domain", "Processed", "get_domain"]

# name -> "module:attribute"; imported lazily so that DNA users never import pymatgen.
DOMAINS = {
    "dna": "sciclr.domains.dna:DOMAIN",
    "materials": "sciclr.domains.materials:DOMAIN",
}


def get_domain(name: str) -> Domain:
    """A registered domain (``dna``, ``materials``) or a plug-in given as ``module:attribute``
    (used by tests and by code outside the workflow, whose schema admits registered names only)."""
    if name in DOMAINS:
        module, attr = DOMAINS[name].split(":")
        return getattr(importlib.import_module(module), attr)
    if ":" not in str(name):
        raise SciclrError(f"unknown domain {name!r}; expected one of {sorted(DOMAINS)}")
    module, attr = str(name).split(":", 1)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SciclrError(f"config domain: cannot load {name!r} ({exc})") from None
