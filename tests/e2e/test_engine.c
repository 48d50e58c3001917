/* The execution engine against a real local upstream: what each handler sends, retries,
 * Retry-After, permanent failure, attempts, group order, dependencies, expiry, batching,
 * files. */
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

#define DB "e2e_engine"
static struct svc S;
static struct upstream_srv *US;
static PGconn *pg;
static char url[512];
static struct th_upstreams U;

static int group_setup(void **state)
{
    US = us_start();
    th_upstreams_write(&U, "engine",
                       "{\"default\":{\"base_url\":\"%s/"
                       "api\",\"headers\":{\"Authorization\":\"Bearer up-token\"}},"
                       "\"other\":{\"base_url\":\"%s/other\"}}",
                       us_url(US), us_url(US));
    const char *env[] = {U.env,
                         "OFFLINEQ_WORKERS=8",
                         "OFFLINEQ_BACKOFF_BASE_MS=100",
                         "OFFLINEQ_BACKOFF_MAX_MS=2000",
                         "OFFLINEQ_POLL_MS=200",
                         NULL};
    return th_group_start(DB, env, &S, &pg, url, sizeof(url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    us_stop(US);
    th_upstreams_remove(&U);
    return 0;
}

static int reset(void **state)
{
    us_reset(US);
    return 0;
}

static json_t *done(const char *id)
{
    return th_wait_op(&S, id, TH_SETTLED, 20000);
}

/* Enqueues body and asserts it settles as want within 20 s; returns the Operation. */
static json_t *settled(const char *body, const char *want, char id[37])
{
    return th_enqueue_settled(&S, body, want, 20000, id);
}

/* Enqueues body, asserts it completes and reached the upstream in exactly one request; returns
 * the recorded requests (*n of them: free with us_free_reqs). */
static struct us_req *delivered_once(const char *body, char id[37], int *n)
{
    json_decref(settled(body, "completed", id));
    struct us_req *r = us_requests(US, n);
    assert_int_equal(*n, 1);
    return r;
}

static void test_api_call_delivers_exactly(void **state)
{
    char id[37];
    json_t *op = settled(
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/items/7?view=full&x=%20\","
        "\"method\":\"PATCH\",\"data\":{\"name\":\"Widget\",\"tags\":[\"a\",\"b\"],\"n\":1.5,"
        "\"ratio\":0.1},"
        "\"headers\":{\"X-Trace\":\"t-1\",\"Authorization\":\"Bearer from-payload\"}}}",
        "completed", id);
    assert_non_null(th_str(op, "completed_at"));
    assert_int_equal(th_int(op, "retry_count"), 0);
    json_t *want = json_loads("{\"status_code\":201,\"body\":{\"ok\":true}}", 0, NULL);
    assert_true(json_equal(json_object_get(op, "result"), want));
    json_decref(want);
    json_decref(op);
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 1);
    assert_string_equal(r[0].method, "PATCH");
    assert_string_equal(r[0].path, "/api/items/7?view=full&x= ");
    assert_string_equal(us_header(&r[0], "idempotency-key"), id);
    assert_string_equal(us_header(&r[0], "content-type"), "application/json");
    assert_string_equal(us_header(&r[0], "x-trace"), "t-1");
    /* the configured upstream header wins over the payload's */
    assert_string_equal(us_header(&r[0], "authorization"), "Bearer up-token");
    /* compact JSON, numbers as written; keys in PostgreSQL jsonb order (shorter keys first) */
    assert_string_equal(r[0].body,
                        "{\"n\":1.5,\"name\":\"Widget\",\"tags\":[\"a\",\"b\"],\"ratio\":0.1}");
    us_free_reqs(r, n);

    /* GET without a body, to another upstream, and a non-JSON answer kept as text */
    struct us_rule text = {.path = "/other/text"};
    snprintf(text.body, sizeof(text.body), "plain words");
    us_rule(US, &text);
    op = settled(
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/text\",\"method\":\"GET\","
        "\"upstream\":\"other\"}}",
        "completed", id);
    assert_string_equal(th_str(json_object_get(op, "result"), "body"), "plain words");
    json_decref(op);
    r = us_requests(US, &n);
    assert_int_equal(n, 2);
    assert_string_equal(r[1].method, "GET");
    assert_string_equal(r[1].path, "/other/text");
    assert_int_equal(r[1].body_len, 0);
    assert_null(us_header(&r[1], "authorization"));
    us_free_reqs(r, n);
}

static void test_experiment_sync_puts_with_if_match(void **state)
{
    char id[37];
    int n;
    struct us_req *r = delivered_once(
        "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"/experiments/e1\","
        "\"data\":{\"lr\":0.01,\"epochs\":3},\"if_match\":\"\\\"v7\\\"\"}}",
        id, &n);
    assert_string_equal(r[0].method, "PUT");
    assert_string_equal(r[0].path, "/api/experiments/e1");
    assert_string_equal(us_header(&r[0], "if-match"), "\"v7\"");
    assert_string_equal(r[0].body, "{\"lr\":0.01,\"epochs\":3}");
    us_free_reqs(r, n);
}

static void test_retries_with_growing_delays(void **state)
{
    us_script(US, "/api/flaky", "503,500,502,201", 0);
    char id[37];
    json_t *op = settled("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                         "flaky\"},\"max_attempts\":5}",
                         "completed", id);
    assert_int_equal(th_int(op, "retry_count"), 3);
    json_decref(op);
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++)
        assert_string_equal(us_header(&r[i], "idempotency-key"), id); /* the same key each time */
    /* full jitter: gap k is at most base * 2^(k-1) (100, 200, 400 ms) plus the poll */
    for (int i = 1; i < n; i++) {
        double gap = r[i].start_ms - r[i - 1].end_ms;
        double cap = 100.0 * (1 << (i - 1));
        if (gap > cap + 250)
            fprintf(stderr, "gap %d: %.0f ms > cap %.0f\n", i, gap, cap);
        assert_true(gap <= cap + 250);
    }
    us_free_reqs(r, n);
}

