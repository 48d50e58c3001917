/* Settings (core/config.c): environment, flags, API keys and roles, upstreams, listen address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "unit_env.h"

static void test_config_parsing(void **state)
{
    struct config c;
    char msg[512];
    static const char *const env[] = {
        "OFFLINEQ_API_KEYS",
        " r1:read , w1:write,a:b:admin ",
        "OFFLINEQ_UPSTREAMS",
        "default=http://127.0.0.1:9000/,reg=HTTPS://Models.Example/v1",
        "OFFLINEQ_LISTEN",
        "0.0.0.0:9999",
        "OFFLINEQ_CORS_ORIGINS",
        "https://a.example,*",
        NULL};
    with_env(env);
    char *argv[] = {"offlineq", "--workers=9", NULL};
    assert_int_equal(config_load(&c, 2, argv, msg, sizeof(msg)), CONFIG_OK);
    assert_int_equal(c.workers, 9);
    assert_int_equal(c.listen_port, 9999);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_false(c.listen_is_loopback);
    assert_int_equal(config_live(&c)->n_api_keys, 3);
    assert_int_equal(config_key_role(&c, "r1"), ROLE_READ);
    assert_int_equal(config_key_role(&c, "w1"), ROLE_WRITE);
    assert_int_equal(config_key_role(&c, "a:b"), ROLE_ADMIN); /* the role is after the last colon */
    assert_int_equal(config_key_role(&c, "r2"), ROLE_NONE);
    assert_int_equal(config_key_role(&c, ""), ROLE_NONE);
    const struct upstream *u = config_find_upstream(&c, "default");
    assert_string_equal(u->base_url, "http://127.0.0.1:9000");
    assert_string_equal(u->origin, "http://127.0.0.1:9000");
    u = config_find_upstream(&c, "reg");
    assert_string_equal(u->origin, "https://models.example");
    assert_null(config_find_upstream(&c, "nope"));
    assert_int_equal(c.n_cors_origins, 2);
    config_free(&c);

    static const char *const ipv6[] = {"OFFLINEQ_LISTEN", "[::1]:8080", NULL};
    with_env(ipv6);
    assert_int_equal(config_load(&c, 1, argv, msg, sizeof(msg)), CONFIG_OK);
    assert_true(c.listen_is_loopback);
    config_free(&c);

    /* "--flag value" as well as "--flag=value" (getopt's long options take both) */
    char *spaced[] = {"offlineq", "--workers", "7", "--listen=127.0.0.1:1234", NULL};
    with_env(NULL);
    assert_int_equal(config_load(&c, 4, spaced, msg, sizeof(msg)), CONFIG_OK);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.listen_port, 1234);
    config_free(&c);
    char *dangling[] = {"offlineq", "--workers", NULL};
    assert_int_equal(config_load(&c, 2, dangling, msg, sizeof(msg)), CONFIG_EXIT_ERROR);
    assert_string_equal(msg, "--workers needs a value (--workers=VALUE or --workers VALUE)");
    config_free(&c);
    char *spaced_bad[] = {"offlineq", "--workers", "nope", NULL};
    assert_int_equal(config_load(&c, 3, spaced_bad, msg, sizeof(msg)), CONFIG_EXIT_ERROR);
    assert_non_null(strstr(msg, "OFFLINEQ_WORKERS"));
    config_free(&c);
    char *secret[] = {"offlineq", "--api-keys", "k:admin", NULL};
    assert_int_equal(config_load(&c, 3, secret, msg, sizeof(msg)), CONFIG_EXIT_ERROR);
    assert_null(strstr(msg, "k:admin"));
    assert_non_null(strstr(msg, "a secret is not accepted as a flag"));
    config_free(&c);

    char *bad_flag[] = {"offlineq", "--nope=1", NULL};
    with_env(NULL);
    assert_int_equal(config_load(&c, 2, bad_flag, msg, sizeof(msg)), CONFIG_EXIT_ERROR);
    assert_non_null(strstr(msg, "--nope"));
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parsing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
