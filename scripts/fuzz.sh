#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for SECONDS (default 20) from
# the committed corpus in fuzz/corpus/<target> (read-only: new inputs go to a temp dir).
# A crash fails the run and leaves its input in build-fuzz/crashes/ — fix it and commit that
# input under fuzz/corpus/<target>/ as a regression case.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${OFFLINEQ_FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${1:-20}
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DOQ_FUZZ=ON -DOQ_WERROR=OFF -DBUILD_TESTING=OFF >/dev/null
targets=(body query path headers rfc3339)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >"$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log" >&2; exit 1; }
mkdir -p "$build/crashes"
work=$(mktemp -d "${TMPDIR:-/tmp}/offlineq-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=0 -artifact_prefix="$build/crashes/$t-" "$work/$t" "$root/fuzz/corpus/$t" \
       >"$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log" >&2
    echo "fuzz_$t: failure; the input is in $build/crashes/" >&2
    exit 1
  fi
  echo "fuzz_$t: $(grep -Eo 'Done [0-9]+ runs' "$work/$t.log" | tail -1), no failure in ${secs} s"
done
