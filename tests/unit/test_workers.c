/* Retry back-off (engine/workers.c): full jitter between 0 and the doubling, capped delay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/workers.h"

static void test_backoff_full_jitter(void **state)
{
    for (int attempt = 1; attempt <= 12; attempt++) {
        double cap = 0.5 * (1 << (attempt - 1)); /* 0.5 s doubling, capped at 300 s */
        if (cap > 300)
            cap = 300;
        double lo = 1e9, hi = 0;
        for (int i = 0; i < 2000; i++) {
            double d = workers_backoff_s(attempt, 500, 300000);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        assert_true(lo >= 0 && hi <= cap);
        assert_true(hi > cap * 0.9 && lo < cap * 0.1); /* full jitter spans the range */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_full_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
