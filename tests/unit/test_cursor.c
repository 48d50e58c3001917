/* Page cursors (api/cursor.c): round trip, and garbage is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/cursor.h"

static void test_cursor_round_trip_and_garbage(void **state)
{
    static const struct {
        int p;
        long long s;
    } ok[] = {{0, 1}, {-1000, 9223372036854775807LL}, {1000, 0}, {-5, 42}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char c[CURSOR_MAX];
        int p;
        long long s;
        cursor_encode(ok[i].p, ok[i].s, c);
        assert_null(strpbrk(c, "+/="));
        assert_int_equal(cursor_decode(c, &p, &s), 0);
        assert_int_equal(p, ok[i].p);
        assert_int_equal(s, ok[i].s);
    }
    static const char *const bad[] = {"",
                                      "garbage",
                                      "djEuMS4y'",
                                      "djIuMS4y",
                                      "dj",
                                      "====",
                                      "djEuMTAwMS4x",
                                      /* v1.1001.1 */ "djEuMS4tMQ", /* v1.1.-1 */
                                      "djEuMS4yeA",
                                      /* v1.1.2x */ "djEu",
                                      "AAAAAAAA",
                                      "djEuMS4y+",
                                      "djEuMS4y/",
                                      "a",
                                      "djEuMS4yAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int p;
        long long s;
        if (cursor_decode(bad[i], &p, &s) == 0)
            fail_msg("accepted bad cursor %s", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_round_trip_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
