#!/usr/bin/env bash
# The one command that runs the main job on embedded defaults: no reader, no server to set up.
set -euo pipefail
cd "$(dirname "$0")/.."
export npm_config_nodedir=${npm_config_nodedir:-/usr}
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f dist/cli/main.js ]; then
  echo "installing dependencies (first run: npm ci builds better-sqlite3 and smartcard from source, a few minutes)..." >&2
  npm ci --no-fund --no-audit >/dev/null
fi
exec node bin/cardlink demo "$@"
