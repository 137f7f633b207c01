#!/usr/bin/env bash
# Seamwise installer for Linux and macOS (macOS users double-click "Install Seamwise.command").
#
#   installer/install.sh [--prefix DIR] [--backend cpu|cuda|mps|rocm] [--python PATH]
#                        [--no-service] [--no-plugins] [--lan] [--uninstall]
#
# Installs uv (pinned, from PyPI), a private Python 3.11 and a virtual environment under PREFIX
# (default: the per-user application folder), PyTorch and every other package from the pinned
# lock file for this platform and backend (installer/locks/), the Photoshop and Lightroom plugins,
# and a login service running `seamwise serve` on 127.0.0.1. Jobs, paired tokens and model
# choices live in the data folder next to PREFIX and survive upgrades and --uninstall. Every path
# it creates outside PREFIX is listed in PREFIX/manifest.txt, which --uninstall reads.
# docs/INSTALL.md describes each step.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"
UV_VERSION=0.13.10
PYTHON_VERSION=3.11

say() { printf '%s\n' "Seamwise: $*"; }
newest() {  # the last of the files a glob matched (versions sort), or nothing
  local f last=""
  for f in "$@"; do [ -e "$f" ] && last=$f; done
  printf '%s' "$last"
}
die() { printf '%s\n' "Seamwise installer: error: $*" >&2; exit 1; }

system=$(uname -s)
case "$system" in
  Linux) data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/seamwise" ;;
  Darwin) data_dir="$HOME/Library/Application Support/Seamwise" ;;
  *) die "this installer is for Linux and macOS; on Windows run installer/install.ps1" ;;
esac

prefix="$data_dir/app"
UPIA="/Library/Application Support/Adobe/Adobe Desktop Common/RemoteComponents/UPI/UnifiedPluginInstallerAgent/UnifiedPluginInstallerAgent.app/Contents/MacOS/UnifiedPluginInstallerAgent"
backend=""
python=""
service=1
plugins=1
lan=0
uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix="$2"; shift ;;
    --prefix=*) prefix="${1#*=}" ;;
    --backend) [ $# -ge 2 ] || die "--backend needs cpu, cuda, mps or rocm"; backend="$2"; shift ;;
    --backend=*) backend="${1#*=}" ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; python="$2"; shift ;;
    --no-service) service=0 ;;
    --no-plugins) plugins=0 ;;
    --lan) lan=1 ;;
    --uninstall) uninstall=1 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case "$backend" in ""|cpu|cuda|mps|rocm) ;; *) die "--backend must be cpu, cuda, mps or rocm" ;; esac
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
manifest="$prefix/manifest.txt"

# -- uninstall ------------------------------------------------------------------------------------
stop_service() {
  if [ "$system" = Linux ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --user disable --now seamwise.service >/dev/null 2>&1 || true
  elif [ "$system" = Darwin ]; then
    launchctl bootout "gui/$(id -u)/com.seamwise.server" >/dev/null 2>&1 || true
  fi
}

if [ "$uninstall" = 1 ]; then
  [ -f "$prefix/install.json" ] || die "$prefix holds no Seamwise installation (no install.json)"
  stop_service
  if [ -f "$manifest" ]; then
    # Paths outside PREFIX that this installer created (service files, plugins), newest first.
    tail -r "$manifest" 2>/dev/null || tac "$manifest"
  fi | while IFS= read -r line; do
    kind=${line%% *} path=${line#* }
    case "$kind" in
      file) rm -rf -- "$path" && say "removed $path" ;;
      dir) rmdir -- "$path" 2>/dev/null || true ;;  # only if nothing else lives there now
      upia) if "$UPIA" --remove "$path" >/dev/null 2>&1; then say "removed the Photoshop panel"
            else say "remove the Photoshop panel in Creative Cloud (Stock & Marketplace > Plugins)"
            fi ;;
    esac
  done
  rm -rf -- "$prefix"
  say "removed $prefix"
  say "kept your jobs, paired devices and model choices in $data_dir (delete it to remove them)"
  exit 0
fi

