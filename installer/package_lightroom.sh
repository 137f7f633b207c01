#!/usr/bin/env bash
# Builds dist/seamwise-lightroom-VERSION.zip: the seamwise.lrplugin folder, ready to unzip and add
# in Lightroom Classic's Plug-in Manager. The zip is reproducible (sorted entries, fixed times).
# DIST=folder puts it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
plugin=bridge_lightroom/seamwise.lrplugin
version=$(sed -n 's/.*VERSION = { major = \([0-9]*\), minor = \([0-9]*\), revision = \([0-9]*\).*/\1.\2.\3/p' "$plugin/Info.lua")
[ -n "$version" ] || { echo "package_lightroom: no VERSION in $plugin/Info.lua" >&2; exit 1; }
if command -v luac5.1 >/dev/null; then
  luac5.1 -p "$plugin"/*.lua
fi
dist="${DIST:-dist}"
mkdir -p "$dist"
out="$dist/seamwise-lightroom-$version.zip"
"$PY" - "$plugin" "$out" <<'PYEOF'
import sys
import zipfile
from pathlib import Path

plugin, out = Path(sys.argv[1]), Path(sys.argv[2])
files = sorted(p for p in plugin.rglob("*")
               if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".seamwise-part"))
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
    for path in files:
        info = zipfile.ZipInfo(f"{plugin.name}/{path.relative_to(plugin).as_posix()}", (1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, path.read_bytes())
print(f"{out}: {len(files)} files")
PYEOF
