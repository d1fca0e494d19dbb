#!/usr/bin/env bash
# The whole test suite: one optimised build shared by the `r3m` binary and all tests.
# Call scripts/setup.sh first (the README's test command does). Extra arguments go to cargo test
# (for example a test name filter).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
cd "$ROOT"
# build the binary first: the end-to-end tests in tests/ run it
cargo build --release --locked -p r3m-cli
# lint gate: clippy on every target (lib, bins, tests, benches), warnings are errors; a check, not
# a build: ~1.5 min with a warm cache, longer on a cold one (it checks the dependencies too)
lint_rc=0
lint_failed=()
cargo clippy --release --locked --workspace --all-targets -- -D warnings || { lint_rc=1; lint_failed+=("cargo clippy -D warnings"); }
# formatting (rustfmt.toml) and the Python side (ruff.toml): seconds
cargo fmt --all --check >/dev/null || { lint_rc=1; lint_failed+=("cargo fmt --check (run: cargo fmt --all)"); }
ruff check --quiet scripts python experiments examples tests/refs benches/peers || { lint_rc=1; lint_failed+=("ruff check (the Python folders)"); }
# the project speaks of the software: no tracked file narrates how it was made (numbered work
# periods, issue numbers, which machine was used when). The brackets keep this line from matching.
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  words='sit[t]ings?|sess[i]ons?|earlier[ ]machine|\bl[e]nt\b|\bl[e]nding\b|#[1-9][0-9]?\b'
  if git -C "$ROOT" grep -I -n -i -E "$words"; then
    lint_rc=1; lint_failed+=("process words in tracked files (listed above)")
  fi
fi
# every declared dependency is used (or listed in the script with why it is needed anyway)
python3 scripts/check_deps.py || { lint_rc=1; lint_failed+=("scripts/check_deps.py (unused dependencies)"); }
log="$(mktemp)"
# the tests' probe cache is their own, never the user's ~/.cache/r3m/probe
R3M_PROBE_CACHE="$(mktemp -d)"
export R3M_PROBE_CACHE
trap 'rm -rf "$log" "$R3M_PROBE_CACHE"' EXIT
set +e
cargo test --release --locked --no-fail-fast --workspace --lib --bins --tests "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# one closing line over all test binaries
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
if [ "$lint_rc" -ne 0 ]; then
  echo "lint failed: ${lint_failed[*]} (see above)"
  [ "$rc" -ne 0 ] || rc=$lint_rc
fi
exit "$rc"
