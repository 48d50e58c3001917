/* Prefer (RFC 7240) as enqueue reads it: return=minimal|representation and wait=N, in any
 * order, with parameters and quotes, the first instance of each counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "api/prefer.h"

static struct prefer parse(const char *v)
{
    struct prefer p;
    prefer_parse_value(v, &p);
    return p;
}

static void test_return(void **state)
{
    (void)state;
    assert_int_equal(parse(NULL).ret, PREFER_RETURN_DEFAULT);
    assert_int_equal(parse("").ret, PREFER_RETURN_DEFAULT);
    assert_int_equal(parse("return=minimal").ret, PREFER_RETURN_MINIMAL);
    assert_int_equal(parse("RETURN = \"Minimal\"").ret, PREFER_RETURN_MINIMAL);
    assert_int_equal(parse("respond-async, return=minimal; foo=bar").ret, PREFER_RETURN_MINIMAL);
    assert_int_equal(parse("return=representation").ret, PREFER_RETURN_REPRESENTATION);
    assert_int_equal(parse("return=minimal, return=representation").ret, PREFER_RETURN_MINIMAL);
    assert_int_equal(parse("return=minimalist").ret, PREFER_RETURN_DEFAULT);
    assert_int_equal(parse("x-return=minimal").ret, PREFER_RETURN_DEFAULT);
    assert_int_equal(parse("handling=lenient; return=minimal").ret, PREFER_RETURN_DEFAULT);
}

static void test_with_wait(void **state)
{
    (void)state;
    struct prefer p = parse("return=minimal, wait=5");
    assert_int_equal(p.ret, PREFER_RETURN_MINIMAL);
    assert_true(p.wait_s == 5);
    p = parse("wait=100,return=minimal");
    assert_true(p.wait_s == 30);
    assert_int_equal(p.ret, PREFER_RETURN_MINIMAL);
    p = parse("return=minimal");
    assert_true(p.wait_s < 0);
    assert_null(prefer_applied(&(struct prefer){.ret = PREFER_RETURN_DEFAULT}, false));
    assert_string_equal(prefer_applied(&p, false), "return=minimal");
    assert_string_equal(prefer_applied(&p, true), "wait, return=minimal");
    assert_string_equal(prefer_applied(&(struct prefer){.ret = PREFER_RETURN_DEFAULT}, true),
                        "wait");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_return),
        cmocka_unit_test(test_with_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
