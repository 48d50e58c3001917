/* The queue API over HTTP against the real service and a real PostgreSQL: every endpoint,
 * its success shape and its error codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_queue_api"
static struct svc S;
static PGconn *pg;

static int group_setup(void **state)
{
    static const char *const env[] = {
        "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9/api,registry=https://models.example",
        "OFFLINEQ_MAX_ATTEMPTS=7", "OFFLINEQ_MAX_BODY_BYTES=4096", NULL};
    return th_group_start(DB, env, &S, &pg, NULL, 0);
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    return 0;
}

static int clean(void **state)
{
    th_sql(pg, "TRUNCATE offline_operations, offlineq_op_counts");
    return 0;
}

static struct resp *enqueue(const char *body)
{
    return th_json(&S, "POST", "/api/offline/queue", body);
}

/* Enqueues and returns the new id (static buffer per call site use). */
static const char *enqueue_id(const char *body, char id[37])
{
    struct resp *r = enqueue(body);
    if (r->status != 201)
        fprintf(stderr, "enqueue %s -> %ld %s\n", body, r->status, r->body);
    assert_int_equal(r->status, 201);
    snprintf(id, 37, "%s", th_str(r->json, "id"));
    th_resp_free(r);
    return id;
}

static bool is_rfc3339_utc(const char *s)
{
    int y, mo, d, h, mi, sec, us;
    char z;
    return s != NULL && strlen(s) == 27 &&
           sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &y, &mo, &d, &h, &mi, &sec, &us, &z) == 8 &&
           z == 'Z';
}

static void test_enqueue_returns_operation(void **state)
{
    struct resp *r =
        enqueue("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/items?x=1\","
                "\"method\":\"PUT\",\"data\":{\"name\":\"caf\\u00e9\",\"n\":[1,0.1,null]}},"
                "\"priority\":5,\"group_key\":\"item-1\",\"max_attempts\":3}");
    assert_int_equal(r->status, 201);
    const json_t *op = r->json;
    const char *id = th_str(op, "id");
    assert_non_null(id);
    assert_int_equal(strlen(id), 36);
    char loc[80];
    snprintf(loc, sizeof(loc), "/api/offline/queue/%s", id);
    assert_string_equal(th_header(r, "Location"), loc);
    assert_string_equal(th_header(r, "Content-Type"), "application/json");
    assert_non_null(th_header(r, "X-Request-Id"));
    assert_string_equal(th_str(op, "operation_type"), "api_call");
    json_t *want = json_loads("{\"endpoint\":\"/items?x=1\",\"method\":\"PUT\","
                              "\"data\":{\"name\":\"caf\\u00e9\",\"n\":[1,0.1,null]}}",
                              0, NULL);
    assert_true(json_equal(json_object_get(op, "payload"), want));
    json_decref(want);
    assert_int_equal(th_int(op, "priority"), 5);
    assert_string_equal(th_str(op, "status"), "pending");
    assert_int_equal(th_int(op, "retry_count"), 0);
    assert_int_equal(th_int(op, "max_attempts"), 3);
    assert_true(json_is_null(json_object_get(op, "error_message")));
    assert_true(json_is_null(json_object_get(op, "dedup_key")));
    assert_string_equal(th_str(op, "group_key"), "item-1");
    assert_true(is_rfc3339_utc(th_str(op, "created_at")));
    assert_true(is_rfc3339_utc(th_str(op, "updated_at")));
    assert_true(is_rfc3339_utc(th_str(op, "next_attempt_at")));
    assert_true(json_is_null(json_object_get(op, "completed_at")));
    assert_true(json_is_null(json_object_get(op, "result")));
    assert_true(json_is_null(json_object_get(op, "depends_on")));
    assert_true(json_is_null(json_object_get(op, "expires_at")));
    assert_true(json_is_null(json_object_get(op, "max_retry_duration_s")));
    assert_true(json_is_null(json_object_get(op, "conflict_strategy")));
    assert_int_equal(strlen(th_str(op, "trace_id")), 32); /* a new trace: none was sent */
    assert_string_equal(th_str(op, "request_id"), th_header(r, "X-Request-Id"));
    assert_int_equal(json_object_size(op), 21);
    assert_non_null(strstr(r->body, "\"n\": [1, 0.1, null]")); /* numbers stored as written */
    assert_string_equal(th_sqlf(pg, "SELECT count(*) FROM offline_operations WHERE id = '%s'", id),
                        "1");
    th_resp_free(r);
}

static void test_enqueue_defaults_and_delay(void **state)
{
    struct resp *r = enqueue("{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r1\","
                             "\"metrics\":{\"loss\":0.5}},\"delay_s\":120}");
    assert_int_equal(r->status, 201);
    assert_int_equal(th_int(r->json, "priority"), 0);
    assert_int_equal(th_int(r->json, "max_attempts"), 7); /* OFFLINEQ_MAX_ATTEMPTS */
    const char *id = th_str(r->json, "id");
    assert_string_equal(th_sqlf(pg,
                                "SELECT next_attempt_at - created_at BETWEEN '119 s' AND '121 s' "
                                "FROM offline_operations WHERE id = '%s'",
                                id),
                        "t");
    th_resp_free(r);
}

struct bad_case {
    const char *body;
    const char *code;
    const char *field; /* NULL: no field */
};

