#!/usr/bin/env bash
# The main job on the sample data in datasets/: check the installation, look at the videos, and
# train an encoder for a few steps straight from them. The embedding, evaluation and viewer stages
# extend this script as they land. Call scripts/setup.sh first (the README's main command does).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
cargo build --release --locked -p r3m-cli
R3M="$CARGO_TARGET_DIR/release/r3m"
RUN="${RUN:-$ROOT/runs/demo}"
"$R3M" doctor
"$R3M" probe datasets/synthetic
rm -rf "$RUN"
"$R3M" train --videos datasets/synthetic --out "$RUN" --steps 40 --batch 8 --size 64 \
  --tuples-per-clip 4 --checkpoint-every 20 --device auto
echo "run: $RUN (metrics.csv, checkpoints/)"
