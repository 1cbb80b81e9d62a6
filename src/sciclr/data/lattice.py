"""Basis-independent descriptors of a crystal's lattice, batched in torch.

A message-passing GNN sees local environments within the cutoff and never the cell itself, yet
the lattice metric is what separates a cubic from a tetragonal crystal of the same motif (and it
fixes every powder-XRD peak position). The stored cell is whatever basis the file used, so the
descriptors must not depend on that choice, and they must not depend on arbitrary choices among
equal-length vectors either (a cubic cell has three). So we describe the *star* of short lattice
vectors as a whole, the way Steinhardt et al. (PRB 28, 784 (1983)) describe a coordination
shell:

* the basis is first reduced (greedy: the shortest independent triple among the ±1 combinations,
  repeated), so that a fixed integer range holds every short lattice vector;
* the *length spectrum* ``log(|v_k| / |v_1|)`` of the ``n_lengths`` shortest vectors (one of each
  ``±v`` pair): its degeneracies encode the metric's symmetry;
* for soft shells ``|v| < s |v_1|`` (``s`` in :data:`SHELLS`): ``log`` of the number of lattice
  points and the bond-order parameters ``q_l`` (``l`` = 2, 4, 6, 8) of their directions,
  ``q_l = sqrt(Σ_jk w_j w_k P_l(u_j·u_k)) / Σ_j w_j`` (addition theorem; no spherical
  harmonics needed) — cubic, hexagonal, tetragonal stars differ in ``q_4``, ``q_6``;
* ``log(volume / atom)`` and ``log |v_1|``.

Everything is a symmetric function of the vector star, hence invariant to the basis, to
rotations and to ties; all of it is vectorised over the batch. The greedy reduction can stall on
pathological, nearly flat cells (volume far below the product of the cell lengths); for every
structure of the bundled Materials Project set, random unimodular re-bases and rotations change
the descriptors by < 1e-7.
"""

from __future__ import annotations

import itertools

import torch

__all__ = [
    "SHELLS",
    "lattice_invariants",
    "legendre",
    "n_lattice_invariants",
    "scale_invariants",
]

SHELLS = (1.05, 1.25, 1.5, 2.0)  # soft shell radii in units of the shortest lattice vector
SHELL_WIDTH = 0.02
STAR = 64  # shortest half-space lattice vectors kept for the shells
_EPS = 1e-3  # |sin| below which two vectors count as parallel / three as coplanar


def legendre(x: torch.Tensor, l_max: int) -> torch.Tensor:
    """``(...) -> (..., l_max)``: P_1..P_lmax by Bonnet's recurrence."""
    p_prev, p = torch.ones_like(x), x
    out = [p]
    for n in range(1, l_max):
        p_prev, p = p, ((2 * n + 1) * x * p - n * p_prev) / (n + 1)
        out.append(p)
    return torch.stack(out, dim=-1)


def _even_legendre(x: torch.Tensor) -> torch.Tensor:
    """``(...) -> (..., 4)``: P_2, P_4, P_6, P_8 as polynomials in ``x²`` (closed forms; the
    recurrence's intermediate odd orders cost 2x here, on B·K² pairs)."""
    y = x * x
    return torch.stack(
        [
            (3 * y - 1) / 2,
            ((35 * y - 30) * y + 3) / 8,
            (((231 * y - 315) * y + 105) * y - 5) / 16,
            ((((6435 * y - 12012) * y + 6930) * y - 1260) * y + 35) / 128,
        ],
        dim=-1,
    )


def n_lattice_invariants(n_lengths: int = 16) -> int:
    """Width of :func:`lattice_invariants`' output."""
    return (n_lengths - 1) + len(SHELLS) * 5 + 2


