#!/usr/bin/env bash
# GPU smoke test: one epoch of every data set in a config on CUDA with AMP (bf16 autocast), through
# the same `sciclr` verbs the workflow runs; prints samples/s next to a CPU reference measured in
# the same run (a few steps of the same model on the CPU), and the data-path fraction.
#
#   benchmarks/gpu_smoke.sh                       # config/config.yaml (the bundled data sets)
#   benchmarks/gpu_smoke.sh config/test.yaml      # tiny data, seconds
#   DEVICE=cpu CPU_STEPS=0 benchmarks/gpu_smoke.sh config/test.yaml   # check the script itself
#
# Env: DEVICE (cuda), OUT (benchmarks/out/gpu_smoke), CPU_STEPS (20; 0 = no CPU reference),
#      DDP_PROCS (1; >1 = torchrun over that many GPUs), DATASETS (space-separated names; all).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-config/config.yaml}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-benchmarks/out/gpu_smoke}
CPU_STEPS=${CPU_STEPS:-20}
DDP_PROCS=${DDP_PROCS:-1}
DATASETS=${DATASETS:-}
mkdir -p "$OUT"

python - "$CONFIG" "$OUT" "$DEVICE" "$CPU_STEPS" "$DDP_PROCS" "$DATASETS" <<'PY'
import json, sys
from pathlib import Path
import torch
from sciclr.config import load_config

config, out, device, cpu_steps, procs = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
wanted = set(sys.argv[6].split())
if device == "cuda" and not torch.cuda.is_available():
    sys.exit(f"gpu_smoke: torch {torch.__version__} sees no CUDA device (set DEVICE=cpu to check the script)")
print(f"torch {torch.__version__}; " + (f"GPU {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}" if torch.cuda.is_available() else "no GPU"))
names = []
for name, ds in load_config(config)["datasets"].items():
    if wanted and name not in wanted:
        continue
    ds = dict(ds, device=device)
    ds["train"] = dict(ds["train"], epochs=1, amp="auto", ddp_procs=procs, max_steps=None)
    (out / name).mkdir(parents=True, exist_ok=True)
    (out / name / "params.json").write_text(json.dumps(ds))
    if cpu_steps:
        ref = dict(ds, device="cpu")
        ref["train"] = dict(ds["train"], amp="off", ddp_procs=1, max_steps=cpu_steps, eval_every=0)
        (out / name / "params_cpu.json").write_text(json.dumps(ref))
    names.append(name)
(out / "datasets.txt").write_text("\n".join(names) + "\n")
PY

while read -r ds; do
  d="$OUT/$ds"
  echo "== $ds: preprocess + gather"
  if [ ! -f "$d/data/data.pt" ]; then
    sciclr preprocess --params "@$d/params.json" --shard 0 --n-shards 1 --out "$d/shard0"
    sciclr gather --params "@$d/params.json" --out "$d/data" "$d/shard0"
  fi
  echo "== $ds: one epoch on $DEVICE"
  rm -rf "$d/run" "$d/run_cpu"
  sciclr train --params "@$d/params.json" --data "$d/data" --out "$d/run" > "$d/train.log" 2>&1 \
    || { tail -20 "$d/train.log"; exit 1; }
  if [ "$CPU_STEPS" -gt 0 ]; then
    echo "== $ds: CPU reference, $CPU_STEPS steps"
    sciclr train --params "@$d/params_cpu.json" --data "$d/data" --out "$d/run_cpu" > "$d/train_cpu.log" 2>&1 \
      || { tail -20 "$d/train_cpu.log"; exit 1; }
  fi
done < "$OUT/datasets.txt"

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"\n{'data set':<12} {'device':<8} {'amp':<15} {'procs':>5} {'steps':>6} {'samples/s':>10} {'CPU samples/s':>13} {'speed-up':>8} {'data path':>9}")
for ds in (out / "datasets.txt").read_text().split():
    s = json.loads((out / ds / "run" / "train_summary.json").read_text())
    cpu_file = out / ds / "run_cpu" / "train_summary.json"
    cpu = json.loads(cpu_file.read_text())["samples_per_s"] if cpu_file.exists() else None
    frac = (s.get("data_path") or {}).get("fraction")
    print(f"{ds:<12} {s['device']:<8} {s['amp']:<15} {s['world_size']:>5} {s['total_steps']:>6} "
          f"{s['samples_per_s']:>10.1f} " + (f"{cpu:>13.1f} {s['samples_per_s'] / cpu:>7.1f}x" if cpu else f"{'-':>13} {'-':>8}")
          + (f" {100 * frac:>8.1f}%" if frac is not None else f" {'-':>9}"))
PY
