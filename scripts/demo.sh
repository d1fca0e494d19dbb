#!/usr/bin/env bash
# The main job on the sample data. For now: build `r3m` and check the installation with
# `r3m doctor`; the training, embedding, evaluation and viewer stages extend this script as they
# land. Call scripts/setup.sh first (the README's main command does).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
cargo build --release --locked -p r3m-cli
R3M="$CARGO_TARGET_DIR/release/r3m"
"$R3M" doctor
