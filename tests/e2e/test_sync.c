/* Connectivity, sync and conflicts against a real upstream that can go away and that holds
 * versioned JSON documents with ETags. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_sync"
static struct svc S;
static struct upstream_srv *US;
static PGconn *pg;
static char url[512], up_env[128];

static const char *const *env_with(const char *extra1, const char *extra2)
{
    static const char *env[8];
    int n = 0;
    env[n++] = up_env;
    env[n++] = "OFFLINEQ_WORKERS=4";
    env[n++] = "OFFLINEQ_CHECK_INTERVAL_S=1";
    env[n++] = "OFFLINEQ_BACKOFF_BASE_MS=100";
    env[n++] = "OFFLINEQ_BACKOFF_MAX_MS=200";
    if (extra1)
        env[n++] = extra1;
    if (extra2)
        env[n++] = extra2;
    env[n] = NULL;
    return env;
}

static int group_setup(void **state)
{
    US = us_start();
    snprintf(up_env, sizeof(up_env), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    return th_group_start(DB, env_with(NULL, NULL), &S, &pg, url, sizeof(url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    us_stop(US);
    return 0;
}

static void wait_network(const char *status, int timeout_ms);

/* Upstream up, the service online, no pass running, auto-sync on. */
static int reset(void **state)
{
    us_up(US);
    wait_network("online", 5000);
    for (int i = 0; i < 200; i++) {
        struct resp *s = th_http(&S, "GET", "/api/offline/sync/status", NULL, 0, NULL);
        bool idle = json_is_false(json_object_get(s->json, "is_syncing"));
        th_resp_free(s);
        if (idle)
            break;
        usleep(50000);
    }
    us_reset(US);
    struct resp *r = th_http(&S, "POST", "/api/offline/sync/start-auto", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    return 0;
}

static json_t *get_json(const char *path)
{
    struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    json_t *j = json_incref(r->json);
    th_resp_free(r);
    return j;
}

static void wait_network(const char *status, int timeout_ms)
{
    double until = th_now_ms() + timeout_ms;
    for (;;) {
        json_t *n = get_json("/api/offline/network-status");
        bool ok = strcmp(th_str(n, "status"), status) == 0;
        json_decref(n);
        if (ok)
            return;
        assert_true(th_now_ms() < until);
        usleep(50000);
    }
}

static void set_strategy(const char *s)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"strategy\":\"%s\"}", s);
    struct resp *r = th_json(&S, "POST", "/api/offline/sync/conflict-strategy", body);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "strategy"), s);
    th_resp_free(r);
}

/* ---- connectivity ---- */

static void test_offline_holds_work_and_drains_on_return(void **state)
{
    us_down(US);
    wait_network("offline", 5000);
    json_t *n = get_json("/api/offline/network-status");
    json_t *ep = json_array_get(json_object_get(n, "endpoints"), 0);
    assert_string_equal(th_str(ep, "url"), us_url(US));
    assert_true(json_is_false(json_object_get(ep, "reachable")));
    assert_non_null(th_str(ep, "error"));
    assert_non_null(th_str(n, "changed_at"));
    json_decref(n);
    char ids[5][37];
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/o/"
                 "%d\"},\"max_attempts\":1}",
                 i);
        th_enqueue(&S, body, ids[i]);
    }
    struct resp *r = th_http(&S, "POST", "/api/offline/sync", NULL, 0, NULL);
    th_assert_error(r, 503, "offline");
    th_resp_free(r);
    sleep(2); /* offline: they wait, no attempt is used (max_attempts 1 would fail them) */
    assert_string_equal(
        th_sql(pg, "SELECT count(*) FROM offline_operations WHERE id IN "
                   "(SELECT id FROM offline_operations WHERE payload->>'endpoint' LIKE '/o/%') "
                   "AND status = 'pending' AND retry_count = 0"),
        "5");
    double back = th_now_ms();
    us_up(US);
    for (int i = 0; i < 5; i++) {
        json_t *op = th_wait_op(&S, ids[i], "completed,failed", 10000);
        assert_string_equal(th_str(op, "status"), "completed");
        assert_int_equal(th_int(op, "retry_count"), 0);
        json_decref(op);
    }
    double ms = th_now_ms() - back;
    fprintf(stderr,
            "drained 5 operations %.0f ms after the upstream came back (probe interval 1 s)\n", ms);
    assert_true(ms < 2000 + 500); /* within two probe intervals */
}

