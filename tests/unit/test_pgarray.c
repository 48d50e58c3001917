/* pgarray: the one builder of PostgreSQL array literals. Plain elements are written as they
 * are spelled (ids, statuses, names: the text the callers sent before); anything array_in
 * would misread is quoted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pgarray.h"

static char *build(const char *const *items)
{
    struct pgarray a;
    pgarray_init(&a);
    for (const char *const *p = items; *p; p++)
        pgarray_add(&a, *p);
    return pgarray_finish(&a);
}

static void test_plain(void **state)
{
    (void)state;
    static const struct {
        const char *items[4];
        const char *want;
    } cases[] = {
        {{NULL}, "{}"},
        {{"pending", NULL}, "{pending}"},
        {{"api_call", "file_upload", "metric_log", NULL}, "{api_call,file_upload,metric_log}"},
        {{"0b3e8f0e-4a57-4c1b-9a55-1d2f3a4b5c6d", "a.b-c_d", NULL},
         "{0b3e8f0e-4a57-4c1b-9a55-1d2f3a4b5c6d,a.b-c_d}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = build(cases[i].items);
        assert_string_equal(s, cases[i].want);
        free(s);
    }
}

static void test_quoted(void **state)
{
    (void)state;
    static const struct {
        const char *item;
        const char *want;
    } cases[] = {
        {"", "{\"\"}"},
        {"NULL", "{\"NULL\"}"},
        {"null", "{\"null\"}"},
        {"a b", "{\"a b\"}"},
        {"a,b", "{\"a,b\"}"},
        {"{x}", "{\"{x}\"}"},
        {"say \"hi\"", "{\"say \\\"hi\\\"\"}"},
        {"back\\slash", "{\"back\\\\slash\"}"},
        {"nullish", "{nullish}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *items[] = {cases[i].item, NULL};
        char *s = build(items);
        assert_string_equal(s, cases[i].want);
        free(s);
    }
}

static void test_len_and_close(void **state)
{
    (void)state;
    struct pgarray a;
    pgarray_init(&a);
    pgarray_addn(&a, "pending,failed", 7);
    assert_int_equal(pgarray_len(&a), strlen("{pending}"));
    pgarray_close(&a);
    assert_null(a.b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_len_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
