#!/usr/bin/env bash
# The GPU check: one prepared script for a GPU machine, from the kit (scripts/gpu_kit.sh) or a
# build, that prints one table. Runnable on any device (DEVICE=cpu, with a smaller matrix).
#
# usage: bash gpu_check.sh [STEPS]
# env (defaults in brackets):
#   DEVICE   [cuda:0]           STEPS  training steps per row [60, or the first argument]
#   ARCHS    [resnet18 resnet50] PRECISIONS [bf16 fp32]      SIZE [224]  BATCH [32]
#   DATA     a LeRobot dataset [datasets/metaworld beside the kit or the repository: 50 episodes,
#            so BATCH ≤ 50]
#   R3M      the command that runs r3m [run.sh beside this script (in a kit), else the release build]
#   EVERY    embed every Nth frame [1]
#   TORCHRUN the launcher for the 1-rank data-parallel row ["python3 -m torch.distributed.run"; empty: skip]
#   OUTDIR   where the runs and the table go [a temporary folder, removed at the end]
# Rows: doctor; `train` per ARCH × PRECISION (images/s and data wait over the steps after the first
# quarter, peak GPU memory from nvidia-smi where it exists); `embed` frames/s; a 1-rank torchrun
# `train` with the backend for DEVICE (NCCL on CUDA). Decoding stays on the CPU: r3m has no NVDEC
# path, so there is no CPU-vs-NVDEC row. Exits non-zero when a row fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STEPS="${1:-${STEPS:-60}}"
DEVICE="${DEVICE:-cuda:0}"; SIZE="${SIZE:-224}"; BATCH="${BATCH:-32}"
ARCHS="${ARCHS:-resnet18 resnet50}"; PRECISIONS="${PRECISIONS:-bf16 fp32}"; EVERY="${EVERY:-1}"
TORCHRUN="${TORCHRUN-python3 -m torch.distributed.run}"
if [ -z "${DATA:-}" ]; then
  for d in "$HERE/../datasets/metaworld" "$HERE/../../datasets/metaworld"; do
    [ -d "$d" ] && DATA="$(cd "$d" && pwd)" && break
  done
fi
[ -n "${DATA:-}" ] || { echo "gpu_check: set DATA to a LeRobot dataset" >&2; exit 2; }
if [ -z "${R3M:-}" ]; then
  if [ -f "$HERE/run.sh" ]; then
    R3M="bash $HERE/run.sh"
  else
    # shellcheck disable=SC1091
    . "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
    R3M="$CARGO_TARGET_DIR/release/r3m"
  fi
fi
if [ -n "${OUTDIR:-}" ]; then
  TMP="$OUTDIR"; mkdir -p "$TMP"
else
  TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
fi
TABLE="$TMP/table.md"
row() { printf '%s\n' "$*" | tee -a "$TABLE" >/dev/null; }
now() { date +%s.%N; }
SMI=""; case "$DEVICE" in cuda*) command -v nvidia-smi >/dev/null && SMI=1 ;; esac
gpu_index="${DEVICE#cuda:}"; [ "$gpu_index" = "$DEVICE" ] && gpu_index=0; [ "$gpu_index" = cuda ] && gpu_index=0

: > "$TABLE"
row "| check | setting | result |"
row "| --- | --- | --- |"

# 1. doctor
t0="$(now)"
$R3M doctor --device "$DEVICE" > "$TMP/doctor.log" 2>&1 || { cat "$TMP/doctor.log" >&2; echo "gpu_check: doctor failed on $DEVICE" >&2; exit 1; }
row "| doctor | $DEVICE | ok ($(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s) |"