/* A connection failure during execution re-checks at once: the network is down, the attempt
 * is not counted. With another endpoint up, the same failure is a normal retry. */
static void test_connect_failure_rechecks(void **state)
{
    char other[512];
    th_db_create(DB "_recheck", other, sizeof(other));
    struct upstream_srv *second = us_start();
    char urls[256];
    snprintf(urls, sizeof(urls), "OFFLINEQ_CHECK_URLS=%s", us_url(US));
    struct svc s;
    assert_int_equal(th_svc_start(&s, other, env_with("OFFLINEQ_CHECK_INTERVAL_S=300", urls), NULL),
                     0);
    us_down(US);
    char id[37];
    th_enqueue(
        &s,
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"max_attempts\":1}",
        id);
    double until = th_now_ms() + 5000;
    struct resp *r;
    for (;;) {
        r = th_http(&s, "GET", "/api/offline/network-status", NULL, 0, NULL);
        if (strcmp(th_str(r->json, "status"), "offline") == 0 || th_now_ms() > until)
            break;
        th_resp_free(r);
        usleep(50000);
    }
    assert_string_equal(th_str(r->json, "status"), "offline"); /* found without waiting 300 s */
    th_resp_free(r);
    PGconn *c = th_db_connect(other);
    char q[160];
    snprintf(q, sizeof(q),
             "SELECT status || ':' || retry_count FROM offline_operations WHERE id = '%s'", id);
    /* the worker that met the refusal releases it once the check says offline */
    for (int i = 0; i < 100 && strcmp(th_sql(c, q), "pending:0") != 0; i++)
        usleep(30000);
    assert_string_equal(th_sql(c, q), "pending:0");
    us_up(US);
    r = th_http(&s, "POST", "/api/offline/check-connectivity", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "status"), "online");
    th_resp_free(r);
    json_t *op = th_wait_op(&s, id, "completed,failed", 10000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* two endpoints, one down: that upstream's failure is an ordinary retry */
    char two[300], up2[300];
    snprintf(two, sizeof(two), "OFFLINEQ_CHECK_URLS=%s,%s", us_url(US), us_url(second));
    snprintf(up2, sizeof(up2), "OFFLINEQ_UPSTREAMS=default=%s,second=%s", us_url(US),
             us_url(second));
    const char *env2[] = {up2,
                          two,
                          "OFFLINEQ_WORKERS=2",
                          "OFFLINEQ_BACKOFF_BASE_MS=100",
                          "OFFLINEQ_BACKOFF_MAX_MS=100",
                          NULL};
    assert_int_equal(th_svc_start(&s, other, env2, NULL), 0);
    us_down(second);
    th_enqueue(&s,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
               "y\",\"upstream\":\"second\"},"
               "\"max_attempts\":3}",
               id);
    op = th_wait_op(&s, id, "failed", 10000);
    assert_string_equal(th_str(op, "status"), "failed");
    assert_int_equal(th_int(op, "retry_count"), 3);
    json_decref(op);
    r = th_http(&s, "GET", "/api/offline/network-status", NULL, 0, NULL);
    assert_string_equal(th_str(r->json, "status"), "online");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(c);
    us_stop(second);
    th_db_drop(DB "_recheck");
}

/* ---- sync ---- */

static void test_manual_sync_with_auto_sync_stopped(void **state)
{
    struct resp *r = th_http(&S, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_true(json_is_false(json_object_get(r->json, "auto_sync")));
    th_resp_free(r);
    us_script(US, "/m/bad", "400", 0);
    char ids[3][37];
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/m/1\"}}", ids[0]);
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/m/2\"}}", ids[1]);
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/m/bad\"}}",
               ids[2]);
    usleep(800000);
    assert_int_equal(us_count(US, "/m/"), 0); /* stopped: nothing is picked up */
    r = th_http(&S, "POST", "/api/offline/sync", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "processed"), 3);
    assert_int_equal(th_int(r->json, "succeeded"), 2);
    assert_int_equal(th_int(r->json, "failed"), 1);
    assert_int_equal(th_int(r->json, "conflicts"), 0);
    assert_int_equal(th_int(r->json, "retried"), 0);
    json_t *errs = json_object_get(r->json, "errors");
    assert_int_equal(json_array_size(errs), 1);
    assert_string_equal(th_str(json_array_get(errs, 0), "id"), ids[2]);
    assert_non_null(strstr(th_str(json_array_get(errs, 0), "error"), "HTTP 400"));
    assert_true(json_is_integer(json_object_get(r->json, "duration_ms")));
    th_resp_free(r);
    json_t *st = get_json("/api/offline/sync/status");
    assert_true(json_is_false(json_object_get(st, "is_syncing")));
    assert_true(json_is_null(json_object_get(st, "progress")));
    assert_int_equal(th_int(json_object_get(st, "last_result"), "succeeded"), 2);
    assert_non_null(th_str(st, "last_sync_at"));
    assert_string_equal(th_str(st, "network_status"), "online");
    json_decref(st);
}

