/* SIGHUP reloads OFFLINEQ_API_KEYS_FILE and OFFLINEQ_UPSTREAMS_FILE at once (issue 14 point 7):
 * new keys and upstreams are in force, old keys are not, and a file that does not parse keeps
 * the running configuration and says why. Before, SIGHUP killed the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_reload"
#define OLD_ADMIN "old-admin-key-5b1c0e"
#define NEW_ADMIN "new-admin-key-9d27aa"
#define READER "reader-key-31f0c2"

static struct svc S;
static PGconn *PG;
static struct upstream_srv *US;
static char dir[] = "/tmp/oq-reload-XXXXXX";
static char keys_path[300], ups_path[300];

static void write_file(const char *path, const char *text)
{
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0); /* as an editor or a config tool replaces it */
}

static void write_upstreams(const char *fmt)
{
    char text[1024];
    snprintf(text, sizeof(text), fmt, us_url(US), us_url(US));
    write_file(ups_path, text);
}

/* How often the log says msg. */
static int log_count(const char *msg)
{
    char *log = th_svc_log(&S);
    int n = 0;
    for (const char *p = log; (p = strstr(p, msg)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* Sends SIGHUP and waits for the reload's line (msg) to appear once more. */
static void reload(const char *msg)
{
    int before = log_count(msg);
    assert_int_equal(kill(S.pid, SIGHUP), 0);
    for (int i = 0; i < 200 && log_count(msg) == before; i++)
        usleep(10 * 1000);
    assert_int_equal(log_count(msg), before + 1);
}

static long get_as(const char *key)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    struct resp *r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, h);
    long st = r->status;
    th_resp_free(r);
    return st;
}

static struct resp *enqueue_as(const char *key, const char *body)
{
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    return th_http(&S, "POST", "/api/offline/queue", body, -1, h);
}

static int group_setup(void **state)
{
    US = us_start();
    assert_non_null(mkdtemp(dir));
    snprintf(keys_path, sizeof(keys_path), "%s/keys", dir);
    snprintf(ups_path, sizeof(ups_path), "%s/upstreams.json", dir);
    write_file(keys_path, OLD_ADMIN ":admin," READER ":read\n");
    write_upstreams("{\"default\":{\"base_url\":\"%s\"}}");
    static char keys_env[340], ups_env[340];
    snprintf(keys_env, sizeof(keys_env), "OFFLINEQ_API_KEYS_FILE=%s", keys_path);
    snprintf(ups_env, sizeof(ups_env), "OFFLINEQ_UPSTREAMS_FILE=%s", ups_path);
    const char *env[] = {keys_env,
                         ups_env,
                         "OFFLINEQ_WORKERS=2",
                         "OFFLINEQ_POLL_MS=100",
                         "OFFLINEQ_BACKOFF_BASE_MS=50",
                         "OFFLINEQ_BACKOFF_MAX_MS=100",
                         NULL};
    return th_group_start(DB, env, &S, &PG, NULL, 0);
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, PG);
    us_stop(US);
    unlink(keys_path);
    unlink(ups_path);
    rmdir(dir);
    return 0;
}

static void test_new_keys_replace_the_old_ones(void **state)
{
    assert_int_equal(get_as(OLD_ADMIN), 200);
    assert_int_equal(get_as(NEW_ADMIN), 401);
    write_file(keys_path, NEW_ADMIN ":admin," READER ":read\n");
    reload("\"msg\":\"configuration reloaded\"");
    assert_int_equal(get_as(NEW_ADMIN), 200);
    assert_int_equal(get_as(READER), 200);
    assert_int_equal(get_as(OLD_ADMIN), 401);
    struct resp *r = enqueue_as(READER, "{\"operation_type\":\"api_call\","
                                        "\"payload\":{\"endpoint\":\"/x\"}}");
    th_assert_error(r, 403, "forbidden"); /* roles come with the new keys */
    th_resp_free(r);
    char *log = th_svc_log(&S);
    assert_non_null(strstr(log, "\"event\":\"reloaded\",\"api_keys\":2,\"upstreams\":1"));
    assert_null(strstr(log, NEW_ADMIN)); /* keys never reach the log */
    free(log);
}

