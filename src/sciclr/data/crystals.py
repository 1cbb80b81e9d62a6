"""Crystal preprocessing in two stages: inputs -> parsed arrays -> periodic graphs + XRD.

1. :func:`parse_shard`: the shard's record texts -> lattices, fractional coordinates, atomic
   numbers, with the disorder policy applied (pymatgen's CIF parser is the bottleneck, ~1 ms per
   structure);
2. :func:`preprocess_shard`: parsed arrays + graph and XRD settings -> edges, XRD patterns,
   element fractions, labels.

The workflow runs each stage as a job of its own per shard (``parse_shard`` and
``preprocess_shard`` rules), so a changed cutoff re-runs stage 2 from the stored arrays of
stage 1 without parsing again. One shard processes the records with global index
``i % n_shards == shard`` (a CIF with several data blocks is several records, found when
listing); :func:`merge` restores the global order, so any number of shards gives the same
output as one. Every shard counts the rows of a separate label table that match no record
among its share of the table (``label_rows_without_record``; the shards' counts add up).

Payload (row ``k`` = record ``k``; ``*_ptr`` are offsets into the flat arrays)::

    ids: list[str]                      n
    atom_ptr: int64 (n + 1,)            z: uint8 (A,)      pos: float32 (A, 3) Å
    lattice: float32 (n, 3, 3)
    edge_ptr: int64 (n + 1,)            edge_index: int32 (2, E), local [neighbour, centre]
    edge_vec: float32 (E, 3)            edge_dist: float32 (E,)     edge_image: int8 (E, 3)
    composition: float32 (n, 118)       element fractions, column Z - 1
    xrd: float32 (n, bins)              binned powder pattern, max bin = 1
    meta: dict of settings
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from sciclr.data.crystal_graphs import GraphSettings, build_graphs
from sciclr.data.crystal_io import RawRecord, Reject, list_inputs, parse_structure, reject_frame
from sciclr.data.crystal_labels import (
    dedupe,
    finalize,
    join_labels,
    label_table,
    rows_without_record,
)
from sciclr.data.crystal_payload import ATOM_KEYS, EDGE_KEYS, composition, concat, take, take_atoms
from sciclr.data.processed import Processed
from sciclr.data.xrd import KNOWN_Z, MAX_Z, XRDSettings, xrd_patterns
from sciclr.errors import SciclrError

__all__ = ["FORMAT_VERSION", "merge", "parse_shard", "preprocess_shard"]

#: version of the parsed-arrays and payload layout (stored in ``meta``)
FORMAT_VERSION = "crystals-v2"


def _mine(
    cfg: Mapping[str, Any], shard: int, n_shards: int
) -> tuple[list[RawRecord], list[RawRecord], pd.DataFrame | None]:
    """All records, this shard's records and the labels carried by table inputs."""
    if not 0 <= shard < n_shards:
        raise SciclrError(f"shard {shard} out of range for {n_shards} shard(s)")
    records, csv_labels = list_inputs(cfg)
    return records, [r for r in records if r.order % n_shards == shard], csv_labels


def parse_shard(cfg: Mapping[str, Any], shard: int = 0, n_shards: int = 1) -> dict[str, Any]:
    """Stage 1: parse the records ``i % n_shards == shard`` of ``cfg["input"]`` into arrays
    (``order``, ``ids``, ``sources``, ``lattice``, ``frac``, ``z``, ``atom_ptr``) plus the
    rejects (``id, source, reason, order``) and the number of sites resolved by the majority rule."""
    _, mine, _ = _mine(cfg, shard, n_shards)
    parsed = _parse_all(mine, cfg["preprocess"]["occupancy"])
    parsed["shard"] = [int(shard), int(n_shards)]
    return parsed


def _parse_all(records: Sequence[RawRecord], occupancy: str) -> dict[str, Any]:
    """Parse every record; arrays of the parsed ones and reject rows for the others."""
    lat, frac, zs, keep, rej = [], [], [], [], []
    n_major = 0
    for r in records:
        try:
            p = parse_structure(r, occupancy)
        except Reject as exc:
            rej.append((r.id, r.source, str(exc), r.order))
            continue
        lat.append(p.lattice)
        frac.append(p.frac)
        zs.append(p.z)
        keep.append(r)
        n_major += p.n_majority
    counts = np.array([len(z) for z in zs], dtype=np.int64)
    return {
        "order": torch.tensor([r.order for r in keep], dtype=torch.int64),
        "ids": [r.id for r in keep],
        "sources": [r.source for r in keep],
        "lattice": torch.from_numpy(np.array(lat, dtype=np.float64).reshape(-1, 3, 3)),
        "frac": torch.from_numpy(np.concatenate(frac) if frac else np.zeros((0, 3))),
        "z": torch.from_numpy(np.concatenate(zs) if zs else np.zeros(0, dtype=np.int64)),
        "atom_ptr": torch.from_numpy(np.r_[0, np.cumsum(counts)].astype(np.int64)),
        "rejects": [list(x) for x in rej],
        "n_majority": n_major,
    }


