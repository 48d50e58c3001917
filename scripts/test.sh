#!/usr/bin/env bash
# `make test`: install what is missing, build with -Werror, run every test with CTest; then the
# unit and integration suites again under ASan+UBSan+LSan, the integration suite under
# ThreadSanitizer, the service under valgrind for a short integration run, and the fuzz targets
# for a bounded time. The tests start their own throwaway PostgreSQL clusters
# (tests/support/pg_fixture.sh).
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
  -DOQ_SANITIZE=address >/dev/null
cmake --build "$build-asan" -j"$(nproc)" >/dev/null
(cd "$build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 OFFLINEQ_TEST_SANITIZED=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --output-on-failure -j"$(nproc)" -L "unit|e2e")

echo "== the e2e suite under ThreadSanitizer"
# Every process (the services and the test programs) writes its reports to $tsan/report.<pid>;
# any report fails the run. tests/tsan.supp may only hold races inside third-party libraries.
tsan=$build-tsan/tsan-reports
cmake -S "$root" -B "$build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON -DOQ_WERROR=ON \
  -DOQ_SANITIZE=thread >/dev/null
cmake --build "$build-tsan" -j"$(nproc)" >/dev/null
rm -rf "$tsan" && mkdir -p "$tsan"
tsan_rc=0
(cd "$build-tsan" && OFFLINEQ_TEST_SANITIZED=1 \
  TSAN_OPTIONS="log_path=$tsan/report:halt_on_error=0:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp" \
  ctest --output-on-failure -j"$(nproc)" -L e2e ${OFFLINEQ_TEST_TSAN_ONLY:+-R "$OFFLINEQ_TEST_TSAN_ONLY"}) || tsan_rc=$?
if compgen -G "$tsan/report.*" >/dev/null; then
  cat "$tsan"/report.* >&2
  echo "ThreadSanitizer: $(cat "$tsan"/report.* | grep -c '^WARNING: ThreadSanitizer')" \
    "report(s) in $(ls "$tsan" | wc -l) process(es), above" >&2
  exit 1
fi
[ "$tsan_rc" -eq 0 ] || exit "$tsan_rc"

echo "== the service under valgrind (memcheck): the queue API, engine and events suites"
(cd "$build" && OFFLINEQ_TEST_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
--suppressions=$root/tests/support/valgrind.supp" \
  ctest --output-on-failure -R "^(pg_start|pg_stop|e2e_test_queue_api|e2e_test_engine|e2e_test_events)$")

echo "== fuzz targets"
"$root/scripts/fuzz.sh" "${OFFLINEQ_FUZZ_SECONDS:-20}"