static void test_sync_progress_timeout_and_in_progress(void **state)
{
    struct resp *r = th_http(&S, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    th_resp_free(r);
    us_script(US, "/p/", "201", 5);
    size_t cap = 1000 * 90 + 64, o = 0;
    char *batch = malloc(cap);
    o += (size_t)sprintf(batch, "{\"operations\":[");
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(
            batch + o, "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/p/%d\"}}",
            i ? "," : "", i);
    sprintf(batch + o, "]}");
    r = th_json(&S, "POST", "/api/offline/queue/batch", batch);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    free(batch);
    r = th_http(&S, "POST", "/api/offline/sync?timeout_s=0.2", NULL, 0, NULL);
    assert_int_equal(r->status, 202);
    assert_true(json_is_true(json_object_get(r->json, "is_syncing")));
    th_resp_free(r);
    r = th_http(&S, "POST", "/api/offline/sync", NULL, 0, NULL);
    th_assert_error(r, 409, "sync_in_progress");
    th_resp_free(r);
    int last_done = -1, samples = 0, rising = 0;
    for (;;) {
        json_t *st = get_json("/api/offline/sync/status");
        json_t *p = json_object_get(st, "progress");
        if (json_is_null(p)) {
            assert_int_equal(th_int(json_object_get(st, "last_result"), "processed"), 1000);
            json_decref(st);
            break;
        }
        assert_true(json_is_true(json_object_get(st, "is_syncing")));
        assert_int_equal(th_int(p, "total"), 1000);
        int done = (int)th_int(p, "done");
        assert_true(done >= last_done);
        rising += done > last_done;
        last_done = done;
        samples++;
        json_decref(st);
        usleep(100000);
    }
    fprintf(stderr, "progress sampled %d times, rose %d times\n", samples, rising);
    assert_true(rising >= 3);
    r = th_http(&S, "POST", "/api/offline/sync?timeout_s=abc", NULL, 0, NULL);
    th_assert_error(r, 400, "invalid_request");
    th_resp_free(r);
}

static void test_auto_sync_setting_survives_restart(void **state)
{
    struct resp *r = th_json(&S, "POST", "/api/offline/sync/start-auto", "{\"interval_s\":7}");
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "interval_s"), 7);
    th_resp_free(r);
    r = th_http(&S, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&S, SIGTERM), 0);
    /* OFFLINEQ_AUTO_SYNC only seeds: the stored "stopped" wins */
    assert_int_equal(th_svc_start(&S, url, env_with("OFFLINEQ_AUTO_SYNC=true", NULL), NULL), 0);
    json_t *st = get_json("/api/offline/sync/status");
    assert_true(json_is_false(json_object_get(st, "auto_sync")));
    assert_int_equal(th_int(st, "interval_s"), 7);
    json_decref(st);
    r = th_json(&S, "POST", "/api/offline/sync/start-auto", "{\"interval_s\":-1}");
    th_assert_error(r, 400, "invalid_request");
    th_resp_free(r);
}

static void *parked_request(void *arg)
{
    static const char *const wait5[] = {"Content-Type: application/json", "Prefer: wait=5", NULL};
    struct resp *k = th_http(
        &S, "POST", "/api/offline/queue",
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/parked\"}}", -1, wait5);
    *(long *)arg = k->status;
    th_resp_free(k);
    return NULL;
}

