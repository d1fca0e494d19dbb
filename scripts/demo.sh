#!/usr/bin/env bash
# The main job on the sample data in datasets/: check the installation, train an encoder straight
# from the Meta-World demonstration videos (a LeRobot dataset), export per-frame embeddings to
# Parquet, and run a quick closed-loop behaviour-cloning evaluation against a random encoder.
# Rerun recordings of the training and of what the encoder sees go to RUN/*.rrd. Call
# scripts/setup.sh first (the README's main command does).
#
# RUN (default runs/demo) is the demo's run directory. A rerun of the demo starts it over with
# `r3m train --overwrite`, which clears RUN only when it holds an r3m run; any other non-empty
# folder is refused and left as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
cargo build --release --locked -p r3m-cli
R3M="$CARGO_TARGET_DIR/release/r3m"
RUN="${RUN:-$ROOT/runs/demo}"
"$R3M" doctor
# 1. train: R3M's objective on 50 expert episodes of 5 Meta-World tasks (no JPEGs extracted)
"$R3M" train --lerobot datasets/metaworld --out "$RUN" --overwrite --steps 60 --batch 8 --size 64 \
  --tuples-per-clip 4 --checkpoint-every 30 --device auto --rerun "save:$RUN/train.rrd" --rerun-every 20
# 2. embed: every 2nd frame of every episode → Parquet (episode_index, frame_index, timestamp, index, embedding)
"$R3M" embed --checkpoint "$RUN" --lerobot datasets/metaworld --every 2 --out "$RUN/embeddings.parquet"
# 3. eval bc (quick look, not the record): 5 demos, 1 seed, 4 rollouts on unseen layouts
"$R3M" eval bc --checkpoint "$RUN" --data datasets/metaworld --task drawer-open-v3 --encoders pretrained,random \
  --demos 5 --num-seeds 1 --policy-steps 300 --eval-every 150 --rollouts 4 --max-episode-steps 150 --envs 2 \
  --out "$RUN/eval-bc" --rerun "save:$RUN/eval-bc.rrd"
# 4. view: frames, 3-D embedding trajectories (PCA), distance matrices, distance to the final frame
"$R3M" view --embeddings "$RUN/embeddings.parquet" --lerobot datasets/metaworld --max-videos 5 \
  --rerun "save:$RUN/view.rrd"
echo "run: $RUN (metrics.csv, checkpoints/, embeddings.parquet, eval-bc/results.md, train.rrd, view.rrd, eval-bc.rrd)"
echo "look: rerun $RUN/train.rrd $RUN/view.rrd $RUN/eval-bc.rrd"
