"""Benchmark of sciclr's InfoNCE against its matrix-product floor and public implementations.

Forward + backward, V = 2 views, d = 128, τ = 0.1, float32, on this machine's CPU threads, at
N ∈ {256, 1024, 4096} (``--n`` to change). Every figure is a ratio to references timed in the same
process on the same inputs, interleaved round by round (minimum over rounds; more rounds at
small N):

* floor (3 GEMMs): ``S = A Kᵀ`` plus the two products of its backward, i.e. autograd of the
  matrix product alone; "strict floor" (2 GEMMs): ``A Kᵀ`` and one ``G K``, the least any
  implementation of the symmetric "all" loss could do.
* peers, same convention, values checked equal to ours before timing:
  mode "all" (NT-Xent) — pytorch-metric-learning ``SupConLoss`` with instance labels, lightly
  ``NTXentLoss``; mode "cross_view" (CLIP) — info-nce-pytorch both ways, plain ``F.cross_entropy``.

Peers are optional: ``pip install --no-deps pytorch-metric-learning info-nce-pytorch`` (with
``-c constraints.txt`` pinning ``torch==2.13.0``, so the CPU torch stays). lightly imports
torchvision at import time, and PyPI's torchvision wheels are CUDA builds that fail beside the CPU
torch ("operator torchvision::nms does not exist"); it is skipped with that reason when absent.

``--memory`` also runs the chunked path at N = 32,768 (V = 2, "all": logits would be 17 GB dense)
in a fresh subprocess and prints its peak resident memory (``ru_maxrss``) above the baseline.

Usage: ``python benchmarks/infonce.py [--n 256 1024 4096] [--rounds 7] [--threads T] [--memory]``
(``--n --memory``: the memory figure only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sciclr.losses import info_nce

TAU = 0.1
D = 128


def _peers_all() -> dict[str, Callable[[torch.Tensor], torch.Tensor] | str]:
    out: dict[str, Callable[[torch.Tensor], torch.Tensor] | str] = {}
    try:
        from pytorch_metric_learning.losses import SupConLoss

        supcon = SupConLoss(temperature=TAU)

        def pml(z: torch.Tensor) -> torch.Tensor:
            n = z.shape[1]
            return supcon(z.reshape(2 * n, -1), torch.arange(n).repeat(2))

        out["pml SupConLoss"] = pml
    except ImportError as err:
        out["pml SupConLoss"] = f"skipped: {err}"
    try:
        from lightly.loss import NTXentLoss

        ntxent = NTXentLoss(temperature=TAU)
        out["lightly NTXentLoss"] = lambda z: ntxent(z[0], z[1])
    except Exception as err:  # lightly fails at import when torchvision cannot load
        out["lightly NTXentLoss"] = (
            f"skipped: lightly not importable ({type(err).__name__}: {err}). lightly imports "
            "torchvision at import time; PyPI's torchvision wheels are CUDA builds that fail "
            "beside the CPU torch 2.13 ('operator torchvision::nms does not exist'), and "
            "installing lightly with its dependencies would replace torch"
        )
    return out


def _peers_cross() -> dict[str, Callable[[torch.Tensor], torch.Tensor] | str]:
    out: dict[str, Callable[[torch.Tensor], torch.Tensor] | str] = {}
    try:
        from info_nce import info_nce as peer

        out["info-nce-pytorch x2"] = lambda z: (
            (peer(z[0], z[1], temperature=TAU) + peer(z[1], z[0], temperature=TAU)) / 2
        )
    except ImportError as err:
        out["info-nce-pytorch x2"] = f"skipped: {err}"

    def clip(z: torch.Tensor) -> torch.Tensor:
        zn = F.normalize(z, dim=-1)
        logits = zn[0] @ zn[1].T / TAU
        labels = torch.arange(z.shape[1])
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    out["F.cross_entropy CLIP"] = clip
    return out


def _loss_step(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> Callable[[], None]:
    leaf = z.clone().requires_grad_()

    def step() -> None:
        leaf.grad = None
        fn(leaf).backward()

    return step


def _floor3(m: int, c: int) -> Callable[[], None]:
    a = F.normalize(torch.randn(m, D), dim=-1).requires_grad_()
    k = F.normalize(torch.randn(c, D), dim=-1).requires_grad_()
    g = torch.randn(m, c) * 1e-3

    def step() -> None:
        a.grad = k.grad = None
        (a @ k.T).backward(g)

    return step


def _floor2(m: int) -> Callable[[], None]:
    a = F.normalize(torch.randn(m, D), dim=-1)
    g = torch.randn(m, m) * 1e-3

    def step() -> None:
        torch.mm(a, a.T)
        torch.mm(g, a)

    return step


def _time(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    for f in steps.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, f in steps.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()} | {
        f"{k} (median)": statistics.median(v) for k, v in times.items()
    }


def bench(n: int, rounds: int) -> None:
    g = torch.Generator().manual_seed(n)
    z = torch.randn(2, n, D, generator=g)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n=== N = {n}, V = 2, d = {D}, tau = {TAU}, fp32, {torch.get_num_threads()} threads "
        f"(load average {load} on {os.cpu_count()} CPUs)"
    )
    for mode, peers in (("all", _peers_all()), ("cross_view", _peers_cross())):
        ours = info_nce(z, TAU, mode)
        steps = {"sciclr": _loss_step(lambda x, mode=mode: info_nce(x, TAU, mode), z)}
        if mode == "all":
            steps["floor (3 GEMMs)"] = _floor3(2 * n, 2 * n)
            steps["strict floor (2 GEMMs)"] = _floor2(2 * n)
        else:
            steps["floor (3 GEMMs)"] = _floor3(n, n)
        for name, fn in peers.items():
            if isinstance(fn, str):
                print(f"  {mode:<10} {name:<24} {fn}")
                continue
            value = float(fn(z))
            if abs(value - float(ours)) > 1e-4 * abs(float(ours)):
                print(f"  {mode:<10} {name:<24} skipped: different value {value} vs {float(ours)}")
                continue
            steps[name] = _loss_step(fn, z)
        # small sizes are cheap and the most sensitive to a shared machine: more rounds there
        t = _time(steps, max(rounds, rounds * 2048 // n))
        ref = t["sciclr"]
        for name in steps:
            line = f"  {mode:<10} {name:<24} {t[name] * 1e3:9.2f} ms (median {t[name + ' (median)'] * 1e3:9.2f})"
            if name == "sciclr":
                floors = [k for k in steps if "floor" in k]
                line += "  " + ", ".join(f"{ref / t[k]:.2f}x {k}" for k in floors)
            elif "floor" not in name:
                line += f"  peer/sciclr = {t[name] / ref:.2f}x"
            print(line)


def _peak_rss_kb() -> int:
    """Peak resident set of this process image (VmHWM; ``ru_maxrss`` survives exec on Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _memory_child(n: int) -> None:
    z = torch.randn(2, n, D).requires_grad_()
    base = _peak_rss_kb()
    t0 = time.perf_counter()
    loss = info_nce(z, TAU, "all")  # automatic: dense logits would need 4·(2n)² bytes
    loss.backward()
    seconds = time.perf_counter() - t0
    peak = _peak_rss_kb()
    print(json.dumps({"base_kb": base, "peak_kb": peak, "seconds": seconds, "loss": float(loss)}))


def memory(n: int) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    dense = 4 * (2 * n) ** 2 / 1024**3
    print(
        f"\n=== chunked path, N = {n} (V = 2, 'all'): peak RSS {r['peak_kb'] / 1024**2:.2f} GiB "
        f"(+{(r['peak_kb'] - r['base_kb']) / 1024**2:.2f} GiB over the process baseline), "
        f"{r['seconds']:.1f} s forward+backward, loss {r['loss']:.4f}; dense logits alone "
        f"would be {dense:.1f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="*", default=[256, 1024, 4096])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--memory", action="store_true", help="chunked peak memory at N=32768")
    parser.add_argument("--memory-n", type=int, default=32768)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for n in args.n:
        bench(n, args.rounds)
    if args.memory:
        memory(args.memory_n)


if __name__ == "__main__":
    main()