static void test_retry_after_is_honoured(void **state)
{
    struct us_rule busy = {.path = "/api/busy", .statuses = {429, 201}, .n_statuses = 2};
    snprintf(busy.retry_after, sizeof(busy.retry_after), "2");
    us_rule(US, &busy);
    char id[37];
    json_t *op = settled("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/busy\"}}",
                         "completed", id);
    assert_int_equal(th_int(op, "retry_count"), 1);
    json_decref(op);
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 2);
    double gap = r[1].start_ms - r[0].end_ms;
    assert_true(gap >= 1900 && gap < 3500); /* Retry-After: 2, not the 100 ms backoff */
    us_free_reqs(r, n);
}

static void test_permanent_failure_and_exhausted_attempts(void **state)
{
    us_script(US, "/api/bad", "400", 0);
    us_script(US, "/api/down", "500", 0);
    char bad[37], down[37];
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/bad\"}}", bad);
    th_enqueue(
        &S,
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/down\"},\"max_attempts\":3}",
        down);
    json_t *op = done(bad);
    assert_string_equal(th_str(op, "status"), "failed");
    assert_int_equal(th_int(op, "retry_count"), 1);
    assert_non_null(strstr(th_str(op, "error_message"), "HTTP 400"));
    assert_int_equal(th_int(json_object_get(op, "result"), "status_code"), 400);
    json_decref(op);
    op = done(down);
    assert_string_equal(th_str(op, "status"), "failed");
    assert_int_equal(th_int(op, "retry_count"), 3); /* max_attempts 3 = three attempts in all */
    assert_non_null(strstr(th_str(op, "error_message"), "HTTP 500"));
    json_decref(op);
    assert_int_equal(us_count(US, "/api/bad"), 1);
    assert_int_equal(us_count(US, "/api/down"), 3);
    char *log = th_svc_log(&S);
    assert_non_null(strstr(log, "\"event\":\"operation.failed\""));
    free(log);
}

static void test_conflict_status(void **state)
{
    us_script(US, "/api/doc", "409", 0);
    char id[37];
    json_t *op = settled("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                         "doc\",\"method\":\"PUT\",\"data\":{}}}",
                         "conflict", id);
    assert_int_equal(th_int(json_object_get(op, "result"), "status_code"), 409);
    json_decref(op);
}

/* The claims s's workers ran so far, whatever they took. */
static long long claims_run(const struct svc *s)
{
    return th_metric(s, "offlineq_worker_claims_total{result=\"taken\"}") +
           th_metric(s, "offlineq_worker_claims_total{result=\"empty\"}") +
           th_metric(s, "offlineq_worker_claims_total{result=\"error\"}");
}

