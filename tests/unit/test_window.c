/* The five-minute window of attempts (core/window.c): counts, percentiles read from the
 * log-scale bins, and buckets that age out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/window.h"

#define T0 1e9 /* a monotonic time in ms, far from zero */

static void test_empty(void **state)
{
    struct window w;
    memset(&w, 0, sizeof(w));
    struct window_summary s;
    window_sum(&w, T0, &s);
    assert_int_equal(s.attempts, 0);
    assert_true(s.p50_ms < 0 && s.p95_ms < 0);
}

static void test_percentiles_within_a_bin(void **state)
{
    struct window w;
    memset(&w, 0, sizeof(w));
    for (int i = 1; i <= 100; i++) /* 1..100 ms, spread over a minute */
        window_add(&w, T0 + i * 600, (double)i, i % 10 != 0);
    struct window_summary s;
    window_sum(&w, T0 + 60000, &s);
    assert_int_equal(s.attempts, 100);
    assert_int_equal(s.successes, 90);
    assert_true(s.p50_ms >= 50 / 1.25 && s.p50_ms <= 50 * 1.25);
    assert_true(s.p95_ms >= 95 / 1.25 && s.p95_ms <= 95 * 1.25);
}

static void test_old_buckets_age_out(void **state)
{
    struct window w;
    memset(&w, 0, sizeof(w));
    window_add(&w, T0, 5000, false); /* slow and failed, six minutes ago */
    for (int i = 0; i < 10; i++)
        window_add(&w, T0 + 360000 + i, 2, true);
    struct window_summary s;
    window_sum(&w, T0 + 360000 + 100, &s);
    assert_int_equal(s.attempts, 10);
    assert_int_equal(s.successes, 10);
    assert_true(s.p95_ms < 3);
    window_sum(&w, T0 + 360000 + WINDOW_S * 1000.0 + 20000, &s); /* and these later too */
    assert_int_equal(s.attempts, 0);
}

/* The rate: successes per second over the last minute, from the oldest bucket holding one. */
static void test_rate_over_the_last_minute(void **state)
{
    struct window w;
    memset(&w, 0, sizeof(w));
    assert_true(window_rate(&w, T0, 60, 0) == 0);
    for (int i = 0; i < 1200; i++) /* 20/s for 60 s, every tenth one failed */
        window_add(&w, T0 + i * 50.0, 3, i % 10 != 0);
    double r = window_rate(&w, T0 + 60000, 60, 0);
    assert_true(r >= 18 * 0.8 && r <= 18 * 1.05); /* 18/s succeeded; buckets are 10 s wide */
    window_add(&w, T0 - 200000, 3, true);         /* older than the span: not counted */
    assert_true(window_rate(&w, T0 + 60000, 60, 0) <= r + 1e-9);
    assert_true(window_rate(&w, T0 + 200000, 60, 0) == 0); /* nothing in the last minute */
    memset(&w, 0, sizeof(w)); /* a start mid-bucket: 20/s for 3 s, measured from the first */
    for (int i = 0; i < 60; i++)
        window_add(&w, T0 + 7000 + i * 50.0, 3, true);
    assert_true(window_rate(&w, T0 + 10000, 60, 0) < 7); /* the bucket dilutes */
    r = window_rate(&w, T0 + 10000, 60, T0 + 7000);
    assert_true(r >= 19 && r <= 21);
}

static void test_extremes_stay_in_range(void **state)
{
    struct window w;
    memset(&w, 0, sizeof(w));
    window_add(&w, T0, -3, true);   /* a clock step back */
    window_add(&w, T0, 1e12, true); /* past the last bin */
    struct window_summary s;
    window_sum(&w, T0, &s);
    assert_int_equal(s.attempts, 2);
    assert_true(s.p50_ms >= 0 && s.p50_ms <= 1.25);
    assert_true(s.p95_ms > 1e5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_percentiles_within_a_bin),
        cmocka_unit_test(test_old_buckets_age_out),
        cmocka_unit_test(test_rate_over_the_last_minute),
        cmocka_unit_test(test_extremes_stay_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
