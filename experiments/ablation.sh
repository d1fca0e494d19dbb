#!/usr/bin/env bash
# The objective ablation on Meta-World: pretrain one encoder per objective under the same budget
# (steps, batch, resolution, seed) on the same videos, measure each one's alignment accuracy on
# held-out videos, evaluate each with `r3m eval bc` on held-out tasks beside baselines, and write
# one table (experiments/ablation_table.py). Resumable: finished pieces are skipped on rerun.
#
# usage: experiments/ablation.sh [OUT]        (default runs/ablation)
# env (defaults in brackets):
#   PRETRAIN_DATA  LeRobot dataset of pretraining videos [runs/ho/pretrain-data]
#   EVAL_DATA      LeRobot dataset with the held-out tasks' demos [runs/ho/eval-data]
#   OBJECTIVES     [r3m-tcn,triplet,npair,simclr,moco,byol,proto]; OBJ+lang adds R3M's language term
#                  (--lang-weight LANG_WEIGHT [1] with PRETRAIN_DATA's task texts, python/r3m_tools/embed_texts.py)
#   TASKS          held-out tasks [hammer-v3,...] (must not be in PRETRAIN_DATA)
#   BASELINES      encoders evaluated once per task besides the pretrained ones [random]; empty: none
#   STEPS BATCH SIZE SEED LR       pretraining budget [300 8 64 0 1e-4]
#   BATCHES        extra batch sizes for the batch-size study [] (e.g. 4,16,32)
#   BATCH_OBJECTIVES objectives in the batch-size study [r3m-tcn,simclr,moco]
#   DEMOS SEEDS ROLLOUTS BC_STEPS EVAL_EVERY MAX_STEPS ENVS   eval bc [5 2 20 1000 500 150 4]
#   PRECISION      of the frozen encoders in eval bc [auto]
#   PRETRAIN_OUT   where pretrained runs go [OUT/pretrain] (share it between invocations)
#   PRETRAIN_ONLY  1: stop after pretraining and the alignment measure
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
OUT="${1:-$ROOT/runs/ablation}"
PRETRAIN_DATA="${PRETRAIN_DATA:-$ROOT/runs/ho/pretrain-data}"
EVAL_DATA="${EVAL_DATA:-$ROOT/runs/ho/eval-data}"
OBJECTIVES="${OBJECTIVES:-r3m-tcn,triplet,npair,simclr,moco,byol,proto}"
TASKS="${TASKS:-hammer-v3,push-v3,coffee-push-v3}"
BASELINES="${BASELINES-random}"
STEPS="${STEPS:-300}"; BATCH="${BATCH:-8}"; SIZE="${SIZE:-64}"; SEED="${SEED:-0}"; LR="${LR:-1e-4}"
BATCHES="${BATCHES:-}"; BATCH_OBJECTIVES="${BATCH_OBJECTIVES:-r3m-tcn,simclr,moco}"
DEMOS="${DEMOS:-5}"; SEEDS="${SEEDS:-2}"; ROLLOUTS="${ROLLOUTS:-20}"; BC_STEPS="${BC_STEPS:-1000}"
EVAL_EVERY="${EVAL_EVERY:-500}"; MAX_STEPS="${MAX_STEPS:-150}"; ENVS="${ENVS:-4}"; PRECISION="${PRECISION:-auto}"
PRETRAIN_OUT="${PRETRAIN_OUT:-$OUT/pretrain}"
for d in "$PRETRAIN_DATA" "$EVAL_DATA"; do
  [ -f "$d/meta/info.json" ] || { echo "ablation: $d is not a LeRobot dataset (make it with python/r3m_tools/metaworld_demos.py)" >&2; exit 2; }
