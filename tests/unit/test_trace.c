/* W3C trace context (core/trace.c): what traceparent values are accepted, and the columns a
 * trace is stored in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/trace.h"

#define ID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SPAN "00f067aa0ba902b7"

static void test_parse(void **state)
{
    struct trace t;
    assert_true(trace_parse("00-" ID "-" SPAN "-01", &t));
    assert_string_equal(t.trace_id, ID);
    assert_string_equal(t.span_id, SPAN);
    assert_string_equal(t.flags, "01");
    assert_true(trace_parse("01-" ID "-" SPAN "-00-later-fields", &t)); /* a later version */
    static const char *const bad[] = {
        "00-" ID "-" SPAN "-01-extra",                     /* 00 is exactly 55 */
        "ff-" ID "-" SPAN "-01",                           /* the invalid version */
        "00-00000000000000000000000000000000-" SPAN "-01", /* zero trace id */
        "00-" ID "-0000000000000000-01",                   /* zero span id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SPAN "-01", /* upper case */
        "00-" ID "-" SPAN "-0g",                           /* flags not hex */
        "00-" ID "_" SPAN "-01",                           /* separator */
        "00-" ID "-" SPAN,                                 /* short */
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(trace_parse(bad[i], &t));
}

static void test_new_child_and_operation(void **state)
{
    struct trace a, b;
    trace_new(&a);
    assert_int_equal(strspn(a.trace_id, "0123456789abcdef"), 32);
    assert_int_equal(strspn(a.span_id, "0123456789abcdef"), 16);
    assert_string_equal(a.flags, "01");
    trace_child(&a, &b);
    assert_string_equal(b.trace_id, a.trace_id);
    assert_string_not_equal(b.span_id, a.span_id);
    char text[TRACE_PARENT_LEN + 1];
    trace_format(&b, text, sizeof(text));
    struct trace back;
    assert_true(trace_parse(text, &back));
    assert_string_equal(back.span_id, b.span_id);
    /* a row without a trace: its operation id; a key that is no UUID: a new trace */
    trace_of_operation(NULL, "01a2370f-e770-7edf-a7ad-50d755075f75", &a);
    assert_string_equal(a.trace_id, "01a2370fe7707edfa7ad50d755075f75");
    trace_of_operation("", "batch-0123456789abcdef0123456789abcdef", &a);
    assert_int_equal(strlen(a.trace_id), 32);
    trace_of_operation("00-" ID "-" SPAN "-01", "01a2370f-e770-7edf-a7ad-50d755075f75", &a);
    assert_string_equal(a.trace_id, ID);
}

/* The span's 64 bits go to a signed bigint unchanged (PostgreSQL's to_hex gives them back). */
static void test_columns(void **state)
{
    struct trace t;
    struct trace_columns c;
    assert_true(trace_parse("00-" ID "-ffffffffffffff85-03", &t));
    trace_to_columns(&t, &c);
    assert_string_equal(c.id, "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
    assert_string_equal(c.span, "-123");
    assert_string_equal(c.flags, "3");
    assert_true(trace_parse("00-" ID "-" SPAN "-01", &t));
    trace_to_columns(&t, &c);
    assert_string_equal(c.span, "67667974448284343");
}

static void test_state(void **state)
{
    assert_true(trace_state_ok("vendor=abc,other=x y"));
    assert_false(trace_state_ok("a=b\r\nX-Evil: 1"));
    char big[TRACE_STATE_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(trace_state_ok(big));
    big[TRACE_STATE_MAX] = '\0';
    assert_true(trace_state_ok(big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_new_child_and_operation),
        cmocka_unit_test(test_columns),
        cmocka_unit_test(test_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
