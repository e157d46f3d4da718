#!/usr/bin/env bash
# The one command that runs every test on a fresh Debian 12 machine with Node 20:
# installs what the tests need, builds, type-checks, lints, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export npm_config_nodedir=${npm_config_nodedir:-/usr}

# setup-system.sh also starts the tests' private PostgreSQL; stop it by PID whatever happens.
trap 'bash scripts/setup-postgres.sh stop' EXIT
bash scripts/setup-system.sh
npm ci --no-fund --no-audit
npm run build
npm run typecheck
npm run lint
npm test
