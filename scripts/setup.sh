#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (run as root, or with sudo available).
#
# Installs only what is missing:
#   - Debian packages: FFmpeg 5.1 dev libs + CLI, clang/libclang (bindgen), pkg-config, Mesa EGL
#   - a Python venv with PyTorch 2.13.0 (libtorch for tch), torchvision, PyAV, pyarrow,
#     Meta-World + MuJoCo and rerun-sdk (scripts/requirements.txt)
#   - a second venv with LeRobot and torchcodec over the first (scripts/requirements-lerobot.txt)
# and writes $R3M_CACHE/env.sh, which the other scripts source: it puts the venv first on PATH,
# sets LIBTORCH_USE_PYTORCH=1 for tch and points CARGO_TARGET_DIR at a cache outside the clone, so a
# second run and a second clone reuse the venv and the build.
#
# Rerunning on a ready machine takes a second or two.
set -euo pipefail

R3M_CACHE="${R3M_CACHE:-$HOME/.cache/r3m}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$R3M_CACHE/venv"
mkdir -p "$R3M_CACHE"

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
APT_PKGS=(
  pkg-config clang libclang-dev g++
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev libavdevice-dev
  libgloo-dev
  ffmpeg
  libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0
)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python venv -----------------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.r3m-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  log "installing Python packages (first time: a few GB, several minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  echo "$want" > "$STAMP"
fi

# --- LeRobot's venv (tests and benchmark peers): the main venv's packages plus LeRobot's pins --
LEROBOT_VENV="$R3M_CACHE/lerobot"
LREQ="$ROOT/scripts/requirements-lerobot.txt"
LSTAMP="$LEROBOT_VENV/.r3m-requirements.sha256"
lwant="$(cat "$REQ" "$LREQ" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$LSTAMP" 2>/dev/null || true)" != "$lwant" ]; then
  log "installing LeRobot's venv $LEROBOT_VENV"
  [ -x "$LEROBOT_VENV/bin/python" ] || "$PY" -m venv "$LEROBOT_VENV"
  main_site="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
  lr_site="$("$LEROBOT_VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
  # after its own packages, so LeRobot's pins win over the main venv's versions
  echo "$main_site" > "$lr_site/zz_r3m_main.pth"
  "$LEROBOT_VENV/bin/python" -m pip install -q --no-deps -r "$LREQ"
  echo "$lwant" > "$LSTAMP"
fi

# --- Environment for cargo / tch ------------------------------------------------------------
cat > "$R3M_CACHE/env.sh" <<ENV
# written by scripts/setup.sh
export R3M_CACHE="$R3M_CACHE"
export PATH="$VENV/bin:\$PATH"
export VIRTUAL_ENV="$VENV"
export LIBTORCH_USE_PYTORCH=1
export R3M_LEROBOT_PYTHON="$LEROBOT_VENV/bin/python"
export CARGO_TARGET_DIR="\${CARGO_TARGET_DIR:-$R3M_CACHE/target}"
export MUJOCO_GL="\${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="\${PYOPENGL_PLATFORM:-egl}"
ENV

# `r3m` on the venv's PATH (a link to the release build; it resolves once the first build is done)
ln -sfn "${CARGO_TARGET_DIR:-$R3M_CACHE/target}/release/r3m" "$VENV/bin/r3m"

command -v cargo >/dev/null || { log "cargo not found: install Rust (rustup) first"; exit 1; }
log "ready (cache: $R3M_CACHE)"