static void test_prefer_wait(void **state)
{
    static const char *const wait5[] = {"Content-Type: application/json", "Prefer: wait=5", NULL};
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/fast\"}}";
    struct resp *r = th_http(&S, "POST", "/api/offline/queue", body, -1, wait5);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "status"), "completed");
    assert_string_equal(th_header(r, "Preference-Applied"), "wait");
    assert_non_null(th_header(r, "Location"));
    th_resp_free(r);
    us_script(US, "/slow", "201", 3000);
    static const char *const wait1[] = {"Content-Type: application/json",
                                        "Prefer: respond-async, wait=1", NULL};
    double t0 = th_now_ms();
    r = th_http(&S, "POST", "/api/offline/queue",
                "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/slow\"}}", -1,
                wait1);
    double ms = th_now_ms() - t0;
    assert_int_equal(r->status, 202);
    assert_true(ms >= 900 && ms < 2500);
    assert_true(strcmp(th_str(r->json, "status"), "pending") == 0 ||
                strcmp(th_str(r->json, "status"), "in_progress") == 0);
    th_resp_free(r);
    r = th_json(&S, "POST", "/api/offline/queue", body);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    /* many parked requests hold no thread: 12 waits at once on a 4-thread server (threads
     * here, not forks: a fork of a threaded test process can deadlock in its allocator) */
    us_script(US, "/parked", "201", 400);
    pthread_t kids[12];
    long status[12];
    for (int i = 0; i < 12; i++)
        pthread_create(&kids[i], NULL, parked_request, &status[i]);
    for (int i = 0; i < 12; i++) {
        pthread_join(kids[i], NULL);
        assert_int_equal(status[i], 200);
    }
}

/* ---- conflicts ---- */

/* An experiment_sync edited from version 1 while the upstream moved on to version 2. */
static json_t *conflict_case(const char *path, const char *strategy_override,
                             const char *payload_extra, const char *remote_v2,
                             long long remote_modified)
{
    us_resource(US, path, "{\"name\":\"v1\"}", remote_modified);
    us_resource(US, path, remote_v2, remote_modified);
    char body[1024], id[37];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"%s\","
             "\"if_match\":\"\\\"v1\\\"\"%s}%s%s%s}",
             path, payload_extra, strategy_override ? ",\"conflict_strategy\":\"" : "",
             strategy_override ? strategy_override : "", strategy_override ? "\"" : "");
    th_enqueue(&S, body, id);
    return th_wait_op(&S, id, TH_SETTLED, 10000);
}

static void assert_doc(const char *path, const char *want_json)
{
    char *doc = us_resource_get(US, path, NULL);
    json_t *got = json_loads(doc, 0, NULL), *want = json_loads(want_json, 0, NULL);
    if (!json_equal(got, want))
        fprintf(stderr, "%s: got %s want %s\n", path, doc, want_json);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(doc);
}

static void test_local_wins(void **state)
{
    set_strategy("local_wins");
    json_t *op = conflict_case("/res/lw", NULL, ",\"data\":{\"name\":\"mine\",\"lr\":0.1}",
                               "{\"name\":\"theirs\"}", 1700000000);
    assert_string_equal(th_str(op, "status"), "completed");
    assert_string_equal(th_str(json_object_get(op, "result"), "resolution"), "local_wins");
    json_decref(op);
    assert_doc("/res/lw", "{\"name\":\"mine\",\"lr\":0.1}");
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 3); /* PUT 412, GET, PUT with the fresh ETag */
    assert_string_equal(r[0].method, "PUT");
    assert_int_equal(r[0].status, 412);
    assert_string_equal(r[1].method, "GET");
    assert_string_equal(us_header(&r[2], "if-match"), "\"v2\"");
    us_free_reqs(r, n);
    json_t *stats = get_json("/api/offline/queue/stats");
    assert_true(th_int(stats, "conflicts_resolved") >= 1);
    json_decref(stats);
}

