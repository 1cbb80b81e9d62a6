"""Crystal preprocessing: inputs -> parsed arrays -> periodic graphs + XRD + composition.

One shard processes the records with global index ``i % n_shards == shard``; :func:`merge`
restores the global order, so any number of shards gives the same output as one.

Work is cached in two levels under ``preprocess.cache_dir`` (keys are SHA-256 hashes):

1. *structures*: the shard's record texts + disorder policy -> lattices, fractional
   coordinates, atomic numbers (CIF parsing is the bottleneck, ~1 ms per structure);
2. *features*: level-1 key + graph and XRD settings -> edges, XRD patterns.

So a rerun reads both levels, and a changed cutoff rebuilds only level 2 from the arrays.

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

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sciclr.data.crystal_graphs import GraphSettings, build_graphs, segment_arange
from sciclr.data.crystal_io import (
    RawRecord,
    Reject,
    list_inputs,
    parse_structure,
    reject_frame,
)
from sciclr.data.records import finalize_records, read_label_table
from sciclr.data.xrd import KNOWN_Z, MAX_Z, XRDSettings, xrd_patterns
from sciclr.domains.base import Processed
from sciclr.errors import SciclrError
from sciclr.io import load_torch, save_torch

__all__ = ["CACHE_VERSION", "DEFAULT_CACHE_DIR", "merge", "preprocess_shard", "take"]

CACHE_VERSION = "crystals-v1"
DEFAULT_CACHE_DIR = "results/cache/materials"
ATOM_KEYS = ("z", "pos")
EDGE_KEYS = ("edge_vec", "edge_dist", "edge_image")
ROW_KEYS = ("lattice", "composition", "xrd")
LIST_KEYS = ("ids", "sources")


# --------------------------------------------------------------------------- cache


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
        h.update(b"\x00")
    return h.hexdigest()


class _Cache:
    """``<dir>/<kind>-<key>.pt`` files; a missing dir means no caching."""

    def __init__(self, folder: str | None) -> None:
        self.folder = Path(folder) if folder else None

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        path = self.folder / f"{kind}-{key[:32]}.pt"
        if not path.exists():
            return None
        try:
            obj = load_torch(path)
        except Exception:  # truncated/foreign file: rebuild and overwrite
            return None
        return obj if isinstance(obj, dict) and obj.get("key") == key else None

    def put(self, kind: str, key: str, obj: dict[str, Any]) -> None:
        if self.folder is not None:
            save_torch(self.folder / f"{kind}-{key[:32]}.pt", {**obj, "key": key})


# --------------------------------------------------------------------------- level 1


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


# --------------------------------------------------------------------------- level 2


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
    sub = _take_atoms(ptr, todo)
    frac, z = frac_all[sub[1]], z_all[sub[1]]
    lat = lat_all[todo].reshape(-1, 3, 3)
    owner = np.repeat(np.arange(len(todo)), np.diff(sub[0]))
    cart = np.einsum("ai,aij->aj", frac, lat[owner]) if len(frac) else np.zeros((0, 3))
    graphs, why = build_graphs(lat, cart, sub[0], gs)
    for k, w in zip(todo.tolist(), why, strict=True):
        reasons[k] = w
    ok = np.array([w is None for w in why], dtype=bool)
    kept = todo[ok]
    ptr_k, atom_idx = _take_atoms(sub[0], np.flatnonzero(ok))
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


def _take_atoms(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New offsets and flat atom indices of structures ``rows``."""
    counts = ptr[rows + 1] - ptr[rows]
    return (
        np.r_[0, np.cumsum(counts)].astype(np.int64),
        np.repeat(ptr[rows], counts) + segment_arange(counts),
    )


def composition(z: torch.Tensor, atom_ptr: torch.Tensor) -> torch.Tensor:
    """Element fractions (n, 118), column ``Z - 1``, from flat atomic numbers."""
    n = len(atom_ptr) - 1
    counts = torch.diff(atom_ptr)
    graph = torch.repeat_interleave(torch.arange(n), counts)
    out = torch.zeros(n * MAX_Z, dtype=torch.float64)
    out.index_add_(0, graph * MAX_Z + z.long() - 1, torch.ones(len(z), dtype=torch.float64))
    out = out.view(n, MAX_Z) / counts.clamp(min=1).unsqueeze(1)
    return out.float()


# --------------------------------------------------------------------------- payload ops


