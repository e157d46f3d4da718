#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing (root only; CI is root).
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
# The agent's tests check its systemd unit (systemd-analyze verify) and Task Scheduler XML (xmllint).
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v xmllint >/dev/null || need+=(libxml2-utils)
# The operator console tests drive Debian's Chromium through playwright-core (test/console/browser.test.ts).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing packages: ${need[*]} (run as root or install them)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$(dirname "$0")/setup-pcsc.sh"
bash "$(dirname "$0")/setup-wine.sh" >/dev/null
bash "$(dirname "$0")/setup-postgres.sh" >/dev/null
