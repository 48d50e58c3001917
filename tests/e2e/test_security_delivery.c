/* Where an operation goes and what it carries (issue 11, points 3, 4, 9, 10): every delivery
 * is checked again with the enqueue rules, an endpoint stays inside its upstream's base path,
 * payloads cannot set transport or signature headers, and signing secrets are decoded and
 * checked when the configuration is loaded. */
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_security_delivery"
#define SECRET_RAW "tenant-a-signing-key"
#define LONG_KEY_LEN 450 /* 600 base64 characters: far past the old 256-byte buffer */
#define TOKEN "Bearer upstream-token-a"

static struct svc S;
static PGconn *pg;
static struct upstream_srv *A; /* the configured upstreams: default = A/tenant-a, long = A/long */
static struct upstream_srv *B; /* somewhere else on this host: must never see a request */
static char db_url[512];
static struct th_upstreams U;
static unsigned char long_key[LONG_KEY_LEN];

static void b64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int group_setup(void **state)
{
    A = us_start();
    B = us_start();
    for (size_t i = 0; i < LONG_KEY_LEN; i++)
        long_key[i] = (unsigned char)(i * 37 + 11);
    char short_b64[64], long_b64[LONG_KEY_LEN * 2];
    b64((const unsigned char *)SECRET_RAW, strlen(SECRET_RAW), short_b64);
    b64(long_key, LONG_KEY_LEN, long_b64);
    assert_int_equal(strlen(long_b64), 600);
    th_upstreams_write(
        &U, "secdeliv",
        "{\"default\":{\"base_url\":\"%s/tenant-a\",\"headers\":{\"Authorization\":\"" TOKEN "\"},"
        "\"signing_secret\":\"whsec_%s\"},"
        "\"long\":{\"base_url\":\"%s/long\",\"signing_secret\":\"whsec_%s\"}}",
        us_url(A), short_b64, us_url(A), long_b64);
    const char *env[] = {U.env,
                         "OFFLINEQ_WORKERS=2",
                         "OFFLINEQ_POLL_MS=100",
                         "OFFLINEQ_BACKOFF_BASE_MS=50",
                         "OFFLINEQ_BACKOFF_MAX_MS=100",
                         NULL};
    return th_group_start(DB, env, &S, &pg, db_url, sizeof(db_url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    us_stop(A);
    us_stop(B);
    th_upstreams_remove(&U);
    return 0;
}

static int reset(void **state)
{
    us_reset(A);
    us_reset(B);
    th_sql(pg, "DELETE FROM offline_operations");
    return 0;
}

static long long count_ops(void)
{
    return atoll(th_sql(pg, "SELECT count(*) FROM offline_operations"));
}

/* POST /api/offline/queue must answer 400 invalid_request naming field; nothing is stored. */
static void assert_refused(const char *body, const char *field)
{
    long long before = count_ops();
    th_assert_enqueue_refused(&S, body, field);
    assert_int_equal(count_ops(), before);
}

/* Waits for the operation to end; returns its status and copies its error_message. */
static void wait_final(const char *id, char *status, size_t slen, char *msg, size_t mlen)
{
    json_t *op = th_wait_op(&S, id, TH_SETTLED, 20000);
    snprintf(status, slen, "%s", th_str(op, "status") ? th_str(op, "status") : "?");
    const char *m = th_str(op, "error_message");
    snprintf(msg, mlen, "%s", m ? m : "");
    json_decref(op);
}

/* ---- point 4: an endpoint cannot leave its upstream's base path ---- */

static void test_endpoint_cannot_leave_base_path(void **state)
{
    char other[256], prefix[256];
    snprintf(other, sizeof(other), "%s/tenant-b/x", us_url(A));
    snprintf(prefix, sizeof(prefix), "%s/tenant-abc", us_url(A));
    const char *bad[] = {"/../admin", "/a/./b",    "/%2e%2e/admin", "/%2E./x", "/a/%2e", "/a/..",
                         "/a/.%2E/b", "/a/..%2fb", "/a/%2e%2e%5cb", "/.",      other,    prefix,
                         NULL};
    for (const char *const *e = bad; *e; e++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"%s\",\"method\":"
                 "\"POST\"}}",
                 *e);
        assert_refused(body, "payload.endpoint");
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"%s\","
                 "\"data\":{}}}",
                 *e);
        assert_refused(body, "payload.endpoint");
    }
    /* inside the base path: sent exactly as written below the base */
    char inside[256];
    snprintf(inside, sizeof(inside), "%s/tenant-a/x", us_url(A));
    const struct {
        const char *endpoint, *arrives;
    } good[] = {{"/ok/x", "/tenant-a/ok/x"},
                {inside, "/tenant-a/x"},
                {"/a..b/.c/x.", "/tenant-a/a..b/.c/x."}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        us_reset(A);
        char body[512], id[37], status[32], msg[512];
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"%s\",\"method\":"
                 "\"POST\"}}",
                 good[i].endpoint);
        th_enqueue(&S, body, id);
        wait_final(id, status, sizeof(status), msg, sizeof(msg));
        assert_string_equal(status, "completed");
        int n;
        struct us_req *reqs = us_requests(A, &n);
        assert_int_equal(n, 1);
        assert_string_equal(reqs[0].path, good[i].arrives);
        us_free_reqs(reqs, n);
    }
    assert_int_equal(us_count(B, NULL), 0);
}

