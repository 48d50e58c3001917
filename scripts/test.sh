#!/usr/bin/env bash
# `make test`: install what is missing, build with -Werror, run every test with CTest. The
# tests start their own throwaway PostgreSQL cluster (tests/support/pg_fixture.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${OFFLINEQ_BUILD_DIR:-$root/build}
"$root/scripts/deps.sh" test
for dir in contract browser; do
  (cd "$root/tests/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
done
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON -DOQ_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" "$@"
