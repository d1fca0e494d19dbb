#!/usr/bin/env bash
# The two LeRobot datasets of the held-out evaluation and the objective ablation (README):
# EVAL (12 candidate evaluation tasks) and PRETRAIN (20 other tasks, used as unlabeled video),
# 8 scripted-expert episodes per task at 64 px, layout seeds from 0. No task is in both.
# ~2 min + ~4 min on 2 cores. usage: experiments/make_heldout_data.sh [OUT_DIR]   (default runs/ho)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
OUT="${1:-$ROOT/runs/ho}"
EVAL_TASKS=hammer-v3,pick-place-v3,peg-insert-side-v3,shelf-place-v3,stick-pull-v3,disassemble-v3,push-v3,sweep-v3,coffee-push-v3,box-close-v3,basketball-v3,lever-pull-v3
PRETRAIN_TASKS=assembly-v3,bin-picking-v3,button-press-topdown-v3,drawer-open-v3,door-open-v3,window-open-v3,faucet-open-v3,handle-pull-v3,plate-slide-v3,reach-v3,dial-turn-v3,coffee-button-v3,door-close-v3,drawer-close-v3,button-press-v3,push-back-v3,sweep-into-v3,window-close-v3,handle-press-v3,soccer-v3
mkdir -p "$OUT"
[ -f "$OUT/eval-data/meta/info.json" ] || python "$ROOT/python/r3m_tools/metaworld_demos.py" --tasks "$EVAL_TASKS" --episodes 8 --seed 0 --size 64 --out "$OUT/eval-data" --overwrite
[ -f "$OUT/pretrain-data/meta/info.json" ] || python "$ROOT/python/r3m_tools/metaworld_demos.py" --tasks "$PRETRAIN_TASKS" --episodes 8 --seed 0 --size 64 --out "$OUT/pretrain-data" --overwrite
echo "$OUT/eval-data, $OUT/pretrain-data"
