#!/usr/bin/env bash
# The behaviour-cloning evaluation data (R3M-style protocol), made with python/r3m_tools/metaworld_demos.py
# (LeRobot v2.1, default camera corner2-close, lossless libx264rgb video, full 39-d
# observation.environment_state per frame):
#   EVAL_OUT  EPISODES scripted-expert episodes (default 27 = 25 demos + 2 held out) of each task
#             in TASKS, layout seeds from 0 (evaluation rollouts use seeds >= 1_000_000);
#   PC_OUT    PC_EPISODES episodes (default 10) of every OTHER task with a scripted expert, layout
#             seeds from PC_SEED (default 500000, so they never overlap the eval demos' seeds),
#             for the supervised positive control (experiments/train_positive_control.py) and for
#             pretraining on Meta-World video.
# Resumable: a dataset that exists with the same settings is skipped (the generator writes into a
# temporary directory and renames it at the end, so an existing one is complete); one made with
# other settings is an error unless OVERWRITE=1. ~15-25 min for EVAL and ~25-35 min for PC on 2
# cores at 128 px.
#
# usage: [EVAL_OUT=..] [PC_OUT=..] [TASKS=a,b,..] [EPISODES=27] [PC_EPISODES=10] [SIZE=128] \
#        [CAMERA=corner2-close] [PC_SEED=500000] [PC_TASKS=a,b,..] [OVERWRITE=1] experiments/make_eval_data.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_SH="${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
# shellcheck disable=SC1090
[ -f "$ENV_SH" ] && . "$ENV_SH"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
PY="${PYTHON:-python}"

EVAL_OUT="${EVAL_OUT:-$ROOT/runs/eval/data}"
PC_OUT="${PC_OUT:-$ROOT/runs/eval/pc-data}"
TASKS="${TASKS:-push-v3,coffee-push-v3,lever-pull-v3,drawer-open-v3,button-press-v3,door-open-v3,window-open-v3,plate-slide-v3,hammer-v3,sweep-v3}"
EPISODES="${EPISODES:-27}"
PC_EPISODES="${PC_EPISODES:-10}"
SIZE="${SIZE:-128}"
CAMERA="${CAMERA:-corner2-close}"
SEED="${SEED:-0}"
PC_SEED="${PC_SEED:-500000}"

# Default: every task with a scripted expert that is not in TASKS.
PC_TASKS="${PC_TASKS:-$(cd "$ROOT/python/r3m_tools" && "$PY" -c "
import sys, metaworld_env as m
skip = set(sys.argv[1].split(','))
print(','.join(t for t in m.task_names() if t not in skip))" "$TASKS" 2>/dev/null)}"
[ -n "$PC_TASKS" ] || { echo "[make_eval_data] cannot list the Meta-World tasks (is the venv set up?)" >&2; exit 2; }

# Prints 'ok' when DIR is a complete dataset made with these settings, 'absent' when DIR does not
# exist, else what differs.
state() {  # DIR TASKS EPISODES SEED
  "$PY" - "$@" <<'PYEOF'
import json, os, sys
d, tasks, episodes, seed = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4])
size, camera = int(os.environ["SIZE"]), os.environ["CAMERA"]
if not os.path.exists(d):
    print("absent"); sys.exit()
try:
    info = json.load(open(os.path.join(d, "meta/info.json")))
    mw = info["metaworld"]
except Exception as e:
    print(f"no readable meta/info.json ({e})"); sys.exit()
want = {"tasks": tasks, "image_size": size, "camera": camera, "first_layout_seed": seed,
        "episodes_per_task": episodes, "lossless": True, "format": "v2.1"}
have = {"tasks": list(mw.get("tasks", {})), "image_size": mw.get("image_size"), "camera": mw.get("camera"),
        "first_layout_seed": mw.get("first_layout_seed"), "episodes_per_task": mw.get("episodes_per_task"),
        "lossless": "lossless" in mw.get("video_codec", ""), "format": info.get("codebase_version")}
diff = [f"{k}: {have[k]} (want {want[k]})" for k in want if have[k] != want[k]]
print("ok" if not diff else "made with other settings: " + "; ".join(diff))
PYEOF
}

make() {  # NAME DIR TASKS EPISODES SEED
  local name=$1 dir=$2 tasks=$3 episodes=$4 seed=$5 st t0 over=()
  st="$(SIZE=$SIZE CAMERA=$CAMERA state "$dir" "$tasks" "$episodes" "$seed")"
  if [ "$st" = ok ]; then
    echo "[make_eval_data] $name: $dir is complete, skipped" >&2
    return
  fi
  if [ "$st" != absent ]; then
    if [ "${OVERWRITE:-0}" != 1 ]; then
      echo "[make_eval_data] $name: $dir exists but $st; remove it or set OVERWRITE=1" >&2
      exit 2
    fi
    over=(--overwrite)
  fi
  echo "[make_eval_data] $name: $(tr ',' '\n' <<<"$tasks" | wc -l) tasks x $episodes episodes -> $dir" >&2
  t0=$(date +%s)
  nice -n 10 "$PY" "$ROOT/python/r3m_tools/metaworld_demos.py" --tasks "$tasks" --episodes "$episodes" --seed "$seed" \
    --size "$SIZE" --camera "$CAMERA" --codec lossless --format v2.1 --out "$dir" "${over[@]}"
  echo "[make_eval_data] $name: done in $(( $(date +%s) - t0 )) s" >&2
}

make eval "$EVAL_OUT" "$TASKS" "$EPISODES" "$SEED"
make positive-control "$PC_OUT" "$PC_TASKS" "$PC_EPISODES" "$PC_SEED"
echo "$EVAL_OUT $PC_OUT"