added() { printf 'file %s\n' "$1" >> "$manifest.new"; }
ensure_dir() {  # mkdir -p, recording each folder it creates (uninstall removes them if empty)
  [ -d "$1" ] && return 0
  ensure_dir "$(dirname "$1")"
  mkdir "$1"
  printf 'dir %s\n' "$1" >> "$manifest.new"
}
# an upgrade starts from the previous list, so folders an earlier run created are still removed
if [ -f "$manifest" ]; then cp "$manifest" "$manifest.new"; else : > "$manifest.new"; fi
upgrade=0
if [ -f "$prefix/install.json" ]; then
  upgrade=1
  say "upgrading the installation in $prefix (data in $data_dir is kept)"
  stop_service
fi

# -- 1. uv, pinned -----------------------------------------------------------------------------
tools="$prefix/tools"
uv="$tools/bin/uv"
if ! "$uv" --version 2>/dev/null | grep -q " $UV_VERSION"; then
  say "installing uv $UV_VERSION (pinned, hash-checked)"
  rm -rf "$tools"
  bootstrap=""
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -m pip --version >/dev/null 2>&1; then
      bootstrap="$candidate"; break
    fi
  done
  if [ -n "$bootstrap" ]; then
    PIP_ROOT_USER_ACTION=ignore "$bootstrap" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
      --only-binary :all: --target "$tools/pkg" -r "$HERE/locks/uv.txt"
    mkdir -p "$tools/bin"
    ln -sf "$tools/pkg/bin/uv" "$uv"
  else  # no pip (a fresh Mac): the wheel straight from PyPI, checked against its pinned hash
    case "$system-$(uname -m)" in
      Darwin-arm64) url="https://files.pythonhosted.org/packages/5b/d6/78204b698ed27b425b9660105af4b388a379b0435ea2e77e783feca3f180/uv-0.13.10-py3-none-macosx_11_0_arm64.whl"
                    sha=2a9ff188b442419c7aadebc445fcc1f287b25f99af50fa6d563b90cc0047b7cf ;;
      Linux-x86_64) url="https://files.pythonhosted.org/packages/8b/99/fad906311e48fce22e4db71ee4c3df29bdb17b29eb36878f52b8dcd79237/uv-0.13.10-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
                    sha=7cc9c41b43d583e34c781fd3446405b06e9c5fa2db468ce2a534d353db6429e5 ;;
      *) die "no Python with pip found to install uv; install Python 3.11 first" ;;
    esac
    mkdir -p "$tools/bin"
    curl -fsSL -o "$tools/uv.whl" "$url" || die "cannot download uv from PyPI"
    got=$( (shasum -a 256 "$tools/uv.whl" 2>/dev/null || sha256sum "$tools/uv.whl") | cut -d' ' -f1)
    [ "$got" = "$sha" ] || die "the downloaded uv does not match its pinned hash"
    unzip -p "$tools/uv.whl" "uv-$UV_VERSION.data/scripts/uv" > "$uv"
    chmod +x "$uv"
    rm -f "$tools/uv.whl"
  fi
fi
"$uv" --version >/dev/null || die "uv does not run"

# uv does not read pip's configuration: hand it the wheel folders pip is set up with (a local
# torch build among them), so both resolve the same packages.
find_links="${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}"
if [ -z "$find_links" ] && command -v pip >/dev/null 2>&1; then
  find_links="$( (pip config get global.find-links 2>/dev/null || true) | tr '\n' ' ')"
fi
export UV_CACHE_DIR="${UV_CACHE_DIR:-$prefix/cache}"
export UV_PYTHON_INSTALL_DIR="$prefix/python"
export UV_NO_CONFIG=1

# -- 2. a private Python 3.11 ----------------------------------------------------------------------
if [ -z "$python" ]; then
  if "$uv" python install --quiet "$PYTHON_VERSION" >/dev/null 2>&1; then
    python=$("$uv" python find --python-preference only-managed "$PYTHON_VERSION")
    say "Python: uv's managed Python $PYTHON_VERSION in $prefix/python"
  else
    python=$("$uv" python find --python-preference only-system "$PYTHON_VERSION" 2>/dev/null) ||
      die "cannot download a managed Python $PYTHON_VERSION and none is installed; install Python $PYTHON_VERSION or pass --python PATH"
    say "Python: could not download uv's managed Python $PYTHON_VERSION (no access to its download site); using this machine's Python $PYTHON_VERSION at $python"
  fi
