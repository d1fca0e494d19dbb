#!/usr/bin/env bash
# The evaluation protocol's table (README, "Evaluation"): demonstration data, the supervised
# positive control, and `r3m eval bc` per task with every row on the same seeds and layouts.
# Resumable at every level: finished datasets, the positive control and finished eval cells are
# kept, so the table can grow over several invocations (rerun the same command).
#
#   bash experiments/eval_protocol.sh [OUT]          (default OUT: runs/eval)
#
# Environment (defaults in brackets):
#   TASKS        tasks to evaluate [push-v3,lever-pull-v3]
#   DATA_TASKS   tasks whose demonstrations are generated (make_eval_data.sh's default ten); the
#                positive control trains on every OTHER Meta-World task
#   EPISODES PC_EPISODES   episodes per task for the demos (demos + 2 held out) and for the
#                positive control [12 3]
#   ENCODERS     rows [state,proprio,random,positive-control]; positive-control=OUT/pc is trained
#                here when listed (any NAME=CHECKPOINT works too)
#   DEMOS SEEDS ROLLOUTS BC_STEPS EVAL_EVERY MAX_STEPS ENVS   [10 5 50 5000 5000 500 4]
#   PC_STEPS PC_BATCH   positive-control training steps and batch [400 32]
#   SIZE         encoder input [112: a centre crop of the 128-px renders]
#   R3M          the binary to run [built here: target/release/r3m]; point it at a copy to keep a long
#                table on one binary while you rebuild
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
OUT="${1:-runs/eval}"
TASKS="${TASKS:-push-v3,lever-pull-v3}"
DATA_TASKS="${DATA_TASKS:-push-v3,coffee-push-v3,lever-pull-v3,drawer-open-v3,button-press-v3,door-open-v3,window-open-v3,plate-slide-v3,hammer-v3,sweep-v3}"
EPISODES="${EPISODES:-12}" PC_EPISODES="${PC_EPISODES:-3}" PC_BATCH="${PC_BATCH:-32}"
ENCODERS="${ENCODERS:-state,proprio,random,positive-control}"
DEMOS="${DEMOS:-10}" SEEDS="${SEEDS:-5}" ROLLOUTS="${ROLLOUTS:-50}" BC_STEPS="${BC_STEPS:-5000}"
EVAL_EVERY="${EVAL_EVERY:-5000}" MAX_STEPS="${MAX_STEPS:-500}" ENVS="${ENVS:-4}" PC_STEPS="${PC_STEPS:-400}"
SIZE="${SIZE:-112}"
if [ -z "${R3M:-}" ]; then
  cargo build --release --locked -p r3m-cli >&2
  R3M="$CARGO_TARGET_DIR/release/r3m"
fi
log() { printf '[eval] %s\n' "$*" >&2; }

EVAL_OUT="$OUT/data" PC_OUT="$OUT/pc-data" TASKS="$DATA_TASKS" EPISODES="$EPISODES" PC_EPISODES="$PC_EPISODES" \
  bash experiments/make_eval_data.sh

rows=()
for e in ${ENCODERS//,/ }; do
  if [ "$e" = positive-control ]; then
    if [ ! -f "$OUT/pc/model.safetensors" ]; then
      log "training the positive control ($PC_STEPS steps) -> $OUT/pc"
      nice python3 experiments/train_positive_control.py --data "$OUT/pc-data" --out "$OUT/pc" --steps "$PC_STEPS" --batch "$PC_BATCH" --size "$SIZE"
    fi
    rows+=("positive-control=$OUT/pc")
  else
    rows+=("$e")
  fi
done
encoders="$(IFS=,; echo "${rows[*]}")"
for t in ${TASKS//,/ }; do
  log "eval bc $t: $encoders"
  t0=$SECONDS
  nice "$R3M" eval bc --data "$OUT/data" --task "$t" --encoders "$encoders" --demos "$DEMOS" --num-seeds "$SEEDS" \
    --policy-steps "$BC_STEPS" --eval-every "$EVAL_EVERY" --rollouts "$ROLLOUTS" --max-episode-steps "$MAX_STEPS" \
    --envs "$ENVS" --size "$SIZE" --device cpu --precision fp32 --out "$OUT/bc/$t" --resume >/dev/null
  log "$t: $((SECONDS - t0)) s"
done
python3 experiments/eval_table.py "$OUT/bc" --demos "$DEMOS" --tasks "$TASKS" --plot "$OUT/bc/success.svg"
