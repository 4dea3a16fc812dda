# Sourced by the scripts in this folder: provisions libtorch (once, into a per-user cache outside the
# clone) and exports what tch's build needs. No manual environment variables are required.
_simsweep_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_simsweep_torch="$(bash "$_simsweep_root/scripts/libtorch.sh")" || {
  echo "simsweep: could not provision libtorch (PyTorch 2.11.0 via pip); see the messages above" >&2
  exit 1
}
export LIBTORCH="$_simsweep_torch/torch"
export LIBTORCH_CXX11_ABI=1
unset LIBTORCH_USE_PYTORCH
