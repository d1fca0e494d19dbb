#!/usr/bin/env bash
# Recipe for datasets/metaworld/: Meta-World v3 scripted-expert demonstrations as a LeRobot v2.1
# dataset, made by python/r3m_tools/metaworld_demos.py. The five Meta-World tasks R3M evaluates on
# (assembly, bin-picking, button-press-topdown, drawer-open, hammer), 10 successful episodes each
# on demonstration layout seeds 0.. (evaluation layouts start at seed 1_000_000), camera corner4
# at 128x128, lossy H.264 (yuv420p, CRF 23: the sample predates lossless as the generator's
# default) at 30 fps, each episode ending 10 frames after the first success.
# Deterministic: rerunning gives byte-identical videos with the same ffmpeg/MuJoCo builds (the
# shipped Parquet predates the observation.environment_state column: datasets/README.md).
# OUT=DIR writes elsewhere (to compare with the shipped sample).
# Takes about a minute on 2 CPU cores (57 s with an evaluation running beside it; rendering dominates).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_SH="${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
# shellcheck disable=SC1090
[ -f "$ENV_SH" ] && . "$ENV_SH"  # the venv from scripts/setup.sh (python with metaworld, mujoco)
export MUJOCO_GL="${MUJOCO_GL:-egl}"
python "$ROOT/python/r3m_tools/metaworld_demos.py" \
  --tasks assembly-v3,bin-picking-v3,button-press-topdown-v3,drawer-open-v3,hammer-v3 \
  --episodes 10 --seed 0 --size 128 --camera corner4 --fps 30 --stop-on-success 10 \
  --codec lossy --crf 23 \
  --format v2.1 --out "${OUT:-$ROOT/datasets/metaworld}" --overwrite