fi

venv="$prefix/venv"
rm -rf "$venv.new"
"$uv" venv --quiet --relocatable --python "$python" "$venv.new"
vpy="$venv.new/bin/python"

# -- 3. backend and the pinned packages ------------------------------------------------------------
choice=$("$vpy" "$HERE/backend.py" --format shell ${backend:+--backend "$backend"} \
         --find-links "$find_links") || die "no PyTorch build fits this machine (above)"
BACKEND="" VARIANT="" LOCK="" TORCH="" INDEX_URL="" REASON="" NOTES=""
eval "$choice"
say "backend: $BACKEND ($REASON)"
[ -z "$NOTES" ] || say "note: $NOTES"
lock="$HERE/locks/$LOCK"
[ -f "$lock" ] || die "no lock file $LOCK for this platform"
say "installing the packages pinned in locks/$LOCK"
UV_FIND_LINKS="$(echo "$find_links" | tr ' ' '\n' | sed '/^$/d' | paste -sd, -)" \
  "$uv" pip install --quiet --python "$vpy" ${INDEX_URL:+--extra-index-url "$INDEX_URL"} \
    --index-strategy unsafe-best-match -r "$lock"
wheel=$(newest "$SRC"/dist/seamwise-*.whl)
"$uv" pip install --quiet --python "$vpy" --no-deps --reinstall-package seamwise "${wheel:-$SRC}"

rm -rf "$venv"
mv "$venv.new" "$venv"   # relocatable: its scripts find their interpreter after the move
vpy="$venv/bin/python"
mkdir -p "$prefix/bin"
cat > "$prefix/bin/seamwise" <<EOF
#!/bin/sh
# Seamwise, as installed by installer/install.sh: the private environment, offline model loading.
HF_HUB_OFFLINE=1 exec "$venv/bin/python" -m seamwise "\$@"
EOF
chmod +x "$prefix/bin/seamwise"
exe="$prefix/bin/seamwise"

