#!/usr/bin/env bash
# Private PostgreSQL clusters for offlineq: never the system cluster.
#   scripts/pg.sh start DIR PORT     init (first time) and start a cluster in DIR
#   scripts/pg.sh stop DIR           stop it (fast shutdown)
#   scripts/pg.sh url DIR PORT DB    print its connection URL (unix socket in DIR/sock)
#   scripts/pg.sh bindir             print the directory of the server binaries
# As root, the cluster runs as the 'postgres' user (created by the postgresql package).
set -euo pipefail

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  echo "offlineq: PostgreSQL server binaries not found (apt-get install postgresql-15)" >&2
  exit 1
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The server user must be able to reach DIR: grant it search permission on the way down,
# nothing more (a checkout under /root is otherwise closed to it).
grant_path() {
  [ "$(id -u)" -eq 0 ] || return 0
  local d
  d=$(dirname "$1")
  while [ "$d" != / ]; do
    if ! runuser -u postgres -- test -x "$d"; then
      echo "offlineq: letting the postgres user pass through $d (setfacl u:postgres:x)" >&2
      setfacl -m u:postgres:x "$d"
    fi
    d=$(dirname "$d")
  done
}

cmd_start() {
  local dir=$1 port=$2 bin
  bin=$(pg_bindir)
  mkdir -p "$dir"
  grant_path "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      ${OFFLINEQ_PG_NOSYNC:+--no-sync} >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  as_owner mkdir -p "$dir/sock"
  local opts="-c listen_addresses='' -c port=$port -c unix_socket_directories='$dir/sock'"
  [ -n "${OFFLINEQ_PG_NOSYNC:-}" ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ -n "${OFFLINEQ_PG_EXTRA:-}" ] && opts="$opts $OFFLINEQ_PG_EXTRA"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null ||
    { tail -20 "$dir/server.log" >&2; exit 1; }
}

cmd_stop() {
  local dir=$1 bin
  bin=$(pg_bindir)
  [ -f "$dir/data/postmaster.pid" ] || return 0
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1; then
    # The server is gone or stuck: never leave a postmaster behind.
    local pid
    pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  fi
}

cmd_url() {
  echo "postgresql:///$3?host=$1/sock&port=$2&user=postgres"
}

case "${1:-}" in
  start) cmd_start "$2" "$3" ;;
  stop) cmd_stop "$2" ;;
  url) cmd_url "$2" "$3" "$4" ;;
  bindir) pg_bindir ;;
  *) echo "usage: $0 start DIR PORT | stop DIR | url DIR PORT DB | bindir" >&2; exit 2 ;;
esac
