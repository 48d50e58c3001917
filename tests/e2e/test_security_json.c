/* Issue 11, points 15 and 18: a body is exactly one RFC 8259 value (a NUL between tokens is a
 * 400), and every RFC 8259 number is accepted, stored and delivered upstream with the text
 * PostgreSQL's jsonb keeps for it (SELECT '<n>'::jsonb::text). */
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

#define DB "e2e_security_json"
static struct svc S;
static struct upstream_srv *US;
static PGconn *pg;

/* The numbers of the issue (and two more), each in the text PostgreSQL renders. */
static const char *const numbers[] = {"100.0",   "1.50",
                                      "-0",      "1e400",
                                      "0.1",     "12345678901234567890",
                                      "-1e-400", "12345678901234567000",
                                      "1.50e1"};
static char *rendered[sizeof(numbers) / sizeof(numbers[0])];
#define N_NUMBERS (sizeof(numbers) / sizeof(numbers[0]))

static char *repeat(const char *head, char c, int n, const char *tail)
{
    size_t len = strlen(head) + (size_t)n + strlen(tail) + 1;
    char *s = malloc(len);
    size_t o = (size_t)snprintf(s, len, "%s", head);
    memset(s + o, c, (size_t)n);
    snprintf(s + o + (size_t)n, len - o - (size_t)n, "%s", tail);
    return s;
}

static int group_setup(void **state)
{
    US = us_start();
    char up[256];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s/api,res=%s", us_url(US), us_url(US));
    const char *env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_POLL_MS=100",
                         "OFFLINEQ_BACKOFF_BASE_MS=100", NULL};
    if (th_group_start(DB, env, &S, &pg, NULL, 0) != 0)
        return -1;
    static const char *const want[] = {
        "100.0", "1.50", "0", NULL, "0.1", "12345678901234567890", NULL, "12345678901234567000",
        "15.0"};
    for (size_t i = 0; i < N_NUMBERS; i++)
        rendered[i] = want[i] ? strdup(want[i]) : NULL;
    rendered[3] = repeat("1", '0', 400, "");
    rendered[6] = repeat("-0.", '0', 399, "1");
    for (size_t i = 0; i < N_NUMBERS; i++) /* the table above is what PostgreSQL says */
        assert_string_equal(th_sqlf(pg, "SELECT '%s'::jsonb::text", numbers[i]), rendered[i]);
    return 0;
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    us_stop(US);
    for (size_t i = 0; i < N_NUMBERS; i++)
        free(rendered[i]);
    return 0;
}

static int reset(void **state)
{
    us_reset(US);
    th_sql(pg, "DELETE FROM offline_operations");
    return 0;
}

static struct resp *post(const char *path, const char *body, size_t len)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return th_http(&S, "POST", path, body, (long)len, h);
}

/* The id from the Location of a 201 (the body may hold numbers the harness cannot parse). */
static void enqueue(const char *body, char id[37])
{
    struct resp *r = post("/api/offline/queue", body, strlen(body));
    if (r->status != 201)
        fail_msg("enqueue %.200s -> %ld %.300s", body, r->status, r->body);
    const char *loc = th_header(r, "Location");
    assert_non_null(loc);
    snprintf(id, 37, "%s", strrchr(loc, '/') + 1);
    th_resp_free(r);
}

static void wait_status(const char *id, const char *status)
{
    double until = th_now_ms() + 20000;
    const char *st = "";
    while (th_now_ms() < until) {
        st = th_sqlf(pg, "SELECT status FROM offline_operations WHERE id = '%s'", id);
        if (strcmp(st, status) == 0)
            return;
        usleep(50000);
    }
    fail_msg("operation %s is %s, not %s", id, st, status);
}

/* The body of the one recorded request to path (malloc'd). */
static char *upstream_body(const char *path)
{
    assert_int_equal(us_wait_count(US, path, 1, 10000), 1);
    int n;
    struct us_req *r = us_requests(US, &n);
    char *body = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(r[i].path, path) == 0)
            body = strndup(r[i].body ? r[i].body : "", r[i].body_len);
    }
    us_free_reqs(r, n);
    assert_non_null(body);
    return body;
}

static void expect_400(const char *body, size_t len, const char *code)
{
    const char *before = th_sql(pg, "SELECT count(*) FROM offline_operations");
    char count[32];
    snprintf(count, sizeof(count), "%s", before);
    struct resp *r = post("/api/offline/queue", body, len);
    th_assert_error(r, 400, code);
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), count);
}

