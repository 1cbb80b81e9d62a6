"""Training throughput of the materials contrastive model: this checkout vs a baseline revision.

One training step as the engine runs it, on the bundled crystals
(``resources/materials/materials.csv``, preprocessed through the package once):
collation of a random batch of 256 training crystals (``CrystalSource.batch``), forward of
``sciclr.domains.materials.DOMAIN.build_model(payload, cfg)`` (graph views + composition / XRD
towers), ``sciclr.losses.InfoNCE`` and backward. No optimiser step (the same for both sides).

The baseline's ``src`` is exported with ``git archive <rev> src`` into a temporary folder; each
measurement is a fresh subprocess with ``PYTHONPATH`` pointing at one of the two trees (the
worker checks which ``sciclr`` it imported), ``--threads`` intra-op threads, the same payload,
config, seed and batch indices. Current and baseline alternate for ``--repeats`` rounds (the
order flips every round), so load from other processes on the machine hits both sides alike.
Each run reports the median step (wall and process CPU time) of ``--steps`` timed steps after
``--warmup``; the figures are medians over rounds, the ratios medians of per-round ratios
(samples/s current / baseline, and CPU time per step baseline / current: > 1 = faster now; on
a busy machine the CPU time is the steadier of the two).
Both sides also report the loss of their first step: with the same seed, weights and views it
is the same number when the two revisions compute the same function.

The config is written out in full below (every model / views key, values of the schema's
materials sections and the ``materials`` entry of config/config.yaml), so both revisions build
the same model whatever their own defaults are.

``--micro`` also times, in this process, the design choices of ``sciclr.encoders.crystals`` and
``sciclr.data.crystal_batch`` on one real batch: the factorised gated convolution vs
``torch_geometric.nn.CGConv`` (concatenated ``[x_i, x_j, e_ij]``), forward + backward; and
collation by gathering vs ``torch_geometric.data.Batch.from_data_list`` (of prebuilt
per-crystal ``Data``, and of ``Data`` sliced per step). On a shared machine run it with
``--threads 1`` too: two threads on two busy cores stall in every parallel region, which
swamps millisecond-sized operations such as the gather.

Usage: ``python benchmarks/crystal_encoder.py [--baseline 62e8cc3] [--repeats 5] [--steps 8]
[--threads 2] [--micro]``. Writes ``benchmarks/out/crystal_encoder.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
DATA_DIR = OUT / "crystal_encoder_data"

# The materials entry of config/config.yaml as far as the data go; the pipeline fills the rest
# of the preprocessing defaults from the schema.
DATASET: dict[str, Any] = {
    "name": "materials",
    "domain": "materials",
    "input": [str(REPO / "resources" / "materials" / "materials.csv")],
    "cif_column": "cif",
    "id_column": "material_id",
    "split_column": "split",
    "tasks": [
        {"column": "formation_energy_per_atom", "type": "regression"},
        {"column": "band_gap", "type": "regression", "binarize_above": 0.0},
        {"column": "crystal_system", "type": "classification", "cluster": True},
    ],
    "preprocess": {"shards": 1, "cutoff": 6.0},
}

# What both revisions' ``build_model`` read, every key written out: the schema's materials
# ``views`` / ``model`` defaults with the config/config.yaml overrides (hidden 256, lattice,
# composition_input descriptors, temperature 0.3).
MODEL_CFG: dict[str, Any] = {
    "views": {
        "atom_mask": 0.1,
        "edge_drop": 0.1,
        "coord_noise": 0.05,
        "xrd_shift": 2,
        "xrd_noise": 0.05,
        "composition_noise": 0.0,
        "strain": 0.0,  # current revision only (the baseline ignores it)
    },
    "model": {
        "pairing": ["composition", "xrd"],
        "hidden": 256,
        "layers": 3,
        "n_rbf": 32,
        "pooling": "mean",
        "readout": "concat",
        "norm": "batch",
        "angular": 6,
        "element_features": False,
        "composition_input": "descriptors",
        "lattice": True,
        "side_hidden": 256,
        "side_layers": 2,
        "proj_hidden": 256,
        "proj_dim": 128,
    },
    "train": {"temperature": 0.3, "loss_mode": "all", "batch_size": 256},
}


# --------------------------------------------------------------------------- data


def prepare(data_dir: Path, cfg: dict[str, Any]) -> Path:
    """Parse + preprocess + gather the bundled crystals once with this checkout's pipeline
    (reused while ``data.pt`` exists; delete the folder after changing the data code)."""
    from sciclr import pipeline

    data = data_dir / "data.pt"
    if data.is_file():
        return data
    shard = data_dir / "shard0"
    shard.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    parsed = None
    if hasattr(pipeline, "parse_shard"):  # the materials parse stage (its own step)
        parsed = data_dir / "parsed0.pt"
        pipeline.parse_shard(cfg, 0, 1, parsed)
    pipeline.preprocess_shard(cfg, 0, 1, shard, parsed)
    pipeline.gather(cfg, [shard], data_dir)
    print(f"preprocessed {cfg['input'][0]} in {time.perf_counter() - t:.0f} s -> {data}")
    return data


def train_rows(data_dir: Path) -> list[int]:
    import pandas as pd

    records = pd.read_csv(data_dir / "records.tsv", sep="\t", dtype={"id": str, "split": str})
    return [int(i) for i in records.index[records["split"] == "train"]]


# --------------------------------------------------------------------------- worker


def worker(args: argparse.Namespace) -> None:
    """One timing in this process, with whatever ``sciclr`` ``PYTHONPATH`` provides."""
    import torch

    torch.set_num_threads(args.threads)
    import sciclr
    from sciclr.domains.materials import DOMAIN
    from sciclr.io import load_torch
    from sciclr.losses import InfoNCE

    where = Path(sciclr.__file__).resolve()
    if not where.is_relative_to(Path(args.expect_src).resolve()):
        raise SystemExit(f"imported sciclr from {where}, expected under {args.expect_src}")
    cfg = json.loads(Path(args.cfg).read_text())
    payload = load_torch(args.data)
    rows = torch.tensor(train_rows(Path(args.data).parent))
    torch.manual_seed(0)
    model = DOMAIN.build_model(payload, cfg).train()
    loss_fn = InfoNCE(temperature=cfg["train"]["temperature"], mode=cfg["train"]["loss_mode"])
    source = DOMAIN.data_source(payload)
    gen = torch.Generator().manual_seed(1)
    views = torch.Generator().manual_seed(2)
    n = cfg["train"]["batch_size"]

    def step() -> tuple[float, float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        idx = rows[torch.randperm(len(rows), generator=gen)[:n]]
        batch = source.batch(idx, "cpu")
        t1 = time.perf_counter()
        loss = loss_fn(model(batch, views))
        loss.backward()
        model.zero_grad(set_to_none=True)
        return t1 - t0, time.perf_counter() - t0, time.process_time() - c0

    with torch.no_grad():  # the first batch's loss, before any timing (train-mode BatchNorm)
        first = float(
            loss_fn(model(source.batch(rows[:n], "cpu"), torch.Generator().manual_seed(3)))
        )
    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.steps)]
    # medians over steps: a burst of load from other processes moves one step, not the figure
    collate, total, cpu = (statistics.median(t[k] for t in times) for k in range(3))
    print(
        json.dumps(
            {
                "samples_per_s": n / total,
                "step_ms": 1e3 * total,
                "collate_ms": 1e3 * collate,
                "cpu_ms": 1e3 * cpu,
                "first_loss": first,
                "sciclr": str(where.parent),
            }
        )
    )


def run_worker(src: Path, data: Path, cfg_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
    }
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        f"--data={data}",
        f"--cfg={cfg_file}",
        f"--expect-src={src}",
        f"--threads={args.threads}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker for {src} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- micro


def _interleaved_ms(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Minimum wall time (ms) of each function, called round-robin ``repeats`` times."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], 1e3 * (time.perf_counter() - t))
    return best


def micro(data: Path, cfg: dict[str, Any], threads: int, repeats: int = 7) -> dict[str, Any]:
    """Design measurements on one real batch of 256 crystals (minimum over ``repeats``)."""
    import torch
    import torch.nn.functional as F
    import torch_geometric
    from torch_geometric.data import Batch, Data

    from sciclr.data.crystal_batch import CrystalSource
    from sciclr.encoders.crystals import FactorisedCGConv, GaussianRBF
    from sciclr.io import load_torch

    torch.set_num_threads(threads)
    payload = load_torch(data)
    source = CrystalSource(payload)
    rows = torch.tensor(train_rows(data.parent))
    idx = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:256]]
    b = source.batch(idx)
    hidden, edge_dim = cfg["model"]["hidden"], cfg["model"]["n_rbf"] + cfg["model"]["angular"]
    torch.manual_seed(0)
    h0 = torch.randn(len(b.z), hidden)
    u = torch.cat([GaussianRBF(cfg["model"]["n_rbf"], 6.0)(b.edge_dist), b.edge_vec[:, :1]], 1)
    u = torch.cat([u, torch.randn(len(u), edge_dim - u.shape[1])], 1)
    ours = FactorisedCGConv(hidden, edge_dim, "batch")
    pyg = torch_geometric.nn.CGConv(hidden, edge_dim, aggr="add", batch_norm=False)
    norm = torch.nn.BatchNorm1d(hidden)

    def pyg_step():  # PyG's conv with the same residual + norm + softplus around it
        h = h0.clone().requires_grad_()
        agg = pyg(h, b.edge_index, u) - h  # CGConv returns h + Σ messages (no norm here)
        F.softplus(h + norm(agg)).sum().backward()

    def our_step():
        h = h0.clone().requires_grad_()
        ours(h, b.edge_index, u).sum().backward()

    conv = _interleaved_ms({"factorised": our_step, "pyg_cgconv": pyg_step}, repeats)
    res: dict[str, Any] = {"atoms": len(b.z), "edges": int(b.edge_index.shape[1])}
    res.update({f"conv_fwd_bwd_ms_{k}": v for k, v in conv.items()})
    # collation: the source's gather vs PyG's per-graph Batch.from_data_list, given the
    # per-crystal Data objects (an in-memory dataset) or slicing them per step (a Dataset's
    # __getitem__ + collate, as torch_geometric.loader.DataLoader does)
    t = source._on(torch.device("cpu"))
    a_ptr, e_ptr = t["atom_ptr"].tolist(), t["edge_ptr"].tolist()

    def crystal(i: int) -> Data:
        a, e = slice(a_ptr[i], a_ptr[i + 1]), slice(e_ptr[i], e_ptr[i + 1])
        return Data(
            z=t["z"][a],
            edge_index=t["edge_index"][:, e],
            edge_vec=t["edge_vec"][e],
            edge_dist=t["edge_dist"][e],
            composition=t["composition"][i : i + 1],
            xrd=t["xrd"][i : i + 1],
            cell=t["cell"][i : i + 1],
            num_nodes=a_ptr[i + 1] - a_ptr[i],
        )

    graphs = [crystal(i) for i in range(len(source))]
    chosen = idx.tolist()
    collate = _interleaved_ms(
        {
            "gather": lambda: source.batch(idx),
            "from_data_list": lambda: Batch.from_data_list([graphs[i] for i in chosen]),
            "slice_and_from_data_list": lambda: Batch.from_data_list([crystal(i) for i in chosen]),
        },
        repeats,
    )
    res.update({f"collate_ms_{k}": v for k, v in collate.items()})
    ref = Batch.from_data_list([graphs[i] for i in chosen])
    res["collate_same_tensors"] = all(
        torch.equal(getattr(ref, k), getattr(b, k))
        for k in ("z", "batch", "ptr", "edge_index", "edge_vec", "composition", "cell")
    )
    return res


# --------------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="62e8cc3", help="git revision to compare against")
    ap.add_argument("--repeats", type=int, default=5, help="alternating rounds")
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per measurement")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--micro", action="store_true", help="also time conv and collation variants")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    ap.add_argument("--expect-src", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    sys.path.insert(0, str(REPO / "src"))
    data = prepare(args.data_dir, DATASET)
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"threads": args.threads, "cpu_count": os.cpu_count()}
    if args.repeats > 0:
        result.update(compare(args, data))
    if args.micro:
        result["micro"] = micro(data, MODEL_CFG, args.threads)
    result["load_average_1min"] = os.getloadavg()[0]
    (OUT / "crystal_encoder.json").write_text(json.dumps(result, indent=1))
    if args.repeats > 0:
        for side, key in (("current", "current"), (f"baseline {args.baseline}", "baseline_side")):
            m = result[key]
            print(
                f"{side:18s} {m['samples_per_s']:8.1f} samples/s  "
                f"(step {m['step_ms']:.0f} ms, of which collation {m['collate_ms']:.1f} ms; "
                f"CPU time {m['cpu_ms']:.0f} ms)"
            )
        print(
            f"ratio current / baseline: {result['ratio_current_vs_baseline']:.3f} "
            f"(per round: {', '.join(f'{x:.3f}' for x in result['ratios'])})"
        )
        print(
            "CPU time per step, baseline / current: "
            f"{result['cpu_time_ratio_baseline_vs_current']:.3f} "
            f"(per round: {', '.join(f'{x:.3f}' for x in result['cpu_time_ratios'])})"
        )
        print(
            f"first-step loss: current {result['first_loss_current']:.6f}, "
            f"baseline {result['first_loss_baseline']:.6f}"
        )
    for k, v in result.get("micro", {}).items():
        print(f"{k:36s} {v:.2f}" if isinstance(v, float) else f"{k:36s} {v}")
    print(f"load average (1 min) at the end: {result['load_average_1min']:.1f}")


def compare(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Alternating subprocess timings of this checkout and the baseline revision."""
    with tempfile.TemporaryDirectory(prefix="sciclr-baseline-") as tmp:
        tmp = Path(tmp)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.baseline, "src"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        cfg_file = tmp / "cfg.json"
        cfg_file.write_text(json.dumps(MODEL_CFG))
        sides = {"current": REPO / "src", "baseline": tmp / "src"}
        runs: dict[str, list[dict[str, Any]]] = {"current": [], "baseline": []}
        for r in range(args.repeats):
            order = ("current", "baseline") if r % 2 == 0 else ("baseline", "current")
            for side in order:
                runs[side].append(run_worker(sides[side], data, cfg_file, args))
            print(
                f"round {r + 1}/{args.repeats}: "
                + ", ".join(f"{s} {runs[s][-1]['samples_per_s']:.1f}/s" for s in runs)
                + f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    keys = ("samples_per_s", "collate_ms", "step_ms", "cpu_ms")
    med = {s: {k: statistics.median(x[k] for x in v) for k in keys} for s, v in runs.items()}
    ratios = [
        c["samples_per_s"] / b["samples_per_s"]
        for c, b in zip(runs["current"], runs["baseline"], strict=True)
    ]
    cpu_ratios = [
        b["cpu_ms"] / c["cpu_ms"] for c, b in zip(runs["current"], runs["baseline"], strict=True)
    ]
    return {
        "cpu_time_ratio_baseline_vs_current": statistics.median(cpu_ratios),
        "cpu_time_ratios": cpu_ratios,
        "first_loss_current": runs["current"][0]["first_loss"],
        "first_loss_baseline": runs["baseline"][0]["first_loss"],
        "baseline": args.baseline,
        "batch_size": MODEL_CFG["train"]["batch_size"],
        "steps": args.steps,
        "repeats": args.repeats,
        "current": med["current"],
        "baseline_side": med["baseline"],
        "ratio_current_vs_baseline": statistics.median(ratios),
        "ratios": ratios,
    }


if __name__ == "__main__":
    main()
