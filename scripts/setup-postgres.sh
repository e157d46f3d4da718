#!/usr/bin/env bash
# A private PostgreSQL for the enrollment service's tests: installed from Debian when missing,
# its own data directory, listening on 127.0.0.1 only, started and stopped by PID.
#   bash scripts/setup-postgres.sh          start (or find running) and print its URL
#   bash scripts/setup-postgres.sh stop     stop it
set -euo pipefail
PGDIR=${CARDLINK_PG_DIR:-/tmp/cardlink-pg}
PORT=${CARDLINK_PG_PORT:-55432}
URL="postgres://cardlink@127.0.0.1:${PORT}/postgres"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$d" ] && [ -x "$d/postgres" ] && echo "$d"
}

# Runs as the data directory's owner: PostgreSQL refuses to run as root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running_pid() {
  [ -f "$PGDIR/data/postmaster.pid" ] || return 1
  local pid
  pid=$(head -1 "$PGDIR/data/postmaster.pid")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

if [ "${1:-start}" = stop ]; then
  if pid=$(running_pid); then
    kill -INT "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  exit 0
fi

# Two test files may ask at the same moment: one of them starts the server, the other waits.
# The server must not inherit the lock (9>&- below), or it would hold it for its whole life.
exec 9>"${PGDIR}.lock"
flock 9

BIN=$(bindir || true)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" != 0 ]; then echo "PostgreSQL is not installed (run as root to install it)" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  BIN=$(bindir)
fi

if running_pid >/dev/null; then echo "$URL"; exit 0; fi

mkdir -p "$PGDIR"
chmod 700 "$PGDIR"
[ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
  # trust is safe here: the server listens on loopback and a socket in its own 0700 directory.
  as_owner "$BIN/initdb" -D "$PGDIR/data" -U cardlink --auth=trust -E UTF8 >"$PGDIR/initdb.log" 2>&1
fi
as_owner "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -k $PGDIR -c max_connections=200 -c fsync=on" start >&2 9>&-
echo "$URL"
