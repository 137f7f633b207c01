#!/usr/bin/env bash
# Build the installable Photoshop plugin: dist/seamwise-photoshop-<version>.ccx
# A .ccx is a zip of the plugin folder with manifest.json at its root; double-clicking it installs
# through Creative Cloud Desktop (or use Adobe's UnifiedPluginInstallerAgent --install FILE).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLUGIN="$ROOT/bridge_uxp"
DIST="${SEAMWISE_DIST:-$ROOT/dist}"

command -v node >/dev/null || { echo "package_uxp.sh: Node.js 20 or newer is needed" >&2; exit 1; }
command -v zip >/dev/null || { echo "package_uxp.sh: the zip tool is needed (apt-get install zip)" >&2; exit 1; }

cd "$PLUGIN"
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build

VERSION="$(node -p 'require("./manifest.json").version')"
OUT="$DIST/seamwise-photoshop-$VERSION.ccx"
mkdir -p "$DIST"
rm -f "$OUT"
(cd "$PLUGIN/build" && zip -q -X -r "$OUT" manifest.json index.html styles.css main.js)
# (grep reads the whole listing: with -q it would stop early, and pipefail would see SIGPIPE)
unzip -Z1 "$OUT" | grep -x manifest.json >/dev/null || { echo "package_uxp.sh: manifest.json missing at the root of $OUT" >&2; exit 1; }
echo "$OUT"
