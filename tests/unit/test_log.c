/* log_text: client text in log lines stays valid UTF-8, undecodable bytes become \xHH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"

static void expect(const char *in, const char *want)
{
    json_t *j = log_text(in);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), want);
    json_decref(j);
}

static void test_escapes_what_is_not_utf8(void **state)
{
    expect("/api/offline/queue", "/api/offline/queue");
    expect("/caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80",
           "/caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80");
    expect("/\xff\xfe", "/\\xFF\\xFE");
    expect("G\xc3T", "G\\xC3T");                          /* a lead byte without its continuation */
    expect("/\xc0\xaf", "/\\xC0\\xAF");                   /* overlong "/" */
    expect("/\xed\xa0\x80", "/\\xED\\xA0\\x80");          /* a UTF-16 surrogate */
    expect("/\xf4\x90\x80\x80", "/\\xF4\\x90\\x80\\x80"); /* beyond U+10FFFF */
    expect("/\xe2\x82", "/\\xE2\\x82");                   /* cut short at the end */
    expect("", "");
    expect(NULL, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_escapes_what_is_not_utf8)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