static const struct bad_case bad_enqueues[] = {
    {"not json", "invalid_json", NULL},
    {"[1,2]", "invalid_json", NULL},
    {"{\"operation_type\":\"api_call\",\"operation_type\":\"api_call\",\"payload\":{}}",
     "invalid_json", NULL},
    {"{}", "invalid_request", "operation_type"},
    {"{\"operation_type\":\"teleport\",\"payload\":{}}", "invalid_request", "operation_type"},
    {"{\"operation_type\":7,\"payload\":{}}", "invalid_request", "operation_type"},
    {"{\"operation_type\":\"api_call\"}", "invalid_request", "payload"},
    {"{\"operation_type\":\"api_call\",\"payload\":[1]}", "invalid_request", "payload"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"priority\":1001}",
     "invalid_request", "priority"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"priority\":-1001}",
     "invalid_request", "priority"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"priority\":\"high\"}",
     "invalid_request", "priority"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"priority\":1.5}",
     "invalid_request", "priority"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"priority\":1e300}",
     "invalid_request", "priority"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"max_attempts\":0}",
     "invalid_request", "max_attempts"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"delay_s\":-1}",
     "invalid_request", "delay_s"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"dedup_key\":\"\"}",
     "invalid_request", "dedup_key"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},\"priorty\":1}",
     "invalid_request", "priorty"},
    {"{\"operation_type\":\"api_call\",\"payload\":{}}", "invalid_request", "payload.endpoint"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"method\":\"FETCH\"}}",
     "invalid_request", "payload.method"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"http://evil.example/x\"}}",
     "invalid_request", "payload.endpoint"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"//evil.example/x\"}}",
     "invalid_request", "payload.endpoint"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"file:///etc/passwd\"}}",
     "invalid_request", "payload.endpoint"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\\r\\nHost: evil\"}}",
     "invalid_request", "payload.endpoint"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"upstream\":\"nope\"}}",
     "invalid_request", "payload.upstream"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
     "x\",\"headers\":{\"Host\":\"evil\"}}}",
     "invalid_request", "payload.headers.Host"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
     "x\",\"headers\":{\"X-A\":\"a\\nb\"}}}",
     "invalid_request", "payload.headers.X-A"},
    {"{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\",\"metrics\":{\"a\":\"x\"}}}",
     "invalid_request", "payload.metrics.a"},
    {"{\"operation_type\":\"metric_log\",\"payload\":{\"metrics\":{\"a\":1}}}", "invalid_request",
     "payload.run_id"},
    {"{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"abc\",\"endpoint\":\"/f\"}}",
     "invalid_request", "payload.file_id"},
    {"{\"operation_type\":\"model_push\",\"payload\":{\"file_id\":\"6f1c1f57-3c3c-4d1e-9a43-"
     "54c2f1a0a9d5\",\"endpoint\":\"/m\"}}",
     "invalid_request", "payload.model_name"},
    {"{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"/e/1\"}}",
     "invalid_request", "payload.data"},
    {"{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"data\":\"\\u0000\"}}",
     "invalid_json", NULL},
};

static void test_enqueue_rejects_bad_input(void **state)
{
    for (size_t i = 0; i < sizeof(bad_enqueues) / sizeof(bad_enqueues[0]); i++) {
        const struct bad_case *c = &bad_enqueues[i];
        struct resp *r = enqueue(c->body);
        if (r->status != 400)
            fprintf(stderr, "case %zu: %s -> %ld %s\n", i, c->body, r->status, r->body);
        th_assert_error(r, 400, c->code);
        const char *field = th_str(json_object_get(r->json, "error"), "field");
        if (c->field == NULL)
            assert_null(field);
        else
            assert_string_equal(field, c->field);
        th_resp_free(r);
    }
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "0");
}

static void test_enqueue_absolute_url_on_upstream_origin(void **state)
{
    char id[37];
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"HTTPS://"
               "MODELS.example/v1/x\","
               "\"upstream\":\"registry\"}}",
               id);
    struct resp *r = enqueue("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":"
                             "\"https://models.example.evil.com/x\",\"upstream\":\"registry\"}}");
    th_assert_error(r, 400, "invalid_request");
    th_resp_free(r);
}

static void test_content_type_and_size(void **state)
{
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}";
    struct resp *r = th_http(&S, "POST", "/api/offline/queue", body, -1, NULL);
    th_assert_error(r, 415, "unsupported_media_type");
    th_resp_free(r);
    static const char *const text[] = {"Content-Type: text/plain", NULL};
    r = th_http(&S, "POST", "/api/offline/queue", body, -1, text);
    th_assert_error(r, 415, "unsupported_media_type");
    th_resp_free(r);
    static const char *const charset[] = {"Content-Type: application/json; charset=utf-8", NULL};
    r = th_http(&S, "POST", "/api/offline/queue", body, -1, charset);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    r = th_json(&S, "POST", "/api/offline/queue", "");
    th_assert_error(r, 400, "invalid_json");
    th_resp_free(r);

    size_t n = 5000; /* OFFLINEQ_MAX_BODY_BYTES=4096 */
    char *big = malloc(n + 1);
    int off = snprintf(
        big, n, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"data\":\"");
    memset(big + off, 'a', n - (size_t)off - 4);
    memcpy(big + n - 4, "\"}}", 4);
    r = th_json(&S, "POST", "/api/offline/queue", big);
    th_assert_error(r, 413, "payload_too_large");
    th_resp_free(r);
    free(big);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "1");
}

static void test_get(void **state)
{
    char id[37], path[96];
    struct resp *created =
        enqueue("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}");
    snprintf(id, sizeof(id), "%s", th_str(created->json, "id"));
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_true(json_equal(r->json, created->json));
    th_resp_free(r);
    th_resp_free(created);

    static const char *const missing[] = {"/api/offline/queue/00000000-0000-4000-8000-000000000000",
                                          "/api/offline/queue/not-a-uuid",
                                          "/api/offline/queue/..%2F..%2Fetc%2Fpasswd",
                                          "/api/offline/queue/1%27%20OR%20%271%27%3D%271"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        r = th_http(&S, "GET", missing[i], NULL, 0, NULL);
        th_assert_error(r, 404, "not_found");
        th_resp_free(r);
    }
}

static void assert_list(const char *query, const char *const *ids, size_t n, bool more,
                        char *cursor_out)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/offline/queue%s", query);
    struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    json_t *ops = json_object_get(r->json, "operations");
    if (json_array_size(ops) != n)
        fprintf(stderr, "%s: %s\n", path, r->body);
    assert_int_equal(json_array_size(ops), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(th_str(json_array_get(ops, i), "id"), ids[i]);
    json_t *next = json_object_get(r->json, "next_cursor");
    assert_true(more ? json_is_string(next) : json_is_null(next));
    if (cursor_out)
        snprintf(cursor_out, 128, "%s", more ? json_string_value(next) : "");
    th_resp_free(r);
}

