#!/bin/bash
# Double-click in Finder to remove Seamwise (jobs, paired devices and model choices are kept).
cd "$(dirname "$0")/.." || exit 1
bash ./install.sh --uninstall "$@"
read -r -p "Press Return to close this window. " _
