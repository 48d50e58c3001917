#!/usr/bin/env bash
# `make test`: install what is missing, build with -Werror, run every test with CTest; then the
# unit and integration suites again under ASan+UBSan+LSan, the service under valgrind for a
# short integration run, and the fuzz targets for a bounded time. The tests start their own
# throwaway PostgreSQL clusters (tests/support/pg_fixture.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${OFFLINEQ_BUILD_DIR:-$root/build}
"$root/scripts/deps.sh" test
for dir in contract browser; do
  (cd "$root/tests/$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
done
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON -DOQ_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" "$@")
[ $# -gt 0 ] && exit 0 # a selection (ctest -R/-L ...) runs only that

echo "== the unit and integration suites under AddressSanitizer, UBSan and LeakSanitizer"
cmake -S "$root" -B "$build-asan" -DCMAKE_BUILD_TYPE=Debug -DBUILD_TESTING=ON -DOQ_WERROR=ON \
  -DOQ_SANITIZE=ON >/dev/null
cmake --build "$build-asan" -j"$(nproc)" >/dev/null
(cd "$build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 OFFLINEQ_TEST_SANITIZED=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j"$(nproc)" -L "unit|e2e")

echo "== the service under valgrind (memcheck): the queue API, engine and events suites"
(cd "$build" && OFFLINEQ_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
--suppressions=$root/tests/support/valgrind.supp" \
  ctest --output-on-failure -R "^(pg_start|pg_stop|e2e_test_queue_api|e2e_test_engine|e2e_test_events)$")

echo "== fuzz targets"
"$root/scripts/fuzz.sh" "${OFFLINEQ_FUZZ_SECONDS:-20}"
