"""Library versus own code in the analysis: every figure a ratio measured in the same run.

Project rule: where a well-kept library does the job (scikit-learn, scipy), the analysis uses it,
unless this script shows the library at least 2x slower, or wrong for sciclr's use. Sizes are the
bundled data sets: canonical 6-mer profiles of ``resources/dna/genomics.fasta`` (7,309 fragments
x 2,080 features; 11 genomes; train/val/test = 5,110/1,116/1,083), their GC content as a
regression target, and element fractions (118 columns) of ``resources/materials/materials.csv``
(train/val/test = 2,562/320/320) with the formation energy, the crystal system (7 classes) and
metal vs non-metal.

a. multinomial L2 logistic regression along the C grid of the probes (warm starts): the torch
   L-BFGS that sciclr used (a copy is kept below, ``torch_lbfgs_logistic``) vs
   ``sklearn.linear_model.LogisticRegression(C, lbfgs, warm_start=True)``, then the cold refit at
   the selected C; agreement of the test predictions.
b. ridge along the alpha grid: one SVD for all alphas (``ridge_path``) vs
   ``sklearn.linear_model.Ridge`` fitted per alpha.
c. standardisation with train statistics: ``standardize`` vs ``StandardScaler``; the L2 rows of
   ``clustering.prepare`` vs ``sklearn.preprocessing.normalize``.
d. percentile bootstrap CIs (B = 1000): sciclr's multiplicity matrices fed to the vectorised
   metrics vs ``scipy.stats.bootstrap(paired=True, method="percentile")`` with scikit-learn
   metrics (``vectorized=False``: sklearn metrics take no ``axis``), and, for accuracy and MAE,
   scipy with a vectorised numpy statistic; CIs compared, and where scipy is wrong for sciclr.
e. the metric implementations vs ``sklearn.metrics`` / ``scipy.stats`` at unit weight and
   at bootstrap weights (against the repeated items, and against ``sample_weight``).

The machine may be shared (the load average is printed): timings are minima over interleaved
rounds, and only ratios from one run should be compared.

Usage: ``python benchmarks/libraries.py [--parts a b c d e] [--rounds 3] [--boot 1000]``
(part a is the slow one: about 2-4 minutes on 2 cores; ``--logistic-rounds`` repeats it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn import metrics as skm
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from sciclr.analysis import bootstrap as B
from sciclr.analysis import metrics as M
from sciclr.analysis import probes

ROOT = Path(__file__).resolve().parents[1]
FASTA = ROOT / "resources/dna/genomics.fasta"
LABELS = ROOT / "resources/dna/labels.tsv"
MATERIALS = ROOT / "resources/materials/materials.csv"
C_GRID = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0, 100.0]  # spec.py defaults
ALPHA_GRID = [0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0]
SEED = 12345


# ----------------------------------------------------------------------------- timing
def best_of(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Minimum wall time of each function over ``rounds`` interleaved rounds (after a warm-up
    call for the quick ones; 30 rounds when all take under 0.1 s); ``CPU[name]`` holds the
    minimum process CPU time (all threads), less sensitive than wall time to other processes
    on a shared machine."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    first = {}
    for k, f in fns.items():
        t = time.perf_counter()
        c = time.process_time()
        f()
        first[k] = time.perf_counter() - t
        if first[k] > 2.0:  # slow: the first call counts as a round
            times[k].append(first[k])
            cpu[k].append(time.process_time() - c)
    if max(first.values()) < 0.1:
        rounds = max(rounds, 30)
    for _ in range(rounds - min(len(v) for v in times.values())):
        for k, f in fns.items():
            t = time.perf_counter()
            c = time.process_time()
            f()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    CPU.update({k: min(v) for k, v in cpu.items()})
    return {k: min(v) for k, v in times.items()}


CPU: dict[str, float] = {}


def header(title: str) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n=== {title}  (load average {load} on {os.cpu_count()} CPUs)", flush=True)


# ----------------------------------------------------------------------------- data
def _kmer_profiles() -> Callable[..., np.ndarray]:
    """``kmer_profiles_ragged`` wherever the package keeps it (the DNA modules move)."""
    for name in ("sciclr.data.dna", "sciclr.data.dna.kmers", "sciclr.views.dna", "sciclr.views"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "kmer_profiles_ragged"):
            return mod.kmer_profiles_ragged
    raise ImportError("sciclr offers no kmer_profiles_ragged")


def _read_fasta(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids and codes (A, C, G, T = 0..3, anything else 4) of a plain FASTA file, ragged."""
    table = bytearray([4] * 256)
    for i, c in enumerate(b"ACGT"):
        table[c] = table[c + 32] = i
    ids, seqs = [], []
    for rec in path.read_bytes().split(b"\n>"):
        head, _, body = rec.lstrip(b">").partition(b"\n")
        ids.append(head.split()[0].decode())
        seqs.append(body.translate(None, b"\n\r \t").translate(bytes(table)))
    offsets = np.r_[0, np.cumsum([len(s) for s in seqs])].astype(np.int64)
    return ids, np.frombuffer(b"".join(seqs), dtype=np.uint8), offsets


