#!/usr/bin/env bash
# A throwaway primary and its synchronous streaming standby, for the failover test.
#   pg_pair.sh start ENVFILE     temp dir, two free ports on 127.0.0.1, own socket dirs; the
#                                standby is a pg_basebackup -R of the primary, and every commit
#                                waits for it (synchronous_standby_names='*'); writes ENVFILE
#   pg_pair.sh kill-primary ENVFILE   pg_ctl stop -m immediate (a crash, as far as clients see)
#   pg_pair.sh promote ENVFILE   promotes the standby (waits until it takes writes)
#   pg_pair.sh stop ENVFILE      stops both and removes the temp dir (also after a failed start)
# fsync is off on both (the disks of a test run need not survive a power cut); synchronous
# replication is on: a commit is acknowledged once the standby has the WAL.
set -eEuo pipefail # -E: the ERR trap of start holds inside its functions
here=$(cd "$(dirname "$0")" && pwd)
pg="$here/../../scripts/pg.sh"
envfile=$2

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && [ ! -e "/tmp/.s.PGSQL.$1" ]
}

# Below the ephemeral range (32768-60999 on Linux): a port there may be the local end of any
# outgoing connection on the machine, and the server could not bind it.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 12000))
    [ "$port" != "${1:-}" ] && port_free "$port" && break
  done
  echo "$port"
}

stop() {
  [ -f "$envfile" ] || return 0
  # shellcheck disable=SC1090
  . "$envfile"
  "$pg" stop "$OQP_DIR/primary"
  "$pg" stop "$OQP_DIR/standby"
  rm -rf "$OQP_DIR"
  rm -f "$envfile"
}

# Both servers listen on 127.0.0.1 (a multi-host URL names them by port) and on their sockets.
common="-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100"

sql() { # PORT SQL: one value, over the cluster's TCP port
  as_owner "$(bindir)/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

bindir() { "$pg" bindir; }

wait_sync() { # the standby streams and counts as synchronous
  for _ in $(seq 1 300); do
    [ "$(sql "$1" "SELECT sync_state FROM pg_stat_replication" 2>/dev/null || true)" = sync ] && return 0
    sleep 0.1
  done
  echo "pg_pair: the standby never became synchronous" >&2
  return 1
}

start() {
  stop # a run that was cut short may have left one behind
  local dir p1 p2
  dir=$(mktemp -d /tmp/offlineq-pgpair.XXXXXX)
  chmod 755 "$dir"
  p1=$(free_port)
  p2=$(free_port "$p1")
  # Written first, so that stop (the trap, or the caller) finds whatever got started.
  cat >"$envfile" <<EOT
OQP_DIR=$dir
OQP_PRIMARY_PORT=$p1
OQP_STANDBY_PORT=$p2
EOT
  trap 'stop' ERR
  # Only the primary waits for a standby: the promoted standby has none and must not wait.
  OFFLINEQ_PG_EXTRA="$common -c synchronous_standby_names='*'" "$pg" start "$dir/primary" "$p1"
  mkdir -p "$dir/standby"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/standby"
  chmod 700 "$dir/standby"
  as_owner "$(bindir)/pg_basebackup" -D "$dir/standby/data" -h 127.0.0.1 -p "$p1" -U postgres \
    -R -X stream -c fast --no-sync >"$dir/basebackup.log" 2>&1 ||
    { cat "$dir/basebackup.log" >&2; false; }
  OFFLINEQ_PG_EXTRA="$common" "$pg" start "$dir/standby" "$p2"
  wait_sync "$p1"
  trap - ERR
}

kill_primary() {
  # shellcheck disable=SC1090
  . "$envfile"
  as_owner "$(bindir)/pg_ctl" -D "$OQP_DIR/primary/data" -m immediate -w stop >/dev/null
}

promote() {
  # shellcheck disable=SC1090
  . "$envfile"
  as_owner "$(bindir)/pg_ctl" -D "$OQP_DIR/standby/data" -w -t 60 promote >/dev/null
}

case "$1" in
  start) start ;;
  kill-primary) kill_primary ;;
  promote) promote ;;
  stop) stop ;;
  *) echo "usage: $0 start|kill-primary|promote|stop ENVFILE" >&2; exit 2 ;;
esac