static void test_remote_wins(void **state)
{
    set_strategy("remote_wins");
    json_t *op = conflict_case("/res/rw", NULL, ",\"data\":{\"name\":\"mine\"}",
                               "{\"name\":\"theirs\",\"n\":2}", 1700000000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_t *res = json_object_get(op, "result");
    assert_string_equal(th_str(res, "resolution"), "remote_wins");
    json_t *want = json_loads("{\"name\":\"theirs\",\"n\":2}", 0, NULL);
    assert_true(json_equal(json_object_get(res, "remote"), want));
    json_decref(want);
    json_decref(op);
    assert_doc("/res/rw", "{\"name\":\"theirs\",\"n\":2}");
    assert_int_equal(us_count(US, "/res/rw"), 2); /* the PUT that conflicted and the GET */
}

static void test_last_write_wins(void **state)
{
    set_strategy("last_write_wins");
    /* the remote was written long ago: the queued change (created now) is newer */
    json_t *op = conflict_case("/res/lww-local", NULL, ",\"data\":{\"name\":\"mine\"}",
                               "{\"name\":\"old\"}", 1000000000);
    assert_string_equal(th_str(json_object_get(op, "result"), "winner"), "local");
    json_decref(op);
    assert_doc("/res/lww-local", "{\"name\":\"mine\"}");
    /* the change says it was made in 2001, the remote one after: the remote wins */
    op = conflict_case("/res/lww-remote", NULL,
                       ",\"data\":{\"name\":\"mine\"},\"modified_at\":\"2001-01-01T00:00:00Z\"",
                       "{\"name\":\"newer\"}", (long long)time(NULL));
    assert_string_equal(th_str(op, "status"), "completed");
    assert_string_equal(th_str(json_object_get(op, "result"), "resolution"), "last_write_wins");
    assert_string_equal(th_str(json_object_get(op, "result"), "winner"), "remote");
    json_decref(op);
    assert_doc("/res/lww-remote", "{\"name\":\"newer\"}");
}

static void test_merge_three_way_nested_and_patch(void **state)
{
    set_strategy("merge");
    json_t *op =
        conflict_case("/res/merge3", NULL,
                      ",\"base\":{\"a\":1,\"b\":{\"x\":1,\"y\":1},\"c\":1,\"e\":1,\"gone\":1},"
                      "\"data\":{\"a\":2,\"b\":{\"x\":2,\"y\":1},\"c\":1,\"e\":2,\"gone\":1}",
                      "{\"a\":1,\"b\":{\"x\":1,\"y\":3},\"c\":5,\"d\":1,\"e\":3}", 1700000000);
    assert_string_equal(th_str(op, "status"), "completed");
    assert_string_equal(th_str(json_object_get(op, "result"), "resolution"), "merge");
    json_decref(op);
    /* a, b.x changed here; b.y, c, d there; e on both (ours); gone deleted there */
    assert_doc("/res/merge3", "{\"a\":2,\"b\":{\"x\":2,\"y\":3},\"c\":5,\"d\":1,\"e\":2}");
    op = conflict_case("/res/patch", NULL, ",\"data\":{\"a\":2,\"z\":null,\"o\":{\"k\":1}}",
                       "{\"a\":1,\"z\":5,\"q\":1,\"o\":{\"j\":0}}", 1700000000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    assert_doc("/res/patch", "{\"a\":2,\"q\":1,\"o\":{\"j\":0,\"k\":1}}");
}

static void test_per_operation_strategy_and_give_up(void **state)
{
    set_strategy("remote_wins");
    json_t *op = conflict_case("/res/override", "local_wins", ",\"data\":{\"name\":\"mine\"}",
                               "{\"name\":\"theirs\"}", 1700000000);
    assert_string_equal(th_str(op, "conflict_strategy"), "local_wins");
    assert_string_equal(th_str(json_object_get(op, "result"), "resolution"), "local_wins");
    json_decref(op);
    assert_doc("/res/override", "{\"name\":\"mine\"}");
    /* someone writes after every read: three rounds, then parked for an operator */
    us_resource(US, "/res/race", "{\"name\":\"v1\"}", 1700000000);
    us_resource(US, "/res/race", "{\"name\":\"v2\"}", 1700000000);
    us_resource_racing(US, "/res/race", true);
    char id[37];
    op = th_enqueue_settled(
        &S,
        "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"/res/race\","
        "\"if_match\":\"\\\"v1\\\"\",\"data\":{\"name\":\"mine\"}},\"conflict_strategy\":\"local_"
        "wins\"}",
        "conflict", 10000, id);
    assert_non_null(strstr(th_str(op, "error_message"), "after 3 resolution attempts"));
    json_decref(op);
    assert_int_equal(us_count(US, "/res/race"), 7); /* PUT, then 3 x (GET, PUT) */
}

static json_t *resolve(const char *id, const char *body, long want)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/offline/queue/%s/resolve", id);
    struct resp *r = th_json(&S, "POST", path, body);
    if (r->status != want)
        fprintf(stderr, "resolve %s -> %ld %s\n", body, r->status, r->body);
    assert_int_equal(r->status, want);
    json_t *j = json_incref(r->json);
    th_resp_free(r);
    return j;
}

static void test_manual_resolutions(void **state)
{
    set_strategy("manual");
    const char *choices[] = {"remote", "local", "merged"};
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/res/manual-%s", choices[i]);
        json_t *op = conflict_case(path, NULL, ",\"data\":{\"name\":\"mine\"}",
                                   "{\"name\":\"theirs\"}", 1700000000);
        assert_string_equal(th_str(op, "status"), "conflict");
        json_t *res = json_object_get(op, "result");
        assert_string_equal(th_str(res, "remote_etag"), "\"v2\"");
        assert_string_equal(th_str(json_object_get(res, "remote"), "name"), "theirs");
        char id[37];
        snprintf(id, sizeof(id), "%s", th_str(op, "id"));
        json_decref(op);
        char body[128];
        snprintf(body, sizeof(body), "{\"resolution\":\"%s\"%s}", choices[i],
                 i == 2 ? ",\"data\":{\"name\":\"both\",\"merged\":true}" : "");
        json_t *after = resolve(id, body, 200);
        json_decref(after);
        op = th_wait_op(&S, id, "completed,failed", 10000);
        assert_string_equal(th_str(op, "status"), "completed");
        char want[32];
        snprintf(want, sizeof(want), "manual_%s", choices[i]);
        assert_string_equal(th_str(json_object_get(op, "result"), "resolution"), want);
        json_decref(op);
        assert_doc(path, i == 0   ? "{\"name\":\"theirs\"}"
                         : i == 1 ? "{\"name\":\"mine\"}"
                                  : "{\"name\":\"both\",\"merged\":true}");
        /* not a conflict any more */
        json_t *again = resolve(id, "{\"resolution\":\"remote\"}", 409);
        json_decref(again);
    }
    json_t *e = resolve("00000000-0000-4000-8000-000000000000", "{\"resolution\":\"local\"}", 404);
    json_decref(e);
    e = resolve("00000000-0000-4000-8000-000000000000", "{\"resolution\":\"merged\"}", 400);
    json_decref(e);
    e = resolve("00000000-0000-4000-8000-000000000000", "{\"resolution\":\"mine\"}", 400);
    json_decref(e);
    struct resp *r =
        th_json(&S, "POST", "/api/offline/sync/conflict-strategy", "{\"strategy\":\"coin_flip\"}");
    th_assert_error(r, 400, "invalid_request");
    th_resp_free(r);
    json_t *g = get_json("/api/offline/sync/conflict-strategy");
    assert_string_equal(th_str(g, "strategy"), "manual");
    json_decref(g);
}

