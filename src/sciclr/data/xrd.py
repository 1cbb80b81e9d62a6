"""Binned powder X-ray diffraction patterns, computed once per structure during preprocessing.

The physics is pymatgen's :class:`~pymatgen.analysis.diffraction.xrd.XRDCalculator` (kinematic
structure factors with the same atomic scattering-factor table, Lorentz-polarisation factor,
no Debye-Waller term, peaks merged within ``TWO_THETA_TOL`` and dropped below
``SCALED_INTENSITY_TOL`` % of the strongest peak), reimplemented without its per-reflection
Python loop and hkl-family bookkeeping, which we do not need for a binned pattern: ~10× faster,
and equal to ``XRDCalculator().get_pattern(...)`` binned the same way (tested).

Reference: B. D. Cullity, *Elements of X-ray Diffraction* (structure factor, LP factor);
S. P. Ong et al., Comput. Mater. Sci. 68, 314 (2013) (pymatgen).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.analysis.diffraction.core import AbstractDiffractionPatternCalculator
from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS, WAVELENGTHS
from pymatgen.core.periodic_table import Element
from pymatgen.optimization.neighbors import find_points_in_spheres

__all__ = ["XRDSettings", "scattering_table", "xrd_pattern"]

_TWO_THETA_TOL = AbstractDiffractionPatternCalculator.TWO_THETA_TOL
_SCALED_INTENSITY_TOL = AbstractDiffractionPatternCalculator.SCALED_INTENSITY_TOL
MAX_Z = 118


@dataclass(frozen=True)
class XRDSettings:
    """Radiation and binning of the powder pattern (2θ in degrees)."""

    wavelength: str | float = "CuKa"
    two_theta_min: float = 10.0
    two_theta_max: float = 90.0
    bins: int = 320

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> XRDSettings:
        cfg = dict(cfg or {})
        return cls(
            wavelength=cfg.get("wavelength", cls.wavelength),
            two_theta_min=float(cfg.get("two_theta_min", cls.two_theta_min)),
            two_theta_max=float(cfg.get("two_theta_max", cls.two_theta_max)),
            bins=int(cfg.get("bins", cls.bins)),
        )

    @property
    def lam(self) -> float:
        """Wavelength in Å (named lines as in pymatgen's ``WAVELENGTHS``)."""
        if isinstance(self.wavelength, str):
            return WAVELENGTHS[self.wavelength]
        return float(self.wavelength)

    def edges(self) -> np.ndarray:
        return np.linspace(self.two_theta_min, self.two_theta_max, self.bins + 1)


def scattering_table() -> tuple[np.ndarray, np.ndarray]:
    """Cromer-Mann-style coefficients indexed by Z: ``a, b`` of shape (MAX_Z + 1, 4) and a mask
    of the elements that have them (Z 1-98 without Es in pymatgen's table)."""
    coeff = np.zeros((MAX_Z + 1, 4, 2))
    known = np.zeros(MAX_Z + 1, dtype=bool)
    for sym, c in ATOMIC_SCATTERING_PARAMS.items():
        z = Element(sym).Z
        coeff[z] = np.asarray(c, dtype=float)
        known[z] = True
    return coeff, known


_COEFF, KNOWN_Z = scattering_table()


def xrd_pattern(
    lattice: np.ndarray, frac: np.ndarray, z: np.ndarray, settings: XRDSettings
) -> np.ndarray:
    """Binned powder pattern of one ordered structure, scaled so that the largest bin is 1.

    Args:
        lattice: (3, 3) lattice vectors as rows, Å.
        frac: (n, 3) fractional coordinates.
        z: (n,) atomic numbers; every one must satisfy ``KNOWN_Z[z]``.
        settings: wavelength and 2θ binning.

    Returns:
        (bins,) float32.
    """
    lam = settings.lam
    max_r = 2 * math.sin(math.radians(settings.two_theta_max / 2)) / lam
    min_r = 2 * math.sin(math.radians(settings.two_theta_min / 2)) / lam
    recip = np.ascontiguousarray(np.linalg.inv(lattice).T)  # crystallographic (no 2π)
    origin = np.zeros((1, 3))
    _, _, hkl, g = find_points_in_spheres(
        origin, origin, r=max_r, pbc=np.ones(3, dtype=np.int64), lattice=recip, tol=1e-8
    )
    hkl = np.round(hkl).astype(np.int64)
    h, k, l_ = hkl.T
    # Friedel pairs give equal intensities: keep one half-space (this also drops 000).
    keep = ((h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l_ > 0))) & (g >= min_r)
    hkl, g = hkl[keep], g[keep]
    out = np.zeros(settings.bins, dtype=np.float32)
    if len(g) == 0:
        return out
    s2 = (g / 2) ** 2  # (M,)
    elems, inverse = np.unique(z, return_inverse=True)
    c = _COEFF[elems]  # (n_el, 4, 2)
    # f_e(s) = Z - 41.78214 s² Σ_k a_k exp(-b_k s²): (M, n_el)
    f = elems[None, :] - 41.78214 * s2[:, None] * np.einsum(
        "ek,mek->me", c[:, :, 0], np.exp(-c[None, :, :, 1] * s2[:, None, None])
    )
    phase = np.exp(2j * np.pi * (hkl.astype(float) @ frac.T))  # (M, n)
    f_hkl = np.einsum("mn,mn->m", phase, f[:, inverse])
    theta = np.arcsin(np.clip(lam * g / 2, -1, 1))
    lorentz = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    intensity = 2 * (f_hkl.real**2 + f_hkl.imag**2) * lorentz
    two_theta = np.degrees(2 * theta)
    # Merge reflections within TWO_THETA_TOL and drop negligible peaks, as XRDCalculator does;
    # a merged peak sits at its smallest 2θ (its first reflection in pymatgen's |g| order).
    idx = np.argsort(two_theta, kind="stable")
    two_theta, intensity = two_theta[idx], intensity[idx]
    key = np.round(two_theta / _TWO_THETA_TOL).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    peak = np.add.reduceat(intensity, starts)
    pos = two_theta[starts]
    strong = peak / peak.max() * 100 > _SCALED_INTENSITY_TOL
    hist, _ = np.histogram(pos[strong], bins=settings.edges(), weights=peak[strong])
    top = hist.max()
    if top > 0:
        out[:] = hist / top
    return out