/* The claims once they stopped: unchanged for a second (a wake-up's claims run within ms of
 * each other, under valgrind within tens of ms). */
static long long claims_settled(const struct svc *s)
{
    long long last = claims_run(s), now;
    for (int i = 0; i < 60; i++) {
        usleep(1000000);
        if ((now = claims_run(s)) == last)
            return now;
        last = now;
    }
    fail_msg("the workers kept claiming: %lld claims", last);
    return last;
}

/* One enqueue into an idle pool of 8 is claimed without every worker running a claim: before,
 * each enqueue (and its own NOTIFY, heard back by the listener) woke all idle workers, and
 * every one of them ran the claim for the one operation (23 claims here). Now one worker is
 * woken, and a claim that came back full wakes the next (about 7 here: the first claims of a
 * pool ask for one operation, so they come back full). Counted by the service's own
 * offlineq_worker_claims_total, after the start's claims stopped: the first version of this
 * test read pg_stat_user_indexes, which a backend reports up to 10 s late, and a valgrind run's
 * start claims fell into the count (14). */
static void test_one_enqueue_wakes_one_worker(void **state)
{
    (void)state;
    char u2[512];
    th_db_create(DB "_wake", u2, sizeof(u2));
    const char *env[] = {U.env, "OFFLINEQ_WORKERS=8", "OFFLINEQ_POLL_MS=60000", NULL};
    struct svc s2;
    assert_int_equal(th_svc_start(&s2, u2, env, NULL), 0);
    long long before = claims_settled(&s2);
    char id[37];
    th_enqueue(&s2, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/wake\"}}", id);
    json_t *op = th_wait_op(&s2, id, TH_SETTLED, 20000);
    assert_string_equal(json_string_value(json_object_get(op, "status")), "completed");
    json_decref(op);
    long long claims = claims_settled(&s2) - before;
    if (claims > 10)
        fprintf(stderr, "one enqueue made %lld claims\n", claims);
    assert_true(claims >= 1 && claims <= 10);
    assert_true(th_metric(&s2, "offlineq_worker_claims_total{result=\"taken\"}") >= 1);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    th_db_drop(DB "_wake");
}

/* 8 workers, 3 groups of 10 with mixed priorities: each group arrives in enqueue order and
 * never two of a group at once. */
static void test_group_order_under_8_workers(void **state)
{
    us_script(US, "/api/g/", "201", 15);
    char ids[30][37];
    for (int i = 0; i < 30; i++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/g/%d/%d\"},"
                 "\"group_key\":\"entity-%d\",\"priority\":%d}",
                 i % 3, i / 3, i % 3, (i * 7) % 11 - 5);
        th_enqueue(&S, body, ids[i]);
    }
    for (int i = 0; i < 30; i++)
        json_decref(done(ids[i]));
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 30);
    for (int g = 0; g < 3; g++) {
        int expect = 0;
        double last_end = 0;
        for (int i = 0; i < n; i++) {
            int rg, k;
            if (sscanf(r[i].path, "/api/g/%d/%d", &rg, &k) != 2 || rg != g)
                continue;
            assert_int_equal(k, expect++);
            assert_true(r[i].start_ms >= last_end); /* one at a time */
            last_end = r[i].end_ms;
        }
        assert_int_equal(expect, 10);
    }
    us_free_reqs(r, n);
}

/* The janitor's release of a group head left held by a raced enqueue never waits on a row
 * lock: a head locked by someone else (an operator's DELETE, a claim) is skipped until the next
 * round, and the other heads are released meanwhile. Before, the janitor's UPDATE waited on the
 * locked head with the others locked: a harness cleanup's DELETE of every operation deadlocked
 * with it (a CI run's e2e_test_security_json). */
