#!/bin/bash
# Double-click in Finder to install Seamwise for this user. Terminal shows each step; nothing is
# asked. Options (e.g. --lan for a render box) can be given when it is run from a terminal.
cd "$(dirname "$0")/.." || exit 1
if bash ./install.sh "$@"; then
  echo
  echo "Seamwise is installed. Photoshop: Plugins > Seamwise. Lightroom Classic: File > Export."
else
  echo
  echo "The installation stopped; the message above says why."
fi
read -r -p "Press Return to close this window. " _
