/* Unit tests without network or database: router, cursor, validators, errors, config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "delivery/conflict.h"
#include "core/time.h"
#include "core/jsontext.h"
#include "api/cursor.h"
#include "core/err.h"
#include "handlers/handlers.h"
#include "delivery/outbound.h"
#include "engine/workers.h"
#include "api/routes.h"
#include "core/validate.h"

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
        const struct route *rt = routes_match(cases[i].method, cases[i].path, id, sizeof(id), &known);
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
        bool public_probe = strcmp(rt->pattern, "/healthz") == 0 || strcmp(rt->pattern, "/readyz") == 0 ||
                            strcmp(rt->pattern, "/") == 0 || strcmp(rt->pattern, "/dashboard") == 0 ||
                            strcmp(rt->pattern, "/dashboard/app.js") == 0;
        assert_true(public_probe ? rt->need == ROLE_NONE : rt->need >= ROLE_READ);
        if (strcmp(rt->method, "GET") == 0 && !public_probe)
            assert_int_equal(rt->need, ROLE_READ);
    }
    assert_true(n >= 11);
}

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
    static const char *const bad[] = {"", "garbage", "djEuMS4y'", "djIuMS4y", "dj", "====",
                                      "djEuMTAwMS4x", /* v1.1001.1 */ "djEuMS4tMQ", /* v1.1.-1 */
                                      "djEuMS4yeA", /* v1.1.2x */ "djEu", "AAAAAAAA",
                                      "djEuMS4y+", "djEuMS4y/", "a", "djEuMS4yAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int p;
        long long s;
        if (cursor_decode(bad[i], &p, &s) == 0)
            fail_msg("accepted bad cursor %s", bad[i]);
    }
}

static const struct field_rule rules[] = {
    {.name = "name", .type = V_STRING, .required = true, .min = 1, .max = 5},
    {.name = "n", .type = V_INT, .min = -3, .max = 3},
    {.name = "f", .type = V_NUMBER, .min = 0, .max = 1},
    {.name = "id", .type = V_UUID},
    {.name = "o", .type = V_OBJECT, .nullable = true},
    {.name = "c", .type = V_STRING, .one_of = (const char *const[]){"a", "b", NULL}},
    {.name = NULL},
};

static void test_validate_object(void **state)
{
    static const struct {
        const char *json;
        const char *field; /* NULL: valid */
    } cases[] = {
        {"{\"name\":\"abc\"}", NULL},
        {"{\"name\":\"abc\",\"n\":3,\"f\":0.5,\"o\":null,\"c\":\"b\","
         "\"id\":\"6f1c1f57-3c3c-4d1e-9a43-54c2f1a0a9d5\"}", NULL},
        {"{\"name\":\"abc\",\"n\":2.0}", NULL},
        {"{}", "name"},
        {"{\"name\":\"\"}", "name"},
        {"{\"name\":\"abcdef\"}", "name"},
        {"{\"name\":1}", "name"},
        {"{\"name\":\"a\",\"n\":4}", "n"},
        {"{\"name\":\"a\",\"n\":1.5}", "n"},
        {"{\"name\":\"a\",\"n\":\"1\"}", "n"},
        {"{\"name\":\"a\",\"f\":1.01}", "f"},
        {"{\"name\":\"a\",\"id\":\"nope\"}", "id"},
        {"{\"name\":\"a\",\"o\":[]}", "o"},
        {"{\"name\":\"a\",\"c\":\"z\"}", "c"},
        {"{\"name\":\"a\",\"extra\":1}", "extra"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        struct err e = {0};
        int rc = validate_object(j, rules, false, &e);
        if (cases[i].field == NULL) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(e.code, ERR_INVALID_REQUEST);
            assert_string_equal(e.field, cases[i].field);
        }
        json_decref(j);
    }
}

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