static void test_group_release_skips_locked_heads(void **state)
{
    char a[37], b[37];
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/held/a\"},"
               "\"group_key\":\"held-a\",\"delay_s\":3600}",
               a);
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/held/b\"},"
               "\"group_key\":\"held-b\",\"delay_s\":3600}",
               b);
    th_sqlf(pg, "UPDATE offline_operations SET group_held = true WHERE id IN ('%s', '%s')", a, b);
    PGconn *locker = th_db_connect(url);
    th_sql(locker, "BEGIN");
    th_sqlf(locker, "SELECT 1 FROM offline_operations WHERE id = '%s' FOR UPDATE", a);
    bool released = false, waited = false;
    for (int i = 0; i < 90 && !released; i++) { /* the chore runs every 5 s */
        usleep(100 * 1000);
        waited = waited || strcmp(th_sql(pg, "SELECT count(*) FROM pg_stat_activity "
                                             "WHERE wait_event_type = 'Lock' "
                                             "AND query LIKE '%group_held = false%'"),
                                  "0") != 0;
        released =
            strcmp(th_sqlf(pg, "SELECT group_held FROM offline_operations WHERE id = '%s'", b),
                   "f") == 0;
    }
    bool a_held =
        strcmp(th_sqlf(pg, "SELECT group_held FROM offline_operations WHERE id = '%s'", a), "t") ==
        0;
    th_sql(locker, "COMMIT"); /* before any assert: a failed one must not leave the lock held */
    PQfinish(locker);
    assert_false(waited);
    assert_true(released);
    assert_true(a_held);
    for (int i = 0; i < 90; i++) {
        usleep(100 * 1000);
        if (strcmp(th_sqlf(pg, "SELECT group_held FROM offline_operations WHERE id = '%s'", a),
                   "f") == 0)
            break;
    }
    assert_string_equal(th_sqlf(pg, "SELECT group_held FROM offline_operations WHERE id = '%s'", a),
                        "f");
    th_sqlf(pg, "DELETE FROM offline_operations WHERE id IN ('%s', '%s')", a, b);
}

static void test_depends_on(void **state)
{
    us_script(US, "/api/slow-parent", "201", 300);
    us_script(US, "/api/bad-parent", "400", 0);
    char parent[37], child[37], bad[37], orphan[37], body[512];
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/slow-parent\"}}",
               parent);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/child\"},"
             "\"depends_on\":[\"%s\"],\"priority\":100}",
             parent);
    th_enqueue(&S, body, child);
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/bad-parent\"}}",
               bad);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/orphan\"},"
             "\"depends_on\":[\"%s\",\"%s\"]}",
             parent, bad);
    th_enqueue(&S, body, orphan);
    json_t *op = done(child);
    assert_string_equal(th_str(op, "status"), "completed");
    assert_string_equal(th_str(json_array_get(json_object_get(op, "depends_on"), 0), "") ?: parent,
                        parent);
    json_decref(op);
    op = done(orphan);
    assert_string_equal(th_str(op, "status"), "failed");
    char want[96];
    snprintf(want, sizeof(want), "dependency %s failed", bad);
    assert_string_equal(th_str(op, "error_message"), want);
    json_decref(op);
    int n;
    struct us_req *r = us_requests(US, &n);
    double parent_end = 0, child_start = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(r[i].path, "/api/slow-parent") == 0)
            parent_end = r[i].end_ms;
        if (strcmp(r[i].path, "/api/child") == 0)
            child_start = r[i].start_ms;
        assert_string_not_equal(r[i].path, "/api/orphan");
    }
    assert_true(parent_end > 0 && child_start >= parent_end);
    us_free_reqs(r, n);
    /* unknown dependencies are refused at enqueue */
    th_assert_enqueue_refused(&S,
                              "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},"
                              "\"depends_on\":[\"00000000-0000-4000-8000-000000000000\"]}",
                              "depends_on");
}

static void test_expiry(void **state)
{
    char id[37];
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/too-late\"},"
               "\"delay_s\":3,\"expires_in_s\":1}",
               id);
    json_t *op = th_wait_op(&S, id, "failed,completed", 8000);
    assert_string_equal(th_str(op, "status"), "failed");
    assert_true(strncmp(th_str(op, "error_message"), "expired", 7) == 0);
    assert_non_null(th_str(op, "expires_at"));
    json_decref(op);
    sleep(3);
    assert_int_equal(us_count(US, "/api/too-late"), 0);
}

static void test_max_retry_duration(void **state)
{
    us_script(US, "/api/window", "503", 0);
    char id[37];
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/window\"},"
               "\"max_attempts\":1000,\"max_retry_duration_s\":1}",
               id);
    json_t *op = th_wait_op(&S, id, "failed", 10000);
    assert_string_equal(th_str(op, "status"), "failed");
    assert_true(strncmp(th_str(op, "error_message"), "retry window of 1 s exhausted", 29) == 0);
    assert_int_equal(th_int(op, "max_retry_duration_s"), 1);
    json_decref(op);
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_true(n >= 2);
    assert_true(r[n - 1].start_ms - r[0].start_ms <= 1100); /* none started past the window */
    us_free_reqs(r, n);
}