/* 15: a NUL byte between tokens, anywhere outside a string, is a 400 and stores nothing. */
static void test_nul_outside_strings_is_400(void **state)
{
    static const char between[] = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                                  "a\",\"method\":\"POST\",\"data\":1\0}}";
    expect_400(between, sizeof(between) - 1, "invalid_json");
    static const char before_key[] =
        "{\"operation_type\":\"api_call\",\0\"payload\":{\"endpoint\":\"/a\"}}";
    expect_400(before_key, sizeof(before_key) - 1, "invalid_json");
    static const char after_colon[] =
        "{\"operation_type\":\0\"api_call\",\"payload\":{\"endpoint\":\"/a\"}}";
    expect_400(after_colon, sizeof(after_colon) - 1, "invalid_json");
    static const char in_array[] =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\",\"data\":[1,\0 2]}}";
    expect_400(in_array, sizeof(in_array) - 1, "invalid_json");
    static const char at_start[] =
        "\0{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\"}}";
    expect_400(at_start, sizeof(at_start) - 1, "invalid_json");
    static const char at_end[] =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\"}}\0";
    expect_400(at_end, sizeof(at_end) - 1, "invalid_json");
    static const char two_values[] =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\"}} {}";
    expect_400(two_values, sizeof(two_values) - 1, "invalid_json");
    /* the same body without the NUL is fine */
    static const char fine[] = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                               "a\",\"method\":\"POST\",\"data\":1}} \r\n";
    struct resp *r = post("/api/offline/queue", fine, sizeof(fine) - 1);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
}

/* 18: each number reaches the upstream as PostgreSQL renders it: alone, nested in arrays and
 * objects, and stored the same (the payload column holds the number, not a string). */
static void test_numbers_reach_upstream_as_postgresql_renders(void **state)
{
    for (size_t i = 0; i < N_NUMBERS; i++) {
        char path[64], body[512], id[37];
        snprintf(path, sizeof(path), "/api/n%zu", i);
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                 "n%zu\",\"method\":\"PUT\","
                 "\"data\":{\"v\":%s,\"list\":[%s,[%s],{\"deep\":%s}]}}}",
                 i, numbers[i], numbers[i], numbers[i], numbers[i]);
        enqueue(body, id);
        wait_status(id, "completed");
        char *got = upstream_body(path);
        size_t len = 4 * strlen(rendered[i]) + 64;
        char *want = malloc(len);
        snprintf(want, len, "{\"v\":%s,\"list\":[%s,[%s],{\"deep\":%s}]}", rendered[i], rendered[i],
                 rendered[i], rendered[i]);
        if (strcmp(got, want) != 0)
            fail_msg("%s: upstream got %.200s, want %.200s", numbers[i], got, want);
        assert_string_equal(th_sqlf(pg,
                                    "SELECT jsonb_typeof(payload #> '{data,v}') || ' ' || "
                                    "(payload #> '{data,v}' = '%s'::jsonb) "
                                    "FROM offline_operations WHERE id = '%s'",
                                    numbers[i], id),
                            "number true");
        free(want);
        free(got);
        /* scalar data */
        snprintf(path, sizeof(path), "/api/s%zu", i);
        snprintf(
            body, sizeof(body),
            "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/s%zu\",\"data\":%s}}", i,
            numbers[i]);
        enqueue(body, id);
        wait_status(id, "completed");
        got = upstream_body(path);
        assert_string_equal(got, rendered[i]);
        free(got);
    }
}

/* The same in a batch enqueue, and the stored payload is shown with the same text. */
static void test_numbers_in_batch(void **state)
{
    struct oq_text {
        char *s;
    } b = {malloc(8192)};
    size_t o = (size_t)sprintf(b.s, "{\"operations\":[");
    for (size_t i = 0; i < N_NUMBERS; i++)
        o += (size_t)sprintf(
            b.s + o,
            "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/b%zu\","
            "\"data\":[%s,{\"x\":%s}]}}",
            i ? "," : "", i, numbers[i], numbers[i]);
    sprintf(b.s + o, "]}");
    struct resp *r = post("/api/offline/queue/batch", b.s, strlen(b.s));
    if (r->status != 201)
        fail_msg("batch -> %ld %.300s", r->status, r->body);
    /* the answer shows each payload as stored */
    for (size_t i = 0; i < N_NUMBERS; i++) {
        char *needle = malloc(2 * strlen(rendered[i]) + 32);
        sprintf(needle, "\"data\":[%s,{\"x\":%s}]", rendered[i], rendered[i]);
        char *spaced = malloc(2 * strlen(rendered[i]) + 32);
        sprintf(spaced, "\"data\": [%s, {\"x\": %s}]", rendered[i], rendered[i]);
        if (strstr(r->body, needle) == NULL && strstr(r->body, spaced) == NULL)
            fail_msg("batch answer lacks %.100s", needle);
        free(needle);
        free(spaced);
    }
    th_resp_free(r);
    free(b.s);
    for (size_t i = 0; i < N_NUMBERS; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/api/b%zu", i);
        char *got = upstream_body(path);
        char *want = malloc(2 * strlen(rendered[i]) + 32);
        sprintf(want, "[%s,{\"x\":%s}]", rendered[i], rendered[i]);
        if (strcmp(got, want) != 0)
            fail_msg("%s: upstream got %.200s, want %.200s", numbers[i], got, want);
        free(want);
        free(got);
    }
}