def _half_space(span: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Integer triples in ``[-span, span]^3`` that are lexicographically > 0: ``(K, 3)``."""
    rng = range(-span, span + 1)
    ints = [v for v in itertools.product(rng, rng, rng) if v > (0, 0, 0)]
    return torch.tensor(ints, device=device, dtype=dtype)


def _first(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the first True in each row, and whether there is one."""
    return torch.argmax(mask.to(torch.int8), dim=1), mask.any(dim=1)


def _reduce(lat: torch.Tensor, rounds: int = 8) -> torch.Tensor:
    """Greedy basis reduction: replace the basis by the shortest ``a``, the shortest ``b`` not
    parallel to it and the shortest ``c`` out of their plane among the ±1 combinations of the
    current basis, until it stops changing (a reduced cell is a fixed point)."""
    ints = _half_space(1, lat.device, lat.dtype)
    rows = torch.arange(len(lat), device=lat.device)
    for _ in range(rounds):
        vecs = torch.einsum("ki,bij->bkj", ints, lat)
        lengths, order = torch.sort(vecs.norm(dim=2), dim=1, stable=True)
        vecs = torch.gather(vecs, 1, order.unsqueeze(2).expand_as(vecs))
        a = vecs[:, 0]
        sin = torch.cross(a.unsqueeze(1).expand_as(vecs), vecs, dim=2).norm(dim=2)
        j, ok_b = _first(sin > _EPS * lengths[:, :1] * lengths)
        b = vecs[rows, j]
        normal = torch.cross(a, b, dim=1)
        height = (vecs @ normal.unsqueeze(2)).squeeze(2).abs()
        k, ok_c = _first(height > _EPS * normal.norm(dim=1, keepdim=True) * lengths)
        new = torch.stack([a, b, vecs[rows, k]], dim=1)
        lat = torch.where((ok_b & ok_c)[:, None, None], new, lat)
    return lat


@torch.no_grad()
def lattice_invariants(
    lattice: torch.Tensor,
    n_atoms: torch.Tensor,
    n_lengths: int = 16,
    span: int = 3,
    chunk: int = 64,
) -> torch.Tensor:
    """``(B, 3, 3)`` lattices (rows = cell vectors, Å), ``(B,)`` atoms per cell ->
    ``(B, n_lattice_invariants(n_lengths))`` float32 descriptors (see module docstring),
    computed ``chunk`` lattices at a time (the pair sums hold ``chunk·STAR²·4`` numbers).

    A cell's descriptors do not depend on ``chunk`` (bit for bit: 51,232 cells at 64 and 512).
    Why 64, each chunk written into the preallocated result: each chunk's float64 temporaries
    are tens of MB, freed in glibc's heap, where they fragment and add up over chunks, the more
    so when small results stay alive between them. For the 51,232 cells of 16x the bundled
    crystals (``benchmarks/scaling.py`` run folder, once per process: the crystal source's
    cache and the ``lattice`` features), 512 peaked at 1,153 MB above the process's 490 MB;
    64 with a list of chunk results joined at the end peaked at 530–2,120 MB from run to run
    (3 of 6 runs above 1.7 GB), and 64 written in place at 517–549 MB in 9 of 9 runs, in
    13–15 s."""
    if len(lattice) > chunk:
        # each chunk written into the result at once: a list of small parts kept between the
        # chunks' large temporaries pins them in glibc's heap (see above)
        out = torch.empty(len(lattice), n_lattice_invariants(n_lengths), device=lattice.device)
        for c in range(0, len(lattice), chunk):
            out[c : c + chunk] = lattice_invariants(
                lattice[c : c + chunk], n_atoms[c : c + chunk], n_lengths, span, chunk
            )
        return out
    lat = _reduce(lattice.to(torch.float64))
    vecs = torch.einsum("ki,bij->bkj", _half_space(span, lat.device, lat.dtype), lat)
    lengths, order = torch.sort(vecs.norm(dim=2), dim=1)
    # at most 62 half-space points fit within 2.5x the shortest vector (sphere packing), so the
    # STAR shortest cover every shell with weight; the pair sums below are (B, STAR, STAR)
    lengths, order = lengths[:, :STAR], order[:, :STAR]
    vecs = torch.gather(vecs, 1, order.unsqueeze(2).expand(-1, -1, 3))
    shortest = lengths[:, :1]
    spectrum = torch.log(lengths[:, 1:n_lengths] / shortest)

    ratio = lengths / shortest  # (B, K)
    radii = torch.tensor(SHELLS, device=lat.device, dtype=lat.dtype)
    w = torch.sigmoid((radii - ratio.unsqueeze(2)) / SHELL_WIDTH)  # (B, K, S)
    unit = vecs / lengths.unsqueeze(2)
    cos = (unit @ unit.transpose(1, 2)).clamp(-1.0, 1.0)  # (B, K, K)
    even = _even_legendre(cos)  # (B, K, K, 4): P_2, P_4, P_6, P_8
    # each ±v pair is one half-space vector; for even l the full star's sum is 4x this one
    pair_w = w.unsqueeze(2) * w.unsqueeze(1)  # (B, K, K, S)
    s_l = torch.einsum("bjkl,bjks->bsl", even, pair_w)
    count = w.sum(dim=1)  # (B, S) lattice points per half star
    q = s_l.clamp(min=0).sqrt() / count.clamp(min=1e-6).unsqueeze(2)
    volume = torch.linalg.det(lat).abs()
    per_atom = torch.log(volume / n_atoms.to(lat.dtype).clamp(min=1)).unsqueeze(1)
    return torch.cat(
        [spectrum, torch.log(2 * count), q.flatten(1), per_atom, torch.log(shortest)], dim=1
    ).float()


def scale_invariants(cell: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """The descriptors of the same cells uniformly scaled by ``exp(log_scale)`` ``(B,)``:
    scaling keeps every length ratio and bond-order parameter (the symmetry), and moves only
    ``log(volume / atom)`` (by ``3 log_scale``) and ``log |v_1|`` (by ``log_scale``), the last
    two columns of :func:`lattice_invariants`; exact, no lattice needed."""
    out = cell.clone()
    out[:, -2] += 3.0 * log_scale.to(cell.dtype)
    out[:, -1] += log_scale.to(cell.dtype)
    return out
