#!/usr/bin/env bash
# Builds dist/Seamwise-VERSION.pkg on a Mac: the source and plugins as its payload and a
# postinstall script that runs install.sh for the logged-in user. Sign and notarize it
# (productsign, notarytool) so that Gatekeeper opens it without a warning.
#   installer/macos/build_pkg.sh [--sign "Developer ID Installer: ..."]
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
make package
.venv/bin/python -m pip wheel --quiet --no-deps . -w dist   # install.sh prefers dist/*.whl
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dest="$root/Library/Application Support/Seamwise"
mkdir -p "$dest"
git archive --format=tar HEAD | tar -x -C "$dest"
cp -R dist "$dest/dist"
pkgbuild --root "$root" --scripts installer/macos/scripts --identifier com.seamwise.installer \
  --version "$version" --install-location / "dist/Seamwise-$version-unsigned.pkg"
if [ "${1:-}" = --sign ]; then
  productsign --sign "$2" "dist/Seamwise-$version-unsigned.pkg" "dist/Seamwise-$version.pkg"
fi