static void with_env(const char *const *env)
{
    static const char *const names[] = {"OFFLINEQ_DATABASE_URL", "OFFLINEQ_LISTEN", "OFFLINEQ_API_KEYS",
                                        "OFFLINEQ_UPSTREAMS", "OFFLINEQ_WORKERS", "OFFLINEQ_CORS_ORIGINS"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
    setenv("OFFLINEQ_DATABASE_URL", "postgresql:///x", 1);
    for (; env && *env; env += 2)
        setenv(env[0], env[1], 1);
}

static void test_config_parsing(void **state)
{
    struct config c;
    char msg[512];
    static const char *const env[] = {"OFFLINEQ_API_KEYS", " r1:read , w1:write,a:b:admin ",
                                      "OFFLINEQ_UPSTREAMS", "default=http://127.0.0.1:9000/,reg=HTTPS://Models.Example/v1",
                                      "OFFLINEQ_LISTEN", "0.0.0.0:9999",
                                      "OFFLINEQ_CORS_ORIGINS", "https://a.example,*", NULL};
    with_env(env);
    char *argv[] = {"offlineq", "--workers=9", NULL};
    assert_int_equal(config_load(&c, 2, argv, msg, sizeof(msg)), CONFIG_OK);
    assert_int_equal(c.workers, 9);
    assert_int_equal(c.listen_port, 9999);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_false(c.listen_is_loopback);
    assert_int_equal(c.n_api_keys, 3);
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

    char *bad_flag[] = {"offlineq", "--nope=1", NULL};
    with_env(NULL);
    assert_int_equal(config_load(&c, 2, bad_flag, msg, sizeof(msg)), CONFIG_EXIT_ERROR);
    assert_non_null(strstr(msg, "--nope"));
    config_free(&c);
}

static void test_target_validation(void **state)
{
    struct config c;
    char msg[256];
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS", "default=http://127.0.0.1:9000,reg=https://models.example", NULL};
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
        {"{\"endpoint\":\"https://models.example/x\"}", false},        /* not default's origin */
        {"{\"endpoint\":\"http://127.0.0.1:9001/a\"}", false},         /* other port */
        {"{\"endpoint\":\"http://127.0.0.1:9000@evil.example/\"}", false},
        {"{\"endpoint\":\"http://2130706433:9000/\"}", false},         /* decimal spelling */
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
            fail_msg("%s: expected %s (%s)", cases[i].payload, cases[i].ok ? "ok" : "refusal", e.message);
        json_decref(p);
    }
    assert_null(handlers_find("teleport"));
    config_free(&c);
}