static void test_list_order_filters_and_cursor(void **state)
{
    char a[37], b[37], c[37], d[37], e[37];
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\"}}", a);
    enqueue_id("{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\",\"metrics\":{"
               "\"m\":1}},\"priority\":10}",
               b);
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/c\"}}", c);
    enqueue_id(
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/d\"},\"priority\":-5}", d);
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/e\"}}", e);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'failed' WHERE id = '%s'", e);

    const char *order[] = {b, a, c, d};
    assert_list("", order, 4, false, NULL);
    const char *api_only[] = {a, c, d};
    assert_list("?operation_type=api_call", api_only, 3, false, NULL);
    const char *failed[] = {e};
    assert_list("?status=failed", failed, 1, false, NULL);
    const char *both[] = {b, a, c, e, d}; /* one order across statuses */
    assert_list("?status=pending,failed", both, 5, false, NULL);
    const char *none[] = {NULL};
    assert_list("?status=completed", none, 0, false, NULL);

    char cursor[128], q[256];
    const char *p1[] = {b, a};
    assert_list("?limit=2", p1, 2, true, cursor);
    /* Rows added between pages: a later low-priority one shows up, nothing repeats. */
    char f[37], g[37];
    enqueue_id(
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/f\"},\"priority\":-9}", f);
    enqueue_id(
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/g\"},\"priority\":100}", g);
    snprintf(q, sizeof(q), "?limit=2&cursor=%s", cursor);
    const char *p2[] = {c, d};
    assert_list(q, p2, 2, true, cursor);
    snprintf(q, sizeof(q), "?limit=2&cursor=%s", cursor);
    const char *p3[] = {f};
    assert_list(q, p3, 1, false, NULL);
}

static void test_list_rejects_bad_query(void **state)
{
    static const struct {
        const char *query;
        const char *field;
    } cases[] = {
        {"?status=bogus", "status"},    {"?status=pending,", "status"},
        {"?limit=0", "limit"},          {"?limit=1001", "limit"},
        {"?limit=abc", "limit"},        {"?limit=5x", "limit"},
        {"?cursor=garbage", "cursor"},  {"?cursor=djEuMS4y%27", "cursor"},
        {"?cursor=djIuMS4y", "cursor"}, {"?cursor=", "cursor"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "/api/offline/queue%s", cases[i].query);
        struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
        if (r->status != 400)
            fprintf(stderr, "%s -> %ld %s\n", path, r->status, r->body);
        th_assert_invalid(r, cases[i].field);
        th_resp_free(r);
    }
}

static void test_delete(void **state)
{
    char id[37], path[96];
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", id);
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    struct resp *r = th_http(&S, "DELETE", path, NULL, 0, NULL);
    assert_int_equal(r->status, 204);
    assert_int_equal(r->body_len, 0);
    th_resp_free(r);
    r = th_http(&S, "GET", path, NULL, 0, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    r = th_http(&S, "DELETE", path, NULL, 0, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);

    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", id);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'in_progress' WHERE id = '%s'", id);
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    r = th_http(&S, "DELETE", path, NULL, 0, NULL);
    th_assert_error(r, 409, "conflict");
    th_resp_free(r);
    assert_string_equal(th_sqlf(pg, "SELECT status FROM offline_operations WHERE id = '%s'", id),
                        "in_progress");
}

static void test_retry_one(void **state)
{
    char id[37], path[128];
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", id);
    snprintf(path, sizeof(path), "/api/offline/queue/%s/retry", id);
    struct resp *r = th_http(&S, "POST", path, NULL, 0, NULL);
    th_assert_error(r, 409, "conflict"); /* pending */
    th_resp_free(r);

    const char *ends[] = {"failed", "conflict"};
    for (int i = 0; i < 2; i++) {
        th_sqlf(pg,
                "UPDATE offline_operations SET status = '%s', retry_count = 4, "
                "error_message = 'HTTP 500', next_attempt_at = now() + interval '1 h' "
                "WHERE id = '%s'",
                ends[i], id);
        r = th_http(&S, "POST", path, NULL, 0, NULL);
        assert_int_equal(r->status, 200);
        assert_string_equal(th_str(r->json, "status"), "pending");
        assert_int_equal(th_int(r->json, "retry_count"), 0);
        assert_true(json_is_null(json_object_get(r->json, "error_message")));
        th_resp_free(r);
        assert_string_equal(th_sqlf(pg,
                                    "SELECT next_attempt_at <= now() FROM offline_operations "
                                    "WHERE id = '%s'",
                                    id),
                            "t");
    }
    r = th_http(&S, "POST", "/api/offline/queue/00000000-0000-4000-8000-000000000000/retry", NULL,
                0, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
}

static void test_stats(void **state)
{
    struct resp *r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    json_t *want = json_loads("{\"pending\":0,\"in_progress\":0,\"completed\":0,\"failed\":0,"
                              "\"conflict\":0,\"total\":0,\"conflicts_resolved\":0,\"by_type\":{},"
                              "\"oldest_pending_age_s\":0}",
                              0, NULL);
    assert_true(json_equal(r->json, want));
    json_decref(want);
    th_resp_free(r);

    char ids[4][37];
    for (int i = 0; i < 3; i++)
        enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", ids[i]);
    enqueue_id(
        "{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\",\"metrics\":{\"m\":1}}}",
        ids[3]);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'completed' WHERE id = '%s'", ids[0]);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'failed' WHERE id = '%s'", ids[1]);
    th_sqlf(pg,
            "UPDATE offline_operations SET created_at = now() - interval '90 s' WHERE id = '%s'",
            ids[2]);
    r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "pending"), 2);
    assert_int_equal(th_int(r->json, "in_progress"), 0);
    assert_int_equal(th_int(r->json, "completed"), 1);
    assert_int_equal(th_int(r->json, "failed"), 1);
    assert_int_equal(th_int(r->json, "conflict"), 0);
    assert_int_equal(th_int(r->json, "total"), 4);
    want = json_loads("{\"api_call\":{\"completed\":1,\"failed\":1,\"pending\":1},"
                      "\"metric_log\":{\"pending\":1}}",
                      0, NULL);
    assert_true(json_equal(json_object_get(r->json, "by_type"), want));
    json_decref(want);
    double age = json_number_value(json_object_get(r->json, "oldest_pending_age_s"));
    assert_true(age >= 90 && age < 100);
    th_resp_free(r);

    /* a tally ('#resolved') counts in conflicts_resolved only; the document is the one
     * offlineq_stats() makes in SQL (the service builds it in C), but for the moving age */
    th_sql(pg, "INSERT INTO offlineq_op_counts (operation_type, status, n) "
               "VALUES ('api_call', '#resolved', 2)");
    r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "conflicts_resolved"), 2);
    assert_int_equal(th_int(r->json, "total"), 4);
    json_t *sql = json_loads(th_sql(pg, "SELECT offlineq_stats()"), 0, NULL);
    assert_non_null(sql);
    json_object_del(sql, "oldest_pending_age_s");
    json_object_del(r->json, "oldest_pending_age_s");
    assert_true(json_equal(r->json, sql));
    json_decref(sql);
    th_resp_free(r);
}

