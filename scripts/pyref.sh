#!/usr/bin/env bash
# A Python environment for the independent reference implementations (parity scripts, fixtures):
# a venv in the per-user cache that reuses the cached PyTorch 2.11.0 (scripts/libtorch.sh) and adds
# transformers, scipy, numpy, pandas (the docs' pandas examples, tests/docs.rs) and scikit-learn (the
# transfer tasks' folds in scripts/parity_transfer.py) from PyPI. Prints the venv's python on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
torch_parent="$(bash "$here/libtorch.sh")"
cache="${SIMSWEEP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/simsweep}"
venv="$cache/pyref-3"
py="${SIMSWEEP_PYTHON:-python3}"
if [ ! -f "$venv/.complete" ]; then
  exec 9>"$cache/.pyref.lock"
  flock 9
  if [ ! -f "$venv/.complete" ]; then
    echo "simsweep: creating the Python reference environment in $venv (one time)" >&2
    rm -rf "$venv"
    "$py" -m venv "$venv"
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$torch_parent" > "$site/simsweep-torch.pth"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      "transformers==4.57.1" "scipy>=1.11" "numpy>=1.26" "safetensors>=0.4" "pandas>=2.1" "scikit-learn>=1.5" >&2
    touch "$venv/.complete"
  fi
fi
echo "$venv/bin/python"
