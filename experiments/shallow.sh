#!/usr/bin/env bash
# The shallow-ConvNet pretraining table (docs/results/pretraining.md), one command: pretrain each encoder of RUNS with
# `r3m train --arch shallow`, evaluate the reference rows and each pretrained encoder's final
# checkpoint frozen with `r3m eval bc` on every task of TASKS, and write the table and its plot.
# Resumable at every level: a pretraining continues from its latest checkpoint (one stopped before
# its first checkpoint starts over: it had nothing to lose), finished eval cells are never re-run,
# and rows already in OUT stay in the tables. Rerun it after a stop, or with a longer RUNS.
#
# usage: experiments/shallow.sh [OUT]              (default runs/eval/shallow)
# env (defaults in brackets):
#   DATA      the evaluation's LeRobot dataset [runs/eval/data4] (README, "Learned from scratch")
#   PRETRAIN  where the pretraining runs and their video folders live [runs/pretrain]
#             (vid-indomain, vid-heldout: README, "Pretraining on this evaluation")
#   RUNS      pretrained rows, space-separated ROW=RUN:VIDEOS:SEED[:OBJECTIVE] (RUN and VIDEOS
#             under PRETRAIN; OBJECTIVE [r3m-tcn]) [the README's rows]; empty: none
#   BASE      reference rows [state,random,random-shallow,scratch-shallow] (scratch-shallow: ~13 min a
#             cell on a 2-vCPU AMD EPYC, the 20 cells took 4.3 h; the frozen rows take 1-2 min a cell);
#             any `eval bc --encoders` row, NAME=CHECKPOINT included
#   VS        rows every row is paired with besides random, where they exist
#             [random-shallow,tcn-shallow,tcn-shallow-ho]
#   TASKS     [push-v3,sweep-v3,hammer-v3,lever-pull-v3]; sweep-v3 runs 330-step episodes, others 300
#   SEEDS     policy seeds per cell [5]
#   STEPS     pretraining steps [4000] (batch 16, 112 px, fp32, a checkpoint every 500)
#   R3M       the binary [$CARGO_TARGET_DIR/release/r3m, built first]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
OUT="${1:-runs/eval/shallow}"
DATA="${DATA:-runs/eval/data4}"
PRETRAIN="${PRETRAIN:-runs/pretrain}"
RUNS="${RUNS-tcn-shallow=tcn-shallow-indomain:vid-indomain:0 tcn-shallow-s1=tcn-shallow-indomain-s1:vid-indomain:1 tcn-shallow-ho=tcn-shallow-heldout:vid-heldout:0 tcn-shallow-ho-s1=tcn-shallow-heldout-s1:vid-heldout:1 simclr-shallow=simclr-shallow-indomain:vid-indomain:0:simclr triplet-shallow=triplet-shallow-indomain:vid-indomain:0:triplet byol-shallow=byol-shallow-indomain:vid-indomain:0:byol moco-shallow=moco-shallow-indomain:vid-indomain:0:moco npair-shallow=npair-shallow-indomain:vid-indomain:0:npair proto-shallow=proto-shallow-indomain:vid-indomain:0:proto}"
BASE="${BASE:-state,random,random-shallow,scratch-shallow}"
VS="${VS:-random-shallow,tcn-shallow,tcn-shallow-ho}"
TASKS="${TASKS:-push-v3,sweep-v3,hammer-v3,lever-pull-v3}"
SEEDS="${SEEDS:-5}"; STEPS="${STEPS:-4000}"
[ -f "$DATA/meta/info.json" ] || { echo "shallow: $DATA is not a LeRobot dataset (README: python/r3m_tools/metaworld_demos.py ... --out $DATA)" >&2; exit 2; }
if [ -z "${R3M:-}" ]; then
  R3M="$CARGO_TARGET_DIR/release/r3m"
  cargo build --release --locked -p r3m-cli >&2
fi
pad() { printf '%08d' "$1"; }

# ROW=RUN:VIDEOS:SEED[:OBJECTIVE] -> pretrain (resumable), echo the final checkpoint
pretrain() {
  local row="${1%%=*}" spec="${1#*=}" run vid seed obj
  IFS=: read -r run vid seed obj <<<"$spec"
  obj="${obj:-r3m-tcn}"; run="$PRETRAIN/$run"; vid="$PRETRAIN/$vid"
  local ck="$run/checkpoints/step-$(pad "$STEPS")"
  if [ ! -f "$ck/config.json" ]; then
    [ -d "$vid" ] || { echo "shallow: $row: no video folder $vid (README, \"Pretraining on this evaluation\")" >&2; exit 2; }
    # --resume from a complete checkpoint named by latest; a run without one has nothing to lose
    local again=() last=""
    [ -f "$run/latest" ] && last="$(cat "$run/latest")"
    if [ -n "$last" ] && [ -f "$run/checkpoints/$last/config.json" ]; then again=(--resume)
    elif [ -e "$run/metrics.csv" ] || [ -e "$run/latest" ] || [ -d "$run/checkpoints" ]; then again=(--overwrite); fi
    echo "[shallow] $(date -u +%T) pretrain $row ($obj, seed $seed) on $vid -> $run ${again[*]}" >&2
    "$R3M" train --videos "$vid" --out "$run" --arch shallow --objective "$obj" --steps "$STEPS" --batch 16 \
      --size 112 --device cpu --precision fp32 --checkpoint-every 500 --keep 20 --seed "$seed" -q "${again[@]}" >&2 \
      || { echo "shallow: $row: r3m train failed (log: $run/train.log)" >&2; exit 1; }
  fi
  [ -f "$ck/config.json" ] || { echo "shallow: $row: no checkpoint $ck after training" >&2; exit 1; }
  echo "$ck"
}

# ENCODERS ROWS_SO_FAR -> every task, resumable; paired with the VS rows listed or already in OUT
evaluate() {
  local t ms v vs
  for t in ${TASKS//,/ }; do
    vs=random
    for v in ${VS//,/ }; do
      case ",$2,${1%%=*}," in *",$v,"*) vs="$vs,$v"; continue ;; esac
      compgen -G "$OUT/$t/cells/$v.demos-*.json" >/dev/null && vs="$vs,$v"
    done
    ms=300; [ "$t" = sweep-v3 ] && ms=330
    echo "[shallow] $(date -u +%T) eval bc $t: $1" >&2
    "$R3M" eval bc --data "$DATA" --task "$t" --encoders "$1" --vs "$vs" --demos 10 --num-seeds "$SEEDS" \
      --policy-steps 5000 --eval-every 5000 --rollouts 50 --max-episode-steps "$ms" --envs 4 --size 112 \
      --arch resnet18 --device cpu --precision fp32 --out "$OUT/$t" --resume -q >/dev/null
  done
}

rows="$(sed 's/=[^,]*//g' <<<"$BASE")"   # NAME=CHECKPOINT rows are called NAME in the tables
evaluate "$BASE" "$rows"
for spec in $RUNS; do
  ck="$(pretrain "$spec")"
  evaluate "${spec%%=*}=$ck" "$rows"
  rows="$rows,${spec%%=*}"
done
python3 experiments/eval_table.py "$OUT" --tasks "$TASKS" --rows "$rows" --vs "$VS" --plot "$OUT/success.svg" > "$OUT/table.md"
echo "[shallow] $(date -u +%T) done: $OUT/table.md, $OUT/success.svg" >&2