static void test_clear_completed(void **state)
{
    char ids[4][37];
    for (int i = 0; i < 4; i++)
        enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", ids[i]);
    th_sqlf(
        pg,
        "UPDATE offline_operations SET status = 'completed', completed_at = now() - interval '2 h' "
        "WHERE id IN ('%s', '%s')",
        ids[0], ids[1]);
    th_sqlf(
        pg,
        "UPDATE offline_operations SET status = 'completed', completed_at = now() WHERE id = '%s'",
        ids[2]);
    struct resp *r =
        th_json(&S, "POST", "/api/offline/queue/clear-completed", "{\"older_than_s\":3600}");
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "cleared"), 2);
    th_resp_free(r);
    r = th_http(&S, "POST", "/api/offline/queue/clear-completed", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "cleared"), 1);
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "1");
    r = th_json(&S, "POST", "/api/offline/queue/clear-completed", "{\"older_than_s\":-1}");
    th_assert_error(r, 400, "invalid_request");
    th_resp_free(r);
}

static void test_retry_failed_bulk(void **state)
{
    char ids[4][37];
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", ids[0]);
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", ids[1]);
    enqueue_id(
        "{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\",\"metrics\":{\"m\":1}}}",
        ids[2]);
    enqueue_id("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", ids[3]);
    th_sql(
        pg,
        "UPDATE offline_operations SET status = 'failed', retry_count = 5, error_message = 'boom'");
    th_sqlf(pg, "UPDATE offline_operations SET updated_at = now() - interval '1 h' WHERE id = '%s'",
            ids[0]);
    struct resp *r = th_json(&S, "POST", "/api/offline/queue/retry-failed",
                             "{\"operation_type\":\"api_call\",\"older_than_s\":600}");
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "retried"), 1);
    th_resp_free(r);
    assert_string_equal(
        th_sqlf(pg, "SELECT status || retry_count FROM offline_operations WHERE id = '%s'", ids[0]),
        "pending0");
    r = th_json(&S, "POST", "/api/offline/queue/retry-failed",
                "{\"operation_type\":\"metric_log\"}");
    assert_int_equal(th_int(r->json, "retried"), 1);
    th_resp_free(r);
    r = th_http(&S, "POST", "/api/offline/queue/retry-failed", NULL, 0, NULL);
    assert_int_equal(th_int(r->json, "retried"), 2);
    th_resp_free(r);
    assert_string_equal(
        th_sql(pg, "SELECT count(*) FROM offline_operations WHERE status = 'pending'"), "4");
    r = th_json(&S, "POST", "/api/offline/queue/retry-failed", "{\"operation_type\":3}");
    th_assert_error(r, 400, "invalid_request");
    th_resp_free(r);
}

/* POSTs body to a bulk action and returns the number under key (asserting a 200). */
static long long bulk(const char *path, const char *body, const char *key)
{
    struct resp *r = th_json(&S, "POST", path, body);
    if (r->status != 200)
        fprintf(stderr, "%s %s: %ld %s\n", path, body, r->status, r->body);
    assert_int_equal(r->status, 200);
    long long n = th_int(r->json, key);
    if (strcmp(key, "matched") == 0)
        assert_true(json_is_true(json_object_get(r->json, "dry_run")));
    th_resp_free(r);
    return n;
}

/* offlineq_operations_deleted_total{reason="api"} in /metrics. */
static long long deleted_by_api(void)
{
    return th_metric(&S, "offlineq_operations_deleted_total{reason=\"api\"}");
}

static const char *count_where(const char *cond)
{
    return th_sqlf(pg, "SELECT count(*) FROM offline_operations WHERE %s", cond);
}

/* Issue 14 point 2: retry and delete over a whole filter, not a page, in batches of 1000, with
 * a dry run that counts and changes nothing. */
