#!/usr/bin/env bash
# Provision a headless Chromium for the report screenshot test (tests/report.rs): Debian's
# `chromium` package, installed with apt-get once (root, or passwordless sudo). Prints the browser's
# path on stdout. Exit status: 0 found or installed; 3 apt-get is not usable here (no apt-get, or
# neither root nor passwordless sudo) — the caller may skip with a message; 1 the installation failed.
#   SIMSWEEP_CHROMIUM  a browser to use instead (path); nothing is installed
#   SIMSWEEP_CACHE     where the lock file lives (default: ${XDG_CACHE_HOME:-$HOME/.cache}/simsweep)
set -euo pipefail
find_browser() {
  local b
  for b in chromium chromium-browser google-chrome-stable google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}
if [ -n "${SIMSWEEP_CHROMIUM:-}" ]; then
  if [ -x "$SIMSWEEP_CHROMIUM" ]; then echo "$SIMSWEEP_CHROMIUM"; exit 0; fi
  echo "simsweep: SIMSWEEP_CHROMIUM=$SIMSWEEP_CHROMIUM is not an executable file" >&2
  exit 1
fi
if find_browser; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "simsweep: no chromium and no apt-get on this machine; install Chromium and set SIMSWEEP_CHROMIUM" >&2
  exit 3
fi
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "simsweep: no chromium, and apt-get needs root (no passwordless sudo); run 'apt-get install chromium' as root or set SIMSWEEP_CHROMIUM" >&2
  exit 3
fi
cache="${SIMSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsweep}"
mkdir -p "$cache"
# Serialise concurrent first runs (apt holds its own lock, but a second caller should wait, not fail).
exec 9>"$cache/.chromium.lock"
flock 9
if find_browser; then exit 0; fi
echo "simsweep: installing Debian's chromium for the report screenshot test (one time, ~300 MB)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >&2; then
  # A fresh machine may have no package lists yet.
  "${as_root[@]}" apt-get update -q >&2 || true
  "${as_root[@]}" apt-get install -y -q --no-install-recommends chromium >&2 || {
    echo "simsweep: apt-get install chromium failed" >&2
    exit 1
  }
fi
find_browser || { echo "simsweep: chromium was installed but is not on PATH" >&2; exit 1; }
