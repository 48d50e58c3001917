#!/usr/bin/env bash
# A throwaway PgBouncer (Debian 12's, 1.18) in front of the CTest cluster, for e2e tests.
#   pgbouncer.sh start MODE PGENV OWNER   prints "DIR PORT": a temp dir with pgbouncer.ini,
#                                         listening on 127.0.0.1:PORT (and a socket in DIR)
#   pgbouncer.sh stop DIR                 stops it and removes DIR
# MODE is its pool_mode (session, transaction, statement); PGENV is pg_fixture.sh's env file;
# every database name goes to the same name in that cluster, user postgres, auth_type trust
# (a user must still be listed in auth_file). It stops by itself, removing DIR, once process
# OWNER (the test) is gone, so a test that crashes leaves nothing behind. As root it runs as
# the postgres user (PgBouncer will not run as root), as pg_fixture.sh's cluster does.
set -euo pipefail

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Below the ephemeral range (32768-60999 on Linux), where outgoing connections take their
# local ports.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 12000))
    port_free "$port" && break
  done
  echo "$port"
}

# Stops the PgBouncer of dir, if one runs (the dir stays).
stop_daemon() {
  local dir=$1 pid
  pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pgbouncer.pid"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_daemon "$dir"
  rm -rf "$dir"
}

write_config() {
  local dir=$1 mode=$2 port=$3
  cat >"$dir/pgbouncer.ini" <<EOT
[databases]
* = host=$OQT_PG_HOST port=$OQT_PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $mode
max_client_conn = 200
default_pool_size = 40
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOT
  echo '"postgres" ""' >"$dir/userlist.txt"
}

# Waits for OWNER to go, then stops PgBouncer and removes DIR (in the background).
watch_owner() {
  local dir=$1 owner=$2
  (
    trap 'stop "$dir"' EXIT
    while kill -0 "$owner" 2>/dev/null && [ -f "$dir/pgbouncer.ini" ]; do
      sleep 1
    done
  ) </dev/null >/dev/null 2>&1 &
}

start() {
  local mode=$1 owner=$3 dir port
  # shellcheck disable=SC1090
  . "$2"
  dir=$(mktemp -d /tmp/offlineq-pgbouncer.XXXXXX)
  trap 'stop "$dir"' EXIT # until it answers: a start that fails leaves nothing behind
  chmod 755 "$dir"
  # Three tries on three ports: a port free to connect to may still be the local end of some
  # outgoing connection, and then the bind fails.
  for _ in 1 2 3; do
    port=$(free_port)
    write_config "$dir" "$mode" "$port"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
    as_owner pgbouncer -d -q "$dir/pgbouncer.ini"
    for _ in $(seq 1 100); do
      if ! port_free "$port"; then
        trap - EXIT
        watch_owner "$dir" "$owner"
        echo "$dir $port"
        return 0
      fi
      sleep 0.1
    done
    stop_daemon "$dir"
  done
  echo "pgbouncer.sh: PgBouncer did not listen (last port $port)" >&2
  cat "$dir/pgbouncer.log" >&2 || true
  exit 1
}

case "${1:-}" in
  start) start "$2" "$3" "$4" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 start MODE PGENV OWNER | stop DIR" >&2; exit 2 ;;
esac