static void test_bulk_actions_by_filter(void **state)
{
    th_sql(pg,
           "INSERT INTO offline_operations (operation_type, payload, status, error_message, "
           "  retry_count, created_at) "
           "SELECT 'api_call', '{\"endpoint\":\"/bulk\"}', 'failed', 'HTTP 503: Upstream Busy', "
           "  5, now() - interval '2 hours' FROM generate_series(1, 2500)");
    th_sql(pg, "INSERT INTO offline_operations (operation_type, payload, status, error_message) "
               "SELECT 'api_call', '{\"endpoint\":\"/bulk\",\"upstream\":\"other\"}', 'failed', "
               "  'HTTP 400' FROM generate_series(1, 3)");
    th_sql(pg, "INSERT INTO offline_operations (operation_type, payload, status, completed_at) "
               "SELECT 'api_call', '{\"endpoint\":\"/done\"}', 'completed', now() "
               "FROM generate_series(1, 7)");
    const char *busy = "{\"operation_type\":\"api_call\",\"error_contains\":\"upstream busy\"}";
    assert_int_equal(bulk("/api/offline/queue/retry-failed",
                          "{\"operation_type\":\"api_call\",\"error_contains\":\"upstream "
                          "busy\",\"dry_run\":true}",
                          "matched"),
                     2500);
    assert_string_equal(count_where("status = 'failed'"), "2503"); /* a dry run changes nothing */
    assert_int_equal(bulk("/api/offline/queue/retry-failed", busy, "retried"), 2500);
    assert_string_equal(count_where("status = 'pending' AND retry_count = 0"), "2500");
    assert_int_equal(bulk("/api/offline/queue/retry-failed", "{\"upstream\":\"other\"}", "retried"),
                     3);

    /* a delete must name a filter, or say all */
    static const char *const refused[][2] = {
        {"{}", "all"},
        {"{\"all\":false}", "all"},
        {"{\"status\":\"in_progress\"}", "status"},
        {"{\"created_before\":\"yesterday\"}", "created_before"},
        {"{\"error_contains\":\"\"}", "error_contains"},
        {"{\"nope\":1}", "nope"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct resp *r = th_json(&S, "POST", "/api/offline/queue/delete", refused[i][0]);
        th_assert_invalid(r, refused[i][1]);
        th_resp_free(r);
    }
    assert_string_equal(count_where("true"), "2510");
    char body[256], before[64];
    snprintf(before, sizeof(before), "%s",
             th_sql(pg, "SELECT to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"));
    snprintf(body, sizeof(body),
             "{\"status\":\"pending\",\"created_before\":\"%s\",\"dry_run\":true}", before);
    assert_int_equal(bulk("/api/offline/queue/delete", body, "matched"), 2500);
    snprintf(body, sizeof(body), "{\"status\":\"pending\",\"created_before\":\"%s\"}", before);
    long long deleted_before = deleted_by_api();
    assert_int_equal(bulk("/api/offline/queue/delete", body, "deleted"), 2500);
    assert_string_equal(count_where("true"), "10"); /* the 3 of other and the 7 completed */
    assert_int_equal(deleted_by_api() - deleted_before, 2500);
    assert_int_equal(bulk("/api/offline/queue/delete", "{\"all\":true}", "deleted"), 10);
    assert_string_equal(count_where("true"), "0");
}

static void test_batch(void **state)
{
    struct resp *r = th_json(
        &S, "POST", "/api/offline/queue/batch",
        "{\"operations\":[{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/1\"}},"
        "{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\",\"metrics\":{\"m\":1}},"
        "\"dedup_key\":\"b1\"},"
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
        "3\"},\"dedup_key\":\"b1\"}]}");
    assert_int_equal(r->status, 201);
    json_t *ops = json_object_get(r->json, "operations");
    assert_int_equal(json_array_size(ops), 3);
    assert_string_equal(th_str(json_object_get(json_array_get(ops, 0), "payload"), "endpoint"),
                        "/1");
    assert_string_equal(th_str(json_array_get(ops, 1), "operation_type"), "metric_log");
    /* the third repeats the second's dedup_key: it is that operation */
    assert_string_equal(th_str(json_array_get(ops, 2), "id"), th_str(json_array_get(ops, 1), "id"));
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "2");

    r = th_json(
        &S, "POST", "/api/offline/queue/batch",
        "{\"operations\":[{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/ok\"}},"
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"http://evil/\"}}]}");
    th_assert_invalid(r, "operations[1].payload.endpoint");
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "2");

    static const char *const bad[] = {"{\"operations\":[]}", "{\"operations\":{}}", "{}",
                                      "{\"operations\":[1]}"};
    for (size_t i = 0; i < 4; i++) {
        r = th_json(&S, "POST", "/api/offline/queue/batch", bad[i]);
        th_assert_error(r, 400, "invalid_request");
        th_resp_free(r);
    }
    /* 1001 operations: over the limit, nothing stored */
    size_t cap = 1001 * 70 + 32, n = 0;
    char *big = malloc(cap);
    n += (size_t)sprintf(big, "{\"operations\":[");
    for (int i = 0; i < 1001; i++)
        n += (size_t)sprintf(
            big + n, "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}",
            i ? "," : "");
    sprintf(big + n, "]}");
    static const char *const json_h[] = {"Content-Type: application/json", NULL};
    r = th_http(&S, "POST", "/api/offline/queue/batch", big, -1, json_h);
    /* 4 KiB body limit in this group: refused before parsing */
    th_assert_error(r, 413, "payload_too_large");
    th_resp_free(r);
    free(big);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "2");
}

static void test_dedup(void **state)
{
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                       "x\"},\"dedup_key\":\"order-42\"}";
    struct resp *first = enqueue(body);
    assert_int_equal(first->status, 201);
    struct resp *again = enqueue("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                                 "other\"},\"dedup_key\":\"order-42\"}");
    assert_int_equal(again->status, 200);
    assert_true(json_equal(first->json, again->json));
    th_sqlf(pg, "UPDATE offline_operations SET status = 'completed' WHERE id = '%s'",
            th_str(first->json, "id"));
    struct resp *after = enqueue(body);
    assert_int_equal(after->status, 201);
    assert_string_not_equal(th_str(after->json, "id"), th_str(first->json, "id"));
    th_resp_free(first);
    th_resp_free(again);
    th_resp_free(after);
}

/* POST with extra headers (NULL-terminated "Name: value"), JSON body. */
static struct resp *post_with(const char *path, const char *body, const char *h1, const char *h2)
{
    const char *const h[] = {"Content-Type: application/json", h1, h2, NULL};
    return th_http(&S, "POST", path, body, -1, h);
}

