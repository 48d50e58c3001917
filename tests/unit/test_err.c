/* The error table (core/err.c): HTTP statuses, wire codes, field prefixes, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

static void test_err_table_and_prefix(void **state)
{
    assert_int_equal(err_http_status(ERR_INVALID_JSON), 400);
    assert_int_equal(err_http_status(ERR_UNSUPPORTED_MEDIA_TYPE), 415);
    assert_int_equal(err_http_status(ERR_DB_UNAVAILABLE), 503);
    assert_string_equal(err_wire_code(ERR_DB_UNAVAILABLE), "database_unavailable");
    assert_string_equal(err_wire_code(ERR_QUEUE_FULL), "queue_full");
    struct err e;
    assert_int_equal(err_field(&e, ERR_INVALID_REQUEST, "endpoint", "bad %d", 1), -1);
    assert_string_equal(e.message, "bad 1");
    err_prefix_field(&e, "payload");
    assert_string_equal(e.field, "payload.endpoint");
    err_prefix_field(&e, "operations[3]");
    assert_string_equal(e.field, "operations[3].payload.endpoint");
    /* truncation never leaves half a UTF-8 character behind */
    char longmsg[400];
    memset(longmsg, 'a', sizeof(longmsg));
    memcpy(longmsg + 254, "\xc3\xa9\xc3\xa9", 4);
    longmsg[399] = '\0';
    err_set(&e, ERR_INVALID_REQUEST, "%s", longmsg);
    assert_int_equal(strlen(e.message), 254);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table_and_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
