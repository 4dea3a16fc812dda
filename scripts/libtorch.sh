#!/usr/bin/env bash
# Provision libtorch for tch 0.24 (PyTorch 2.11.0 from PyPI) into a per-user cache outside the clone,
# once; later calls reuse it. Prints the directory that holds torch/ (the LIBTORCH parent) on stdout.
#   SIMSWEEP_CACHE      cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/simsweep)
#   SIMSWEEP_PYTHON     python with pip (default: python3)
# Another PyTorch 2.11 build instead of PyPI's (which is built for CUDA 13 and needs an NVIDIA driver
# 580 or later), with no code change (README, "Another PyTorch build"):
#   SIMSWEEP_TORCH_DIR  an existing installation: the `torch` package folder of a PyTorch 2.11.x
#                       (python -c 'import torch, os; print(os.path.dirname(torch.__file__))'); used
#                       in place, nothing is installed
#   SIMSWEEP_TORCH_SPEC what pip installs instead of torch==2.11.0: a wheel file you provide (e.g. a
#                       CUDA 12.6 build, torch-2.11.0+cu126-…whl) or a requirement pip can resolve from
#                       the configured index; installed once into its own cache folder
set -euo pipefail
TORCH_VERSION=2.11.0
cache="${SIMSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsweep}"
py="${SIMSWEEP_PYTHON:-python3}"
check_version() { # $1: a torch package folder; its version must be 2.11.x (tch 0.24's)
  local v
  v="$(sed -n "s/^__version__ = '\\(.*\\)'.*/\\1/p" "$1/version.py" 2>/dev/null || true)"
  case "$v" in
    2.11.*) ;;
    *) echo "simsweep: $1 holds PyTorch ${v:-of an unknown version}; tch 0.24 needs 2.11.x" >&2; exit 1 ;;
  esac
}
if [ -n "${SIMSWEEP_TORCH_DIR:-}" ]; then
  dir="$(cd "$SIMSWEEP_TORCH_DIR" 2>/dev/null && pwd)" || {
    echo "simsweep: SIMSWEEP_TORCH_DIR=$SIMSWEEP_TORCH_DIR: no such folder" >&2; exit 1; }
  [ "$(basename "$dir")" = torch ] && [ -f "$dir/lib/libtorch_cpu.so" ] || {
    echo "simsweep: SIMSWEEP_TORCH_DIR=$SIMSWEEP_TORCH_DIR: not a torch package folder (expected .../torch with lib/libtorch_cpu.so)" >&2; exit 1; }
  check_version "$dir"
  dirname "$dir"
  exit 0
fi
spec="torch==$TORCH_VERSION"
dest="$cache/torch-$TORCH_VERSION"
if [ -n "${SIMSWEEP_TORCH_SPEC:-}" ]; then
  spec="$SIMSWEEP_TORCH_SPEC"
  [ -f "$spec" ] && spec="$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"
  dest="$cache/torch-spec-$(printf '%s' "$spec" | sha256sum | cut -c1-16)"
fi
if [ -f "$dest/.complete" ] && [ -f "$dest/torch/lib/libtorch_cpu.so" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$cache"
# Serialise concurrent first runs (two clones building at once).
exec 9>"$dest.lock"
flock 9
if [ ! -f "$dest/.complete" ]; then
  echo "simsweep: installing PyTorch ($spec; libtorch for tch) into $dest (one time, ~4.6 GB for a CUDA build)" >&2
  tmp="$dest.partial.$$"
  rm -rf "$tmp"
  "$py" -m pip install --quiet --disable-pip-version-check --no-input --target "$tmp" "$spec" >&2
  check_version "$tmp/torch"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  touch "$dest/.complete"
fi
echo "$dest"
