#!/usr/bin/env bash
# A short training run that prints images/s and the share of time spent waiting for data, meant for
# a GPU machine (DEVICE=cuda:0, the default) and runnable on any device (DEVICE=cpu).
#
# usage: bash scripts/gpu_check.sh [STEPS]
# env (defaults in brackets): STEPS [40]  DEVICE [cuda:0]  SIZE [224]  BATCH [16]  ARCH [resnet18]
#   DATA  a LeRobot dataset to train on [datasets/metaworld: 50 episodes, so BATCH ≤ 50]
#   R3M   the binary [the release build of scripts/setup.sh's cache]
# The run goes to a temporary folder that is removed at the end. Exits non-zero when doctor fails
# on DEVICE, when training fails, or when it logged no step to time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${1:-${STEPS:-40}}"
DEVICE="${DEVICE:-cuda:0}"; SIZE="${SIZE:-224}"; BATCH="${BATCH:-16}"; ARCH="${ARCH:-resnet18}"
DATA="${DATA:-$ROOT/datasets/metaworld}"
if [ -z "${R3M:-}" ]; then
  # shellcheck disable=SC1091
  . "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
  R3M="$CARGO_TARGET_DIR/release/r3m"
fi
"$R3M" doctor --device "$DEVICE"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
RUN="$TMP/gpu-check"
"$R3M" train --lerobot "$DATA" --out "$RUN" --steps "$STEPS" --batch "$BATCH" \
  --size "$SIZE" --arch "$ARCH" --device "$DEVICE" --checkpoint-every 1000000 -q
# skip the first quarter of the steps (warm-up: cuDNN autotuning, allocator growth)
awk -F, -v b="$BATCH" -v n="$STEPS" -v arch="$ARCH" -v dev="$DEVICE" -v size="$SIZE" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  $1 > n / 4 { s += $col["step_s"]; w += $col["wait_s"]; k++ }
  END {
    if (!k || s <= 0) { print "gpu_check: no timed step in metrics.csv" > "/dev/stderr"; exit 1 }
    printf "%s on %s, batch %d x 5 frames at %dpx: %.1f images/s over %d steps, data wait %.1f%%\n", arch, dev, b, size, 5 * b * k / s, k, 100 * w / s
  }' "$RUN/metrics.csv"