static void assert_body(const struct resp *r, const char *want_fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void assert_body(const struct resp *r, const char *want_fmt, ...)
{
    char want[4096];
    va_list ap;
    va_start(ap, want_fmt);
    vsnprintf(want, sizeof(want), want_fmt, ap);
    va_end(ap);
    assert_string_equal(r->body, want);
}

#define API_X "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}"

/* Prefer: return=minimal (RFC 7240): the id alone, 201 / 200 as for the full answer. */
static void test_prefer_minimal_single(void **state)
{
    struct resp *r = post_with("/api/offline/queue", API_X "}", "Prefer: return=minimal", NULL);
    assert_int_equal(r->status, 201);
    const char *id = th_str(r->json, "id");
    assert_non_null(id);
    assert_body(r, "{\"id\":\"%s\",\"created\":true}", id);
    char loc[80];
    snprintf(loc, sizeof(loc), "/api/offline/queue/%s", id);
    assert_string_equal(th_header(r, "Location"), loc);
    assert_string_equal(th_header(r, "Preference-Applied"), "return=minimal");
    struct resp *got = th_http(&S, "GET", loc, NULL, 0, NULL);
    assert_int_equal(got->status, 200);
    assert_string_equal(th_str(got->json, "status"), "pending");
    th_resp_free(got);
    th_resp_free(r);

    /* a dedup hit: 200, the live operation's id, not created (the stored, not a group commit) */
    struct resp *first = post_with("/api/offline/queue", API_X ",\"dedup_key\":\"m1\"}",
                                   "Prefer: return=minimal", NULL);
    assert_int_equal(first->status, 201);
    struct resp *again = post_with("/api/offline/queue", API_X ",\"dedup_key\":\"m1\"}",
                                   "prefer: RETURN=\"minimal\"", NULL);
    assert_int_equal(again->status, 200);
    assert_body(again, "{\"id\":\"%s\",\"created\":false}", th_str(first->json, "id"));
    assert_string_equal(th_header(again, "Preference-Applied"), "return=minimal");
    th_resp_free(first);
    th_resp_free(again);

    /* return=representation and no Prefer: the Operation */
    r = post_with("/api/offline/queue", API_X "}", "Prefer: return=representation", NULL);
    assert_int_equal(r->status, 201);
    assert_string_equal(th_str(r->json, "status"), "pending");
    assert_string_equal(th_header(r, "Preference-Applied"), "return=representation");
    th_resp_free(r);
    r = enqueue(API_X "}");
    assert_int_equal(r->status, 201);
    assert_string_equal(th_str(r->json, "status"), "pending");
    assert_null(th_header(r, "Preference-Applied"));
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "4");
}

/* With Prefer: wait, in one field or two: still the id alone once the wait ends (no worker
 * runs in this group, so it ends by time). */
static void test_prefer_minimal_with_wait(void **state)
{
    struct resp *r =
        post_with("/api/offline/queue", API_X "}", "Prefer: wait=0", "Prefer: return=minimal");
    assert_int_equal(r->status, 202);
    assert_body(r, "{\"id\":\"%s\",\"created\":true}", th_str(r->json, "id"));
    assert_string_equal(th_header(r, "Preference-Applied"), "return=minimal");
    th_resp_free(r);
    double t0 = th_now_ms();
    r = post_with("/api/offline/queue", API_X "}", "Prefer: return=minimal, wait=1", NULL);
    assert_true(th_now_ms() - t0 >= 900);
    assert_int_equal(r->status, 202);
    assert_body(r, "{\"id\":\"%s\",\"created\":true}", th_str(r->json, "id"));
    assert_string_equal(th_header(r, "Preference-Applied"), "wait, return=minimal");
    th_resp_free(r);
    r = post_with("/api/offline/queue", API_X "}", "Prefer: respond-async; x=1, wait=1",
                  "Prefer: return=representation");
    assert_int_equal(r->status, 202);
    assert_string_equal(th_str(r->json, "status"), "pending");
    assert_string_equal(th_header(r, "Preference-Applied"), "wait, return=representation");
    th_resp_free(r);
}

/* A batch with return=minimal: the same envelope and status, each item its id and whether it
 * was created (a dedup hit names the live operation it returned). */
static void test_prefer_minimal_batch(void **state)
{
    char held[37];
    enqueue_id(API_X ",\"dedup_key\":\"old\"}", held);
    struct resp *r = post_with("/api/offline/queue/batch",
                               "{\"operations\":[" API_X "}," API_X ",\"dedup_key\":\"b1\"}," API_X
                               ",\"dedup_key\":\"b1\"}," API_X ",\"dedup_key\":\"old\"}]}",
                               "Prefer: return=minimal", NULL);
    assert_int_equal(r->status, 201);
    assert_string_equal(th_header(r, "Preference-Applied"), "return=minimal");
    json_t *ops = json_object_get(r->json, "operations");
    assert_int_equal(json_array_size(ops), 4);
    const char *a = th_str(json_array_get(ops, 0), "id"), *b = th_str(json_array_get(ops, 1), "id");
    assert_body(
        r,
        "{\"operations\":[{\"id\":\"%s\",\"created\":true},{\"id\":\"%s\",\"created\":true},"
        "{\"id\":\"%s\",\"created\":false},{\"id\":\"%s\",\"created\":false}]}",
        a, b, b, held);
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "3");

    /* only simple operations: one statement */
    r = post_with("/api/offline/queue/batch", "{\"operations\":[" API_X "}," API_X "}]}",
                  "Prefer: return=minimal", NULL);
    assert_int_equal(r->status, 201);
    ops = json_object_get(r->json, "operations");
    assert_body(
        r, "{\"operations\":[{\"id\":\"%s\",\"created\":true},{\"id\":\"%s\",\"created\":true}]}",
        th_str(json_array_get(ops, 0), "id"), th_str(json_array_get(ops, 1), "id"));
    th_sqlf(pg, "SELECT 1 FROM offline_operations WHERE id IN ('%s', '%s') HAVING count(*) = 2",
            th_str(json_array_get(ops, 0), "id"), th_str(json_array_get(ops, 1), "id"));
    th_resp_free(r);
    r = post_with("/api/offline/queue/batch", "{\"operations\":[" API_X "}]}", NULL, NULL);
    assert_int_equal(r->status, 201);
    assert_string_equal(th_str(json_array_get(json_object_get(r->json, "operations"), 0), "status"),
                        "pending");
    th_resp_free(r);
}

