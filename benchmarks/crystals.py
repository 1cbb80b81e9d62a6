"""Crystal preprocessing throughput, measured in one run against references from the same run.

1. CIF parsing alone (``pymatgen.core.Structure.from_str(text, fmt="cif")``, the reference);
2. full preprocessing (parse + periodic graphs + XRD + composition + labels);
3. 2 shards in 2 processes vs. 1 shard in 1 process (wall clock incl. start-up and merge).

Usage: ``python benchmarks/crystals.py [--input resources/materials/materials.csv] [--limit N]``.
Writes ``benchmarks/out/crystals.json``. Target (issue #5): full >= 0.8x the parse-only rate.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sciclr.config import dataset_params  # noqa: E402
from sciclr.data import crystals  # noqa: E402
from sciclr.io import write_json  # noqa: E402


def config(path: str, cutoff: float, max_neighbors: int) -> dict:
    return dataset_params(
        {
            "domain": "materials",
            "input": [path],
            "format": "auto",
            "cif_column": "cif",
            "labels": None,
            "id_column": "material_id",
            "split_column": "split",
            "tasks": [
                {"column": "formation_energy_per_atom", "type": "regression"},
                {"column": "crystal_system", "type": "classification"},
            ],
            "preprocess": {"cutoff": cutoff, "max_neighbors": max_neighbors},
        }
    )


def parse_only(texts: list[str]) -> float:
    from pymatgen.core import Structure

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in texts:
            Structure.from_str(text, fmt="cif")
    return time.perf_counter() - t


def _shard(args: tuple[dict, int, int]):
    cfg, shard, n = args
    return crystals.preprocess_shard(cfg, shard, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=str(REPO / "resources/materials/materials.csv"))
    ap.add_argument("--limit", type=int, default=0, help="use the first N rows (0 = all)")
    ap.add_argument("--cutoff", type=float, default=6.0)
    ap.add_argument("--max-neighbors", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each timing")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    src = args.input
    df = pd.read_csv(src)
    if args.limit:
        src = str(REPO / "benchmarks" / "out" / "crystals_subset.csv")
        Path(src).parent.mkdir(parents=True, exist_ok=True)
        df = df.head(args.limit)
        df.to_csv(src, index=False)
    texts = df["cif"].tolist()
    n = len(texts)
    cfg = config(src, args.cutoff, args.max_neighbors)
    parse_only(texts[:20])  # warm imports
    crystals.preprocess_shard(config(src, args.cutoff, args.max_neighbors) | {}, 0, max(n // 20, 1))

    t_parse = min(parse_only(texts) for _ in range(args.repeats))
    t_full = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        one = crystals.preprocess_shard(cfg, 0, 1)
        t_full.append(time.perf_counter() - t)
    t_full1 = min(t_full)
    # shards as the pipeline runs them: separate processes (imports included), 1 vs. 2
    ctx = mp.get_context("spawn")  # fork after torch init can deadlock
    t_proc: dict[int, float] = {}
    for k in (1, 2):
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            with ctx.Pool(k) as pool:
                parts = pool.map(_shard, [(cfg, s, k) for s in range(k)])
            merged = crystals.merge(parts, cfg)
            best = min(best, time.perf_counter() - t)
        t_proc[k] = best
    same = bool(
        merged.records.equals(crystals.merge([one], cfg).records)
        and all(
            (merged.payload[k] == one.payload[k]).all()
            for k in ("edge_dist", "edge_index", "xrd", "z")
        )
    )
    result = {
        "structures": n,
        "cutoff": args.cutoff,
        "max_neighbors": args.max_neighbors,
        "edges": int(one.counts["edges"]),
        "cpu_count": os.cpu_count(),
        "parse_only_per_s": n / t_parse,
        "full_1_shard_per_s": n / t_full1,
        "full_vs_parse_ratio": t_parse / t_full1,
        "processes_1_shard_per_s": n / t_proc[1],
        "processes_2_shards_per_s": n / t_proc[2],
        "two_vs_one_shard_speedup": t_proc[1] / t_proc[2],
        "two_shards_identical_to_one": same,
        "load_average_1min": os.getloadavg()[0],
    }
    write_json(REPO / "benchmarks" / "out" / "crystals.json", result)
    for k, v in result.items():
        print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")


if __name__ == "__main__":
    main()
