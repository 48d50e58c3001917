#!/usr/bin/env bash
# Installs what building, running and testing offlineq needs, with apt-get, when missing.
# Usage: scripts/deps.sh [build|test]   (test adds what the test suite and bench/ need)
set -euo pipefail

want=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libpq-dev
      libcurl4-openssl-dev uuid-dev libssl-dev libsystemd-dev postgresql-15 postgresql-client-15
      acl)
if [ "${1:-build}" = test ]; then
  # clang-format and python3: the lint checks (scripts/check-*.sh); clang-format's output
  # depends on its version (Debian 12: 14). libclang-rt-14-dev: libFuzzer. gcc's libtsan2
  # (OQ_SANITIZE=thread) comes with build-essential. docker-compose (1.29): `docker-compose
  # config` checks docker/docker-compose.yml (CTest docker_files); prometheus ships promtool,
  # which checks deploy/prometheus/alerts.yml (deploy_alerts); pgbouncer (1.18) is the pooler
  # e2e_test_pgbouncer runs the service through (tests/support/pgbouncer.sh).
  want+=(libcmocka-dev nodejs npm chromium wrk valgrind clang libclang-rt-14-dev clang-format
         python3 docker-compose prometheus pgbouncer)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from outside Debian (a newer build on PATH): accept it when it works.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do
    [ "$p" = nodejs ] || [ "$p" = npm ] || filtered+=("$p")
  done
  missing=("${filtered[@]}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "offlineq: installing ${missing[*]}" >&2
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