/* ---- point 9: payloads cannot set transport or signature headers ---- */

static void test_payload_cannot_set_transport_or_signature_headers(void **state)
{
    const char *names[] = {"TE",
                           "Upgrade",
                           "Keep-Alive",
                           "Trailer",
                           "Connection",
                           "Proxy-Authorization",
                           "proxy-connection",
                           "Proxy-Foo",
                           "Expect",
                           "Transfer-Encoding",
                           "Content-Length",
                           "Host",
                           "Idempotency-Key",
                           "webhook-id",
                           "Webhook-Timestamp",
                           "Webhook-Signature",
                           "WEBHOOK-SIGNATURE",
                           "te",
                           "KEEP-ALIVE",
                           NULL};
    for (const char *const *h = names; *h; h++) {
        char body[512], field[128];
        snprintf(field, sizeof(field), "payload.headers.%s", *h);
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/h\","
                 "\"headers\":{\"X-Fine\":\"1\",\"%s\":\"v1,forged\"}}}",
                 *h);
        assert_refused(body, field);
        /* experiment_sync sends payload.headers too (the api_call executor) */
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"/h\","
                 "\"data\":{},\"headers\":{\"%s\":\"v1,forged\"}}}",
                 *h);
        assert_refused(body, field);
    }
    /* what was refused before stays refused */
    assert_refused("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/h\","
                   "\"headers\":{\"X-A\":\"a\\r\\nX-Injected: 1\"}}}",
                   "payload.headers.X-A");
    assert_refused(
        "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"/h\",\"data\":{},"
        "\"headers\":{\"X-A\":\"a\\nb\"}}}",
        "payload.headers.X-A");
    assert_refused("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/h\","
                   "\"headers\":{\"Bad Name\":\"x\"}}}",
                   "payload.headers");
    /* an ordinary header goes through, next to the service's own signature */
    char id[37], status[32], msg[512];
    th_enqueue(
        &S,
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/h\",\"method\":\"POST\","
        "\"data\":{\"a\":1},\"headers\":{\"X-Trace\":\"t-1\"}}}",
        id);
    wait_final(id, status, sizeof(status), msg, sizeof(msg));
    assert_string_equal(status, "completed");
    int n;
    struct us_req *reqs = us_requests(A, &n);
    assert_int_equal(n, 1);
    assert_string_equal(us_header(&reqs[0], "x-trace"), "t-1");
    assert_non_null(strstr(reqs[0].headers, "webhook-signature: v1,"));
    assert_null(strstr(reqs[0].headers, "forged"));
    us_free_reqs(reqs, n);
}