def dna_data(k: int = 6) -> dict[str, np.ndarray]:
    ids, codes, offsets = _read_fasta(FASTA)
    X = _kmer_profiles()(codes, offsets, k)
    lab = pd.read_csv(LABELS, sep="\t", dtype={"id": str}).set_index("id").loc[ids]
    return {
        "X": X,
        "label": lab["label"].to_numpy().astype(str),
        "gc": lab["gc"].to_numpy(dtype=np.float64),
        "split": lab["split"].to_numpy().astype(str),
    }


def materials_data() -> dict[str, np.ndarray]:
    from pymatgen.core import Composition

    cols = ["formula", "split", "formation_energy_per_atom", "band_gap", "crystal_system"]
    df = pd.read_csv(MATERIALS, usecols=cols)
    X = np.zeros((len(df), 118), dtype=np.float32)
    for i, formula in enumerate(df["formula"]):
        for el, x in Composition(formula).fractional_composition.items():
            X[i, el.Z - 1] = x
    return {
        "X": X,
        "energy": df["formation_energy_per_atom"].to_numpy(dtype=np.float64),
        "metal": np.where(df["band_gap"].to_numpy() > 0, "nonmetal", "metal"),
        "system": df["crystal_system"].to_numpy().astype(str),
        "split": df["split"].to_numpy().astype(str),
    }


def rows(split: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.flatnonzero(split == s) for s in ("train", "val", "test"))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- own references
def own_standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """sciclr's standardize before the switch to StandardScaler (kept for this comparison)."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[std < 1e-12] = 1.0
    return [((x - mean) / std).astype(np.float32) for x in (train, *others)]


def torch_lbfgs_logistic(
    X: np.ndarray,
    y: np.ndarray,
    C: float,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init: tuple | None = None,
    balanced: bool = False,
) -> tuple:
    """sciclr's former ``fit_logistic`` (multinomial, full-batch torch L-BFGS, float32), verbatim
    in substance: ``mean CE + ||W||² / (2 C n)``, gradient tolerance ``tol``, warm start ``init``.
    Returns ``(W, b, classes, n_iter)``."""
    classes, codes = np.unique(np.asarray(y).astype(str), return_inverse=True)
    n, d = X.shape
    k = len(classes)
    Xt = torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32)
    yt = torch.as_tensor(codes, dtype=torch.long)
    if init is not None and np.array_equal(init[2], classes):
        W, b = init[0].clone(), init[1].clone()
    else:
        W = torch.zeros(d, k)
        b = torch.as_tensor(np.log(np.bincount(codes, minlength=k) / n), dtype=torch.float32)
    W.requires_grad_(True)
    b.requires_grad_(True)
    counts = np.bincount(codes, minlength=k)
    weight = torch.as_tensor(n / (k * counts), dtype=torch.float32) if balanced else None
    lam = 1.0 / (2.0 * float(C) * n)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        ce = F.cross_entropy(Xt @ W + b, yt, weight=weight, reduction="none")
        loss = ce.mean() + lam * (W * W).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    n_iter = int(opt.state[opt._params[0]].get("n_iter", 0))
    return W.detach(), b.detach(), classes, n_iter


def torch_predict(model: tuple, X: np.ndarray) -> np.ndarray:
    W, b, classes, _ = model
    return classes[(torch.as_tensor(X, dtype=torch.float32) @ W + b).argmax(1).numpy()]


def own_ridge_path(X: np.ndarray, y: np.ndarray, alphas) -> tuple[np.ndarray, np.ndarray]:
    """sciclr's ridge_path (one SVD for every alpha)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xm, ym = X.mean(axis=0), y.mean()
    U, s, Vt = np.linalg.svd(X - xm, full_matrices=False)
    uty = U.T @ (y - ym)
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    coefs = (s[None, :] / (s[None, :] ** 2 + a) * uty[None, :]) @ Vt
    return coefs, ym - coefs @ xm


# ----------------------------------------------------------------------------- a. logistic
def _score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    if metric == "balanced_accuracy":
        return float(skm.balanced_accuracy_score(y, p))
    return float(skm.accuracy_score(y, p))


