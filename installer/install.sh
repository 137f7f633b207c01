#!/usr/bin/env bash
# Install the Seamwise server on Linux or macOS with the PyTorch build that fits this machine:
#   NVIDIA GPU (nvidia-smi present)  -> CUDA build from PyPI (torch's default Linux wheels)
#   Apple silicon / Intel Mac        -> PyPI build (MPS on Apple silicon)
#   anything else                    -> the CPU build
# Then optionally register a user service so a render box starts at login:
#   installer/install.sh [--service]
set -euo pipefail
cd "$(dirname "$0")/.."

case "$(uname -s)" in
  Darwin) torch_spec="torch==2.13.0" ;;
  Linux)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      torch_spec="torch==2.13.0"            # Linux wheels on PyPI carry CUDA
    else
      torch_spec="torch==2.13.0+cpu"
      export PIP_EXTRA_INDEX_URL="${PIP_EXTRA_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
    fi ;;
  *) echo "install.sh supports Linux and macOS; on Windows use installer/install.ps1" >&2; exit 2 ;;
esac

make setup TORCH="$torch_spec"
echo "Seamwise installed in $(pwd)/.venv"

if [[ "${1:-}" == "--service" ]]; then
  exe="$(pwd)/.venv/bin/seamwise"
  if [[ "$(uname -s)" == "Darwin" ]]; then
    plist="$HOME/Library/LaunchAgents/com.seamwise.server.plist"
    mkdir -p "$(dirname "$plist")"
    sed "s#@SEAMWISE@#$exe#" installer/com.seamwise.server.plist > "$plist"
    launchctl load -w "$plist"
    echo "registered launchd agent $plist"
  else
    unit="$HOME/.config/systemd/user/seamwise.service"
    mkdir -p "$(dirname "$unit")"
    sed "s#@SEAMWISE@#$exe#" installer/seamwise.service > "$unit"
    systemctl --user daemon-reload && systemctl --user enable --now seamwise.service
    echo "registered systemd user service $unit"
  fi
fi