# 2. training rows
train_row() {  # name, then r3m train flags
  local name="$1"; shift
  local run="$TMP/$name" mem="$TMP/$name.mem" smi_pid=""
  if [ -n "$SMI" ]; then
    nvidia-smi -i "$gpu_index" --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$mem" 2>/dev/null &
    smi_pid=$!
  fi
  local rc=0
  R3M_AUTOTUNE=never "$@" --lerobot "$DATA" --out "$run" --steps "$STEPS" --batch "$BATCH" --size "$SIZE" \
    --device "$DEVICE" --checkpoint-every 1000000 > "$TMP/$name.log" 2>&1 || rc=$?
  [ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null && wait "$smi_pid" 2>/dev/null || true
  if [ "$rc" != 0 ]; then cat "$TMP/$name.log" >&2; echo "gpu_check: $name failed" >&2; return 1; fi
  local peak="–"
  [ -s "$mem" ] && peak="$(sort -n "$mem" | tail -1) MiB"
  # skip the first quarter of the steps (warm-up: cuDNN's algorithm search, allocator growth)
  awk -F, -v b="$BATCH" -v n="$STEPS" -v peak="$peak" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 > n / 4 { s += $col["step_s"]; w += $col["wait_s"]; k++ }
    END {
      if (!k || s <= 0) { print "gpu_check: no timed step in metrics.csv" > "/dev/stderr"; exit 1 }
      printf "%.1f images/s over %d steps, data wait %.1f%%, peak GPU memory %s", 5 * b * k / s, k, 100 * w / s, peak
    }' "$run/metrics.csv"
}
for arch in $ARCHS; do
  for prec in $PRECISIONS; do
    r="$(train_row "train-$arch-$prec" $R3M train --arch "$arch" --precision "$prec" --memory-format channels-last)"
    row "| train $arch $prec | batch $BATCH × 5 frames at $SIZE px, $STEPS steps | $r |"
  done
done

# 3. embed: frames/s of a frozen encoder (the first training row's)
first="$(set -- $ARCHS; echo "$1")-$(set -- $PRECISIONS; echo "$1")"
t0="$(now)"
$R3M embed --checkpoint "$TMP/train-$first" --lerobot "$DATA" --out "$TMP/emb.parquet" --device "$DEVICE" --every "$EVERY" \
  > "$TMP/embed.log" 2>&1 || { cat "$TMP/embed.log" >&2; echo "gpu_check: embed failed" >&2; exit 1; }
t1="$(now)"
frames="$(grep -oE 'embedding [0-9]+ frames' "$TMP/embed.log" | head -1 | awk '{ print $2 }')"
row "| embed | $first checkpoint, every ${EVERY}th frame of $(basename "$DATA") | $(awk -v n="${frames:-0}" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d frames in %.1f s: %.0f frames/s (start-up included)", n, b - a, n / (b - a) }') |"

# 4. a 1-rank data-parallel run through torchrun with the device's backend (torchrun sets
# OMP_NUM_THREADS=1, so on the CPU this row is slower than the others)
if [ -n "$TORCHRUN" ]; then
  backend=gloo; case "$DEVICE" in cuda*) backend=nccl ;; esac
  read -r -a launcher <<< "$TORCHRUN"
  # shellcheck disable=SC2086
  r="$(train_row "torchrun-$backend" "${launcher[@]}" --nproc-per-node=1 --no-python $R3M train --dist-backend "$backend" --arch "$(set -- $ARCHS; echo "$1")")"
  grep -q "rank 0 of 1 (local rank 0), $backend backend" "$TMP/torchrun-$backend.log" \
    || { cat "$TMP/torchrun-$backend.log" >&2; echo "gpu_check: torchrun did not join a $backend group" >&2; exit 1; }
  row "| torchrun, 1 rank | $backend, $(set -- $ARCHS; echo "$1") | $r |"
fi
row "| decode on NVDEC | – | not measured: r3m decodes on the CPU (no NVDEC path) |"

echo
gpu=""; [ -n "$SMI" ] && gpu=" ($(nvidia-smi -i "$gpu_index" --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null))"
echo "GPU check on $DEVICE$gpu, $(nproc) CPU cores, r3m: $R3M"
cat "$TABLE"
