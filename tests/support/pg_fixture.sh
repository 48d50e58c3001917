#!/usr/bin/env bash
# CTest fixture: a throwaway PostgreSQL cluster for the whole test run.
#   pg_fixture.sh start ENVFILE   temp dir, free port, own socket dir; writes ENVFILE
#   pg_fixture.sh stop ENVFILE    stops the cluster and removes the temp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pg="$here/../../scripts/pg.sh"
envfile=$2

stop() {
  [ -f "$envfile" ] || return 0
  # shellcheck disable=SC1090
  . "$envfile"
  "$pg" stop "$OQT_PG_DIR/pg"
  rm -rf "$OQT_PG_DIR"
  rm -f "$envfile"
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$1" ]
}

start() {
  stop # a run that was cut short may have left one behind
  local dir port
  dir=$(mktemp -d /tmp/offlineq-pgtest.XXXXXX)
  chmod 755 "$dir"
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 12000)) # below the ephemeral range 32768-60999
    port_free "$port" && break
  done
  OFFLINEQ_PG_NOSYNC=1 OFFLINEQ_PG_EXTRA="-c max_connections=300" "$pg" start "$dir/pg" "$port"
  cat >"$envfile" <<EOT
OQT_PG_DIR=$dir
OQT_PG_HOST=$dir/pg/sock
OQT_PG_PORT=$port
EOT
}

case "$1" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop ENVFILE" >&2; exit 2 ;;
esac
