/* time_parse_rfc3339: RFC 3339 date-time only (section 5.6), strict, never reading past the
 * end of its input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/time.h"

/* Parses a heap copy of exactly s (no slack after the NUL), so ASan sees any over-read. */
static int parse(const char *s, double *t)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    memcpy(copy, s, n);
    int rc = time_parse_rfc3339(copy, t);
    free(copy);
    return rc;
}

static void test_valid(void **state)
{
    static const struct {
        const char *in;
        double want;
    } cases[] = {
        {"2024-01-02T03:04:05Z", 1704164645},
        {"2024-01-02t03:04:05z", 1704164645},
        {"2024-01-02T03:04:05.123+05:30", 1704164645.123 - 19800},
        {"2024-01-02T03:04:05.5-01:00", 1704164645.5 + 3600},
        {"2024-01-02T03:04:05+00:00", 1704164645},
        {"2024-01-02T03:04:05-00:00", 1704164645},
        {"2026-11-22T03:49:25.839970Z", 1795319365.83997},
        {"2026-11-22T03:49:25.5Z", 1795319365.5},
        {"2026-11-22T05:49:25+02:00", 1795319365},
        {"1970-01-01T00:00:00Z", 0},
        {"2024-02-29T12:00:00Z", 1709208000},
        {"2016-12-31T23:59:60Z", 1483228800},      /* a leap second: read as the next second */
        {"2017-01-01T05:29:60+05:30", 1483228800}, /* the same one, in India */
        {"2024-01-02T03:04:05.000000000001Z", 1704164645},
        {"0001-01-01T00:00:00Z", -62135596800},
        {"9999-12-31T23:59:59Z", 253402300799},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double t = -1;
        if (parse(cases[i].in, &t) != 0)
            fail_msg("%s refused", cases[i].in);
        if (t < cases[i].want - 1e-6 || t > cases[i].want + 1e-6)
            fail_msg("%s: got %.6f, want %.6f", cases[i].in, t, cases[i].want);
    }
}

static void test_invalid(void **state)
{
    static const char *const cases[] = {
        "2024-01-02T03:04:05+5:30", /* one-digit hour in the offset */
        "+5:30",
        "2024-01-02T03:04:05+05:3",
        "2024-01-02T03:04:05+05",
        "2024-01-02T03:04:05+0530",
        "2024-01-02T03:04:05+",
        "2024-01-02T03:04:05+24:00",
        "2024-01-02T03:04:05+05:60",
        "2024-01-02T03:04:00.5e3Z", /* a number, not a fraction */
        "2024-01-02T03:04:05.5e3Z",
        "2024-01-02T03:04:05.Z",
        "2024-01-02T03:04:05.+01:00",
        "2024-01-02T03:04:05", /* no zone */
        "2024-01-02T03:04:05.123",
        "2024-01-02 03:04:05Z", /* a space is not RFC 3339's date-time */
        "2024-01-02",
        "03:04:05Z",
        "2024-1-02T03:04:05Z",
        "2024-01-2T03:04:05Z",
        "24-01-02T03:04:05Z",
        "+2024-01-02T03:04:05Z",
        "12024-01-02T03:04:05Z",
        " 2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05Z ",
        "2024-01-02T03:04:05ZZ",
        "2024-01-02T3:04:05Z",
        "2024-01-02T03:4:05Z",
        "2024-01-02T03:04:5Z",
        "2024-13-02T03:04:05Z",
        "2024-00-02T03:04:05Z",
        "2024-01-00T03:04:05Z",
        "2024-01-32T03:04:05Z",
        "2023-02-29T03:04:05Z",
        "2024-04-31T03:04:05Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T03:60:05Z",
        "2024-01-02T03:04:61Z",
        "2024-01-02T03:04:60Z", /* 60 only in the last minute of a UTC day */
        "2024-01-02T03:04:05UTC",
        "2024-01-02T03:04:05GMT",
        "2024-01-02T03:04:05 Z",
        "2024-01-02T-3:04:05Z",
        "2024-01-02T03:04:05.-1Z",
        "2024-01-02T03:04:05,5Z",
        "yesterday",
        "",
        "2024-01-02T03:04:05+05:30\n",
        "Tue, 02 Jan 2024 03:04:05 GMT",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double t = 12345;
        if (parse(cases[i], &t) == 0)
            fail_msg("\"%s\" accepted as %.3f", cases[i], t);
        assert_true(t == 12345); /* untouched on failure */
    }
    double t;
    assert_int_equal(time_parse_rfc3339(NULL, &t), -1);
}

/* The conflict path's own inputs (what test_merges checked beside the merges): a fraction,
 * an offset, and the two spellings it must refuse. */
static void test_fractions_and_offsets(void **state)
{
    double t;
    assert_int_equal(time_parse_rfc3339("2026-11-22T03:49:25.5Z", &t), 0);
    assert_true(t == 1795319365.5);
    assert_int_equal(time_parse_rfc3339("2026-11-22T05:49:25+02:00", &t), 0);
    assert_true(t == 1795319365);
    assert_int_equal(time_parse_rfc3339("2026-11-22 03:49:25", &t), -1);
    assert_int_equal(time_parse_rfc3339("yesterday", &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_fractions_and_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
