#!/usr/bin/env bash
# Provision Playwright's core (the npm package playwright-core, pinned with its integrity hash in
# tests/browser/package-lock.json) for the dashboard's browser test (tests/serve.rs), once, into a
# per-user cache outside the clone. It drives Debian's Chromium (scripts/chromium.sh); Playwright's
# own browser download is never used. Prints the node_modules folder on stdout (for NODE_PATH).
# Exit status: 0 ready; 3 no node/npm here (the caller may skip with a message); 1 install failed.
#   SIMSWEEP_CACHE  where it goes (default: ${XDG_CACHE_HOME:-$HOME/.cache}/simsweep)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$root/tests/browser/package-lock.json"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "simsweep: the dashboard's browser test needs Node.js and npm (not found on PATH)" >&2
  exit 3
fi
version="$(sed -n 's/.*"playwright-core": "\([0-9.]*\)".*/\1/p' "$root/tests/browser/package.json" | head -1)"
cache="${SIMSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsweep}"
dir="$cache/playwright-$version"
if [ -f "$dir/.complete" ] && cmp -s "$lock" "$dir/package-lock.json"; then
  echo "$dir/node_modules"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.playwright.lock"
flock 9
if [ -f "$dir/.complete" ] && cmp -s "$lock" "$dir/package-lock.json"; then
  echo "$dir/node_modules"
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$root/tests/browser/package.json" "$lock" "$dir/"
echo "simsweep: installing playwright-core $version from the npm registry for the dashboard's browser test (one time)" >&2
# No browser download: the test launches Debian's Chromium by path.
if ! (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2); then
  echo "simsweep: npm ci of playwright-core failed" >&2
  exit 1
fi
touch "$dir/.complete"
echo "$dir/node_modules"