/* A binary file round-trips byte for byte inside multipart/form-data. */
static const char *find_part(const struct us_req *r, const char *name, size_t *len)
{
    const char *ct = us_header(r, "content-type");
    const char *b = strstr(ct, "boundary=");
    assert_non_null(b);
    char delim[128];
    snprintf(delim, sizeof(delim), "--%s", b + 9);
    char disp[128];
    snprintf(disp, sizeof(disp), "name=\"%s\"", name);
    const char *p = memmem(r->body, r->body_len, disp, strlen(disp));
    if (p == NULL)
        return NULL;
    const char *start = memmem(p, r->body_len - (size_t)(p - r->body), "\r\n\r\n", 4) + 4;
    const char *end = memmem(start, r->body_len - (size_t)(start - r->body), delim, strlen(delim));
    *len = (size_t)(end - start) - 2; /* the CRLF before the delimiter */
    return start;
}

static void upload(const char *ct, const unsigned char *data, size_t len, char id[37])
{
    char h[128];
    snprintf(h, sizeof(h), "Content-Type: %s", ct);
    const char *headers[] = {h, NULL};
    struct resp *r =
        th_http(&S, "POST", "/api/offline/files", (const char *)data, (long)len, headers);
    assert_int_equal(r->status, 201);
    assert_int_equal(th_int(r->json, "size"), (long long)len);
    assert_int_equal(strlen(th_str(r->json, "sha256")), 64);
    snprintf(id, 37, "%s", th_str(r->json, "file_id"));
    th_resp_free(r);
}

static void test_file_upload_multipart_byte_exact(void **state)
{
    unsigned char data[3000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 3);
    memcpy(data + 100, "\r\n--offlineq-", 13); /* a boundary look-alike inside the file */
    char file[37], id[37], body[512];
    upload("image/png", data, sizeof(data), file);
    /* sha256 of the bytes */
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/files/%s", file);
    struct resp *meta = th_http(&S, "GET", path, NULL, 0, NULL);
    assert_int_equal(meta->status, 200);
    assert_string_equal(th_str(meta->json, "content_type"), "image/png");
    th_resp_free(meta);

    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\","
             "\"endpoint\":\"/upload\",\"field\":\"image\",\"filename\":\"cat \\\"1\\\".png\","
             "\"form\":{\"album\":\"pets\"}}}",
             file);
    int n;
    struct us_req *r = delivered_once(body, id, &n);
    assert_string_equal(r[0].method, "POST");
    assert_string_equal(r[0].path, "/api/upload");
    assert_non_null(strstr(us_header(&r[0], "content-type"), "multipart/form-data; boundary="));
    size_t len = 0;
    const char *part = find_part(&r[0], "image", &len);
    assert_non_null(part);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(part, data, sizeof(data));
    assert_non_null(memmem(r[0].body, r[0].body_len,
                           "filename=\"cat %221%22.png\"\r\nContent-Type: image/png", 50));
    part = find_part(&r[0], "album", &len);
    assert_int_equal(len, 4);
    assert_memory_equal(part, "pets", 4);
    us_free_reqs(r, n);
    /* delivered: the stored file is gone */
    meta = th_http(&S, "GET", path, NULL, 0, NULL);
    th_assert_error(meta, 404, "not_found");
    th_resp_free(meta);
    /* an unknown file is refused at enqueue */
    th_assert_enqueue_refused(&S,
                              "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":"
                              "\"00000000-0000-4000-8000-000000000000\",\"endpoint\":\"/u\"}}",
                              "payload.file_id");
}

/* A file over OFFLINEQ_MAX_FILE_BYTES is refused before it is read; deleting the operation that
 * needs a file deletes the file. */
