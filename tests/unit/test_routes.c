/* The route table (api/routes.c): matching a method and path, and every route has a handler
 * and a role. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/routes.h"

static void test_router_matches_table(void **state)
{
    static const struct {
        const char *method, *path, *pattern, *id;
        bool known;
    } cases[] = {
        {"GET", "/api/offline/queue", "/api/offline/queue", "", true},
        {"GET", "/api/offline/queue/stats", "/api/offline/queue/stats", "", true},
        {"GET", "/api/offline/queue/abc", "/api/offline/queue/{id}", "abc", true},
        {"POST", "/api/offline/queue/abc/retry", "/api/offline/queue/{id}/retry", "abc", true},
        {"DELETE", "/api/offline/queue/x-1", "/api/offline/queue/{id}", "x-1", true},
        {"PUT", "/api/offline/queue", NULL, NULL, true},
        {"GET", "/api/offline/queue/", NULL, NULL, false},
        {"GET", "/api/offline/queue//retry", NULL, NULL, false},
        {"GET", "/api/offline/queueX", NULL, NULL, false},
        {"GET", "/", "/", "", true},
        {"GET", "/dashboard/x", NULL, NULL, false},
        {"POST", "/api/offline/queue/a/b/retry", NULL, NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[64] = "";
        bool known = false;
        const struct route *rt =
            routes_match(cases[i].method, cases[i].path, id, sizeof(id), &known);
        assert_int_equal(known, cases[i].known);
        if (cases[i].pattern == NULL) {
            assert_null(rt);
            continue;
        }
        assert_non_null(rt);
        assert_string_equal(rt->pattern, cases[i].pattern);
        assert_string_equal(id, cases[i].id);
    }
    /* an id longer than the buffer never matches */
    char id[8];
    bool known;
    assert_null(routes_match("GET", "/api/offline/queue/0123456789abcdef", id, sizeof(id), &known));
}

static void test_every_route_has_a_handler_and_a_role(void **state)
{
    int n = 0;
    for (const struct route *rt = routes_table(); rt->method; rt++, n++) {
        assert_non_null(rt->fn);
        bool public_probe = strcmp(rt->pattern, "/healthz") == 0 ||
                            strcmp(rt->pattern, "/readyz") == 0 || strcmp(rt->pattern, "/") == 0 ||
                            strcmp(rt->pattern, "/dashboard") == 0 ||
                            strcmp(rt->pattern, "/dashboard/app.js") == 0;
        assert_true(public_probe ? rt->need == ROLE_NONE : rt->need >= ROLE_READ);
        if (strcmp(rt->method, "GET") == 0 && !public_probe)
            assert_int_equal(rt->need, ROLE_READ);
    }
    assert_true(n >= 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_matches_table),
        cmocka_unit_test(test_every_route_has_a_handler_and_a_role),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