static void test_a_bad_file_keeps_what_runs(void **state)
{
    static const struct {
        const char *keys;
        const char *upstreams;
        const char *reason;
    } cases[] = {
        {"no-role-here\n", NULL, "OFFLINEQ_API_KEYS: entry 1 must be key:read|write|admin"},
        {"\n", NULL, "OFFLINEQ_API_KEYS_FILE: holds no key"},
        {NULL, "{\"default\":{\"base_url\":", "OFFLINEQ_UPSTREAMS_FILE"},
        {NULL, "{\"default\":{\"base_url\":\"%s\",\"max_concurrency\":-1}}", "max_concurrency"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(keys_path, NEW_ADMIN ":admin," READER ":read\n");
        write_upstreams("{\"default\":{\"base_url\":\"%s\"}}");
        if (cases[i].keys)
            write_file(keys_path, cases[i].keys);
        if (cases[i].upstreams)
            write_upstreams(cases[i].upstreams);
        reload("\"msg\":\"reload refused: the running configuration stays\"");
        char *log = th_svc_log(&S);
        const char *last = log, *p;
        while ((p = strstr(last + 1, "\"event\":\"reload_failed\"")) != NULL)
            last = p;
        if (strstr(last, cases[i].reason) == NULL)
            fail_msg("case %zu: no \"%s\" in %.300s", i, cases[i].reason, last);
        assert_null(strstr(log, "no-role-here"));
        free(log);
        assert_int_equal(get_as(NEW_ADMIN), 200); /* still the keys in force */
        assert_int_equal(get_as(OLD_ADMIN), 401);
    }
    write_file(keys_path, NEW_ADMIN ":admin," READER ":read\n");
    write_upstreams("{\"default\":{\"base_url\":\"%s\"}}");
}

static void test_upstreams_added_and_changed(void **state)
{
    us_reset(US);
    struct resp *r = enqueue_as(NEW_ADMIN, "{\"operation_type\":\"api_call\",\"payload\":"
                                           "{\"upstream\":\"second\",\"endpoint\":\"/a\"}}");
    th_assert_invalid(r, "payload.upstream");
    th_resp_free(r);
    write_upstreams("{\"default\":{\"base_url\":\"%s\",\"headers\":{\"X-Generation\":\"2\"}},"
                    "\"second\":{\"base_url\":\"%s/second\"}}");
    reload("\"msg\":\"configuration reloaded\"");
    r = enqueue_as(NEW_ADMIN, "{\"operation_type\":\"api_call\",\"payload\":"
                              "{\"upstream\":\"second\",\"endpoint\":\"/a\"}}");
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    r = enqueue_as(NEW_ADMIN,
                   "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/b\"}}");
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    assert_int_equal(us_wait_count(US, NULL, 2, 10000), 2);
    int n;
    struct us_req *reqs = us_requests(US, &n);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        if (strcmp(reqs[i].path, "/second/a") == 0) {
            assert_null(us_header(&reqs[i], "x-generation"));
        } else {
            assert_string_equal(reqs[i].path, "/b");
            assert_string_equal(us_header(&reqs[i], "x-generation"), "2");
        }
    }
    us_free_reqs(reqs, n);
    static const char *const admin[] = {"Authorization: Bearer " NEW_ADMIN, NULL};
    r = th_http(&S, "GET", "/api/offline/upstreams", NULL, 0, admin);
    assert_int_equal(r->status, 200);
    assert_int_equal(json_array_size(json_object_get(r->json, "upstreams")), 2);
    th_resp_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_keys_replace_the_old_ones),
        cmocka_unit_test(test_a_bad_file_keeps_what_runs),
        cmocka_unit_test(test_upstreams_added_and_changed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