def _select(scores: list[float]) -> int:
    """Index of the best score; ties: the middle of the tied ones (as probes.fit_linear)."""
    best = max(scores)
    tied = [j for j, s in enumerate(scores) if s >= best - 1e-12]
    return tied[(len(tied) - 1) // 2]


class _SklearnPath:
    """``LogisticRegression`` refitted along the C path with ``warm_start`` (one estimator)."""

    def __init__(self, balanced: bool) -> None:
        self.cw = "balanced" if balanced else None

    def fit(self, X, y, C, init):
        est = (
            init
            if init is not None
            else LogisticRegression(max_iter=1000, warm_start=True, class_weight=self.cw)
        )
        return est.set_params(C=C).fit(X, y)

    def cold(self, X, y, C):
        return LogisticRegression(C=C, max_iter=1000, class_weight=self.cw).fit(X, y)


def _methods(balanced: bool) -> dict[str, tuple[Callable, Callable, Callable, Callable]]:
    """name → (path fit (X, y, C, init), cold fit (X, y, C), predict, iterations)."""
    sk = _SklearnPath(balanced)
    return {
        "torch L-BFGS (former sciclr)": (
            lambda X, y, C, init: torch_lbfgs_logistic(X, y, C, init=init, balanced=balanced),
            lambda X, y, C: torch_lbfgs_logistic(X, y, C, balanced=balanced),
            torch_predict,
            lambda m: m[3],
        ),
        "sklearn, default threads": (
            sk.fit,
            sk.cold,
            lambda m, X: m.predict(X),
            lambda m: int(m.n_iter_[0]),
        ),
        "package fit_logistic": (
            lambda X, y, C, init: probes.fit_logistic(X, y, C, 1000, init=init, balanced=balanced),
            lambda X, y, C: probes.fit_logistic(X, y, C, 1000, balanced=balanced),
            lambda m, X: m.predict(X),
            lambda m: m.n_iter,
        ),
    }


def logistic_task(name: str, X, y, split, metric: str, balanced: bool, rounds: int) -> None:
    tr, va, te = rows(split)
    Xtr, Xva, Xte = own_standardize(X[tr], X[va], X[te])
    ytr = y[tr]
    header(
        f"a. logistic C path + refit at the selected C, {name}: train {Xtr.shape[0]} x "
        f"{Xtr.shape[1]}, {len(np.unique(ytr))} classes, metric {metric}"
        f"{', balanced class weights' if balanced else ''}"
    )
    methods = _methods(balanced)
    wall: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    for r in range(rounds):
        table: dict[str, list[tuple]] = {}
        finals = {}
        for k, (fit, cold, predict, iters) in methods.items():
            model, t_sum, c_sum, val, per_c = None, 0.0, 0.0, [], []
            for C in C_GRID:  # increasing C: warm starts from the more regularised solution
                t, c = time.perf_counter(), time.process_time()
                model = fit(Xtr, ytr, C, model)
                dt = time.perf_counter() - t
                t_sum, c_sum = t_sum + dt, c_sum + time.process_time() - c
                val.append(_score(metric, y[va], predict(model, Xva)))
                per_c.append((dt, iters(model), val[-1], predict(model, Xte)))
            c_sel = C_GRID[_select(val)]
            t, c = time.perf_counter(), time.process_time()
            final = cold(Xtr, ytr, c_sel)
            t_sum, c_sum = t_sum + time.perf_counter() - t, c_sum + time.process_time() - c
            wall[k].append(t_sum)
            cpu[k].append(c_sum)
            table[k] = per_c
            finals[k] = (c_sel, predict(final, Xte))
        if r == 0:
            names = list(methods)
            print("  C       " + "".join(f"{k[:28]:>30}" for k in names)
                  + "   test predictions = package")  # fmt: skip
            print("          " + "".join(f"{'s (iter) val':>30}" for _ in names))
            ref = table["package fit_logistic"]
            for j, C in enumerate(C_GRID):
                cells = "".join(
                    f"{table[k][j][0]:>13.2f} ({table[k][j][1]:4d}) {table[k][j][2]:.4f}"
                    for k in names
                )
                agree = " / ".join(
                    f"{np.mean(table[k][j][3] == ref[j][3]):.4f}" for k in names[:-1]
                )
                print(f"  {C:<7g} {cells}   {agree}")
            pkg = finals["package fit_logistic"][1]
            for k in names:
                c_sel, pred = finals[k]
                print(f"  {k:<30} selected C={c_sel:<6g} test {metric} "
                      f"{_score(metric, y[te], pred):.4f}, test predictions identical to the "
                      f"package's {np.mean(pred == pkg):.4f}")  # fmt: skip
        print(f"  round {r + 1}: " + ", ".join(
            f"{k} {wall[k][-1]:.1f} s (CPU {cpu[k][-1]:.1f} s)" for k in methods), flush=True)  # fmt: skip
    base = "torch L-BFGS (former sciclr)"
    for k in list(methods)[1:]:
        print(f"  RATIO a ({name}): {k} / torch L-BFGS = {min(wall[k]) / min(wall[base]):.2f}x "
              f"wall ({min(wall[k]):.1f} s vs {min(wall[base]):.1f} s), "
              f"{min(cpu[k]) / min(cpu[base]):.2f}x CPU; min over {rounds} round(s)")  # fmt: skip


def part_a(dna, mat, rounds: int, tasks: list[str]) -> None:
    if "dna" in tasks:
        logistic_task("DNA 6-mer, genome", dna["X"], dna["label"], dna["split"], "accuracy",
                      False, rounds)  # fmt: skip
    if "materials" in tasks:
        logistic_task("materials element fractions, crystal system", mat["X"], mat["system"],
                      mat["split"], "balanced_accuracy", True, rounds)  # fmt: skip


# ----------------------------------------------------------------------------- b. ridge
def _sk_ridge_each(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.linear_model.Ridge`` fitted once per alpha."""
    fits = [Ridge(alpha=a).fit(X, y) for a in ALPHA_GRID]
    return np.stack([f.coef_ for f in fits]), np.array([f.intercept_ for f in fits])


def _sk_ridge_targets(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ``Ridge`` fit with one alpha per target column (copies of y): one Gram matrix, one
    Cholesky solve per alpha (scikit-learn's documented per-target ``alpha`` array)."""
    fit = Ridge(alpha=np.asarray(ALPHA_GRID)).fit(X, np.repeat(y[:, None], len(ALPHA_GRID), 1))
    return fit.coef_, fit.intercept_


def part_b(dna, mat, rounds: int) -> None:
    from scipy.linalg import LinAlgWarning

    warnings.simplefilter("ignore", LinAlgWarning)  # expected at alpha = 0.01 on 6-mers
    for name, X, y, split in (
        ("DNA 6-mer -> GC content", dna["X"], dna["gc"], dna["split"]),
        ("materials element fractions -> formation energy", mat["X"], mat["energy"],
         mat["split"]),
    ):  # fmt: skip
        tr, va, _ = rows(split)
        Xtr, Xva = own_standardize(X[tr], X[va])
        X64, ytr, yva = Xtr.astype(np.float64), y[tr], y[va]
        header(f"b. ridge path ({len(ALPHA_GRID)} alphas), {name}: train {Xtr.shape}")
        fns = {
            "svd path (own)": lambda X=Xtr, y=ytr: own_ridge_path(X, y, ALPHA_GRID),
            "sklearn Ridge per alpha, float64": lambda X=Xtr, y=ytr: _sk_ridge_each(
                X.astype(np.float64), y
            ),
            "sklearn Ridge per alpha, float32": lambda X=Xtr, y=ytr: _sk_ridge_each(X, y),
            "sklearn Ridge, alphas as targets": lambda X=Xtr, y=ytr: _sk_ridge_targets(
                X.astype(np.float64), y
            ),
            "package ridge_path": lambda X=Xtr, y=ytr: probes.ridge_path(X, y, ALPHA_GRID),
        }
        t = best_of(fns, rounds)
        ref_c, ref_i = _sk_ridge_each(X64, ytr)
        scale = np.abs(ref_c).max()
        ref_mae = np.mean(np.abs(Xva @ ref_c.T + ref_i - yva[:, None]), axis=0)
        base = "svd path (own)"
        print("  method                              wall ms      CPU ms   wall/own  CPU/own"
              "   coef dev   val-MAE dev")  # fmt: skip
        for k, v in t.items():
            c, i = fns[k]()
            dev = np.abs(c - ref_c).max() / scale
            mae = np.mean(np.abs(Xva @ c.T + i - yva[:, None]), axis=0)
            print(f"  {k:<34} {v * 1e3:9.1f} {CPU[k] * 1e3:11.1f}   {v / t[base]:6.2f}x "
                  f"{CPU[k] / CPU[base]:6.2f}x   {dev:.1e}    {np.abs(mae - ref_mae).max():.1e}")  # fmt: skip
        print("  (deviations: max |coef - per-alpha float64 Ridge| / max |coef|, max |val MAE "
              "difference| over the alphas)")  # fmt: skip
        for k in ("sklearn Ridge per alpha, float64", "sklearn Ridge, alphas as targets"):
            print(f"  RATIO b ({name}): {k} / svd path = {t[k] / t[base]:.2f}x wall, "
                  f"{CPU[k] / CPU[base]:.2f}x CPU")  # fmt: skip


# ----------------------------------------------------------------------------- c. scaler
def part_c(dna, mat, rounds: int) -> None:
    for name, X, split in (
        ("DNA 6-mer", dna["X"], dna["split"]),
        ("materials element fractions", mat["X"], mat["split"]),
    ):
        tr, va, te = rows(split)
        header(f"c. standardisation, {name}: {X.shape} {X.dtype}, fitted on train {len(tr)}")

        def sk(X=X, tr=tr, va=va, te=te):
            s = StandardScaler().fit(X[tr])
            return [s.transform(X[r]).astype(np.float32, copy=False) for r in (tr, va, te)]

        fns = {
            "own standardize": lambda X=X, tr=tr, va=va, te=te: own_standardize(
                X[tr], X[va], X[te]
            ),
            "package standardize": lambda X=X, tr=tr, va=va, te=te: probes.standardize(
                X[tr], X[va], X[te]
            ),
            "sklearn StandardScaler": sk,
        }
        t = best_of(fns, rounds)
        diff = max(
            float(np.abs(a - b).max()) for a, b in zip(fns["own standardize"](), sk(), strict=True)
        )
        for k, v in t.items():
            print(f"  {k:<24} {v * 1e3:8.1f} ms   {v / t['own standardize']:.2f}x own")
        print(f"  max |own - sklearn| = {diff:.1e}")
        print(f"  RATIO c ({name}): sklearn / own = "
              f"{t['sklearn StandardScaler'] / t['own standardize']:.2f}x")  # fmt: skip
    # clustering.prepare(scale="l2"): rows to unit length, on the DNA test split
    from sklearn.preprocessing import normalize

    Z = dna["X"][rows(dna["split"])[2]]
    header(f"c. row L2 normalisation (clustering, scale l2), DNA 6-mer test split {Z.shape}")

    def own_l2(Z=Z):
        Z64 = Z.astype(np.float64)
        norm = np.maximum(np.linalg.norm(Z64, axis=1, keepdims=True), 1e-12)
        return (Z64 / norm).astype(np.float32)

    fns = {
        "own division": own_l2,
        "sklearn normalize (float64)": lambda Z=Z: normalize(Z.astype(np.float64)).astype(
            np.float32
        ),
    }
    t = best_of(fns, rounds)
    diff = float(np.abs(own_l2() - fns["sklearn normalize (float64)"]()).max())
    for k, v in t.items():
        print(f"  {k:<28} {v * 1e3:8.2f} ms   {v / t['own division']:.2f}x own")
    print(f"  max |own - sklearn| = {diff:.1e}")
    print(f"  RATIO c (L2 rows): sklearn / own = "
          f"{t['sklearn normalize (float64)'] / t['own division']:.2f}x")  # fmt: skip


# ----------------------------------------------------------------------------- d/e. predictions
def predictions(dna, mat) -> dict[str, dict[str, np.ndarray]]:
    """Realistic test-set predictions of the probes (fast ones: k-NN, ridge, logistic, k-means)."""
    from sklearn.cluster import KMeans
    from sklearn.neighbors import KNeighborsClassifier

    out: dict[str, dict[str, np.ndarray]] = {}
    tr, _, te = rows(dna["split"])
    Xtr, Xte = own_standardize(dna["X"][tr], dna["X"][te])
    kw = {"n_neighbors": 10, "metric": "cosine", "algorithm": "brute"}
    knn6 = KNeighborsClassifier(**kw).fit(Xtr, dna["label"][tr]).predict(Xte)
    _, codes, offsets = _read_fasta(FASTA)
    X4 = _kmer_profiles()(codes, offsets, 4)
    X4tr, X4te = own_standardize(X4[tr], X4[te])
    knn4 = KNeighborsClassifier(**kw).fit(X4tr, dna["label"][tr]).predict(X4te)
    out["dna_label"] = {"t": dna["label"][te], "a": knn6, "b": knn4}
    coefs, icpt = own_ridge_path(Xtr, dna["gc"][tr], [1.0])
    out["dna_gc"] = {"t": dna["gc"][te], "a": Xte @ coefs[0] + icpt[0]}
    out["dna_kmeans"] = {
        "t": dna["label"][te],
        "a": KMeans(n_clusters=11, n_init=4, random_state=0).fit_predict(Xte),
    }
    tr, _, te = rows(mat["split"])
    Mtr, Mte = own_standardize(mat["X"][tr], mat["X"][te])
    coefs, icpt = own_ridge_path(Mtr, mat["energy"][tr], [10.0])
    out["mat_energy"] = {"t": mat["energy"][te], "a": Mte @ coefs[0] + icpt[0]}
    sys_lr = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced")
    out["mat_system"] = {
        "t": mat["system"][te],
        "a": sys_lr.fit(Mtr, mat["system"][tr]).predict(Mte),
    }
    lr = LogisticRegression(C=0.1, max_iter=1000).fit(Mtr, mat["metal"][tr])
    pos = list(lr.classes_).index("nonmetal")
    out["mat_metal"] = {"t": mat["metal"][te] == "nonmetal", "a": lr.predict_proba(Mte)[:, pos]}
    return out


def _scipy_ci(data, statistic, n_boot: int, seed: int, vectorized: bool = False, batch=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            data,
            statistic,
            paired=True,
            vectorized=vectorized,
            n_resamples=n_boot,
            batch=batch,
            method="percentile",
            confidence_level=0.95,
            rng=np.random.default_rng(seed),
        )
    return res


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """scipy's resampled index arrays ``(b, n)`` → multiplicity matrices (sciclr's weights)."""
    idx = np.atleast_2d(idx)
    flat = idx + (np.arange(len(idx)) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=idx.size).reshape(idx.shape).astype(np.float64)


def _scipy_engine(fns: list[Callable], n: int, n_boot: int):
    """scipy.stats.bootstrap as the resampling engine around sciclr's weighted metrics."""

    def statistic(idx, axis=-1):
        W = _counts(idx, n)
        out = [fn(W) for fn in fns]
        return out[0] if len(out) == 1 else np.stack(out)

    return lambda: _scipy_ci((np.arange(n),), statistic, n_boot, SEED, vectorized=True, batch=250)


def part_d(pred, rounds: int, n_boot: int) -> None:
    header(f"d. percentile bootstrap, B = {n_boot}: sciclr (multiplicity matrices) vs scipy")
    lab, gc, km = pred["dna_label"], pred["dna_gc"], pred["dna_kmeans"]
    en, met = pred["mat_energy"], pred["mat_metal"]
    (tc, pc), k = M.encode(lab["t"], lab["a"])
    (_, pbc), _ = M.encode(lab["t"], lab["b"])
    cases: list[tuple[str, int, Callable, Callable, dict[str, Callable]]] = []

    def own(fns, n):
        return lambda: B.estimates(fns, n, n_boot, SEED)

    n = len(tc)
    cases.append((
        f"accuracy (DNA k-NN, n={n})", n,
        own([lambda W: M.accuracy(tc, pc, W)], n),
        lambda: float(skm.accuracy_score(lab["t"], lab["a"])),
        {
            "scipy + sklearn accuracy_score": lambda: _scipy_ci(
                (lab["t"], lab["a"]), lambda t, p: skm.accuracy_score(t, p), n_boot, SEED),
            "scipy vectorized, numpy mean": lambda: _scipy_ci(
                ((lab["t"] == lab["a"]).astype(float),), lambda h, axis: h.mean(axis), n_boot,
                SEED, vectorized=True),
            "scipy engine + sciclr weighted metric": _scipy_engine(
                [lambda W: M.accuracy(tc, pc, W)], n, n_boot),
        },
    ))  # fmt: skip
    cases.append((
        f"balanced accuracy (DNA k-NN, n={n})", n,
        own([lambda W: M.balanced_accuracy(tc, pc, W, k)], n),
        None,
        {"scipy + sklearn balanced_accuracy_score": lambda: _scipy_ci(
            (lab["t"], lab["a"]), lambda t, p: skm.balanced_accuracy_score(t, p), n_boot, SEED)},
    ))  # fmt: skip
    for name, d in (("MAE (materials E_f ridge", en), ("MAE (DNA GC ridge", gc)):
        nn = len(d["t"])
        t_, p_ = d["t"], d["a"]
        cases.append((
            f"{name}, n={nn})", nn,
            own([lambda W, t_=t_, p_=p_: M.mae(t_, p_, W)], nn),
            None,
            {
                "scipy + sklearn mean_absolute_error": lambda t_=t_, p_=p_: _scipy_ci(
                    (t_, p_), lambda t, p: skm.mean_absolute_error(t, p), n_boot, SEED),
                "scipy vectorized, numpy mean": lambda t_=t_, p_=p_: _scipy_ci(
                    (np.abs(t_ - p_),), lambda e, axis: e.mean(axis), n_boot, SEED,
                    vectorized=True),
            },
        ))  # fmt: skip
    nm = len(met["t"])
    cases.append((
        f"ROC-AUC (materials metal/non-metal logistic, n={nm})", nm,
        own([lambda W: M.roc_auc(met["t"], met["a"], W)], nm),
        None,
        {"scipy + sklearn roc_auc_score": lambda: _scipy_ci(
            (met["t"], met["a"]), lambda t, s: skm.roc_auc_score(t, s), n_boot, SEED)},
    ))  # fmt: skip
    nk = len(km["t"])
    cases.append((
        f"ARI (DNA k-means k=11, n={nk})", nk,
        own([lambda W: M.adjusted_rand(km["t"], km["a"], W)], nk),
        None,
        {"scipy + sklearn adjusted_rand_score": lambda: _scipy_ci(
            (km["t"], km["a"]), lambda t, c: skm.adjusted_rand_score(t, c), n_boot, SEED),
         "scipy engine + sciclr weighted ARI": _scipy_engine(
            [lambda W: M.adjusted_rand(km["t"], km["a"], W)], nk, n_boot)},
    ))  # fmt: skip
    # what the probes do per prediction: all classification metrics on one set of resamples
    cases.append((
        f"score_prediction: accuracy + balanced accuracy + macro-F1 (n={n})", n,
        own([lambda W: M.accuracy(tc, pc, W), lambda W: M.balanced_accuracy(tc, pc, W, k),
             lambda W: M.macro_f1(tc, pc, W, k)], n),
        None,
        {"scipy + sklearn, one vector statistic": lambda: _scipy_ci(
            (lab["t"], lab["a"]), lambda t, p: np.array([
                skm.accuracy_score(t, p), skm.balanced_accuracy_score(t, p),
                skm.f1_score(t, p, average="macro")]), n_boot, SEED),
         "scipy engine + sciclr weighted metrics": _scipy_engine(
            [lambda W: M.accuracy(tc, pc, W), lambda W: M.balanced_accuracy(tc, pc, W, k),
             lambda W: M.macro_f1(tc, pc, W, k)], n, n_boot)},
    ))  # fmt: skip
    # what the verdict does: paired difference of two predictors on one set of resamples
    cases.append((
        f"paired difference of accuracy, 6-mer vs 4-mer k-NN (n={n})", n,
        lambda: B.paired_difference(lambda W: M.accuracy(tc, pc, W),
                                    lambda W: M.accuracy(tc, pbc, W), n, n_boot, SEED),
        None,
        {"scipy + sklearn, paired (t, a, b)": lambda: _scipy_ci(
            (lab["t"], lab["a"], lab["b"]), lambda t, a, b: np.array([
                skm.accuracy_score(t, a), skm.accuracy_score(t, b),
                skm.accuracy_score(t, a) - skm.accuracy_score(t, b)]), n_boot, SEED)},
    ))  # fmt: skip
    ratios = []
    for title, _, own_fn, _, libs in cases:
        fns = {"sciclr": own_fn, **libs}
        t = best_of(fns, rounds)
        ours = own_fn()
        lo_hi = _own_bounds(ours)
        print(f"  {title}")
        print(f"    sciclr                                   {t['sciclr'] * 1e3:9.1f} ms   "
              f"CI {_fmt(lo_hi)}")  # fmt: skip
        for name in libs:
            res = libs[name]()
            ci = res.confidence_interval
            lib_b = np.column_stack([np.atleast_1d(ci.low), np.atleast_1d(ci.high)])
            same = np.nanmax(np.abs(lib_b - lo_hi)) if lib_b.shape == lo_hi.shape else np.nan
            print(f"    {name:<40} {t[name] * 1e3:9.1f} ms   {t[name] / t['sciclr']:7.1f}x  "
                  f"CI {_fmt(lib_b)}  max |CI diff| {same:.1e}")  # fmt: skip
            ratios.append((title, name, t[name] / t["sciclr"]))
    print(f"\n  RATIO d (library / sciclr), B = {n_boot}:")
    for title, name, r in ratios:
        print(f"    {r:8.1f}x  {title} -- {name}")
    _ari_bias(km, n_boot)
    _small_auc(met, n_boot)


def _own_bounds(ests) -> np.ndarray:
    if isinstance(ests, tuple):  # paired_difference
        ests = list(ests)
    return np.array([[e.ci_low, e.ci_high] for e in ests])


def _fmt(b: np.ndarray) -> str:
    return " ".join(f"[{lo:.4f}, {hi:.4f}]" for lo, hi in b)


def _ari_bias(km, n_boot: int) -> None:
    """ARI over resamples with duplicated items: sklearn counts pairs of copies as agreeing."""
    t, c = km["t"], km["a"]
    n = len(t)
    W = np.concatenate(list(B.resample_weights(n, n_boot, SEED)))
    ours = M.adjusted_rand(t, c, W)
    res = _scipy_ci((t, c), lambda a, b: skm.adjusted_rand_score(a, b), n_boot, SEED)
    lib = np.asarray(res.bootstrap_distribution)
    point = float(skm.adjusted_rand_score(t, c))
    # unrelated clusterings: the right answer averages 0 over resamples
    rng = np.random.default_rng(1)
    c_rand = rng.permutation(c)
    own_r = M.adjusted_rand(t, c_rand, W[:300])
    lib_r = np.array([skm.adjusted_rand_score(np.repeat(t, w.astype(int)),
                                              np.repeat(c_rand, w.astype(int)))
                      for w in W[:300]])  # fmt: skip
    print(
        f"\n  ARI on resamples (point {point:.4f}): mean over resamples sciclr {ours.mean():.4f}, "
        f"scipy+sklearn {lib.mean():.4f} (bias {lib.mean() - point:+.4f}).\n"
        f"  Shuffled clustering (true ARI 0): sciclr mean {own_r.mean():+.5f}, sklearn on the "
        f"repeated items {lib_r.mean():+.5f}: sklearn counts pairs between copies of one item "
        f"as agreeing pairs, so scipy+sklearn is WRONG for sciclr's use (ARI CI)."
    )


def _small_auc(met, n_boot: int) -> None:
    """ROC-AUC on a small test set: some resamples hold no positive (the metric is undefined)."""
    rng = np.random.default_rng(0)
    idx = rng.permutation(np.r_[np.flatnonzero(met["t"])[:2], np.flatnonzero(~met["t"])[:28]])
    t, s = met["t"][idx], met["a"][idx]
    n = len(t)
    fn = lambda W: M.roc_auc(t, s, W)  # noqa: E731
    (e,) = B.estimates([fn], n, n_boot, SEED)
    W = np.concatenate(list(B.resample_weights(n, n_boot, SEED)))
    undefined = float(np.mean(~np.isfinite(fn(W))))
    out = []
    for name, run in (
        ("scipy + sklearn roc_auc_score",
         lambda: _scipy_ci((t, s), lambda a, b: skm.roc_auc_score(a, b), n_boot, SEED)),
        ("scipy engine + sciclr weighted AUC", _scipy_engine([fn], n, n_boot)),
    ):  # fmt: skip
        try:
            ci = run().confidence_interval
            out.append(f"{name} CI [{ci.low:.4f}, {ci.high:.4f}]")
        except ValueError as err:
            out.append(f"{name} raises ValueError: {str(err).splitlines()[0][:80]}")
    print(
        f"  ROC-AUC, 2 positives in {n} items ({undefined:.1%} of the resamples have no positive): "
        f"sciclr CI [{e.ci_low:.4f}, {e.ci_high:.4f}] from the defined resamples (none when "
        f"over half are undefined); {'; '.join(out)}: scipy has no CI as soon as one resample "
        "is undefined -- WRONG for sciclr's small test sets"
    )


def part_e(pred, rounds: int, n_boot: int) -> None:
    header("e. metrics vs sklearn.metrics / scipy.stats (unit weight, then bootstrap weights)")
    lab, gc, km, met = pred["dna_label"], pred["dna_gc"], pred["dna_kmeans"], pred["mat_metal"]
    (tc, pc), k = M.encode(lab["t"], lab["a"])
    t_, p_ = gc["t"], gc["a"]
    one = np.ones((1, len(tc)))
    onek = np.ones((1, len(t_)))
    onem = np.ones((1, len(met["t"])))
    pairs = {
        "accuracy": (lambda: M.accuracy(tc, pc, one)[0],
                     lambda: skm.accuracy_score(lab["t"], lab["a"])),
        "balanced_accuracy": (lambda: M.balanced_accuracy(tc, pc, one, k)[0],
                              lambda: skm.balanced_accuracy_score(lab["t"], lab["a"])),
        "macro_f1": (lambda: M.macro_f1(tc, pc, one, k)[0],
                     lambda: skm.f1_score(lab["t"], lab["a"], average="macro")),
        "roc_auc": (lambda: M.roc_auc(met["t"], met["a"], onem)[0],
                    lambda: skm.roc_auc_score(met["t"], met["a"])),
        "mae": (lambda: M.mae(t_, p_, onek)[0], lambda: skm.mean_absolute_error(t_, p_)),
        "rmse": (lambda: M.rmse(t_, p_, onek)[0],
                 lambda: np.sqrt(skm.mean_squared_error(t_, p_))),
        "r2": (lambda: M.r2(t_, p_, onek)[0], lambda: skm.r2_score(t_, p_)),
        "spearman": (lambda: M.spearman(t_, p_, onek)[0],
                     lambda: stats.spearmanr(t_, p_).statistic),
        "ari": (lambda: M.adjusted_rand(km["t"], km["a"], one)[0],
                lambda: skm.adjusted_rand_score(km["t"], km["a"])),
        "nmi": (lambda: M.normalized_mutual_info(km["t"], km["a"], one)[0],
                lambda: skm.normalized_mutual_info_score(km["t"], km["a"])),
    }  # fmt: skip
    print("  metric              sciclr          library        |diff|    time library/sciclr")
    for name, (ours, lib) in pairs.items():
        t = best_of({"o": ours, "l": lib}, rounds)
        a, b = float(ours()), float(lib())
        print(f"  {name:<18} {a:.12f} {b:.12f}  {abs(a - b):.1e}   {t['l'] / t['o']:.2f}x")
    # bootstrap weights: the metric of a weighted row must be the metric of the repeated items
    ms = pred["mat_system"]
    for title, t, p in (
        ("DNA k-NN", lab["t"], lab["a"]),
        ("materials crystal system, logistic", ms["t"], ms["a"]),
        ("materials crystal system, first 40 test items", ms["t"][:40], ms["a"][:40]),
    ):
        _weighted_rows(title, t, p)
    print(
        "    (sklearn's f1_score with sample_weight keeps labels whose items all have weight 0 "
        "and scores them F1 = 0, unlike the repeated items: wrong for bootstrap weights; ARI and "
        "NMI take no sample_weight)"
    )


def _weighted_rows(title: str, t: np.ndarray, p: np.ndarray, rows_: int = 200) -> None:
    (tc, pc), k = M.encode(t, p)
    W = np.concatenate(list(B.resample_weights(len(tc), rows_, SEED)))
    names = ("accuracy", "balanced_accuracy", "macro_f1")
    sk = {
        "accuracy": skm.accuracy_score,
        "balanced_accuracy": skm.balanced_accuracy_score,
        "macro_f1": lambda a, b, **kw: skm.f1_score(a, b, average="macro", **kw),
    }
    ref = {m: [] for m in names}
    sw = {m: [] for m in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for w in W:
            rep = np.repeat(np.arange(len(tc)), w.astype(int))
            for m in names:
                ref[m].append(sk[m](t[rep], p[rep]))
                sw[m].append(sk[m](t, p, sample_weight=w))
        own = {
            "accuracy": M.accuracy(tc, pc, W),
            "balanced_accuracy": M.balanced_accuracy(tc, pc, W, k),
            "macro_f1": M.macro_f1(tc, pc, W, k),
        }
    print(f"  {rows_} bootstrap rows ({title}, n={len(t)}): max |metric - sklearn on the "
          "repeated items|")  # fmt: skip
    for m in names:
        print(
            f"    {m:<18} sciclr {np.max(np.abs(own[m] - ref[m])):.1e}   "
            f"sklearn sample_weight=w {np.max(np.abs(np.subtract(sw[m], ref[m]))):.1e}"
        )


def _pools() -> str:
    from threadpoolctl import threadpool_info

    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=list("abcde"), choices=list("abcde"))
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (b-e)")
    parser.add_argument("--logistic-rounds", type=int, default=1, help="rounds of part a")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--logistic-tasks", nargs="*", default=["dna", "materials"],
                        choices=["dna", "materials"])  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None, help="threads of torch, BLAS and OpenMP (all)"
    )
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    t = time.perf_counter()
    dna, mat = dna_data(), materials_data()
    print(
        f"data: DNA 6-mer {dna['X'].shape}, materials element fractions {mat['X'].shape} "
        f"({time.perf_counter() - t:.1f} s); torch threads {torch.get_num_threads()}, "
        f"BLAS/OpenMP {_pools()}"
    )
    if "a" in args.parts:
        part_a(dna, mat, args.logistic_rounds, args.logistic_tasks)
    if "b" in args.parts:
        part_b(dna, mat, args.rounds)
    if "c" in args.parts:
        part_c(dna, mat, args.rounds)
    if "d" in args.parts or "e" in args.parts:
        pred = predictions(dna, mat)
        if "d" in args.parts:
            part_d(pred, args.rounds, args.boot)
        if "e" in args.parts:
            part_e(pred, args.rounds, args.boot)


if __name__ == "__main__":
    main()
