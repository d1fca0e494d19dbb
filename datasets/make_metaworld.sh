#!/usr/bin/env bash
# Recipe for datasets/metaworld/: Meta-World v3 scripted-expert demonstrations as a LeRobot v2.1
# dataset, made by python/r3m_tools/metaworld_demos.py. The five Meta-World tasks R3M evaluates on
# (assembly, bin-picking, button-press-topdown, drawer-open, hammer), 10 successful episodes each
# on demonstration layout seeds 0.. (evaluation layouts start at seed 1_000_000), camera corner4
# at 128x128, H.264 at 30 fps, each episode ending 10 frames after the first success.
# Deterministic: rerunning gives byte-identical files with the same ffmpeg/MuJoCo builds.
# Takes 2-4 minutes on 2 CPU cores (rendering dominates).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_SH="${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
# shellcheck disable=SC1090
[ -f "$ENV_SH" ] && . "$ENV_SH"  # the venv from scripts/setup.sh (python with metaworld, mujoco)
export MUJOCO_GL="${MUJOCO_GL:-egl}"
python "$ROOT/python/r3m_tools/metaworld_demos.py" \
  --tasks assembly-v3,bin-picking-v3,button-press-topdown-v3,drawer-open-v3,hammer-v3 \
  --episodes 10 --seed 0 --size 128 --camera corner4 --fps 30 --stop-on-success 10 \
  --format v2.1 --out "$ROOT/datasets/metaworld" --overwrite