/* Fields offlineq reads still get their number rules; metric values may be any number. */
static void test_number_fields_still_validated(void **state)
{
    const char *prio_huge =
        "{\"operation_type\":\"api_call\",\"priority\":123456789012345678901234567890,"
        "\"payload\":{\"endpoint\":\"/x\"}}";
    expect_400(prio_huge, strlen(prio_huge), "invalid_request");
    const char *prio_e =
        "{\"operation_type\":\"api_call\",\"priority\":1e400,\"payload\":{\"endpoint\":\"/x\"}}";
    expect_400(prio_e, strlen(prio_e), "invalid_request");
    const char *prio_frac =
        "{\"operation_type\":\"api_call\",\"priority\":1.5,\"payload\":{\"endpoint\":\"/x\"}}";
    expect_400(prio_frac, strlen(prio_frac), "invalid_request");
    const char *step_neg =
        "{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\",\"step\":-1e-400,"
        "\"metrics\":{\"a\":1}}}";
    expect_400(step_neg, strlen(step_neg), "invalid_request");
    const char *metric_str = "{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\","
                             "\"metrics\":{\"a\":\"1\"}}}";
    expect_400(metric_str, strlen(metric_str), "invalid_request");
    /* priority 5.0 and 2e1 are integers; delay_s 0.5e0 a number: accepted and used */
    char id[37];
    enqueue(
        "{\"operation_type\":\"api_call\",\"priority\":2e1,\"max_attempts\":3.0,\"delay_s\":0.5e0,"
        "\"payload\":{\"endpoint\":\"/p\"}}",
        id);
    assert_string_equal(th_sqlf(pg,
                                "SELECT priority || ' ' || max_attempts FROM offline_operations "
                                "WHERE id = '%s'",
                                id),
                        "20 3");
    wait_status(id, "completed");
    /* metric values of any size go upstream as PostgreSQL keeps them */
    enqueue("{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r1\",\"step\":7,"
            "\"endpoint\":\"/m\","
            "\"metrics\":{\"loss\":1e400,\"acc\":0.1,\"n\":100.0}}}",
            id);
    wait_status(id, "completed");
    char *got = upstream_body("/api/m");
    char *e400 = repeat("1", '0', 400, "");
    char *want = malloc(600);
    snprintf(want, 600,
             "[{\"step\":7,\"run_id\":\"r1\",\"metrics\":{\"n\":100.0,\"acc\":0.1,\"loss\":%s},"
             "\"endpoint\":\"/m\"}]",
             e400);
    assert_string_equal(got, want);
    free(want);
    free(e400);
    free(got);
}

/* What PostgreSQL cannot store is refused up front (400), not a 500 at the insert. */
static void test_numbers_postgresql_cannot_hold(void **state)
{
    const char *big =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"data\":1e131072}}";
    expect_400(big, strlen(big), "invalid_json");
    const char *tiny =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"data\":1e-16384}}";
    expect_400(tiny, strlen(tiny), "invalid_json");
}

/* An upstream's answer with such numbers is stored as JSON, numbers intact. */
static void test_upstream_answer_numbers_kept(void **state)
{
    struct us_rule rule = {.path = "/api/answer"};
    snprintf(rule.body, sizeof(rule.body), "{\"id\":12345678901234567890,\"x\":1e400,\"p\":100.0}");
    us_rule(US, &rule);
    char id[37];
    enqueue("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/answer\",\"data\":{}}}",
            id);
    wait_status(id, "completed");
    assert_string_equal(
        th_sqlf(pg,
                "SELECT jsonb_typeof(result -> 'body') || ' ' || "
                "(result #>> '{body,id}') || ' ' || (result #>> '{body,p}') || ' ' || "
                "(result #> '{body,x}' = '1e400'::jsonb) FROM offline_operations "
                "WHERE id = '%s'",
                id),
        "object 12345678901234567890 100.0 true");
}

/* With encryption at rest the payload is sealed as offlineq wrote it, not as PostgreSQL
 * rendered it: the numbers must come out the same all the same. */
