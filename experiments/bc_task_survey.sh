#!/usr/bin/env bash
# Which Meta-World tasks can tell encoders apart? Runs `r3m eval bc --encoders random` (a frozen,
# randomly initialised ResNet18) on candidate tasks: tasks where the random encoder is already near
# 100% cannot show what pretraining adds. Generates the demos first (python/r3m_tools/metaworld_demos.py).
# usage: experiments/bc_task_survey.sh [OUT_DIR]   (env: TASKS, DEMOS, ROLLOUTS, STEPS, SIZE)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
OUT="${1:-$ROOT/runs/survey}"
TASKS="${TASKS:-assembly-v3,hammer-v3,bin-picking-v3,pick-place-v3,peg-insert-side-v3,shelf-place-v3,stick-pull-v3,disassemble-v3}"
DEMOS="${DEMOS:-5}"; ROLLOUTS="${ROLLOUTS:-10}"; STEPS="${STEPS:-2000}"; SIZE="${SIZE:-128}"
cargo build --release --locked -p r3m-cli
R3M="$CARGO_TARGET_DIR/release/r3m"
mkdir -p "$OUT"
if [ ! -f "$OUT/data/meta/info.json" ]; then
  python "$ROOT/python/r3m_tools/metaworld_demos.py" --tasks "$TASKS" --episodes $((DEMOS + 2)) --seed 0 --size "$SIZE" \
    --out "$OUT/data" --overwrite
fi
for t in ${TASKS//,/ }; do
  "$R3M" eval bc --data "$OUT/data" --task "$t" --encoders random --demos "$DEMOS" --num-seeds 1 --policy-steps "$STEPS" \
    --eval-every "$STEPS" --rollouts "$ROLLOUTS" --max-episode-steps 500 --envs 2 --size "$SIZE" --out "$OUT/$t" >/dev/null
  tail -n +5 "$OUT/$t/results.md" | head -1 | sed "s/^| random/| $t/"
done | tee "$OUT/summary.md"