done
cargo build --release --locked -p r3m-cli >&2
R3M="$CARGO_TARGET_DIR/release/r3m"
mkdir -p "$OUT" "$PRETRAIN_OUT"
bc() { # NAME ENCODERS [--checkpoint RUN] -> $OUT/bc/NAME/TASK
  local name="$1" encoders="$2"; shift 2
  for t in ${TASKS//,/ }; do
    local dir="$OUT/bc/$name/$t"
    [ -f "$dir/results.json" ] && continue
    echo "[ablation] eval bc $name on $t" >&2
    "$R3M" eval bc "$@" --data "$EVAL_DATA" --task "$t" --encoders "$encoders" --demos "$DEMOS" --num-seeds "$SEEDS" \
      --policy-steps "$BC_STEPS" --eval-every "$EVAL_EVERY" --rollouts "$ROLLOUTS" --max-episode-steps "$MAX_STEPS" \
      --envs "$ENVS" --size "$SIZE" --arch resnet18 --device cpu --precision "$PRECISION" --out "$dir" --resume >/dev/null
  done
}
pretrain() { # OBJECTIVE[+lang] BATCH -> $PRETRAIN_OUT/OBJECTIVE[+lang]-bBATCH
  local spec="$1" b="$2" run="$PRETRAIN_OUT/$1-b$2" obj="${1%+lang}" extra=()
  if [ "$spec" != "$obj" ]; then
    local texts="$PRETRAIN_OUT/texts.parquet"
    [ -f "$texts" ] || python3 "$ROOT/python/r3m_tools/embed_texts.py" --out "$texts" --lerobot "$PRETRAIN_DATA" >&2
    extra=(--lang-weight "${LANG_WEIGHT:-1}" --text-embeddings "$texts")
  fi
  if [ ! -f "$run/done.json" ]; then
    echo "[ablation] pretrain $spec, batch $b, $STEPS steps at $SIZE px" >&2
    local resume=""; [ -f "$run/latest" ] && resume="--resume"
    local t0; t0=$(date +%s.%N)
    "$R3M" train --lerobot "$PRETRAIN_DATA" --objective "$obj" --steps "$STEPS" --batch "$b" --size "$SIZE" \
      --seed "$SEED" --lr "$LR" --workers 1 --tuples-per-clip 4 --checkpoint-every 100 --device cpu --out "$run" "${extra[@]}" $resume 2> "$run.log" \
      || { echo "[ablation] r3m train failed, see $run.log" >&2; exit 1; }
    local t1; t1=$(date +%s.%N)
    python3 - "$run" "$spec" "$b" "$t0" "$t1" <<'PY'
import csv, json, sys
run, obj, b, t0, t1 = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rows = list(csv.DictReader(open(f"{run}/metrics.csv")))
last = rows[-50:]
steady = rows[10:] or rows  # per-step time without the first steps' warm-up; alone only if nothing else ran
json.dump({"objective": obj, "batch": b, "steps": len(rows), "seconds": t1 - t0,
           "step_s": sum(float(r["step_s"]) for r in steady) / len(steady),
           "train_aligned_last50": sum(float(r["aligned"]) for r in last) / len(last),
           "train_objective_acc_last50": sum(float(r["objective_acc"]) for r in last) / len(last)},
          open(f"{run}/done.json", "w"), indent=1)
PY
  fi
  if [ ! -f "$run/heldout-alignment.json" ]; then
    "$R3M" embed --checkpoint "$run" --lerobot "$EVAL_DATA" --out "$run/heldout.parquet" --overwrite --device cpu 2>/dev/null
    python3 "$ROOT/experiments/alignment.py" "$run/heldout.parquet" --json "$run/heldout-alignment.json" >/dev/null
    rm -f "$run/heldout.parquet"
  fi
}
for obj in ${OBJECTIVES//,/ }; do
  pretrain "$obj" "$BATCH"
done
# the random encoder's alignment: initial weights (one step at lr 0: BatchNorm statistics of one batch)
rnd="$PRETRAIN_OUT/random"
if [ ! -f "$rnd/heldout-alignment.json" ]; then
  "$R3M" train --lerobot "$PRETRAIN_DATA" --steps 1 --lr 0 --batch "$BATCH" --size "$SIZE" --seed "$SEED" --workers 1 \
    --device cpu --out "$rnd" 2> "$rnd.log" >/dev/null || { echo "[ablation] random init failed, see $rnd.log" >&2; exit 1; }
  "$R3M" embed --checkpoint "$rnd" --lerobot "$EVAL_DATA" --out "$rnd/heldout.parquet" --overwrite --device cpu 2>/dev/null
  python3 "$ROOT/experiments/alignment.py" "$rnd/heldout.parquet" --json "$rnd/heldout-alignment.json" >/dev/null
  rm -f "$rnd/heldout.parquet"
fi
for b in ${BATCHES//,/ }; do
  for obj in ${BATCH_OBJECTIVES//,/ }; do
    pretrain "$obj" "$b"
  done
done
[ "${PRETRAIN_ONLY:-0}" = 1 ] && exit 0
[ -n "$BASELINES" ] && bc baselines "$BASELINES"
for obj in ${OBJECTIVES//,/ }; do
  bc "$obj-b$BATCH" pretrained --checkpoint "$PRETRAIN_OUT/$obj-b$BATCH"
done
for b in ${BATCHES//,/ }; do
  for obj in ${BATCH_OBJECTIVES//,/ }; do
    bc "$obj-b$b" pretrained --checkpoint "$PRETRAIN_OUT/$obj-b$b"
  done
done
python3 "$ROOT/experiments/ablation_table.py" "$OUT" "$PRETRAIN_OUT" --batch "$BATCH" | tee "$OUT/summary.md"