static void test_retry_after_and_backoff(void **state)
{
    time_t now = 1763000000; /* Thu, 13 Nov 2025 02:13:20 GMT */
    assert_true(outbound_retry_after("120", now) == 120);
    assert_true(outbound_retry_after("0", now) == 0);
    assert_true(outbound_retry_after("Thu, 13 Nov 2025 02:13:50 GMT", now) == 30);
    assert_true(outbound_retry_after("Thu, 13 Nov 2025 02:00:00 GMT", now) == 0); /* past */
    assert_true(outbound_retry_after("soon", now) < 0);
    assert_true(outbound_retry_after("12abc", now) < 0);
    for (int attempt = 1; attempt <= 12; attempt++) {
        double cap = 0.5 * (1 << (attempt - 1)); /* 0.5 s doubling, capped at 300 s */
        if (cap > 300)
            cap = 300;
        double lo = 1e9, hi = 0;
        for (int i = 0; i < 2000; i++) {
            double d = workers_backoff_s(attempt, 500, 300000);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        assert_true(lo >= 0 && hi <= cap);
        assert_true(hi > cap * 0.9 && lo < cap * 0.1); /* full jitter spans the range */
    }
}

static void test_signature_matches_standard_webhooks(void **state)
{
    /* The example of the Standard Webhooks specification. */
    const char *body = "{\"test\": 2432232314}";
    char sig[128];
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    size_t key_len = 0;
    unsigned char *key = upstreams_signing_key(secret, strlen(secret), &key_len);
    assert_non_null(key);
    outbound_sign(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
                  sig, sizeof(sig));
    upstreams_free_key(key, key_len);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

static void assert_json(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
    if (!json_equal(got, want))
        fail_msg("got %s, want %s", g, want_text);
    free(g);
    json_decref(want);
    json_decref(got);
}

static void test_merges(void **state)
{
    static const struct {
        const char *base, *local, *remote, *want;
    } three[] = {
        {"{\"a\":1}", "{\"a\":2}", "{\"a\":1}", "{\"a\":2}"},              /* ours only */
        {"{\"a\":1}", "{\"a\":1}", "{\"a\":3}", "{\"a\":3}"},              /* theirs only */
        {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}", "{\"a\":2}"},              /* both: ours */
        {"{\"a\":1,\"b\":1}", "{\"a\":1}", "{\"a\":1,\"b\":1}", "{\"a\":1}"}, /* deleted here */
        {"{\"a\":1,\"b\":1}", "{\"a\":1,\"b\":1}", "{\"a\":1}", "{\"a\":1}"}, /* deleted there */
        {"{}", "{\"n\":1}", "{\"m\":2}", "{\"n\":1,\"m\":2}"},             /* both added */
        {"{\"o\":{\"x\":1,\"y\":1}}", "{\"o\":{\"x\":2,\"y\":1}}", "{\"o\":{\"x\":1,\"y\":3,\"z\":0}}",
         "{\"o\":{\"x\":2,\"y\":3,\"z\":0}}"},                              /* nested */
        {"{\"o\":1}", "{\"o\":{\"k\":1}}", "{\"o\":{\"j\":2}}", "{\"o\":{\"k\":1,\"j\":2}}"},
        {"{\"l\":[1]}", "{\"l\":[1,2]}", "{\"l\":[0,1]}", "{\"l\":[1,2]}"}, /* arrays are values */
    };
    for (size_t i = 0; i < sizeof(three) / sizeof(three[0]); i++) {
        json_t *b = json_loads(three[i].base, 0, NULL), *l = json_loads(three[i].local, 0, NULL),
               *r = json_loads(three[i].remote, 0, NULL);
        assert_json(conflict_merge3(b, l, r), three[i].want);
        json_decref(b);
        json_decref(l);
        json_decref(r);
    }
    /* RFC 7396 appendix A examples */
    static const struct {
        const char *target, *patch, *want;
    } patches[] = {
        {"{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
        {"{\"a\":\"b\"}", "{\"a\":null}", "{}"},
        {"{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
        {"{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
        {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},
        {"{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}"},
    };
    for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
        json_t *t = json_loads(patches[i].target, JSON_DECODE_ANY, NULL), *p = json_loads(patches[i].patch, 0, NULL);
        assert_json(conflict_merge_patch(t, p), patches[i].want);
        json_decref(t);
        json_decref(p);
    }
    double t;
    assert_int_equal(time_parse_rfc3339("2026-11-22T03:49:25.5Z", &t), 0);
    assert_true(t == 1795319365.5);
    assert_int_equal(time_parse_rfc3339("2026-11-22T05:49:25+02:00", &t), 0);
    assert_true(t == 1795319365);
    assert_int_equal(time_parse_rfc3339("2026-11-22 03:49:25", &t), -1);
    assert_int_equal(time_parse_rfc3339("yesterday", &t), -1);
}

static void test_jsontext_numbers(void **state)
{
    json_t *j = json_loads("{\"a\":0.1,\"b\":1e-7,\"c\":3.0,\"d\":-0.30000000000000004,\"e\":12,"
                           "\"s\":\"q\\\"\\\\\\n\\u0001\",\"u\":\"\\u00e9\"}", 0, NULL);
    char *s = jsontext(j);
    assert_string_equal(s, "{\"a\":0.1,\"b\":1e-07,\"c\":3.0,\"d\":-0.30000000000000004,\"e\":12,"
                           "\"s\":\"q\\\"\\\\\\n\\u0001\",\"u\":\"\xc3\xa9\"}");
    json_t *back = json_loads(s, 0, NULL);
    assert_true(json_equal(j, back));
    json_decref(back);
    free(s);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_matches_table),
        cmocka_unit_test(test_every_route_has_a_handler_and_a_role),
        cmocka_unit_test(test_cursor_round_trip_and_garbage),
        cmocka_unit_test(test_validate_object),
        cmocka_unit_test(test_err_table_and_prefix),
        cmocka_unit_test(test_config_parsing),
        cmocka_unit_test(test_target_validation),
        cmocka_unit_test(test_retry_after_and_backoff),
        cmocka_unit_test(test_signature_matches_standard_webhooks),
        cmocka_unit_test(test_merges),
        cmocka_unit_test(test_jsontext_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
