#!/usr/bin/env bash
# `make run`: build, then serve on OFFLINEQ_LISTEN (default 127.0.0.1:8080). Without
# OFFLINEQ_DATABASE_URL, a private cluster under data/ is created (first run), started and
# stopped again with the service.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh" build
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target offlineq >/dev/null

if [ -n "${OFFLINEQ_DATABASE_URL:-}" ]; then
  exec "$root/build/offlineq" "$@"
fi

data=${OFFLINEQ_DATA_DIR:-$root/data}/pg
port=${OFFLINEQ_PG_PORT:-54329}
"$root/scripts/pg.sh" start "$data" "$port"
stop_db() { "$root/scripts/pg.sh" stop "$data"; }
trap stop_db EXIT
psql_cmd=(psql -q -X -h "$data/sock" -p "$port" -U postgres -d postgres)
if ! "${psql_cmd[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'offlineq'" | grep -q 1; then
  "${psql_cmd[@]}" -c "CREATE DATABASE offlineq"
fi
export OFFLINEQ_DATABASE_URL
OFFLINEQ_DATABASE_URL=$("$root/scripts/pg.sh" url "$data" "$port" offlineq)
echo "offlineq: private PostgreSQL in $data (port $port); Ctrl-C stops both" >&2

# The service gets SIGINT from the terminal; a SIGTERM to this script is passed on.
"$root/build/offlineq" "$@" &
svc=$!
trap 'kill -TERM $svc 2>/dev/null' TERM
trap '' INT
set +e
wait $svc
rc=$?
# wait returns early when a trapped signal arrives: wait for the service itself to finish.
while kill -0 $svc 2>/dev/null; do wait $svc; rc=$?; done
exit $rc
