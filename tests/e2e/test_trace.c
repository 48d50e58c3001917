/* Trace context and attempt logs (issue 14 points 4 and 5) against the running service, a real
 * PostgreSQL and the test upstream: the enqueue's W3C traceparent, tracestate and X-Request-Id
 * are stored, every delivery attempt joins that trace with a new parent id, and every attempt
 * leaves an info line with the trace id. */
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

#define DB "e2e_trace"
#define TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT "00f067aa0ba902b7"

static struct upstream_srv *US;
static struct svc S;
static PGconn *pg;
static char url[512];
static struct th_upstreams U;

static int group_setup(void **state)
{
    US = us_start();
    th_upstreams_write(&U, "trace", "{\"default\":{\"base_url\":\"%s/api\"}}", us_url(US));
    const char *env[] = {U.env,
                         "OFFLINEQ_WORKERS=2",
                         "OFFLINEQ_BACKOFF_BASE_MS=100",
                         "OFFLINEQ_BACKOFF_MAX_MS=200",
                         "OFFLINEQ_LOG_LEVEL=info",
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

/* POSTs body to /queue with extra headers; returns the new operation's id. */
static void enqueue_with(const char *body, const char *const *headers, char id[37])
{
    const char *h[8] = {"Content-Type: application/json"};
    for (int i = 0; headers && headers[i] && i < 6; i++)
        h[i + 1] = headers[i];
    struct resp *r = th_http(&S, "POST", "/api/offline/queue", body, -1, h);
    if (r->status != 201)
        fprintf(stderr, "%s\n", r->body);
    assert_int_equal(r->status, 201);
    snprintf(id, 37, "%s", th_str(r->json, "id"));
    th_resp_free(r);
}

/* The upstream's traceparent of request i: its trace id into trace, its parent id into span. */
static void sent_trace(const struct us_req *q, char trace[33], char span[17])
{
    const char *tp = us_header(q, "traceparent");
    assert_non_null(tp);
    assert_int_equal(strlen(tp), 55);
    assert_int_equal(strncmp(tp, "00-", 3), 0);
    assert_string_equal(tp + 52, "-01");
    snprintf(trace, 33, "%.32s", tp + 3);
    snprintf(span, 17, "%.16s", tp + 36);
}

/* A client's trace: stored, shown, and every attempt (a 503, then a 201) joins it with a
 * parent id of its own; tracestate and the request id come along. */
static void test_client_trace_joins_every_attempt(void **state)
{
    us_script(US, "/api/traced", "503,201", 0);
    static const char *const h[] = {"traceparent: 00-" TRACE "-" PARENT "-01",
                                    "tracestate: vendor=abc,other=x y", "X-Request-Id: req-42",
                                    NULL};
    char id[37];
    enqueue_with("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/traced\","
                 "\"headers\":{\"traceparent\":\"00-11111111111111111111111111111111-"
                 "1111111111111111-01\"}}}",
                 h, id);
    json_t *op = th_wait_op(&S, id, TH_SETTLED, 20000);
    assert_string_equal(th_str(op, "status"), "completed");
    assert_string_equal(th_str(op, "trace_id"), TRACE);
    assert_string_equal(th_str(op, "request_id"), "req-42");
    json_decref(op);
    int n;
    struct us_req *q = us_requests(US, &n);
    assert_int_equal(n, 2);
    char trace[2][33], span[2][17];
    for (int i = 0; i < 2; i++) {
        sent_trace(&q[i], trace[i], span[i]);
        assert_string_equal(trace[i], TRACE); /* the payload's own traceparent is replaced */
        assert_string_not_equal(span[i], PARENT);
        assert_string_equal(us_header(&q[i], "tracestate"), "vendor=abc,other=x y");
    }
    assert_string_not_equal(span[0], span[1]); /* a new span per attempt */
    us_free_reqs(q, n);

    /* each attempt left its line, with the trace id and what happened */
    usleep(200 * 1000);
    char *log = th_svc_log(&S);
    int lines = 0;
    for (char *l = strtok(log, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *j = json_loads(l, 0, NULL);
        const char *msg = j ? th_str(j, "msg") : NULL;
        if (msg && strcmp(msg, "attempt") == 0 && strcmp(th_str(j, "id"), id) == 0) {
            lines++;
            assert_string_equal(th_str(j, "operation_type"), "api_call");
            assert_string_equal(th_str(j, "upstream"), "default");
            assert_string_equal(th_str(j, "trace_id"), TRACE);
            assert_string_equal(th_str(j, "level"), "info");
            assert_int_equal(th_int(j, "attempt"), lines);
            assert_int_equal(th_int(j, "status_code"), lines == 1 ? 503 : 201);
            assert_string_equal(th_str(j, "outcome"), lines == 1 ? "retry" : "succeeded");
            assert_true(json_is_number(json_object_get(j, "duration_ms")));
        }
        if (msg && strcmp(msg, "request") == 0 && strcmp(th_str(j, "request_id"), "req-42") == 0)
            assert_string_equal(th_str(j, "trace_id"), TRACE); /* the access line too */
        json_decref(j);
    }
    free(log);
    assert_int_equal(lines, 2);
}

/* No traceparent (or one that is not valid): a new trace, never a refusal. A batch is one
 * request, so one trace for all its operations; the access line carries it. */
static void test_new_trace_when_absent_or_invalid(void **state)
{
    us_script(US, "/api/", "201", 0);
    static const char *const bad[][2] = {
        {"traceparent: 00-00000000000000000000000000000000-" PARENT "-01", NULL},
        {"traceparent: 00-" TRACE "-0000000000000000-01", NULL},
        {"traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01", NULL},
        {"traceparent: ff-" TRACE "-" PARENT "-01", NULL},
        {"traceparent: 00-" TRACE "-" PARENT "-01-extra", NULL},
        {"traceparent: nonsense", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char id[37];
        enqueue_with("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/fresh\"}}",
                     bad[i], id);
        json_t *op = th_wait_op(&S, id, TH_SETTLED, 20000);
        const char *t = th_str(op, "trace_id");
        assert_non_null(t);
        assert_int_equal(strlen(t), 32);
        assert_int_equal(strspn(t, "0123456789abcdef"), 32);
        assert_string_not_equal(t, TRACE);
        assert_non_null(th_str(op, "request_id")); /* the one the service made */
        json_decref(op);
    }
    struct resp *r = th_json(&S, "POST", "/api/offline/queue/batch",
                             "{\"operations\":[{\"operation_type\":\"api_call\",\"payload\":"
                             "{\"endpoint\":\"/b/1\"}},{\"operation_type\":\"api_call\","
                             "\"payload\":{\"endpoint\":\"/b/2\"}}]}");
    assert_int_equal(r->status, 201);
    json_t *ops = json_object_get(r->json, "operations");
    const char *t0 = th_str(json_array_get(ops, 0), "trace_id");
    assert_string_equal(th_str(json_array_get(ops, 1), "trace_id"), t0);
    assert_string_equal(th_str(json_array_get(ops, 0), "request_id"), th_header(r, "X-Request-Id"));
    char trace[33];
    snprintf(trace, sizeof(trace), "%s", t0);
    th_resp_free(r);
    assert_int_equal(us_wait_count(US, "/api/b/", 2, 20000), 2);
    int n;
    struct us_req *q = us_requests(US, &n);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(q[i].path, "/api/b/", 7) != 0)
            continue;
        char t[33], span[17];
        sent_trace(&q[i], t, span);
        assert_string_equal(t, trace);
        assert_null(us_header(&q[i], "tracestate"));
        seen++;
    }
    us_free_reqs(q, n);
    assert_int_equal(seen, 2);
}

/* Rows from SQL: offlineq.enqueue() gets a new trace from the column's default; a row without
 * one (stored before the migration) is delivered in the trace of its operation id; no writer
 * can store a trace context that is not a valid header. */
static void test_sql_rows_and_checks(void **state)
{
    us_script(US, "/api/", "201", 0);
    char id[37];
    snprintf(id, sizeof(id), "%s",
             th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/sql/1\"}')"));
    json_t *op = th_wait_op(&S, id, TH_SETTLED, 20000);
    char trace[33];
    snprintf(trace, sizeof(trace), "%s", th_str(op, "trace_id"));
    assert_int_equal(strlen(trace), 32);
    assert_true(json_is_null(json_object_get(op, "request_id")));
    json_decref(op);
    assert_int_equal(us_wait_count(US, "/api/sql/1", 1, 20000), 1);

    /* stored without a trace: its id is the trace id */
    snprintf(id, sizeof(id), "%s",
             th_sql(pg, "INSERT INTO offline_operations (operation_type, payload, trace_id, "
                        "  trace_span, trace_flags) "
                        "VALUES ('api_call', '{\"endpoint\":\"/sql/2\"}', NULL, NULL, NULL) "
                        "RETURNING id"));
    assert_int_equal(us_wait_count(US, "/api/sql/2", 1, 20000), 1);
    char want[33] = "";
    for (size_t i = 0, k = 0; id[i]; i++)
        if (id[i] != '-')
            want[k++] = id[i];
    int n;
    struct us_req *q = us_requests(US, &n);
    for (int i = 0; i < n; i++) {
        if (strcmp(q[i].path, "/api/sql/2") != 0)
            continue;
        char t[33], span[17];
        sent_trace(&q[i], t, span);
        assert_string_equal(t, want);
    }
    us_free_reqs(q, n);
    op = th_wait_op(&S, id, TH_SETTLED, 20000);
    assert_string_equal(th_str(op, "trace_id"), want);
    json_decref(op);

    static const char *const refused[] = {
        "UPDATE offline_operations SET tracestate = E'a=b\\r\\nX-Evil: 1'",
        "UPDATE offline_operations SET tracestate = repeat('a', 513)",
        "UPDATE offline_operations SET trace_id = '00000000-0000-0000-0000-000000000000'",
        "UPDATE offline_operations SET trace_span = 0",
        "UPDATE offline_operations SET trace_flags = 256",
        "UPDATE offline_operations SET trace_id = NULL", /* a trace is whole, or none */
        "UPDATE offline_operations SET request_id = repeat('a', 129)",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        PGresult *res = PQexec(pg, refused[i]);
        assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
        PQclear(res);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_client_trace_joins_every_attempt, reset),
        cmocka_unit_test_setup(test_new_trace_when_absent_or_invalid, reset),
        cmocka_unit_test_setup(test_sql_rows_and_checks, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
