"""Periodic radius graphs of crystals, stored as flat arrays with offsets.

Neighbours come from pymatgen's neighbour-list kernel (``find_points_in_spheres``, what
``Structure.get_neighbor_list`` runs; ~50× faster than the ``get_all_neighbors`` that CGCNN
uses). Every pair within ``cutoff`` is kept unless ``max_neighbors`` is set; then each atom keeps
its ``max_neighbors`` nearest, *plus every neighbour tied with the last kept one* (within
``TIE_TOL`` Å), so a symmetric coordination shell is never split arbitrarily. Ties beyond that
are ordered by (distance, neighbour index, image) so the graph is deterministic.

Edge convention (PyG ``source_to_target``): ``edge_index[0]`` is the neighbour ``j`` (source),
``edge_index[1]`` the centre ``i`` (target); ``edge_vec = r_j + image @ lattice - r_i``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

__all__ = ["TIE_TOL", "GraphSettings", "cap_neighbors", "neighbor_list", "segment_arange"]

TIE_TOL = 1e-3  # Å: neighbours closer than this to the cap distance count as tied


@dataclass(frozen=True)
class GraphSettings:
    """Everything the graph arrays depend on (part of the cache key)."""

    cutoff: float = 6.0
    max_neighbors: int | None = 12
    min_distance: float = 0.5  # Å: closer pairs mean overlapping atoms -> reject
    max_atoms: int = 256

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> GraphSettings:
        cfg = dict(cfg or {})
        cap = cfg.get("max_neighbors", cls.max_neighbors)
        return cls(
            cutoff=float(cfg.get("cutoff", cls.cutoff)),
            max_neighbors=None if cap in (None, 0) else int(cap),
            min_distance=float(cfg.get("min_distance", cls.min_distance)),
            max_atoms=int(cfg.get("max_atoms", cls.max_atoms)),
        )


def segment_arange(counts: np.ndarray) -> np.ndarray:
    """``concat([arange(c) for c in counts])`` without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def neighbor_list(
    lattice: np.ndarray, cart: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All periodic pairs ``(i, j, image)`` with ``0 < |r_j + image·L - r_i| <= cutoff``.

    Returns ``center (E,), neighbor (E,), image (E, 3) int, distance (E,)``, self pairs at
    zero distance excluded (as ``Structure.get_neighbor_list(exclude_self=True)``).
    """
    cart = np.ascontiguousarray(cart, dtype=float)
    center, neighbor, image, dist = find_points_in_spheres(
        cart,
        cart,
        r=float(cutoff),
        pbc=np.ones(3, dtype=np.int64),
        lattice=np.ascontiguousarray(lattice, dtype=float),
        tol=1e-8,
    )
    keep = ~((center == neighbor) & (dist <= 1e-8))
    return center[keep], neighbor[keep], np.round(image[keep]).astype(np.int64), dist[keep]


def cap_neighbors(
    center: np.ndarray,
    neighbor: np.ndarray,
    image: np.ndarray,
    dist: np.ndarray,
    n_atoms: int,
    max_neighbors: int | None,
) -> np.ndarray:
    """Order edges by (centre, distance, neighbour, image) and apply the tie-aware cap.

    Returns the indices of the kept edges in that order.
    """
    order = np.lexsort((image[:, 2], image[:, 1], image[:, 0], neighbor, dist, center))
    if max_neighbors is None:
        return order
    c, d = center[order], dist[order]
    counts = np.bincount(c, minlength=n_atoms)
    starts = np.cumsum(counts) - counts
    last = starts + np.minimum(counts, max_neighbors) - 1  # index of the k-th nearest
    limit = np.where(counts > 0, d[np.clip(last, 0, max(len(d) - 1, 0))], 0.0) + TIE_TOL
    return order[d <= limit[c]]


def build_graphs(
    lattices: Sequence[np.ndarray], carts: Sequence[np.ndarray], settings: GraphSettings
) -> tuple[list[dict[str, np.ndarray]], list[str | None]]:
    """Graphs for a list of structures; per structure the arrays or a reject reason.

    Each graph: ``edge_index`` (2, E) local [source=neighbour, target=centre], ``edge_vec``
    (E, 3), ``edge_dist`` (E,), ``edge_image`` (E, 3).
    """
    graphs: list[dict[str, np.ndarray]] = []
    reasons: list[str | None] = []
    for lat, cart in zip(lattices, carts, strict=True):
        n = len(cart)
        c, j, img, d = neighbor_list(lat, cart, settings.cutoff)
        if len(d) and d.min() < settings.min_distance:
            k = int(np.argmin(d))
            reasons.append(
                f"overlapping atoms: sites {int(c[k])} and {int(j[k])} are {d[k]:.3f} Å apart "
                f"(min_distance {settings.min_distance} Å)"
            )
            graphs.append({})
            continue
        lonely = np.setdiff1d(np.arange(n), c)
        if len(lonely):
            reasons.append(
                f"isolated atom(s): site(s) {lonely[:5].tolist()} have no neighbour within "
                f"{settings.cutoff} Å"
            )
            graphs.append({})
            continue
        keep = cap_neighbors(c, j, img, d, n, settings.max_neighbors)
        c, j, img, d = c[keep], j[keep], img[keep], d[keep]
        vec = cart[j] + img @ lat - cart[c]
        graphs.append(
            {
                "edge_index": np.stack([j, c]).astype(np.int32),
                "edge_vec": vec.astype(np.float32),
                "edge_dist": d.astype(np.float32),
                "edge_image": img.astype(np.int8),
            }
        )
        reasons.append(None)
    return graphs, reasons