# -- 4. plugins ------------------------------------------------------------------------------------
ps_json=null
lr_json=null
service_json=null
if [ "$plugins" = 1 ]; then
  dist="$prefix/plugins"
  mkdir -p "$dist"
  ccx=$(newest "$SRC"/dist/seamwise-photoshop-*.ccx)
  lrzip=$(newest "$SRC"/dist/seamwise-lightroom-*.zip)
  if [ -z "$ccx" ] && [ -d "$SRC/bridge_uxp" ]; then
    ccx=$(SEAMWISE_DIST="$dist" npm_config_cache="$prefix/cache/npm" \
          npm_config_update_notifier=false bash "$HERE/package_uxp.sh" | tail -n 1) ||
      die "cannot build the Photoshop plugin (Node.js 20 and zip are needed from a source tree)"
  fi
  if [ -z "$lrzip" ] && [ -d "$SRC/bridge_lightroom" ]; then
    DIST="$dist" PY="$vpy" bash "$HERE/package_lightroom.sh" >/dev/null
    lrzip=$(newest "$dist"/seamwise-lightroom-*.zip)
  fi
  [ "$(dirname "$ccx")" = "$dist" ] || cp "$ccx" "$dist/"
  ccx="$dist/$(basename "$ccx")"
  rm -rf "$dist/seamwise.lrplugin"
  (cd "$dist" && unzip -q -o "$lrzip")
  ps_version=$(basename "$ccx" .ccx); ps_version=${ps_version#seamwise-photoshop-}
  lr_version=$(basename "$lrzip" .zip); lr_version=${lr_version#seamwise-lightroom-}

  if [ "$system" = Darwin ]; then
    if [ -x "$UPIA" ] && "$UPIA" --install "$ccx"; then
      printf 'upia %s\n' Seamwise >> "$manifest.new"
      ps_json="{\"installed\": true, \"version\": \"$ps_version\", \"via\": \"UnifiedPluginInstallerAgent\"}"
      say "Photoshop panel $ps_version installed (Plugins > Seamwise in Photoshop)"
    else
      open "$ccx" || true
      ps_json="{\"installed\": false, \"state\": \"opened\", \"version\": \"$ps_version\", \"next\": \"in the Creative Cloud window click Install, then OK on the warning about a plugin from outside the marketplace\"}"
      say "Photoshop panel: Creative Cloud opened $ccx; click Install, then OK on the warning"
    fi
    modules="$HOME/Library/Application Support/Adobe/Lightroom/Modules"
    ensure_dir "$modules"
    rm -rf "$modules/seamwise.lrplugin"
    cp -R "$dist/seamwise.lrplugin" "$modules/"
    added "$modules/seamwise.lrplugin"
    lr_json="{\"installed\": true, \"version\": \"$lr_version\", \"path\": \"$modules/seamwise.lrplugin\"}"
    say "Lightroom Classic plugin $lr_version installed (loads at Lightroom's next start)"
  else
    # Photoshop and Lightroom do not run on Linux: this machine is a render box for a Mac or PC.
    ps_json="{\"installed\": false, \"state\": \"packaged\", \"version\": \"$ps_version\", \"path\": \"$ccx\", \"note\": \"Photoshop does not run on Linux: install this file on the Mac or PC\"}"
    lr_json="{\"installed\": false, \"state\": \"packaged\", \"version\": \"$lr_version\", \"path\": \"$dist/seamwise.lrplugin\", \"note\": \"Lightroom Classic does not run on Linux: add this folder on the Mac or PC\"}"
    say "plugins for the Mac or PC that uses this machine: $dist"
  fi
fi

# -- 5. login service ------------------------------------------------------------------------------
if [ "$service" = 1 ]; then
  serve_flags=""; [ "$lan" = 1 ] && serve_flags="--lan"
  if [ "$system" = Linux ]; then
    units="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
    ensure_dir "$units/default.target.wants"
    "$vpy" "$HERE/service.py" systemd --exe "$exe" $serve_flags -o "$units/seamwise.service"
    added "$units/seamwise.service"
    # enabled by hand as well, so it starts at the next login even without a running user manager
    ln -sf "$units/seamwise.service" "$units/default.target.wants/seamwise.service"
    added "$units/default.target.wants/seamwise.service"
    if systemctl --user daemon-reload >/dev/null 2>&1; then
      systemctl --user restart seamwise.service && say "service started (systemd user unit)"
    else
      say "service registered; it starts at your next login (no systemd user session now)"
    fi
    service_json="{\"kind\": \"systemd\", \"file\": \"$units/seamwise.service\", \"lan\": $([ "$lan" = 1 ] && echo true || echo false)}"
  else
    agents="$HOME/Library/LaunchAgents"
    ensure_dir "$agents"
    ensure_dir "$HOME/Library/Logs"
    plist="$agents/com.seamwise.server.plist"
    "$vpy" "$HERE/service.py" launchd --exe "$exe" $serve_flags \
      --log "$HOME/Library/Logs/Seamwise.log" -o "$plist"
    added "$plist"
    added "$HOME/Library/Logs/Seamwise.log"
    launchctl bootstrap "gui/$(id -u)" "$plist" 2>/dev/null || launchctl kickstart -k "gui/$(id -u)/com.seamwise.server" || true
    say "service started (launchd agent $plist)"
    service_json="{\"kind\": \"launchd\", \"file\": \"$plist\", \"lan\": $([ "$lan" = 1 ] && echo true || echo false)}"
  fi
fi

# -- 6. what was installed -------------------------------------------------------------------------
awk '!seen[$0]++' "$manifest.new" > "$manifest" && rm -f "$manifest.new"
PREFIX="$prefix" DATA_DIR="$data_dir" UPGRADE="$upgrade" PYTHON="$python" LAN="$lan" \
SERVICE_JSON="$service_json" PS_JSON="$ps_json" LR_JSON="$lr_json" \
BACKEND="$BACKEND" VARIANT="$VARIANT" REASON="$REASON" LOCK="$LOCK" TORCH="$TORCH" \
"$vpy" "$HERE/write_record.py" "$prefix/install.json"
say "installed in $prefix"
if [ "$lan" = 1 ]; then
  "$exe" pair
  say "LAN render box: enter this code in the Photoshop panel or Lightroom on the other machine"
fi
"$exe" doctor || true
