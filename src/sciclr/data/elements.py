"""Physical descriptors of the chemical elements, one standardised row per atomic number.

A GNN trained on a few thousand crystals sees most elements a handful of times, so an embedding
learned from the atomic number alone knows little about the rare ones. CGCNN (Xie & Grossman,
PRL 2018) and Magpie (Ward et al., npj Comput. Mater. 2, 16028 (2016)) start from what is known
about each element instead: its place in the periodic table, electronegativity, radii,
ionisation energy, valence-shell occupation. These come from pymatgen's periodic table
(bundled with the package, nothing is downloaded).

Row ``0`` (the "masked atom" of the views) is all zeros; a missing property (e.g. the
electronegativity of a noble gas) is set to the column mean and flagged in a ``*_missing``
column, so no NaN reaches a model.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "ELEMENT_PROPERTIES",
    "composition_descriptors",
    "element_descriptors",
    "valence_electrons",
]

N_SPECIES = 119  # atomic numbers 1..118, 0 = masked

#: scalar properties read from :class:`pymatgen.core.periodic_table.Element`
ELEMENT_PROPERTIES = (
    "Z",
    "row",
    "group",
    "mendeleev_no",
    "atomic_mass",
    "X",
    "atomic_radius",
    "average_ionic_radius",
    "ionization_energy",
    "electron_affinity",
    "molar_volume",
    "melting_point",
)
_BLOCKS = ("s", "p", "d", "f")
_ORBITAL = re.compile(r"^(\d+)([spdf])(\d+)$")


def valence_electrons(electronic_structure: str) -> tuple[int, int, int, int]:
    """Electrons in s, p, d, f orbitals outside the noble-gas core: ``"[Ar].3d6.4s2"`` ->
    ``(2, 0, 6, 0)`` (the Magpie ``N*Valence`` counts)."""
    counts = dict.fromkeys(_BLOCKS, 0)
    for part in electronic_structure.split("."):
        match = _ORBITAL.match(part)
        if match:
            counts[match.group(2)] += int(match.group(3))
    return counts["s"], counts["p"], counts["d"], counts["f"]


def _property(element: object, name: str) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = getattr(element, name)
    except (AttributeError, ValueError, KeyError, TypeError):
        return float("nan")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if np.isfinite(value) else float("nan")


@lru_cache(maxsize=1)
def element_descriptors() -> np.ndarray:
    """``(119, D)`` float32 table: standardised properties, missing flags, block one-hot and
    valence-shell counts; row ``Z`` describes element ``Z``, row 0 is zeros."""
    from pymatgen.core.periodic_table import Element

    rows, blocks, valence = [], [], []
    for z in range(1, N_SPECIES):
        element = Element.from_Z(z)
        rows.append([_property(element, name) for name in ELEMENT_PROPERTIES])
        blocks.append([float(getattr(element, "block", "") == b) for b in _BLOCKS])
        try:
            valence.append(valence_electrons(element.electronic_structure))
        except (AttributeError, ValueError, KeyError):
            valence.append((0, 0, 0, 0))
    props = np.asarray(rows, dtype=np.float64)
    missing = np.isnan(props)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(props, axis=0)
    props = np.where(missing, mean, props)
    # heavy-tailed scales (mass, melting point, volumes) on a log axis before standardising
    props = np.sign(props) * np.log1p(np.abs(props))
    props = (props - props.mean(0)) / np.where(props.std(0) > 0, props.std(0), 1.0)
    val = np.asarray(valence, dtype=np.float64)
    val = val / np.array([2.0, 6.0, 10.0, 14.0])
    flags = missing[:, missing.any(axis=0)].astype(np.float64)
    table = np.concatenate([props, flags, np.asarray(blocks), val], axis=1)
    out = np.zeros((N_SPECIES, table.shape[1]), dtype=np.float32)
    out[1:] = table
    out.setflags(write=False)
    return out


def composition_descriptors(
    fractions: torch.Tensor, table: torch.Tensor | None = None
) -> torch.Tensor:
    """``(B, 118)`` atom fractions (column ``Z - 1``) -> ``(B, 4·D)``: fraction-weighted mean and
    standard deviation, maximum and minimum over the elements present of every descriptor of
    :func:`element_descriptors` (the Magpie statistics, Ward et al. 2016). Two compositions of
    similar elements get similar rows, which one-hot fractions never do.

    ``table``: the descriptor rows of Z = 1..118 ``(118, D)``, already on the device (a model
    keeps it as a buffer so that no step copies it); default :func:`element_descriptors`."""
    if table is None:
        table = torch.from_numpy(np.array(element_descriptors()[1:]))
    table = table.to(device=fractions.device, dtype=fractions.dtype)
    w = fractions / fractions.sum(dim=1, keepdim=True).clamp(min=1e-12)
    mean = w @ table
    std = ((w @ table.square()) - mean.square()).clamp(min=0).sqrt()
    present = (w > 0).unsqueeze(2)  # (B, 118, 1)
    big = torch.finfo(table.dtype).max
    high = torch.where(present, table, -big).amax(dim=1)
    low = torch.where(present, table, big).amin(dim=1)
    empty = ~present.squeeze(2).any(dim=1, keepdim=True)
    high, low = high.masked_fill(empty, 0.0), low.masked_fill(empty, 0.0)
    return torch.cat([mean, std, high, low], dim=1)
