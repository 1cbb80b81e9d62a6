"""Registry of domains: the data set's ``domain:`` key picks one of these code paths.

Domain modules are imported on first use and are light facades themselves (their heavy parts
load when a method needs them), so the Snakefile can ask a domain for its baseline names
without importing torch or pymatgen. The contract a domain fulfils: :mod:`sciclr.domains.base`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sciclr.errors import SciclrError

if TYPE_CHECKING:
    from sciclr.domains.base import Domain

__all__ = ["DOMAINS", "get_domain"]

#: name -> "module:attribute"
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