def _features(s: Mapping[str, Any], gs: GraphSettings, xs: XRDSettings) -> dict[str, Any]:
    """Graphs, XRD and composition for the parsed structures of one shard (vectorised; only
    the neighbour search and the reciprocal-lattice enumeration run per structure)."""
    ptr = s["atom_ptr"].numpy()
    lat_all = s["lattice"].numpy()
    frac_all, z_all = s["frac"].numpy(), s["z"].numpy()
    n = len(s["ids"])
    reasons: list[str | None] = [None] * n
    n_atoms = np.diff(ptr)
    for k in np.flatnonzero(n_atoms > gs.max_atoms):
        reasons[k] = f"too many atoms: {n_atoms[k]} > max_atoms {gs.max_atoms}"
    if xs.enabled:
        bad = ~KNOWN_Z[np.clip(z_all, 0, MAX_Z)]
        for k in np.unique(np.searchsorted(ptr, np.flatnonzero(bad), side="right") - 1):
            if reasons[k] is None:
                zk = z_all[ptr[k] : ptr[k + 1]]
                missing = sorted({int(x) for x in zk[~KNOWN_Z[zk]]})
                reasons[k] = f"no X-ray scattering factors for Z={missing}"
    todo = np.array([k for k in range(n) if reasons[k] is None], dtype=np.int64)
    sub = take_atoms(ptr, todo)
    frac, z = frac_all[sub[1]], z_all[sub[1]]
    lat = lat_all[todo].reshape(-1, 3, 3)
    owner = np.repeat(np.arange(len(todo)), np.diff(sub[0]))
    cart = np.einsum("ai,aij->aj", frac, lat[owner]) if len(frac) else np.zeros((0, 3))
    graphs, why = build_graphs(lat, cart, sub[0], gs)
    for k, w in zip(todo.tolist(), why, strict=True):
        reasons[k] = w
    ok = np.array([w is None for w in why], dtype=bool)
    kept = todo[ok]
    ptr_k, atom_idx = take_atoms(sub[0], np.flatnonzero(ok))
    if xs.enabled:
        xrd = xrd_patterns(lat[ok], frac[atom_idx], z[atom_idx], ptr_k, xs)
    else:
        xrd = np.zeros((len(kept), xs.bins), dtype=np.float32)
    return {
        "kept": torch.from_numpy(kept),
        "rejects": [[k, w] for k, w in enumerate(reasons) if w is not None],
        "pos": torch.from_numpy(cart[atom_idx].astype(np.float32)),
        "z": torch.from_numpy(z[atom_idx].astype(np.uint8)),
        "atom_ptr": torch.from_numpy(ptr_k),
        "lattice": torch.from_numpy(lat[ok].astype(np.float32)),
        **{key: torch.from_numpy(v) for key, v in graphs.items()},
        "xrd": torch.from_numpy(xrd),
    }


def _snake(reason: str) -> str:
    head = re.split(r"[:(]", reason, maxsplit=1)[0].strip().lower()
    return "rejected_" + re.sub(r"[^a-z0-9]+", "_", head).strip("_")