/* The keys of a sealed payload's envelope are the service's own: a client's "$id" would become
 * the row's id (and vanish from the payload), a "$enc2" would be read as ciphertext. */
static void test_service_keys_in_a_payload_are_refused(void **state)
{
    assert_refused("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/k\","
                   "\"$id\":\"00000000-0000-0000-0000-000000000001\"}}",
                   "payload.$id");
    assert_refused("{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/k\","
                   "\"$enc2\":\"AAAA\"}}",
                   "payload.$enc2");
    assert_refused("{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":\"r\","
                   "\"metrics\":{\"x\":1},\"$enc\":\"AAAA\"}}",
                   "payload.$enc");
    /* below the top level they are ordinary data */
    char id[37];
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/k\","
               "\"data\":{\"$id\":\"x\"}}}",
               id);
    assert_string_equal(th_sqlf(pg,
                                "SELECT payload #>> '{data,$id}' FROM offline_operations "
                                "WHERE id = '%s'",
                                id),
                        "x");
    char status[32], msg[512];
    wait_final(id, status, sizeof(status), msg, sizeof(msg)); /* delivered before the next test */
    assert_string_equal(status, "completed");
}

/* ---- point 3: every delivery is checked, not only every enqueue ---- */

/* Rows the SQL function cannot judge (it does not know the upstreams), and rows written
 * around it: each ends failed with a message naming the field, and nothing is sent. */
static void test_rows_written_in_sql_are_checked_at_delivery(void **state)
{
    char sql[1024];
    struct {
        char id[37];
        const char *field; /* what the error_message must name */
    } ops[8];
    int n = 0;
    snprintf(sql, sizeof(sql),
             "SELECT offlineq.enqueue('api_call', "
             "'{\"endpoint\":\"%s/x\",\"method\":\"POST\",\"data\":{\"a\":1}}')",
             us_url(B));
    snprintf(ops[n].id, 37, "%s", th_sql(pg, sql));
    ops[n++].field = "payload.endpoint";
    snprintf(sql, sizeof(sql),
             "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"%s/tenant-b/x\"}')", us_url(A));
    snprintf(ops[n].id, 37, "%s", th_sql(pg, sql));
    ops[n++].field = "payload.endpoint";
    snprintf(ops[n].id, 37, "%s",
             th_sql(pg, "SELECT offlineq.enqueue('api_call', "
                        "'{\"endpoint\":\"/x\",\"upstream\":\"nowhere\"}')"));
    ops[n++].field = "payload.upstream";
    /* application code with INSERT on the table skips the function's checks altogether */
    const struct {
        const char *type, *payload, *field;
    } raw[] = {
        {"api_call", "{\"endpoint\":\"/../admin\",\"method\":\"POST\"}", "payload.endpoint"},
        {"api_call", "{\"endpoint\":\"/x\",\"headers\":{\"webhook-signature\":\"v1,forged\"}}",
         "payload.headers.webhook-signature"},
        {"api_call", "{\"endpoint\":\"/x\",\"method\":\"TRACE\"}", "payload.method"},
        {"metric_log", "{\"run_id\":\"r\",\"metrics\":{\"loss\":\"high\"}}",
         "payload.metrics.loss"},
        {"experiment_sync", "{\"endpoint\":\"/x\"}", "payload.data"},
    };
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO offline_operations (operation_type, payload) "
                 "VALUES ('%s', '%s') RETURNING id",
                 raw[i].type, raw[i].payload);
        snprintf(ops[n].id, 37, "%s", th_sql(pg, sql));
        ops[n++].field = raw[i].field;
    }
    th_sql(pg, "NOTIFY offlineq_wakeup");
    /* a sound row next to them is delivered: the workers do run */
    char good[37];
    snprintf(good, sizeof(good), "%s",
             th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/fine\"}')"));
    for (int i = 0; i < n; i++) {
        char status[32], msg[512];
        wait_final(ops[i].id, status, sizeof(status), msg, sizeof(msg));
        if (strcmp(status, "failed") != 0 || strstr(msg, ops[i].field) == NULL ||
            strstr(msg, "refused at delivery") == NULL)
            fail_msg("operation %d: %s \"%s\", want failed naming %s", i, status, msg,
                     ops[i].field);
        /* failed at its first attempt, no retries: the rule will not change its mind */
        snprintf(sql, sizeof(sql), "SELECT retry_count FROM offline_operations WHERE id = '%s'",
                 ops[i].id);
        assert_string_equal(th_sql(pg, sql), "1");
    }
    char status[32], msg[512];
    wait_final(good, status, sizeof(status), msg, sizeof(msg));
    assert_string_equal(status, "completed");
    usleep(300 * 1000);
    assert_int_equal(us_count(B, NULL), 0);
    int got;
    struct us_req *reqs = us_requests(A, &got);
    assert_int_equal(got, 1);
    assert_string_equal(reqs[0].path, "/tenant-a/fine");
    assert_string_equal(us_header(&reqs[0], "authorization"), TOKEN);
    us_free_reqs(reqs, got);
}

