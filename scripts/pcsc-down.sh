#!/usr/bin/env bash
# Stops what pcsc-up.sh (and emulators started next to it) left running, by PID only: emulator
# PID files first (card*.pid), then pcscd; SIGTERM, then SIGKILL after 5 s. Removes the route.
set -uo pipefail
cd "$(dirname "$0")/.."
STATE=${PCSC_STATE_DIR:-$PWD/.pcsc-state}
VPCD_ADDR=${VPCD_ADDR:-127.0.0.2}
for f in "$STATE"/card*.pid "$STATE/pcscd.pid"; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
if [ "$VPCD_ADDR" != 127.0.0.1 ]; then
  ip route del local "$VPCD_ADDR/32" dev lo table local 2>/dev/null
fi
exit 0