/* GET path with If-None-Match: etag (or none); the response. */
static struct resp *get_if_none_match(const char *path, const char *etag)
{
    char h[256];
    snprintf(h, sizeof(h), "If-None-Match: %s", etag ? etag : "");
    const char *const hs[] = {h, NULL};
    return th_http(&S, "GET", path, NULL, 0, etag ? hs : NULL);
}

/* An ETag changes in the same moment as the state it tags: right after an enqueue's 201, the
 * previous ETag answers 200 with the new counts, never 304 (issue 13, point 8); an unchanged
 * state still answers 304. Looped: the old tag (the event ring's version) lagged behind the
 * commit by the listener's pull. */
static void test_stats_etag_fresh(void **state)
{
    struct resp *r = get_if_none_match("/api/offline/queue/stats", NULL);
    assert_int_equal(r->status, 200);
    char etag[160];
    snprintf(etag, sizeof(etag), "%s", th_header(r, "ETag"));
    th_resp_free(r);
    r = get_if_none_match("/api/offline/queue/stats", etag);
    if (r->status == 200) { /* the second turned over: the tag carries it */
        snprintf(etag, sizeof(etag), "%s", th_header(r, "ETag"));
        th_resp_free(r);
        r = get_if_none_match("/api/offline/queue/stats", etag);
    }
    assert_int_equal(r->status, 304);
    th_resp_free(r);
    for (int i = 1; i <= 50; i++) {
        r = enqueue(API_X "}");
        assert_int_equal(r->status, 201);
        th_resp_free(r);
        r = get_if_none_match("/api/offline/queue/stats", etag);
        if (r->status != 200)
            fprintf(stderr, "round %d: %ld with the tag of %d pending\n", i, r->status, i - 1);
        assert_int_equal(r->status, 200);
        assert_int_equal(th_int(r->json, "pending"), i);
        assert_string_not_equal(th_header(r, "ETag"), etag);
        snprintf(etag, sizeof(etag), "%s", th_header(r, "ETag"));
        th_resp_free(r);
    }
}

/* The same for the sync status, whose "pending" comes from the database. */
static void test_sync_status_etag_fresh(void **state)
{
    char etag[160] = "";
    for (int i = 0; i <= 50; i++) {
        if (i > 0) {
            struct resp *e = enqueue(API_X "}");
            assert_int_equal(e->status, 201);
            th_resp_free(e);
        }
        struct resp *r = get_if_none_match("/api/offline/sync/status", i ? etag : NULL);
        if (r->status != 200)
            fprintf(stderr, "round %d: %ld with the tag of %d pending\n", i, r->status, i - 1);
        assert_int_equal(r->status, 200);
        assert_int_equal(th_int(r->json, "pending"), i);
        snprintf(etag, sizeof(etag), "%s", th_header(r, "ETag"));
        th_resp_free(r);
    }
    /* unchanged: 304 (a periodic pass or a network check may move it between two requests) */
    long st = 0;
    for (int attempt = 0; attempt < 3 && st != 304; attempt++) {
        struct resp *r = get_if_none_match("/api/offline/sync/status", etag);
        st = r->status;
        snprintf(etag, sizeof(etag), "%s", th_header(r, "ETag"));
        th_resp_free(r);
    }
    assert_int_equal(st, 304);
}

