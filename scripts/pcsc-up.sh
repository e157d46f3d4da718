#!/usr/bin/env bash
# Starts a private pcscd whose only readers are vpcd's two virtual slots, for tests, benchmarks and
# `cardlink emulate`. State (reader.conf.d, pcscd.log, pcscd.pid) goes to $PCSC_STATE_DIR
# (default .pcsc-state). Adds the quickack route for the card's loopback address: without it vpcd's
# split writes meet delayed ACKs and every APDU takes about 44 ms. Stop everything with pcsc-down.sh.
# PCSCD_DEBUG=1 makes pcscd log every APDU.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${PCSC_STATE_DIR:-$PWD/.pcsc-state}
VPCD_ADDR=${VPCD_ADDR:-127.0.0.2}
VPCD_PORT=${VPCD_PORT:-35963}
VPCD_LIB=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
bash scripts/setup-pcsc.sh
mkdir -p "$STATE/reader.conf.d"

if [ -f "$STATE/pcscd.pid" ] && kill -0 "$(cat "$STATE/pcscd.pid")" 2>/dev/null; then
  echo "pcscd already running (pid $(cat "$STATE/pcscd.pid")); stop it with scripts/pcsc-down.sh" >&2
  exit 1
fi
if [ -f /run/pcscd/pcscd.pid ] && kill -0 "$(tr -d '\0' </run/pcscd/pcscd.pid)" 2>/dev/null; then
  echo "another pcscd (pid $(tr -d '\0' </run/pcscd/pcscd.pid)) owns /run/pcscd; stop it first" >&2
  exit 1
fi

# server mode: DEVICENAME /dev/null:PORT (vpcd listens; slot 1 is PORT+1). Never host:PORT, which
# crashes Debian's vpcd 0.8.
printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x%X\nLIBPATH      %s\nCHANNELID    0x%X\n' \
  "$VPCD_PORT" "$VPCD_LIB" "$VPCD_PORT" >"$STATE/reader.conf.d/vpcd"

if [ "$VPCD_ADDR" != 127.0.0.1 ]; then
  ip route replace local "$VPCD_ADDR/32" dev lo table local quickack 1 \
    || echo "warning: could not add the quickack route for $VPCD_ADDR; expect ~44 ms per APDU" >&2
fi

# -c replaces /etc/reader.conf.d, so the private file is the only reader configuration.
# Appended, so a restart in the middle of a test run keeps what came before.
echo "=== pcscd started $(date -u +%FT%TZ) ===" >>"$STATE/pcscd.log"
pcscd --foreground -c "$STATE/reader.conf.d" ${PCSCD_DEBUG:+--debug --apdu} >>"$STATE/pcscd.log" 2>&1 &
echo $! >"$STATE/pcscd.pid"

# Ready = vpcd listens on its port and the socket exists (the socket alone may be a stale file).
for _ in $(seq 100); do
  if ss -ltnH "sport = :$VPCD_PORT" | grep -q . && [ -S /run/pcscd/pcscd.comm ]; then exit 0; fi
  if ! kill -0 "$(cat "$STATE/pcscd.pid")" 2>/dev/null; then
    echo "pcscd exited at start:" >&2
    cat "$STATE/pcscd.log" >&2
    rm -f "$STATE/pcscd.pid"
    exit 1
  fi
  sleep 0.1
done
echo "pcscd not ready after 10 s; log:" >&2
cat "$STATE/pcscd.log" >&2
exit 1
