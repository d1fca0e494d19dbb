#!/usr/bin/env bash
# The whole test suite: one optimised build shared by the `r3m` binary and all tests.
# Call scripts/setup.sh first (the README's test command does).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
# build the binary first: the end-to-end tests in tests/ run it
cargo build --release --locked -p r3m-cli
cargo test --release --locked --workspace "$@"
