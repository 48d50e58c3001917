/* Operations survive a restart of the service intact, payload byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_restart"

static const char *const payloads[] = {
    "{\"endpoint\":\"/a\",\"data\":{\"text\":\"line1\\nline2\\t\\\"quoted\\\" \\\\ "
    "back\",\"emoji\":\"\\ud83d\\ude80\"}}",
    "{\"endpoint\":\"/"
    "b?q=1&r=%20\",\"method\":\"DELETE\",\"data\":[1,-2,3.25,1e-7,12345678901234567,true,false,"
    "null]}",
    "{\"endpoint\":\"/"
    "c\",\"data\":{\"nested\":{\"deeper\":{\"deepest\":[{\"k\":\"v\"}]}},\"sql\":\"'; DROP TABLE "
    "offline_operations; --\"}}",
    "{\"endpoint\":\"/d\",\"headers\":{\"X-Trace\":\"abc\"},\"data\":\"\\u00e9\\u4e2d\\u0416\"}",
};

static void test_operations_survive_restart(void **state)
{
    char url[512];
    th_db_create(DB, url, sizeof(url));
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    size_t n = sizeof(payloads) / sizeof(payloads[0]);
    char ids[4][37];
    char *before[4];
    for (size_t i = 0; i < n; i++) {
        char body[2048];
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":%s,\"priority\":%zu,"
                 "\"dedup_key\":\"restart-%zu\"}",
                 payloads[i], i, i);
        struct resp *r = th_json(&s, "POST", "/api/offline/queue", body);
        assert_int_equal(r->status, 201);
        json_t *sent = json_loads(payloads[i], 0, NULL);
        assert_true(json_equal(json_object_get(r->json, "payload"), sent)); /* what was sent */
        json_decref(sent);
        snprintf(ids[i], 37, "%s", th_str(r->json, "id"));
        th_resp_free(r);
        char path[96];
        snprintf(path, sizeof(path), "/api/offline/queue/%s", ids[i]);
        r = th_http(&s, "GET", path, NULL, 0, NULL);
        before[i] = strdup(r->body);
        th_resp_free(r);
    }
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        char path[96];
        snprintf(path, sizeof(path), "/api/offline/queue/%s", ids[i]);
        struct resp *r = th_http(&s, "GET", path, NULL, 0, NULL);
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body, before[i]); /* the whole operation, byte for byte */
        th_resp_free(r);
        free(before[i]);
    }
    /* dedup keys are still held after the restart */
    struct resp *r = th_json(&s, "POST", "/api/offline/queue",
                             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                             "z\"},\"dedup_key\":\"restart-2\"}");
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "id"), ids[2]);
    th_resp_free(r);
    PGconn *pg = th_db_connect(url);
    /* each embedded migration once: not re-applied */
    assert_string_equal(
        th_sql(pg, "SELECT count(*) = count(DISTINCT version) AND count(*) = max(version) "
                   "AND count(*) >= 3 FROM schema_migrations"),
        "t");
    PQfinish(pg);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    th_db_drop(DB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations_survive_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