/* What the SQL function can check itself, it refuses: an error naming the field, no row. */
static void test_sql_function_refuses_what_it_can_check(void **state)
{
    const struct {
        const char *args, *needle;
    } cases[] = {
        {"'teleport', '{}'", "unknown operation_type"},
        {"'api_call', '[1]'", "payload must be a JSON object"},
        {"'api_call', '{\"endpoint\":42}'", "payload.endpoint must be a string"},
        {"'api_call', '{\"endpoint\":[\"/x\"]}'", "payload.endpoint must be a string"},
        {"'api_call', '{\"method\":\"POST\"}'", "payload.endpoint is required"},
        {"'file_upload', '{\"file_id\":\"00000000-0000-0000-0000-000000000000\"}'",
         "payload.endpoint is required"},
        {"'api_call', '{\"endpoint\":\"\"}'", "payload.endpoint"},
        {"'api_call', '{\"endpoint\":\"x/y\"}'", "payload.endpoint must be a path"},
        {"'api_call', '{\"endpoint\":\"//evil.example/x\"}'", "payload.endpoint must be a path"},
        {"'api_call', '{\"endpoint\":\"ftp://evil.example/x\"}'",
         "payload.endpoint must be a path"},
        {"'api_call', '{\"endpoint\":\"/a b\"}'", "payload.endpoint must not contain"},
        {"'api_call', '{\"endpoint\":\"/a\\tb\"}'", "payload.endpoint must not contain"},
        {"'api_call', '{\"endpoint\":\"/../admin\"}'", "dot segment"},
        {"'api_call', '{\"endpoint\":\"/a/./b\"}'", "dot segment"},
        {"'api_call', '{\"endpoint\":\"/%2e%2e/admin\"}'", "dot segment"},
        {"'api_call', '{\"endpoint\":\"/%2E./x\"}'", "dot segment"},
        {"'api_call', '{\"endpoint\":\"/a/%2e\"}'", "dot segment"},
        {"'api_call', '{\"endpoint\":\"/a/..%2Fb\"}'", "dot segment"},
        {"'api_call', '{\"endpoint\":\"http://up.example/a/../b\"}'", "dot segment"},
        {"'metric_log', '{\"run_id\":\"r\",\"metrics\":{\"x\":1},\"endpoint\":\"/m/../n\"}'",
         "dot segment"},
        {"'api_call', '{\"endpoint\":\"/x\",\"upstream\":7}'", "payload.upstream must be a string"},
        {"'api_call', '{\"endpoint\":\"/x\",\"method\":\"TRACE\"}'", "payload.method"},
        {"'api_call', '{\"endpoint\":\"/x\",\"headers\":[]}'", "payload.headers must be an object"},
        {"'api_call', '{\"endpoint\":\"/x\",\"headers\":{\"X-A\":1}}'", "payload.headers.X-A"},
        {"'api_call', '{\"endpoint\":\"/x\",\"headers\":{\"X-A\":\"a\\nb\"}}'",
         "payload.headers.X-A"},
        {"'api_call', '{\"endpoint\":\"/x\",\"headers\":{\"Bad Name\":\"x\"}}'", "payload.headers"},
        {"'api_call', '{\"endpoint\":\"/x\",\"headers\":{\"Webhook-Signature\":\"v1,x\"}}'",
         "payload.headers.Webhook-Signature"},
        {"'api_call', '{\"endpoint\":\"/x\",\"headers\":{\"proxy-authorization\":\"x\"}}'",
         "payload.headers.proxy-authorization"},
        {"'experiment_sync', '{\"endpoint\":\"/x\",\"data\":{},\"headers\":{\"HOST\":\"x\"}}'",
         "payload.headers.HOST"},
        {"'experiment_sync', '{\"endpoint\":\"/x\"}'", "payload.data"},
        {"'experiment_sync', '{\"endpoint\":\"/x\",\"data\":[1]}'", "payload.data"},
        {"'file_upload', '{\"endpoint\":\"/x\"}'", "payload.file_id is required"},
        {"'model_push', "
         "'{\"endpoint\":\"/x\",\"file_id\":\"00000000-0000-0000-0000-000000000000\"}'",
         "payload.model_name"},
        {"'metric_log', '{\"metrics\":{\"x\":1}}'", "payload.run_id"},
        {"'metric_log', '{\"run_id\":\"r\"}'", "payload.metrics must be"},
        {"'metric_log', '{\"run_id\":\"r\",\"metrics\":{}}'", "payload.metrics must be"},
        {"'metric_log', '{\"run_id\":\"r\",\"metrics\":{\"loss\":\"high\"}}'",
         "payload.metrics.loss"},
        {"'metric_log', '{\"run_id\":\"r\",\"metrics\":{\"x\":1},\"step\":-1}'", "payload.step"},
        {"'metric_log', '{\"run_id\":\"r\",\"metrics\":{\"x\":1},\"step\":1.5}'", "payload.step"},
        {"'metric_log', '{\"run_id\":\"r\",\"metrics\":{\"x\":1},\"step\":\"1\"}'", "payload.step"},
        {"'api_call', '{\"endpoint\":\"/x\",\"$id\":\"00000000-0000-0000-0000-000000000001\"}'",
         "the service's own"},
        {"'api_call', '{\"endpoint\":\"/x\",\"$enc2\":\"AAAA\"}'", "the service's own"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT offlineq.enqueue(%s)", cases[i].args);
        PGresult *res = PQexec(pg, sql);
        const char *state_ = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        if (PQresultStatus(res) != PGRES_FATAL_ERROR || state_ == NULL ||
            strcmp(state_, "OQ400") != 0 || msg == NULL || strstr(msg, cases[i].needle) == NULL)
            fail_msg("%s: status %s, %s \"%s\", want OQ400 with \"%s\"", sql,
                     PQresStatus(PQresultStatus(res)), state_ ? state_ : "-", msg ? msg : "",
                     cases[i].needle);
        PQclear(res);
        assert_int_equal(count_ops(), 0);
    }
    /* what is fine still goes in, absolute URLs too (the service judges their origin) */
    th_sql(pg, "SELECT offlineq.enqueue('api_call', "
               "'{\"endpoint\":\"/a..b/.c?x=/../y\",\"headers\":{\"X-A\":\"1\"}}')");
    th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"https://up.example/a\"}')");
    th_sql(pg, "SELECT offlineq.enqueue('metric_log', "
               "'{\"run_id\":\"r\",\"metrics\":{\"x\":1},\"step\":3}')");
    th_sql(
        pg,
        "SELECT offlineq.enqueue('experiment_sync', '{\"endpoint\":\"/e\",\"data\":{\"a\":1}}')");
    assert_int_equal(count_ops(), 4);
}

