#!/usr/bin/env bash
# Recipe for datasets/synthetic/: eight short H.264 clips of FFmpeg's moving testsrc2 pattern,
# each with its own hue, 160x120 at 15 fps, 60..130 frames. Not robot data: a stand-in that lets
# the README's main command run train end to end until the Meta-World sample lands.
set -euo pipefail
out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/synthetic"
mkdir -p "$out"
for i in 0 1 2 3 4 5 6 7; do
  ffmpeg -y -hide_banner -loglevel error -f lavfi -i "testsrc2=size=160x120:rate=15,hue=h=$((i * 45))" \
    -frames:v $((60 + i * 10)) -pix_fmt yuv420p -c:v libx264 -bitexact "$out/clip$i.mp4"
done
