"""How time and memory of every workflow step grow with the data: the real ``sciclr`` verbs on
data of growing size, each in a subprocess of its own so that its peak RSS is measured.

Usage::

    python benchmarks/scaling.py --json benchmarks/out/scaling.json        # 1x, 4x, 16x (hours)
    python benchmarks/scaling.py --quick --json /tmp/scaling_quick.json   # 1x and 4x (minutes)

What it does, per domain and size (DNA: 1x, 4x, 16x the 7,309 bundled fragments of
``resources/dna/genomics.fasta``; crystals: 1x, 4x, 16x the 3,202 structures of
``resources/materials/materials.csv``):

1. grows the data realistically: size m holds the bundled records plus m - 1 seeded mutated
   copies of each (new ids; DNA: 1 % point substitutions, a few 1-5 bp indels and a re-crop of
   up to 5 % at each end; crystals: the lattice strained by a random symmetric strain of
   sigma 1 %, every atom displaced by sigma 0.02 A, written with pymatgen's ``CifWriter``), so
   parsing and graph building cost what real records cost and no record is an exact duplicate;
   copies keep the label and split of their original. Generated inputs are cached in ``--work``;
2. runs the workflow's steps as the rules do, with the bundled config's model, training and
   analysis settings (``config/config.yaml``), one shard per step so that a step is one
   process: ``parse`` (crystals), ``preprocess``, ``gather``, ``features_<name>``, ``train``,
   ``embed``, ``probe``, ``cluster``, ``label_efficiency``, ``recovery``, ``figures``,
   ``verdict`` and ``report``. The untrained-encoder baseline is the SSL embedding file passed a
   second time (same shape, same cost to analyse; its own ``embed`` would cost what ``embed``
   costs);
3. measures each process's wall time and peak RSS (``os.wait4``'s ``ru_maxrss``: the largest
   resident set of the process and of the children it waited for) and prints, for every step,
   the wall time and peak RSS per size and the log-log slopes between the two largest sizes
   (``slope`` of the wall time: 1 = linear; ``rss_slope`` of the peak RSS: 0 = memory does
   not grow).

Training: the full run trains one real epoch at each size (throughput is what is measured);
``--quick`` stops after ``--quick-steps`` steps. ``train``'s ``wall_s`` is the time of one epoch
either way: ``steps_per_epoch`` times the mean steady step time (``train_summary.json``:
``n_train / samples_per_s``); the process's own wall time, which adds start-up, the val k-NN
evaluation at the end, the similarities and writing, is ``train_job`` (its peak RSS is the
training's).

Output: the table on stdout; ``--json FILE``: ``{"sizes": {"dna": [...], "materials": [...]},
"n": {...}, "steps": {"<domain>/<step>": {"n": [...], "wall_s": [...], "peak_rss_mb": [...],
"input_mb": [...], "slope": x, "rss_slope": y, "mb_per_input_mb": z}}, "machine": {...}}``
(``input_mb``: the size of the files the step reads, what its rule's ``mem_mb`` follows;
``mb_per_input_mb``: the growth of peak RSS per MB of input between the two largest sizes); a figure (log-log wall time and peak RSS
against items per step) as ``--png`` (default: the JSON path with ``.png``). ``n`` is the
number of items of the data set at that size. Sizes below 1 (hidden option ``--sizes``, e.g.
``--sizes dna=0.05,0.1 materials=0.05,0.1``) take a seeded subset of the bundled records: a
smoke test of the whole script in a minute or two.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DNA_FASTA = REPO / "resources/dna/genomics.fasta"
DNA_LABELS = REPO / "resources/dna/labels.tsv"
MATERIALS_CSV = REPO / "resources/materials/materials.csv"
DOMAIN_OF = {"dna": "genomics", "materials": "materials"}  # bundled config's data set names
FULL_SIZES = [1.0, 4.0, 16.0]
QUICK_SIZES = [1.0, 4.0]
SEED = 0


# -- growing the data ------------------------------------------------------------------------


def read_fasta(path: Path) -> tuple[list[str], list[str], list[bytes]]:
    """Ids, header lines and sequences (bytes, upper case) of a FASTA file."""
    ids, headers, seqs, cur = [], [], [], []
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b">"):
                if ids:
                    seqs.append(b"".join(cur).upper())
                head = line[1:].decode().strip()
                ids.append(head.split()[0])
                headers.append(head)
                cur = []
            else:
                cur.append(line.strip())
    if ids:
        seqs.append(b"".join(cur).upper())
    return ids, headers, seqs


_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def mutate_dna(seq: bytes, rng: np.random.Generator, min_length: int = 250) -> bytes:
    """A mutated copy: re-cropped ends, 1 % point substitutions, Poisson(3) short indels."""
    s = np.frombuffer(seq, dtype=np.uint8).copy()
    room = max(0, len(s) - min_length)
    lo = int(rng.integers(0, min(room // 2, int(0.05 * len(s))) + 1))
    hi = len(s) - int(rng.integers(0, min(room - lo, int(0.05 * len(s))) + 1))
    s = s[lo:hi]
    hit = np.flatnonzero(rng.random(len(s)) < 0.01)
    s[hit] = _BASES[(np.searchsorted(_BASES, s[hit]) + rng.integers(1, 4, len(hit))) % 4]
    n_indel = int(rng.poisson(3))
    if n_indel:
        pos = np.sort(rng.choice(len(s), size=min(n_indel, len(s)), replace=False))
        pieces, last = [], 0
        for p in pos:
            size = int(rng.integers(1, 6))
            pieces.append(s[last:p])
            if rng.random() < 0.5:  # insertion of random bases
                pieces.append(_BASES[rng.integers(0, 4, size)])
                last = p
            else:  # deletion
                last = min(len(s), p + size)
        pieces.append(s[last:])
        s = np.concatenate(pieces)
    return s.tobytes()


def subset_rows(n: int, size: float) -> np.ndarray:
    """Rows of the bundled data kept at a size below 1 (seeded, sorted); all of them at >= 1."""
    if size >= 1:
        return np.arange(n)
    k = max(30, round(size * n))
    return np.sort(np.random.default_rng(SEED).choice(n, size=min(k, n), replace=False))


def make_dna(size: float, out: Path) -> tuple[Path, Path]:
    """FASTA + label table of ``size`` x the bundled fragments (cached)."""
    fasta, labels = out / "genomics.fasta", out / "labels.tsv"
    if fasta.exists() and labels.exists():
        return fasta, labels
    out.mkdir(parents=True, exist_ok=True)
    ids, headers, seqs = read_fasta(DNA_FASTA)
    with open(DNA_LABELS, newline="") as fh:
        lab = {r["id"]: r for r in csv.DictReader(fh, delimiter="\t")}
    keep = subset_rows(len(ids), size)
    copies = max(1, round(size)) - 1
    rng = np.random.default_rng(SEED)
    tmp_f, tmp_l = fasta.with_suffix(".tmp"), labels.with_suffix(".tmp")
    with open(tmp_f, "wb") as fa, open(tmp_l, "w", newline="") as fl:
        w = csv.writer(fl, delimiter="\t", lineterminator="\n")
        w.writerow(["id", "label", "split"])
        for i in keep:
            fa.write(f">{headers[i]}\n".encode() + _wrap(seqs[i]))
            w.writerow([ids[i], lab[ids[i]]["label"], lab[ids[i]]["split"]])
        for j in range(1, copies + 1):
            for i in keep:
                new = f"{ids[i]}_c{j}"
                fa.write(f">{new}\n".encode() + _wrap(mutate_dna(seqs[i], rng)))
                w.writerow([new, lab[ids[i]]["label"], lab[ids[i]]["split"]])
    os.replace(tmp_l, labels)
    os.replace(tmp_f, fasta)
    return fasta, labels


def _wrap(seq: bytes, width: int = 80) -> bytes:
    return b"".join(seq[i : i + width] + b"\n" for i in range(0, len(seq), width))


def strained_cif(structure, rng: np.random.Generator) -> str:
    """CIF text of ``structure`` with a random symmetric lattice strain (sigma 1 %) and every
    atom displaced by sigma 0.02 A (P1, pymatgen's CifWriter)."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    e = rng.normal(0.0, 0.01, (3, 3))
    strain = np.eye(3) + (e + e.T) / 2
    lattice = Lattice(structure.lattice.matrix @ strain)
    cart = structure.frac_coords @ lattice.matrix + rng.normal(0.0, 0.02, (len(structure), 3))
    moved = Structure(lattice, structure.species, cart, coords_are_cartesian=True)
    return str(CifWriter(moved))


def make_materials(size: float, out: Path) -> Path:
    """CSV (CIF column + labels) of ``size`` x the bundled structures (cached)."""
    import pandas as pd
    from pymatgen.core import Structure

    path = out / "materials.csv"
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    base = pd.read_csv(MATERIALS_CSV, dtype={"material_id": str})
    base = base.iloc[subset_rows(len(base), size)].reset_index(drop=True)
    copies = max(1, round(size)) - 1
    parts = [base]
    if copies:
        rng = np.random.default_rng(SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = [Structure.from_str(t, fmt="cif") for t in base["cif"]]
            for j in range(1, copies + 1):
                part = base.copy()
                part["material_id"] = base["material_id"] + f"_c{j}"
                part["cif"] = [strained_cif(s, rng) for s in structures]
                parts.append(part)
    tmp = path.with_suffix(".tmp")
    pd.concat(parts, ignore_index=True).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


# -- running the verbs ---------------------------------------------------------------------


def run_step(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run one verb; (wall seconds, peak RSS in MB) of that process alone (``os.wait4``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write(shlex.join(cmd) + "\n")
        fh.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise SystemExit(f"step failed (exit {proc.returncode}): {shlex.join(cmd)}\n{tail}")
    return wall, usage.ru_maxrss / 1024.0  # Linux: KiB


#: per verb, the options that name outputs (not counted in a step's input size)
OUTPUT_FLAGS = {
    "train": {"--out", "--resume"},
    "probe": {"--out", "--predictions"},
    "cluster": {"--out", "--assignments"},
    "label-efficiency": {"--out", "--comparisons"},
    "figures": {"--out-dir"},
}
SHARD_FILES = ("data.pt", "records.parquet", "rejects.tsv", "counts.json")
#: options that take several values (every other option takes one)
MULTI_VALUE = {"--features", "--embeddings", "--targets", "--names"}


def input_mb(args: list[str]) -> float:
    """MB of the files a verb's arguments name as inputs (what Snakemake's ``input.size_mb``
    of the rule's job is): paths after input options and positional paths, a data folder's
    ``data.pt`` + ``records.tsv``, a shard folder's files, the report's ``--inputs`` files, and
    for ``parse`` (``preprocess`` without ``--parsed``) the raw files its ``--params`` name."""
    verb, outs = args[0], OUTPUT_FLAGS.get(args[0], {"--out"})
    paths: list[Path] = []
    flag = ""  # the option the next value belongs to ("" = positional)
    for a in args[1:]:
        if a.startswith("--"):
            flag = a
            continue
        this = flag
        if flag not in MULTI_VALUE:  # one value; what follows is positional (gather's shards)
            flag = ""
        if this in outs:
            continue
        if this == "--params":
            if verb in ("parse", "preprocess") and "--parsed" not in args:
                sec = json.loads(Path(a.removeprefix("@")).read_text())
                raw = sec["input"] if isinstance(sec["input"], list) else [sec["input"]]
                paths += [Path(x) for x in [*raw, sec.get("labels")] if x]
            continue
        if this == "--inputs":
            for kinds in json.loads(Path(a.removeprefix("@")).read_text()).values():
                paths += [Path(v) for v in kinds.values()]
            continue
        path = Path(a.split("=", 1)[1] if "=" in a and not a.startswith("/") else a)
        if this == "--data":
            paths += [path / "data.pt", path / "records.tsv"]
        elif path.is_dir() and verb == "gather":
            paths += [path / f for f in SHARD_FILES]
        elif path.exists():
            paths.append(path)
    total = 0
    for path in paths:
        files = path.rglob("*") if path.is_dir() else [path]
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total / 2**20


def section(domain: str, inputs: dict, quick_steps: int | None) -> dict:
    """The bundled config's section of the domain's data set, on the generated inputs."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    sec = copy.deepcopy(cfg["datasets"][DOMAIN_OF[domain]])
    sec["name"] = DOMAIN_OF[domain]
    sec.update(inputs)
    sec.setdefault("preprocess", {})["shards"] = 1
    train = sec.setdefault("train", {})
    train["epochs"] = 1
    if quick_steps:
        train["max_steps"] = int(quick_steps)
        train["profile_steps"] = 0  # profiled steps are slower: they would skew a short run
    return sec


def figures_flags() -> set[str]:
    out = subprocess.run(
        ["sciclr", "figures", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return {f for f in ("--train-summary",) if f in out}


def git_commit() -> str:
    """The checkout's commit (``+dirty`` with uncommitted changes): recorded with each step."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


class _Until(Exception):
    """The step named by ``--until`` is done."""


def run_size(
    domain: str,
    size: float,
    work: Path,
    threads: int,
    quick_steps: int | None,
    resume: bool = False,
    until: str | None = None,
):
    """Every step on one size; returns (n items, {step: (wall_s, peak_rss_mb, input_mb)},
    {step: commit}); with ``until``, the steps after that one are not run.

    Each step's measurement is kept beside its outputs (``measure/<step>.json``); with
    ``resume`` a step measured before with the same command is not run again, so a benchmark
    of several hours can be completed over several sittings (each step records its commit)."""
    tag = f"{size:g}x"
    data_dir = work / "inputs" / domain / tag
    if domain == "dna":
        fasta, labels = make_dna(size, data_dir)
        sec = section(domain, {"input": [str(fasta)], "labels": str(labels)}, quick_steps)
    else:
        table = make_materials(size, data_dir)
        sec = section(domain, {"input": [str(table)], "labels": None}, quick_steps)
    run = work / "runs" / domain / tag
    logs = run / "logs"
    params = run / "params.json"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(json.dumps(sec, sort_keys=True))
    P = f"@{params}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    th = ["--threads", str(threads)]
    res: dict[str, tuple[float, float, float]] = {}
    commits: dict[str, str] = {}
    measured = run / "measure"
    # a step measured in an earlier sitting is reused only if every step before it was too:
    # a rerun step rewrites outputs that the later ones read
    fresh = {"from": None}

    def measure(name: str, *args: str) -> None:
        cmd = ["sciclr", *args]
        record = measured / f"{name}.json"
        if resume and fresh["from"] is None and record.exists():
            kept = json.loads(record.read_text())
            if kept.get("cmd") == cmd and kept.get("params") == params.read_text():
                res[name] = (kept["wall_s"], kept["peak_rss_mb"], kept["input_mb"])
                commits[name] = kept["commit"]
                print(
                    f"  {domain} {tag} {name}: kept from {kept['commit']} "
                    f"({res[name][0]:.1f} s, {res[name][1]:.0f} MB)",
                    flush=True,
                )
                return
        fresh["from"] = fresh["from"] or name
        if name == "train":  # a fresh epoch, not a resumed one
            shutil.rmtree(rdir, ignore_errors=True)
        size = input_mb(list(args))
        res[name] = (*run_step(cmd, logs / f"{name}.log", env), size)
        commits[name] = git_commit()
        measured.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "cmd": cmd,
                    "params": params.read_text(),
                    "wall_s": res[name][0],
                    "peak_rss_mb": res[name][1],
                    "input_mb": size,
                    "commit": commits[name],
                }
            )
        )
        os.replace(tmp, record)
        print(
            f"  {domain} {tag} {name}: {res[name][0]:.1f} s, {res[name][1]:.0f} MB "
            f"(inputs {size:.1f} MB)",
            flush=True,
        )

    def step(name: str, *args: str) -> None:
        measure(name, *args)
        if name == until:
            raise _Until

    n = 0
    try:
        proc, shard = run / "processed", run / "processed/shards/0of1"
        rdir = run / "runs/ssl"
        if domain == "materials":
            step("parse", "parse", "--params", P, "--shard", "0", "--n-shards", "1",
                 "--out", str(shard / "parsed.pt"))  # fmt: skip
            parsed = ["--parsed", str(shard / "parsed.pt")]
        else:
            parsed = []
        step("preprocess", "preprocess", "--params", P, "--shard", "0", "--n-shards", "1",
             *parsed, "--out", str(shard))  # fmt: skip
        step("gather", "gather", "--params", P, "--out", str(proc), str(shard))
        with open(proc / "records.tsv") as fh:
            n = sum(1 for _ in fh) - 1
        from sciclr.config import dataset_params
        from sciclr.domains import get_domain

        names = get_domain(sec["domain"]).baseline_names(dataset_params(sec))
        for name in names:
            step(f"features_{name}", "features", "--params", P, "--data", str(proc),
                 "--out", str(run / "features"), "--names", name)  # fmt: skip
        step("train", "train", "--params", P, "--data", str(proc), "--out", str(rdir),
             "--resume", str(rdir / "last.pt"))  # fmt: skip
        emb = run / "embeddings/ssl.npz"
        step("embed", "embed", "--params", P, "--data", str(proc),
             "--checkpoint", str(rdir / "checkpoint.pt"), "--out", str(emb))  # fmt: skip
        feats = [f"ssl={emb}", f"untrained={emb}"] + [
            f"{name}={run / 'features' / (name + '.npz')}" for name in names
        ]
        rec = ["--records", str(proc / "records.tsv")]
        m = run / "metrics"
        step("probe", "probe", "--params", P, *rec, *th, "--features", *feats,
             "--out", str(m / "probe.tsv"), "--predictions", str(m / "predictions.tsv"))  # fmt: skip
        step("cluster", "cluster", "--params", P, *rec, *th, "--features", *feats,
             "--out", str(m / "cluster.tsv"),
             "--assignments", str(m / "cluster_assignments.tsv"))  # fmt: skip
        step("label_efficiency", "label-efficiency", "--params", P, *rec, *th, "--features", *feats,
             "--out", str(m / "label_efficiency.tsv"),
             "--comparisons", str(m / "label_efficiency_comparisons.tsv"))  # fmt: skip
        step("recovery", "recovery", "--params", P, *rec, *th, "--embeddings", *feats[:2],
             "--targets", *feats[2:], "--out", str(m / "recovery.tsv"))  # fmt: skip
        extra = ["--train-summary", str(rdir / "train_summary.json")] if figures_flags() else []
        step("figures", "figures", "--params", P, *rec, *th, "--features", *feats,
             "--predictions", str(m / "predictions.tsv"),
             "--label-efficiency", str(m / "label_efficiency.tsv"),
             "--training-metrics", str(rdir / "metrics.csv"), *extra,
             "--similarities", str(rdir / "similarities.npz"),
             "--out-dir", str(run / "figures"))  # fmt: skip
        step("verdict", "verdict", "--params", P, *rec, "--predictions", str(m / "predictions.tsv"),
             "--metrics", str(m / "probe.tsv"), "--cluster-metrics", str(m / "cluster.tsv"),
             "--assignments", str(m / "cluster_assignments.tsv"),
             "--label-comparisons", str(m / "label_efficiency_comparisons.tsv"),
             "--out", str(m / "verdict.tsv"))  # fmt: skip
        ds = sec["name"]
        inputs = {
            ds: {
                "probe_metrics": str(m / "probe.tsv"),
                "recovery": str(m / "recovery.tsv"),
                "cluster_metrics": str(m / "cluster.tsv"),
                "verdict": str(m / "verdict.tsv"),
                "figures": str(run / "figures"),
                "preprocess_summary": str(proc / "summary.json"),
                "train_summary": str(rdir / "train_summary.json"),
                "training_metrics": str(rdir / "metrics.csv"),
            }
        }
        (run / "report_params.json").write_text(json.dumps({"datasets": {ds: sec}}))
        (run / "report_inputs.json").write_text(json.dumps(inputs))
        step("report", "report", "--params", f"@{run / 'report_params.json'}",
             "--inputs", f"@{run / 'report_inputs.json'}", "--out", str(run / "report.html"))  # fmt: skip
    except _Until:
        pass
    if "train" in res:  # the job's wall time includes start-up and the val check
        summary = json.loads((rdir / "train_summary.json").read_text())
        res["train_job"] = res["train"]
        epoch_s = summary["n_train"] / summary["samples_per_s"]
        res["train"] = (epoch_s, res["train_job"][1], res["train_job"][2])
    return n, res, commits


# -- results --------------------------------------------------------------------------------


def slope(x: list[float], y: list[float]) -> float | None:
    """Log-log slope between the two largest sizes."""
    if len(x) < 2 or min(x[-2:]) <= 0 or min(y[-2:]) <= 0 or x[-1] == x[-2]:
        return None
    return math.log(y[-1] / y[-2]) / math.log(x[-1] / x[-2])


def table(result: dict) -> str:
    lines = []
    for domain, sizes in result["sizes"].items():
        if not sizes:
            continue
        ns = result["n"][domain]
        head = ["step"] + [f"{s:g}x (n={n:,}): s / MB" for s, n in zip(sizes, ns, strict=True)]
        head += ["slope", "rss_slope", "MB/input MB"]
        rows = []
        for key, st in result["steps"].items():
            if not key.startswith(domain + "/"):
                continue
            cells = [key]
            pairs = zip(st["wall_s"], st["peak_rss_mb"], strict=True)
            cells += [f"{w:.1f} / {r:.0f}" for w, r in pairs]
            cells += [_fmt(st["slope"]), _fmt(st["rss_slope"]), _fmt(st["mb_per_input_mb"])]
            rows.append(cells)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append(
            "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
        )
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in rows:
            lines.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = [d for d, s in result["sizes"].items() if s]
    fig, axes = plt.subplots(len(domains), 2, figsize=(12, 4.8 * len(domains)), squeeze=False)
    for row, domain in zip(axes, domains, strict=True):
        for ax, key, label in ((row[0], "wall_s", "wall time (s)"),
                               (row[1], "peak_rss_mb", "peak RSS (MB)")):  # fmt: skip
            for name, st in result["steps"].items():
                if name.startswith(domain + "/"):
                    ax.plot(st["n"], st[key], marker="o", label=name.split("/", 1)[1])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("items")
            ax.set_ylabel(label)
            ax.set_title(f"{domain}: {label}")
            ax.grid(True, which="both", alpha=0.3)
        row[1].legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_sizes(text: list[str] | None, quick: bool) -> dict[str, list[float]]:
    sizes = {d: list(QUICK_SIZES if quick else FULL_SIZES) for d in DOMAIN_OF}
    for item in text or []:
        domain, _, values = item.partition("=")
        if domain not in DOMAIN_OF or not values:
            raise SystemExit(f"--sizes: expected dna=1,4 or materials=0.1,1; got {item!r}")
        sizes[domain] = sorted(float(v) for v in values.split(","))
    return sizes


def add_slopes(result: dict) -> None:
    for st in result["steps"].values():
        st["slope"] = slope(st["n"], st["wall_s"])
        st["rss_slope"] = slope(st["n"], st["peak_rss_mb"])
        two = len(st["n"]) > 1 and st["input_mb"][-1] > st["input_mb"][-2]
        st["mb_per_input_mb"] = (
            round(
                (st["peak_rss_mb"][-1] - st["peak_rss_mb"][-2])
                / (st["input_mb"][-1] - st["input_mb"][-2]),
                3,
            )
            if two
            else None
        )


def write_result(result: dict, path: Path, png: Path | None, final: bool) -> Path:
    """The JSON (atomically) and, at the end, the figure; returns the figure's path."""
    add_slopes(result)
    result["complete"] = final
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    png = png or path.with_suffix(".png")
    if final:
        figure(result, png)
    return png


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1x and 4x, training cut short")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks/out/scaling.json")
    ap.add_argument("--png", type=Path, default=None, help="figure (default: JSON path, .png)")
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks/out/scaling")
    ap.add_argument("--domains", nargs="+", choices=list(DOMAIN_OF), default=list(DOMAIN_OF))
    ap.add_argument("--threads", type=int, default=2, help="threads per step (default 2)")
    ap.add_argument("--quick-steps", type=int, default=8, help="training steps with --quick")
    ap.add_argument("--sizes", nargs="+", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--until", default=None, help="stop each size after this step (e.g. embed)")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the steps measured by an earlier run in --work (same command and params)",
    )
    a = ap.parse_args(argv)
    sizes = parse_sizes(a.sizes, a.quick)
    sizes = {d: (s if d in a.domains else []) for d, s in sizes.items()}
    quick_steps = a.quick_steps if a.quick else None
    result: dict = {
        "sizes": sizes,
        "n": {d: [] for d in sizes},
        "steps": {},
        "quick": bool(a.quick),
        "until": a.until,
        "machine": {
            "cpus": os.cpu_count(),
            "threads": a.threads,
            "load_before": os.getloadavg()[0],
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    for domain, todo in sizes.items():
        for size in todo:
            print(f"{domain} {size:g}x ...", flush=True)
            n, res, commits = run_size(
                domain, size, a.work, a.threads, quick_steps, a.resume, a.until
            )
            result["n"][domain].append(n)
            for name, (wall, rss, size_mb) in res.items():
                st = result["steps"].setdefault(
                    f"{domain}/{name}",
                    {"n": [], "wall_s": [], "peak_rss_mb": [], "input_mb": [], "commit": []},
                )
                st["n"].append(n)
                st["wall_s"].append(round(wall, 3))
                st["peak_rss_mb"].append(round(rss, 1))
                st["input_mb"].append(round(size_mb, 2))
                st["commit"].append(commits.get(name, commits.get("train", "")))
            write_result(result, a.json, a.png, final=False)  # a stopped run keeps what it measured
    result["machine"]["load_after"] = os.getloadavg()[0]
    print()
    print(table(result))
    png = write_result(result, a.json, a.png, final=True)
    print(f"wrote {a.json} and {png}")
    return result


if __name__ == "__main__":
    main()
