#!/usr/bin/env bash
# Provision libtorch for tch 0.24 (PyTorch 2.11.0 from PyPI) into a per-user cache outside the clone,
# once; later calls reuse it. Prints the directory that holds torch/ (the LIBTORCH parent) on stdout.
#   SIMSWEEP_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/simsweep)
#   SIMSWEEP_PYTHON  python with pip (default: python3)
set -euo pipefail
TORCH_VERSION=2.11.0
cache="${SIMSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsweep}"
dest="$cache/torch-$TORCH_VERSION"
py="${SIMSWEEP_PYTHON:-python3}"
if [ -f "$dest/.complete" ] && [ -f "$dest/torch/lib/libtorch_cpu.so" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$cache"
# Serialise concurrent first runs (two clones building at once).
exec 9>"$cache/.torch-$TORCH_VERSION.lock"
flock 9
if [ ! -f "$dest/.complete" ]; then
  echo "simsweep: installing PyTorch $TORCH_VERSION (libtorch for tch) into $dest (one time, ~4.6 GB)" >&2
  tmp="$dest.partial.$$"
  rm -rf "$tmp"
  "$py" -m pip install --quiet --disable-pip-version-check --no-input --target "$tmp" "torch==$TORCH_VERSION" >&2
  rm -rf "$dest"
  mv "$tmp" "$dest"
  touch "$dest/.complete"
fi
echo "$dest"