/* ---- point 10: signing secrets are decoded and checked when the config is loaded ---- */

static void test_any_valid_secret_length_signs(void **state)
{
    char ids[2][37];
    th_enqueue(
        &S,
        "{\"operation_type\":\"api_call\",\"payload\":{\"upstream\":\"long\",\"endpoint\":\"/s\","
        "\"method\":\"POST\",\"data\":{\"x\":1}}}",
        ids[0]);
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/s\","
               "\"method\":\"POST\",\"data\":{\"x\":2}}}",
               ids[1]);
    for (int i = 0; i < 2; i++) {
        char status[32], msg[512];
        wait_final(ids[i], status, sizeof(status), msg, sizeof(msg));
        assert_string_equal(status, "completed");
    }
    int n;
    struct us_req *reqs = us_requests(A, &n);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++) {
        if (strcmp(reqs[i].path, "/long/s") == 0)
            th_assert_signed(&reqs[i], long_key, LONG_KEY_LEN);
        else
            th_assert_signed(&reqs[i], SECRET_RAW, strlen(SECRET_RAW));
        /* one signature, the service's own */
        const char *first = strstr(reqs[i].headers, "webhook-signature:");
        assert_non_null(first);
        assert_null(strstr(first + 1, "webhook-signature:"));
    }
    us_free_reqs(reqs, n);
}

