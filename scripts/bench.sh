#!/usr/bin/env bash
# Runs one benchmark from benches/ (default: all), each measuring r3m against its peer in the same
# run. Usage: bash scripts/bench.sh [video_decode] [-- --threads N --runs K]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
name="${1:-}"; shift || true
[ "${1:-}" = "--" ] && shift
if [ -n "$name" ]; then
  cargo bench --locked --bench "$name" -- "$@"
else
  cargo bench --locked --benches -- "$@"
fi
