#!/usr/bin/env bash
# Data-parallel cost on this machine, both rows in one run: the same global batch trained by one
# process with all intra-op threads, and by `torchrun --nproc-per-node=N` processes with one thread
# each (their gradients all-reduced over Gloo every step). Prints images/s from rank 0's
# metrics.csv (mean step time over steps 3..STEPS, all-reduce included).
#
#   bash scripts/bench_dist.sh [VIDEOS] (default datasets/synthetic)
# Environment: STEPS [12] BATCH (global) [8] SIZE [64] N (ranks) [2]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
V="${1:-datasets/synthetic}"
STEPS="${STEPS:-12}" BATCH="${BATCH:-8}" SIZE="${SIZE:-64}" N="${N:-2}"
R3M="${R3M:-$CARGO_TARGET_DIR/release/r3m}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
common=(--videos "$V" --steps "$STEPS" --size "$SIZE" --workers 1 --tuples-per-clip 4 --device cpu --precision fp32 --seed 0 --checkpoint-every 1000)
"$R3M" train "${common[@]}" --out "$out/one" --batch "$BATCH" >/dev/null 2>&1
torchrun --nproc-per-node="$N" --master-port "$((20000 + RANDOM % 20000))" --no-python "$R3M" train "${common[@]}" \
  --out "$out/dist" --batch "$((BATCH / N))" >/dev/null 2>&1
python3 - "$out" "$BATCH" "$N" "$(nproc)" <<'PY'
import csv, sys
out, batch, n, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rate(run):
    rows = list(csv.DictReader(open(f"{out}/{run}/metrics.csv")))[2:]
    s = sum(float(r["step_s"]) for r in rows) / len(rows)
    return batch * 5 / s, s
one, one_s = rate("one")
dist, dist_s = rate("dist")
print(f"| layout (global batch {batch}, {cores} cores) | s/step | images/s | vs 1 process |")
print("| --- | ---: | ---: | ---: |")
print(f"| 1 process, {cores} intra-op threads | {one_s:.3f} | {one:.1f} | 1.00x |")
print(f"| {n} ranks x 1 thread, Gloo all-reduce | {dist_s:.3f} | {dist:.1f} | {dist / one:.2f}x |")
PY
