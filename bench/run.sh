#!/usr/bin/env bash
# `make bench`: installs what is missing, builds offlineq in Release, runs every workload and
# the peers (bench/README.md), prints the table and writes bench/RESULTS.md.
#   bench/run.sh [--smoke] [--no-peers] [--out FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${OFFLINEQ_BENCH_BUILD_DIR:-$root/build-bench}
"$root/scripts/deps.sh" test
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
exec node "$root/bench/bench.mjs" --build "$build" "$@"
