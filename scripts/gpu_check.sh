#!/usr/bin/env bash
# A short training run on a GPU that prints images/s, for the machines where one is lent.
# usage: bash scripts/gpu_check.sh [STEPS] (DEVICE=cuda:0 SIZE=224 BATCH=16 ARCH=resnet18 to change)
# Needs a built `r3m` (scripts/setup.sh + cargo build --release -p r3m-cli), or R3M=path/to/r3m.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${1:-40}"
DEVICE="${DEVICE:-cuda:0}"; SIZE="${SIZE:-224}"; BATCH="${BATCH:-16}"; ARCH="${ARCH:-resnet18}"
if [ -z "${R3M:-}" ]; then
  # shellcheck disable=SC1091
  . "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
  R3M="$CARGO_TARGET_DIR/release/r3m"
fi
"$R3M" doctor --device "$DEVICE"
RUN="$(mktemp -d)/gpu-check"
"$R3M" train --videos "$ROOT/datasets/synthetic" --out "$RUN" --steps "$STEPS" --batch "$BATCH" \
  --size "$SIZE" --arch "$ARCH" --device "$DEVICE" --checkpoint-every 1000000
# skip the first quarter of the steps (warm-up: cuDNN autotuning, allocator growth)
awk -F, -v b="$BATCH" -v n="$STEPS" -v arch="$ARCH" -v dev="$DEVICE" -v size="$SIZE" '
  NR > 1 && $1 > n / 4 { s += $8; w += $7; k++ }
  END { if (k) printf "%s on %s, batch %d x 5 frames at %dpx: %.1f images/s over %d steps, data wait %.1f%%\n", arch, dev, b, size, 5 * b * k / s, k, 100 * w / s }' \
  "$RUN/metrics.csv"
