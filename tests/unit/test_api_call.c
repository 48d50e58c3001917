/* The api_call validator (handlers/api_call.c): where an endpoint may point, as configured
 * from the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "handlers/handlers.h"
#include "unit_env.h"

static void test_target_validation(void **state)
{
    struct config c;
    char msg[256];
    static const char *const env[] = {
        "OFFLINEQ_UPSTREAMS", "default=http://127.0.0.1:9000,reg=https://models.example", NULL};
    with_env(env);
    char *argv[] = {"offlineq", NULL};
    assert_int_equal(config_load(&c, 1, argv, msg, sizeof(msg)), CONFIG_OK);
    static const struct {
        const char *payload;
        bool ok;
    } cases[] = {
        {"{\"endpoint\":\"/a/b?c=d\"}", true},
        {"{\"endpoint\":\"http://127.0.0.1:9000/a\"}", true},
        {"{\"endpoint\":\"https://models.example/x\",\"upstream\":\"reg\"}", true},
        {"{\"endpoint\":\"https://models.example/x\"}", false}, /* not default's origin */
        {"{\"endpoint\":\"http://127.0.0.1:9001/a\"}", false},  /* other port */
        {"{\"endpoint\":\"http://127.0.0.1:9000@evil.example/\"}", false},
        {"{\"endpoint\":\"http://2130706433:9000/\"}", false}, /* decimal spelling */
        {"{\"endpoint\":\"gopher://127.0.0.1:9000/\"}", false},
        {"{\"endpoint\":\"//127.0.0.1:9000/\"}", false},
        {"{\"endpoint\":\"a/b\"}", false},
        {"{\"endpoint\":\"/a b\"}", false},
        {"{\"endpoint\":\"/a\",\"upstream\":\"other\"}", false},
    };
    const struct handler *h = handlers_find("api_call");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *p = json_loads(cases[i].payload, 0, NULL);
        struct err e = {0};
        int rc = h->validate(p, &c, &e);
        if ((rc == 0) != cases[i].ok)
            fail_msg("%s: expected %s (%s)", cases[i].payload, cases[i].ok ? "ok" : "refusal",
                     e.message);
        json_decref(p);
    }
    assert_null(handlers_find("teleport"));
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