def take(payload: Mapping[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """Rows ``rows`` of a payload (vectorised segment gather); ``meta`` is carried over."""
    rows = rows.long()
    r = rows.tolist()
    out: dict[str, Any] = {key: [payload[key][i] for i in r] for key in LIST_KEYS}
    for ptr_key, keys in (("atom_ptr", ATOM_KEYS), ("edge_ptr", ("edge_index", *EDGE_KEYS))):
        ptr = payload[ptr_key]
        counts = ptr[rows + 1] - ptr[rows]
        idx = torch.repeat_interleave(ptr[rows], counts) + torch.from_numpy(
            segment_arange(counts.numpy())
        )
        out[ptr_key] = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
        for key in keys:
            t = payload[key]
            out[key] = t[:, idx] if key == "edge_index" else t[idx]
    for key in ROW_KEYS:
        out[key] = payload[key][rows]
    out["meta"] = dict(payload.get("meta", {}))
    return out


def concat(payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack payloads (shards) one after another."""
    out: dict[str, Any] = {key: [i for p in payloads for i in p[key]] for key in LIST_KEYS}
    for ptr_key in ("atom_ptr", "edge_ptr"):
        offs, pieces = 0, [torch.zeros(1, dtype=torch.int64)]
        for p in payloads:
            pieces.append(p[ptr_key][1:] + offs)
            offs += int(p[ptr_key][-1])
        out[ptr_key] = torch.cat(pieces)
    for key in (*ATOM_KEYS, *EDGE_KEYS, *ROW_KEYS):
        out[key] = torch.cat([p[key] for p in payloads])
    out["edge_index"] = torch.cat([p["edge_index"] for p in payloads], dim=1)
    out["meta"] = dict(payloads[0].get("meta", {})) if payloads else {}
    return out


# --------------------------------------------------------------------------- labels


def _snake(reason: str) -> str:
    head = re.split(r"[:(]", reason, maxsplit=1)[0].strip().lower()
    return "rejected_" + re.sub(r"[^a-z0-9]+", "_", head).strip("_")


def _label_table(
    cfg: Mapping[str, Any], csv_labels: pd.DataFrame | None
) -> tuple[pd.DataFrame | None, str, str]:
    """The label table and how to join it: ``("order", ...)`` for labels carried by the
    CSV input row by row, ``("id", ...)`` for a separate table."""
    id_col = cfg.get("id_column", "material_id")
    tasks = [t["column"] for t in cfg.get("tasks", [])]
    split_col = cfg.get("split_column")
    want = [*tasks, *([split_col] if split_col else [])]
    if cfg.get("labels"):
        table = read_label_table(cfg["labels"], id_col, want)
        return table, "id", str(cfg["labels"])
    if csv_labels is not None:
        missing = [c for c in want if c not in csv_labels.columns]
        if missing:
            raise SciclrError(
                f"{cfg.get('input')}: label column(s) {missing} not in the input table; "
                f"available: {list(csv_labels.columns)[:15]}"
            )
        return csv_labels, "order", "the input table"
    if want:
        raise SciclrError(
            f"tasks {tasks} need labels, but the input {cfg.get('input')} has none: "
            "set `labels:` to a CSV/TSV with the id column"
        )
    return None, "id", ""


def _join_labels(
    ids: Sequence[str],
    order: np.ndarray,
    sources: Sequence[str],
    cfg: Mapping[str, Any],
    csv_labels: pd.DataFrame | None,
) -> tuple[pd.DataFrame, list[tuple[str, str, str, int]]]:
    """Raw records (``id``, task columns, split column, ``order``) and missing-label rejects."""
    tasks = [t["column"] for t in cfg.get("tasks", [])]
    split_col = cfg.get("split_column")
    cols = list(dict.fromkeys([*tasks, *([split_col] if split_col else [])]))
    table, how, name = _label_table(cfg, csv_labels)
    rec = pd.DataFrame({"id": list(ids), "order": np.asarray(order, dtype=np.int64)})
    if table is None or not cols:
        return rec, []
    if how == "order":
        lab = table.iloc[rec["order"].to_numpy()][cols].reset_index(drop=True)
        found = np.ones(len(rec), dtype=bool)
    else:
        found = rec["id"].isin(table.index).to_numpy()
        lab = table.reindex(rec["id"])[cols].reset_index(drop=True)
    rec = pd.concat([rec, lab], axis=1)
    rec = rec.loc[:, ~rec.columns.duplicated()]
    policy = cfg.get("preprocess", {}).get("missing_labels", "reject")
    rejects = []
    bad = ~found
    reason = np.where(bad, f"missing label: id not in {name}", "").astype(object)
    if policy == "reject":
        for c in cols:
            na = rec[c].isna().to_numpy() & ~bad
            reason[na & (reason == "")] = f"missing label: {c!r} is empty"
            bad |= na
    else:
        split_na = (
            rec[split_col].isna().to_numpy() & ~bad if split_col else np.zeros(len(rec), bool)
        )
        reason[split_na] = f"missing label: {split_col!r} is empty"
        bad |= split_na
    for k in np.flatnonzero(bad):
        rejects.append((rec["id"].iat[k], sources[k], str(reason[k]), int(rec["order"].iat[k])))
    return rec[~bad].reset_index(drop=True), rejects


def _finalize(raw: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    out = finalize_records(raw, cfg)
    for col in ("id", "split"):
        out[col] = out[col].astype(str)
    out["order"] = raw["order"].to_numpy()
    return out


def _dedupe(
    payload: dict[str, Any], records: pd.DataFrame
) -> tuple[dict[str, Any], pd.DataFrame, list[tuple[str, str, str, int]]]:
    """Keep the first occurrence (lowest order) of every id; list the others."""
    dup = records["id"].duplicated(keep="first").to_numpy()
    if not dup.any():
        return payload, records, []
    src = payload["sources"]
    first = {records["id"].iat[k]: src[k] for k in np.flatnonzero(~dup)}
    rej = [
        (
            records["id"].iat[k],
            src[k],
            f"duplicate id (first at {first[records['id'].iat[k]]})",
            int(records["order"].iat[k]),
        )
        for k in np.flatnonzero(dup)
    ]
    keep = torch.from_numpy(np.flatnonzero(~dup))
    return take(payload, keep), records[~dup].reset_index(drop=True), rej


# --------------------------------------------------------------------------- entry points


def settings(cfg: Mapping[str, Any]) -> tuple[GraphSettings, XRDSettings, str, str | None]:
    pre = dict(cfg.get("preprocess") or {})
    occupancy = pre.get("occupancy", "reject")
    if occupancy not in ("reject", "majority"):
        raise SciclrError(f"preprocess.occupancy must be 'reject' or 'majority', got {occupancy!r}")
    gs = GraphSettings.from_cfg(pre)
    if gs.cutoff <= 0:
        raise SciclrError(f"preprocess.cutoff must be positive, got {gs.cutoff}")
    cache_dir = pre.get("cache_dir", DEFAULT_CACHE_DIR)
    return gs, XRDSettings.from_cfg(pre.get("xrd")), occupancy, cache_dir


def preprocess_shard(cfg: Mapping[str, Any], shard: int = 0, n_shards: int = 1) -> Processed:
    """Process the records ``i % n_shards == shard`` of ``cfg["input"]`` (see module doc)."""
    if not 0 <= shard < n_shards:
        raise SciclrError(f"shard {shard} out of range for {n_shards} shard(s)")
    gs, xs, occupancy, cache_dir = settings(cfg)
    records, csv_labels = list_inputs(cfg)
    mine = [r for r in records if r.order % n_shards == shard]
    cache = _Cache(cache_dir)
    h = hashlib.sha256()
    for r in mine:
        try:
            text = r.read() if r.fmt in ("cif", "poscar") else (r.text or "")
        except Reject as exc:
            text = f"<{exc}>"
        h.update(f"{r.order}\x00{r.id}\x00{r.source}\x00{r.fmt}\x00".encode())
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x01")
    key1 = _digest(CACHE_VERSION, occupancy, h.hexdigest())
    s = cache.get("structures", key1)
    hit1 = s is not None
    if s is None:
        s = _parse_all(mine, occupancy)
        cache.put("structures", key1, s)
    key2 = _digest(key1, asdict(gs), asdict(xs))
    f = cache.get("features", key2)
    hit2 = f is not None
    if f is None:
        f = _features(s, gs, xs)
        cache.put("features", key2, f)

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
    payload["meta"] = _meta(gs, xs, occupancy)
    raw, lab_rej = _join_labels(payload["ids"], order1[kept], payload["sources"], cfg, csv_labels)
    if lab_rej:
        ok = ~np.isin(order1[kept], [r[3] for r in lab_rej])
        payload = take(payload, torch.from_numpy(np.flatnonzero(ok)))
    payload, raw, dup_rej = _dedupe(payload, raw)
    rejects = _sorted_rejects(rej_rows + lab_rej + dup_rej)
    if n_shards == 1 or cfg.get("split_column"):
        recs = _finalize(raw, cfg)
    else:
        recs = raw
    counts = _counts(len(mine), len(recs), rejects)
    counts["cache_structures_hit"] = int(hit1)
    counts["cache_features_hit"] = int(hit2)
    counts["majority_sites"] = int(s["n_majority"])
    counts["edges"] = int(payload["edge_ptr"][-1])
    counts["atoms"] = int(payload["atom_ptr"][-1])
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
        "version": CACHE_VERSION,
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
    payload, raw, dup = _dedupe(payload, raw)
    rej_parts = [p.rejects for p in parts if len(p.rejects)] + [reject_frame(dup)]
    rejects = pd.concat(rej_parts, ignore_index=True)
    rejects = _sorted_rejects(list(rejects.itertuples(index=False, name=None)))
    if cfg.get("split_column"):
        records = raw
    else:
        records = _finalize(raw.drop(columns=["split"], errors="ignore"), cfg)
    counts = _counts(sum(p.counts.get("in", 0) for p in parts), len(records), rejects)
    for key in ("cache_structures_hit", "cache_features_hit"):
        counts[key] = int(all(p.counts.get(key, 0) for p in parts))
    for key in ("majority_sites", "edges", "atoms"):
        counts[key] = sum(p.counts.get(key, 0) for p in parts)
    counts["edges"], counts["atoms"] = int(payload["edge_ptr"][-1]), int(payload["atom_ptr"][-1])
    return Processed(payload=payload, records=records, rejects=rejects, counts=counts)