static void test_routes_health_and_request_id(void **state)
{
    struct resp *r = th_http(&S, "GET", "/api/offline/nope", NULL, 0, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    r = th_http(&S, "PUT", "/api/offline/queue", NULL, 0, NULL);
    th_assert_error(r, 405, "method_not_allowed");
    assert_string_equal(th_header(r, "Allow"), "POST, GET, HEAD, OPTIONS");
    th_resp_free(r);
    r = th_http(&S, "GET", "/api/offline/queue/batch", NULL, 0, NULL);
    /* /queue/{id} also matches: batch is not a UUID, so it is an unknown operation */
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    r = th_http(&S, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "status"), "ok");
    th_resp_free(r);
    r = th_http(&S, "GET", "/readyz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "status"), "ready");
    th_resp_free(r);
    static const char *const rid[] = {"X-Request-Id: trace-123.abc", NULL};
    r = th_http(&S, "GET", "/healthz", NULL, 0, rid);
    assert_string_equal(th_header(r, "X-Request-Id"), "trace-123.abc");
    th_resp_free(r);
    static const char *const bad_rid[] = {"X-Request-Id: <script>", NULL};
    r = th_http(&S, "GET", "/healthz", NULL, 0, bad_rid);
    assert_int_equal(strlen(th_header(r, "X-Request-Id")), 36);
    th_resp_free(r);
    /* the access line is written when the request is completed, just after the answer went
     * out: under valgrind that can be a while later */
    bool logged = false;
    for (int i = 0; i < 100 && !logged; i++) {
        char *log = th_svc_log(&S);
        logged = strstr(log, "\"request_id\":\"trace-123.abc\",\"method\":\"GET\",\"path\":"
                             "\"/healthz\",\"status\":200") != NULL;
        free(log);
        if (!logged)
            usleep(50 * 1000);
    }
    assert_true(logged);
    /* the dashboard: public, from the binary, nothing from the internet */
    const char *pages[] = {"/", "/dashboard"};
    for (int i = 0; i < 2; i++) {
        r = th_http(&S, "GET", pages[i], NULL, 0, NULL);
        assert_int_equal(r->status, 200);
        assert_string_equal(th_header(r, "Content-Type"), "text/html; charset=utf-8");
        assert_non_null(strstr(r->body, "<title>offlineq</title>"));
        assert_null(strstr(r->body, "src=\"http"));
        assert_null(strstr(r->body, "href=\"http"));
        assert_null(strstr(r->body, "@import"));
        assert_non_null(strstr(th_header(r, "Content-Security-Policy"), "connect-src 'self'"));
        th_resp_free(r);
    }
}

/* HEAD on every GET route (load balancers and `curl -I` probe with it): the GET's status and
 * headers, no body. Before, 405. */
static void test_head_on_every_get_route(void **state)
{
    char id[37], path[8][128];
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/head\"}}", id);
    static const char *const bin[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r = th_http(&S, "POST", "/api/offline/files", "abc", 3, bin);
    assert_int_equal(r->status, 201);
    snprintf(path[0], sizeof(path[0]), "/api/offline/files/%s", th_str(r->json, "file_id"));
    th_resp_free(r);
    snprintf(path[1], sizeof(path[1]), "/api/offline/queue/%s", id);
    snprintf(path[2], sizeof(path[2]), "/api/offline/queue/%s/attempts", id);
    const char *const paths[] = {"/",
                                 "/dashboard",
                                 "/dashboard/app.js",
                                 "/healthz",
                                 "/readyz",
                                 "/metrics",
                                 "/api/offline/queue",
                                 "/api/offline/queue/stats",
                                 "/api/offline/queue/stats/history",
                                 path[1],
                                 path[2],
                                 "/api/offline/sync/status",
                                 "/api/offline/sync/conflict-strategy",
                                 "/api/offline/network-status",
                                 "/api/offline/upstreams",
                                 path[0],
                                 NULL};
    char src[1024];
    snprintf(src, sizeof(src), "%s/api/routes.c", getenv("OFFLINEQ_SOURCE_DIR"));
    char *table = th_slurp(src);
    int n = -1; /* the stream, tried below */
    for (const char *p = table; (p = strstr(p, "{\"GET\", \"")) != NULL; p++)
        n++;
    free(table);
    int tried = 0;
    for (const char *const *p = paths; *p; p++, tried++) {
        struct resp *get = th_http(&S, "GET", *p, NULL, 0, NULL);
        struct resp *head = th_http(&S, "HEAD", *p, NULL, 0, NULL);
        if (head->status != get->status)
            fprintf(stderr, "HEAD %s: %ld, GET %ld\n", *p, head->status, get->status);
        assert_int_equal(head->status, get->status);
        assert_int_equal(head->body_len, 0);
        const char *ct = th_header(get, "Content-Type");
        char want[256];
        snprintf(want, sizeof(want), "%s", ct ? ct : "(none)");
        ct = th_header(head, "Content-Type");
        assert_string_equal(ct ? ct : "(none)", want);
        th_resp_free(get);
        th_resp_free(head);
    }
    assert_int_equal(tried, n); /* every GET route but the stream, which follows */
    r = th_http(&S, "HEAD", "/api/offline/events", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_header(r, "Content-Type"), "text/event-stream");
    assert_int_equal(r->body_len, 0);
    th_resp_free(r);
    r = th_http(&S, "HEAD", "/api/offline/sync", NULL, 0, NULL); /* POST only */
    assert_int_equal(r->status, 405);
    assert_string_equal(th_header(r, "Allow"), "POST, OPTIONS");
    th_resp_free(r);
}

static void test_sql_outbox_function(void **state)
{
    const char *id = th_sql(
        pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/outbox\"}', 4, 'ob-1', 'g')");
    char first[37];
    snprintf(first, sizeof(first), "%s", id);
    assert_string_equal(
        th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/outbox\"}', 0, 'ob-1')"),
        first);
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", first);
    struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "priority"), 4);
    assert_int_equal(th_int(r->json, "max_attempts"), 7);
    assert_string_equal(th_str(r->json, "group_key"), "g");
    th_resp_free(r);
    /* the same rules as the endpoint: unknown type and a non-object payload are refused */
    PGresult *res = PQexec(pg, "SELECT offlineq.enqueue('teleport', '{}')");
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "OQ400");
    PQclear(res);
    res = PQexec(pg, "SELECT offlineq.enqueue('api_call', '[1]')");
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "OQ400");
    PQclear(res);
    /* in the caller's transaction: a rollback leaves nothing behind */
    th_sql(pg, "BEGIN");
    th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/rolled-back\"}')");
    th_sql(pg, "ROLLBACK");
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_enqueue_returns_operation, clean),
        cmocka_unit_test_setup(test_enqueue_defaults_and_delay, clean),
        cmocka_unit_test_setup(test_enqueue_rejects_bad_input, clean),
        cmocka_unit_test_setup(test_enqueue_absolute_url_on_upstream_origin, clean),
        cmocka_unit_test_setup(test_content_type_and_size, clean),
        cmocka_unit_test_setup(test_get, clean),
        cmocka_unit_test_setup(test_list_order_filters_and_cursor, clean),
        cmocka_unit_test_setup(test_list_rejects_bad_query, clean),
        cmocka_unit_test_setup(test_delete, clean),
        cmocka_unit_test_setup(test_retry_one, clean),
        cmocka_unit_test_setup(test_stats, clean),
        cmocka_unit_test_setup(test_clear_completed, clean),
        cmocka_unit_test_setup(test_retry_failed_bulk, clean),
        cmocka_unit_test_setup(test_bulk_actions_by_filter, clean),
        cmocka_unit_test_setup(test_batch, clean),
        cmocka_unit_test_setup(test_dedup, clean),
        cmocka_unit_test_setup(test_prefer_minimal_single, clean),
        cmocka_unit_test_setup(test_prefer_minimal_with_wait, clean),
        cmocka_unit_test_setup(test_prefer_minimal_batch, clean),
        cmocka_unit_test_setup(test_stats_etag_fresh, clean),
        cmocka_unit_test_setup(test_sync_status_etag_fresh, clean),
        cmocka_unit_test_setup(test_routes_health_and_request_id, clean),
        cmocka_unit_test_setup(test_head_on_every_get_route, clean),
        cmocka_unit_test_setup(test_sql_outbox_function, clean),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