static void test_file_limits_and_cleanup(void **state)
{
    char other[512];
    th_db_create(DB "_files", other, sizeof(other));
    const char *env[] = {U.env, "OFFLINEQ_MAX_FILE_BYTES=1000", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, other, env, NULL), 0);
    char big[1001];
    memset(big, 'x', sizeof(big));
    const char *h[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r = th_http(&s, "POST", "/api/offline/files", big, sizeof(big), h);
    th_assert_error(r, 413, "payload_too_large");
    th_resp_free(r);
    r = th_http(&s, "POST", "/api/offline/files", big, 1000, h);
    assert_int_equal(r->status, 201);
    char file[37], id[37], body[256], path[96];
    snprintf(file, sizeof(file), "%s", th_str(r->json, "file_id"));
    th_resp_free(r);
    snprintf(
        body, sizeof(body),
        "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\",\"endpoint\":\"/u\"}}",
        file);
    th_enqueue(&s, body, id); /* API-only instance: it stays pending */
    snprintf(path, sizeof(path), "/api/offline/files/%s", file);
    r = th_http(&s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "size"), 1000);
    th_resp_free(r);
    char op_path[96];
    snprintf(op_path, sizeof(op_path), "/api/offline/queue/%s", id);
    r = th_http(&s, "DELETE", op_path, NULL, 0, NULL);
    assert_int_equal(r->status, 204);
    th_resp_free(r);
    r = th_http(&s, "GET", path, NULL, 0, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    th_db_drop(DB "_files");
}

static void test_model_push_form(void **state)
{
    const unsigned char weights[] = {0, 1, 2, 255, 254, 0, 13, 10};
    char file[37], id[37], body[512];
    upload("application/octet-stream", weights, sizeof(weights), file);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"model_push\",\"payload\":{\"file_id\":\"%s\","
             "\"endpoint\":\"/models\",\"model_name\":\"resnet\",\"version\":\"1.2\","
             "\"metadata\":{\"acc\":0.91}}}",
             file);
    int n;
    struct us_req *r = delivered_once(body, id, &n);
    size_t len;
    const char *p = find_part(&r[0], "file", &len);
    assert_int_equal(len, sizeof(weights));
    assert_memory_equal(p, weights, sizeof(weights));
    p = find_part(&r[0], "model_name", &len);
    assert_memory_equal(p, "resnet", len);
    p = find_part(&r[0], "version", &len);
    assert_memory_equal(p, "1.2", len);
    p = find_part(&r[0], "metadata", &len);
    assert_memory_equal(p, "{\"acc\":0.91}", len);
    us_free_reqs(r, n);
}

/* A batch stores each operation behind an earlier live one of its group group_held, whether
 * the earlier one is in the table or earlier in the same batch; the first of a group (and an
 * operation without one) is not held. */
static void test_batch_groups_held(void **state)
{
    char url2[512];
    th_db_create(DB "_groups", url2, sizeof(url2));
    const char *api_env[] = {U.env, NULL};
    struct svc s2;
    assert_int_equal(th_svc_start(&s2, url2, api_env, NULL), 0);
    char live[37];
    th_enqueue(&s2,
               "{\"operation_type\":\"api_call\",\"group_key\":\"c\",\"payload\":{"
               "\"endpoint\":\"/g\"}}",
               live);
    static const char *const groups[] = {"a", "b", "a", NULL, "c", "b", "a", "d"};
    static const bool held[] = {false, false, true, false, true, true, true, false};
    enum { N = sizeof(groups) / sizeof(groups[0]) };
    char batch[4096];
    size_t o = (size_t)snprintf(batch, sizeof(batch), "{\"operations\":[");
    for (int i = 0; i < N; i++) {
        char g[32] = "";
        if (groups[i] != NULL)
            snprintf(g, sizeof(g), "\"group_key\":\"%s\",", groups[i]);
        o += (size_t)snprintf(batch + o, sizeof(batch) - o,
                              "%s{\"operation_type\":\"api_call\",%s\"payload\":{\"endpoint\":"
                              "\"/g/%d\"}}",
                              i ? "," : "", g, i);
    }
    snprintf(batch + o, sizeof(batch) - o, "]}");
    struct resp *r = th_json(&s2, "POST", "/api/offline/queue/batch", batch);
    assert_int_equal(r->status, 201);
    json_t *ops = json_object_get(r->json, "operations");
    assert_int_equal(json_array_size(ops), N);
    PGconn *c2 = th_db_connect(url2);
    for (int i = 0; i < N; i++) {
        const char *id = th_str(json_array_get(ops, i), "id");
        const char *got =
            th_sqlf(c2, "SELECT group_held FROM offline_operations WHERE id = '%s'", id);
        if (strcmp(got, held[i] ? "t" : "f") != 0)
            fail_msg("operation %d (group %s): group_held %s", i, groups[i] ? groups[i] : "none",
                     got);
    }
    assert_string_equal(
        th_sqlf(c2, "SELECT group_held FROM offline_operations WHERE id = '%s'", live), "f");
    th_resp_free(r);
    PQfinish(c2);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    th_db_drop(DB "_groups");
}