/* What the service's sessions have read of offline_operations with sequential scans. Read
 * with the service stopped and its sessions gone: a session reports its counts when it ends
 * (an idle one up to 10 s late). */
static void seq_reads(PGconn *db, long long *scans, long long *tuples)
{
    const char *others = "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                         "current_database() AND pid <> pg_backend_pid()";
    for (int i = 0; i < 100 && atoi(th_sql(db, others)) > 0; i++)
        usleep(100000);
    assert_string_equal(th_sql(db, others), "0"); /* else their counts are not in yet */
    th_sql(db, "SELECT pg_stat_clear_snapshot()");
    *scans = atoll(th_sql(db, "SELECT seq_scan FROM pg_stat_user_tables "
                              "WHERE relname = 'offline_operations'"));
    *tuples = atoll(th_sql(db, "SELECT seq_tup_read FROM pg_stat_user_tables "
                               "WHERE relname = 'offline_operations'"));
}

#define SCALE_WAITING 20000

/* The group checks of a claim, a sync pass's snapshot and a batch enqueue read the group's
 * first live operation from its index, whatever waits elsewhere: 20,000 operations wait behind
 * a group head in conflict, stored newest batch first (as rows land after a vacuum), and a
 * batch of 100 operations of new groups is enqueued and synced. Before, the batch scanned the
 * table once per operation (a NOT EXISTS planned as a scan that stops at a match: a new group
 * has none), and the snapshot scanned it once per waiting operation from its start, past the
 * newer batches: about 200,000,000 rows read (a full make bench run's pass over 1,000,000 of
 * them ran 55 minutes). Counted in PostgreSQL's own statistics, not timed. */