static void test_malformed_secret_is_a_start_up_error(void **state)
{
    const char *bad[] = {
        "whsec_",               /* nothing to decode */
        "whsec_YWJ",            /* not a multiple of 4 */
        "whsec_YWJjZA",         /* padding left out */
        "whsec_YW=j",           /* padding in the middle */
        "whsec_YWJjZA=A",       /* junk after the padding */
        "whsec_YWJj!!!!",       /* not the base64 alphabet */
        "whsec_ YWJj",          /* whitespace */
        "whsec_YWJjZA===",      /* too much padding */
        "whsec_YWJjZB==",       /* bits left in the padding: not the canonical encoding */
        "whsec_SECRETMARK-_Q=", /* base64url is not base64 */
    };
    char path[256];
    snprintf(path, sizeof(path), "/tmp/offlineq-secdeliv-bad-%d.json", (int)getpid());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *f = fopen(path, "w");
        fprintf(f, "{\"payments\":{\"base_url\":\"%s\",\"signing_secret\":\"%s\"}}", us_url(A),
                bad[i]);
        fclose(f);
        char file_env[300];
        snprintf(file_env, sizeof(file_env), "OFFLINEQ_UPSTREAMS_FILE=%s", path);
        const char *env[] = {file_env, NULL};
        struct svc s;
        int code = -1;
        int rc = th_svc_start(&s, db_url, env, &code);
        if (rc == 0) {
            th_svc_stop(&s, SIGTERM);
            fail_msg("%s: the service started", bad[i]);
        }
        assert_int_equal(code, 2);
        char *log = th_svc_log(&s);
        if (strstr(log, "payments") == NULL || strstr(log, "signing_secret") == NULL)
            fail_msg("%s: log does not name the upstream and signing_secret: %s", bad[i], log);
        assert_null(strstr(log, "SECRETMARK")); /* the secret itself is not logged */
        free(log);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_endpoint_cannot_leave_base_path, reset),
        cmocka_unit_test_setup(test_payload_cannot_set_transport_or_signature_headers, reset),
        cmocka_unit_test_setup(test_service_keys_in_a_payload_are_refused, reset),
        cmocka_unit_test_setup(test_rows_written_in_sql_are_checked_at_delivery, reset),
        cmocka_unit_test_setup(test_sql_function_refuses_what_it_can_check, reset),
        cmocka_unit_test_setup(test_malformed_secret_is_a_start_up_error, reset),
        cmocka_unit_test_setup(test_any_valid_secret_length_signs, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
