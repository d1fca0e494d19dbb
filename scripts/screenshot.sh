#!/usr/bin/env bash
# Renders a .rrd with the native viewer that rerun-sdk ships, headless (Xvfb + Mesa's lavapipe
# Vulkan), and writes a PNG: how docs/view.png was made.
#   apt-get install -y xvfb xauth mesa-vulkan-drivers libvulkan1 imagemagick
#   bash scripts/screenshot.sh runs/demo/view.rrd docs/view.png
set -euo pipefail
RRD="$1"; OUT="$2"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
TMP="$(mktemp -d)"
xvfb-run -a -s "-screen 0 1600x1000x24" \
  rerun "$RRD" --screenshot-to "$TMP/shot.png" --window-size 1600x1000 --renderer vulkan >/dev/null 2>&1 || true
[ -s "$TMP/shot.png" ] || { echo "no screenshot was written" >&2; exit 1; }
/usr/bin/convert "$TMP/shot.png" -resize 50% -strip "$OUT"
rm -rf "$TMP"
echo "$OUT"