def preprocess_shard(
    cfg: Mapping[str, Any],
    shard: int = 0,
    n_shards: int = 1,
    parsed: Mapping[str, Any] | None = None,
) -> Processed:
    """Stage 2 (and stage 1 when ``parsed`` is None): graphs, XRD, composition and labels of
    the records ``i % n_shards == shard`` (see the module docstring)."""
    pre = cfg["preprocess"]
    gs, xs = GraphSettings.from_cfg(pre), XRDSettings.from_cfg(pre["xrd"])
    everything, mine, csv_labels = _mine(cfg, shard, n_shards)
    labels = label_table(cfg, csv_labels)
    orphans = rows_without_record(labels, [r.id for r in everything], shard, n_shards)
    if parsed is None:
        s = _parse_all(mine, pre["occupancy"])
    else:
        if list(parsed.get("shard", [])) != [shard, n_shards]:
            raise SciclrError(
                f"parsed arrays of shard {parsed.get('shard')} given for shard {[shard, n_shards]}"
            )
        s = parsed
    f = _features(s, gs, xs)
    kept = f["kept"].numpy()
    rej_rows = [tuple(r) for r in s["rejects"]]
    order1 = s["order"].numpy()
    for k, why in f["rejects"]:
        rej_rows.append((s["ids"][k], s["sources"][k], why, int(order1[k])))
    payload = {
        key: f[key]
        for key in ("atom_ptr", "edge_ptr", "edge_index", *ATOM_KEYS, *EDGE_KEYS, "lattice", "xrd")
    }
    payload["ids"] = [s["ids"][k] for k in kept]
    payload["sources"] = [s["sources"][k] for k in kept]
    payload["composition"] = composition(payload["z"], payload["atom_ptr"])
    payload["meta"] = _meta(gs, xs, pre["occupancy"])
    raw, lab_rej = join_labels(
        payload["ids"], order1[kept], payload["sources"], cfg, csv_labels, labels
    )
    if lab_rej:
        ok = ~np.isin(order1[kept], [r[3] for r in lab_rej])
        payload = take(payload, torch.from_numpy(np.flatnonzero(ok)))
    payload, raw, dup_rej = dedupe(payload, raw)
    rejects = _sorted_rejects(rej_rows + lab_rej + dup_rej)
    recs = finalize(raw, cfg) if n_shards == 1 or cfg.get("split_column") else raw
    counts = _counts(len(mine), len(recs), rejects)
    counts["majority_sites"] = int(s["n_majority"])
    counts["edges"] = int(payload["edge_ptr"][-1])
    counts["atoms"] = int(payload["atom_ptr"][-1])
    counts["label_rows_without_record"] = len(orphans)
    return Processed(payload=payload, records=recs, rejects=rejects, counts=counts)


def _meta(gs: GraphSettings, xs: XRDSettings, occupancy: str) -> dict[str, Any]:
    return {
        "cutoff": gs.cutoff,
        "max_neighbors": gs.max_neighbors if gs.max_neighbors is not None else 0,
        "min_distance": gs.min_distance,
        "max_atoms": gs.max_atoms,
        "occupancy": occupancy,
        "xrd_wavelength": str(xs.wavelength),
        "xrd_two_theta_min": xs.two_theta_min,
        "xrd_two_theta_max": xs.two_theta_max,
        "xrd_bins": xs.bins,
        "n_elements": MAX_Z,
        "version": FORMAT_VERSION,
    }


def _sorted_rejects(rows: Sequence[tuple[str, str, str, int]]) -> pd.DataFrame:
    out = reject_frame(rows).sort_values("order", kind="stable").reset_index(drop=True)
    return out.astype({"id": str, "source": str, "reason": str})


def _counts(n_in: int, n_out: int, rejects: pd.DataFrame) -> dict[str, int]:
    counts = {"in": n_in, "out": n_out, "rejected": len(rejects)}
    for reason in rejects["reason"]:
        key = _snake(reason)
        counts[key] = counts.get(key, 0) + 1
    return counts


def merge(parts: Sequence[Processed], cfg: Mapping[str, Any]) -> Processed:
    """Shards back in global input order, duplicate ids across shards rejected; identical to
    processing everything as one shard."""
    if not parts:
        raise SciclrError("no shards to merge")
    payload = concat([p.payload for p in parts])
    raw = pd.concat([p.records for p in parts], ignore_index=True)
    for col in ("id", "split"):
        if col in raw.columns:
            raw[col] = raw[col].astype(str)
    order = torch.tensor(raw["order"].to_numpy(dtype=np.int64))
    perm = torch.argsort(order, stable=True)
    payload = take(payload, perm)
    raw = raw.iloc[perm.numpy()].reset_index(drop=True)
    payload, raw, dup = dedupe(payload, raw)
    rej_parts = [p.rejects for p in parts if len(p.rejects)] + [reject_frame(dup)]
    rejects = pd.concat(rej_parts, ignore_index=True)
    rejects = _sorted_rejects(list(rejects.itertuples(index=False, name=None)))
    if cfg.get("split_column"):
        records = raw
    else:
        records = finalize(raw.drop(columns=["split"], errors="ignore"), cfg)
    counts = _counts(sum(p.counts.get("in", 0) for p in parts), len(records), rejects)
    for key in ("majority_sites", "edges", "atoms", "label_rows_without_record"):
        counts[key] = sum(p.counts.get(key, 0) for p in parts)
    counts["edges"], counts["atoms"] = int(payload["edge_ptr"][-1]), int(payload["atom_ptr"][-1])
    return Processed(payload=payload, records=records, rejects=rejects, counts=counts)