static void test_group_checks_read_the_index(void **state)
{
    (void)state;
    char u2[512];
    th_db_create(DB "_scale", u2, sizeof(u2));
    struct svc s2;
    const char *const *env = env_with("OFFLINEQ_POLL_MS=60000", NULL);
    assert_int_equal(th_svc_start(&s2, u2, env, NULL), 0);
    struct resp *r = th_http(&s2, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    PGconn *fill = th_db_connect(u2);
    th_sqlf(fill,
            "INSERT INTO offline_operations (seq, operation_type, payload, group_key, status, "
            "  group_held) OVERRIDING SYSTEM VALUE "
            "SELECT s, 'api_call', jsonb_build_object('endpoint', '/busy/' || s), 'busy', "
            "  CASE WHEN s = 1000 THEN 'conflict' ELSE 'pending' END, s > 1000 "
            "FROM (SELECT b * 100 + j AS s FROM generate_series(10, %d) b, "
            "      generate_series(0, 99) j ORDER BY b DESC, j) x",
            SCALE_WAITING / 100 + 9);
    th_sql(fill, "SELECT setval(pg_get_serial_sequence('offline_operations', 'seq'), "
                 "(SELECT max(seq) FROM offline_operations))");
    th_sql(fill, "VACUUM ANALYZE offline_operations");
    PQfinish(fill);
    PGconn *db = th_db_connect(u2);
    long long scans0, tuples0, scans1, tuples1;
    seq_reads(db, &scans0, &tuples0);

    assert_int_equal(th_svc_start(&s2, u2, env, NULL), 0);
    char body[100 * 96 + 32];
    int len = snprintf(body, sizeof(body), "{\"operations\":[");
    for (int i = 0; i < 100; i++)
        len += snprintf(body + len, sizeof(body) - (size_t)len,
                        "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":"
                        "\"/scale/%d\"},\"group_key\":\"new-%d\"}",
                        i ? "," : "", i, i);
    snprintf(body + len, sizeof(body) - (size_t)len, "]}");
    r = th_json(&s2, "POST", "/api/offline/queue/batch", body);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    r = th_http(&s2, "POST", "/api/offline/sync", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "processed"), 100);
    assert_int_equal(th_int(r->json, "succeeded"), 100);
    th_resp_free(r);
    assert_int_equal(us_count(US, "/scale/"), 100);
    assert_int_equal(us_count(US, "/busy/"), 0);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    seq_reads(db, &scans1, &tuples1);
    fprintf(stderr, "sequential scans %lld, rows read %lld\n", scans1 - scans0, tuples1 - tuples0);
    assert_true(scans1 - scans0 < 50);
    assert_true(tuples1 - tuples0 < 10LL * SCALE_WAITING);
    assert_string_equal(th_sql(db, "SELECT count(*) FROM offline_operations "
                                   "WHERE group_key = 'busy' AND status = 'pending'"),
                        "19999");
    PQfinish(db);
    th_db_drop(DB "_scale");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_offline_holds_work_and_drains_on_return, reset),
        cmocka_unit_test_setup(test_connect_failure_rechecks, reset),
        cmocka_unit_test_setup(test_manual_sync_with_auto_sync_stopped, reset),
        cmocka_unit_test_setup(test_sync_progress_timeout_and_in_progress, reset),
        cmocka_unit_test_setup(test_auto_sync_setting_survives_restart, reset),
        cmocka_unit_test_setup(test_prefer_wait, reset),
        cmocka_unit_test_setup(test_local_wins, reset),
        cmocka_unit_test_setup(test_remote_wins, reset),
        cmocka_unit_test_setup(test_last_write_wins, reset),
        cmocka_unit_test_setup(test_merge_three_way_nested_and_patch, reset),
        cmocka_unit_test_setup(test_per_operation_strategy_and_give_up, reset),
        cmocka_unit_test_setup(test_manual_resolutions, reset),
        cmocka_unit_test_setup(test_group_checks_read_the_index, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