static void test_numbers_under_encryption(void **state)
{
    struct svc s2;
    PGconn *pg2;
    char up[128];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s/sealed", us_url(US));
    const char *env[] = {
        up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_POLL_MS=100",
        "OFFLINEQ_ENCRYPTION_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        NULL};
    assert_int_equal(th_group_start(DB "_sealed", env, &s2, &pg2, NULL, 0), 0);
    char body[1024];
    size_t o = (size_t)snprintf(
        body, sizeof(body),
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/e\",\"data\":[");
    for (size_t i = 0; i < N_NUMBERS; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "%s%s", i ? "," : "", numbers[i]);
    snprintf(body + o, sizeof(body) - o, "]}}");
    static const char *const h[] = {"Content-Type: application/json", NULL};
    struct resp *r = th_http(&s2, "POST", "/api/offline/queue", body, -1, h);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    assert_string_equal(th_sql(pg2, "SELECT count(*) FROM offline_operations "
                                    "WHERE payload::text LIKE '%12345678901234567890%'"),
                        "0"); /* sealed */
    assert_int_equal(us_wait_count(US, "/sealed/e", 1, 15000), 1);
    char *got = upstream_body("/sealed/e");
    size_t len = 64;
    for (size_t i = 0; i < N_NUMBERS; i++)
        len += strlen(rendered[i]) + 1;
    char *want = malloc(len);
    o = (size_t)snprintf(want, len, "[");
    for (size_t i = 0; i < N_NUMBERS; i++)
        o += (size_t)snprintf(want + o, len - o, "%s%s", i ? "," : "", rendered[i]);
    snprintf(want + o, len - o, "]");
    if (strcmp(got, want) != 0)
        fail_msg("sealed: upstream got %.300s, want %.300s", got, want);
    free(want);
    free(got);
    th_group_stop(DB "_sealed", &s2, pg2);
}

/* A conflict merges the local data with the remote document, numbers intact on both sides, and
 * an operator's merged data (the resolve body) is sent with PostgreSQL's text too. */
static void test_numbers_in_conflicts(void **state)
{
    us_resource(US, "/res/m", "{\"name\":\"v1\"}", 1700000000);
    us_resource(US, "/res/m", "{\"name\":\"theirs\",\"id\":12345678901234567890,\"big\":1e400}",
                1700000000);
    char id[37];
    enqueue(
        "{\"operation_type\":\"experiment_sync\",\"conflict_strategy\":\"merge\",\"payload\":{"
        "\"upstream\":\"res\","
        "\"endpoint\":\"/res/m\",\"if_match\":\"\\\"v1\\\"\",\"data\":{\"lr\":1.50,\"n\":100.0}}}",
        id);
    wait_status(id, "completed");
    char *doc = us_resource_get(US, "/res/m", NULL);
    char *want = malloc(1024);
    snprintf(want, 1024,
             "{\"name\":\"theirs\",\"id\":12345678901234567890,\"big\":%s,\"n\":100.0,\"lr\":1.50}",
             rendered[3]);
    assert_string_equal(doc, want);
    free(doc);
    /* manual: the operator's merged data */
    us_resource(US, "/res/o", "{\"name\":\"v1\"}", 1700000000);
    us_resource(US, "/res/o", "{\"name\":\"v2\"}", 1700000000);
    enqueue("{\"operation_type\":\"experiment_sync\",\"conflict_strategy\":\"manual\",\"payload\":{"
            "\"upstream\":\"res\","
            "\"endpoint\":\"/res/o\",\"if_match\":\"\\\"v1\\\"\",\"data\":{\"n\":1}}}",
            id);
    wait_status(id, "conflict");
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s/resolve", id);
    const char *merged =
        "{\"resolution\":\"merged\",\"data\":{\"x\":1.50,\"y\":-1e-400,\"z\":[0.1,-0]}}";
    struct resp *r = post(path, merged, strlen(merged));
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    wait_status(id, "completed");
    doc = us_resource_get(US, "/res/o", NULL);
    snprintf(want, 1024, "{\"x\":1.50,\"y\":%s,\"z\":[0.1,0]}", rendered[6]);
    assert_string_equal(doc, want);
    free(doc);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_nul_outside_strings_is_400, reset),
        cmocka_unit_test_setup(test_numbers_reach_upstream_as_postgresql_renders, reset),
        cmocka_unit_test_setup(test_numbers_in_batch, reset),
        cmocka_unit_test_setup(test_number_fields_still_validated, reset),
        cmocka_unit_test_setup(test_numbers_postgresql_cannot_hold, reset),
        cmocka_unit_test_setup(test_upstream_answer_numbers_kept, reset),
        cmocka_unit_test_setup(test_numbers_under_encryption, reset),
        cmocka_unit_test_setup(test_numbers_in_conflicts, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