/* 250 metric logs, one worker, batch 100: three POSTs of 100, 100, 50 in enqueue order. */
static void test_metric_logs_are_batched(void **state)
{
    char url2[512];
    th_db_create(DB "_metrics", url2, sizeof(url2));
    const char *env[] = {U.env, "OFFLINEQ_WORKERS=1", "OFFLINEQ_METRIC_BATCH=100", NULL};
    struct svc s2;
    /* enqueue first with an API-only instance, then start the worker instance */
    const char *api_env[] = {U.env, NULL};
    assert_int_equal(th_svc_start(&s2, url2, api_env, NULL), 0);
    size_t cap = 250 * 120 + 64, o = 0;
    char *batch = malloc(cap);
    o += (size_t)sprintf(batch, "{\"operations\":[");
    for (int i = 0; i < 250; i++)
        o += (size_t)sprintf(batch + o,
                             "%s{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r1\","
                             "\"step\":%d,\"metrics\":{\"loss\":%d.5}}}",
                             i ? "," : "", i, i);
    sprintf(batch + o, "]}");
    struct resp *r = th_json(&s2, "POST", "/api/offline/queue/batch", batch);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    free(batch);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    assert_int_equal(th_svc_start(&s2, url2, env, NULL), 0);
    assert_int_equal(us_wait_count(US, "/api/metrics", 3, 10000), 3);
    PGconn *c2 = th_db_connect(url2);
    for (int i = 0;
         i < 200 &&
         strcmp(th_sql(c2, "SELECT count(*) FROM offline_operations WHERE status = 'completed'"),
                "250");
         i++)
        usleep(20000);
    assert_string_equal(
        th_sql(c2, "SELECT count(*) FROM offline_operations WHERE status = 'completed'"), "250");
    PQfinish(c2);
    usleep(200000);
    int n;
    struct us_req *reqs = us_requests(US, &n);
    assert_int_equal(n, 3);
    int step = 0;
    const size_t sizes[] = {100, 100, 50};
    for (int i = 0; i < 3; i++) {
        json_t *arr = json_loads(reqs[i].body, 0, NULL);
        assert_int_equal(json_array_size(arr), sizes[i]);
        for (size_t k = 0; k < json_array_size(arr); k++, step++) {
            json_t *item = json_array_get(arr, k);
            assert_int_equal(th_int(item, "step"), step);
            assert_string_equal(th_str(item, "run_id"), "r1");
        }
        json_decref(arr);
        assert_int_equal(strncmp(us_header(&reqs[i], "idempotency-key"), "batch-", 6), 0);
    }
    us_free_reqs(reqs, n);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    th_db_drop(DB "_metrics");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_groups_held),
        cmocka_unit_test_setup(test_api_call_delivers_exactly, reset),
        cmocka_unit_test_setup(test_experiment_sync_puts_with_if_match, reset),
        cmocka_unit_test_setup(test_retries_with_growing_delays, reset),
        cmocka_unit_test_setup(test_retry_after_is_honoured, reset),
        cmocka_unit_test_setup(test_permanent_failure_and_exhausted_attempts, reset),
        cmocka_unit_test_setup(test_conflict_status, reset),
        cmocka_unit_test_setup(test_group_order_under_8_workers, reset),
        cmocka_unit_test_setup(test_group_release_skips_locked_heads, reset),
        cmocka_unit_test_setup(test_depends_on, reset),
        cmocka_unit_test_setup(test_expiry, reset),
        cmocka_unit_test_setup(test_max_retry_duration, reset),
        cmocka_unit_test_setup(test_file_upload_multipart_byte_exact, reset),
        cmocka_unit_test_setup(test_model_push_form, reset),
        cmocka_unit_test_setup(test_file_limits_and_cleanup, reset),
        cmocka_unit_test_setup(test_metric_logs_are_batched, reset),
        cmocka_unit_test_setup(test_one_enqueue_wakes_one_worker, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
