/* Per-upstream delivery policy: signatures, in-flight cap, rate, circuit breaker. */
#include <openssl/evp.h>
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

#define DB "e2e_policy"
#define SECRET_RAW "test-secret-key-123"
static struct svc S;
static struct upstream_srv *US;
static char url[512];
static struct th_upstreams U;

static int group_setup(void **state)
{
    US = us_start();
    unsigned char b64[64];
    EVP_EncodeBlock(b64, (const unsigned char *)SECRET_RAW, (int)strlen(SECRET_RAW));
    th_upstreams_write(
        &U, "policy",
        "{\"default\":{\"base_url\":\"%s\"},"
        "\"signed\":{\"base_url\":\"%s/signed\",\"signing_secret\":\"whsec_%s\"},"
        "\"limited\":{\"base_url\":\"%s/limited\",\"max_concurrency\":2,\"rate_per_s\":5},"
        "\"flaky\":{\"base_url\":\"%s/flaky\",\"max_concurrency\":1,\"breaker_failures\":3,"
        "\"breaker_cooldown_s\":2}}",
        us_url(US), us_url(US), b64, us_url(US), us_url(US));
    const char *env[] = {U.env,
                         "OFFLINEQ_WORKERS=8",
                         "OFFLINEQ_BACKOFF_BASE_MS=50",
                         "OFFLINEQ_BACKOFF_MAX_MS=100",
                         "OFFLINEQ_POLL_MS=100",
                         NULL};
    return th_group_start(DB, env, &S, NULL, url, sizeof(url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, NULL);
    us_stop(US);
    th_upstreams_remove(&U);
    return 0;
}

static int reset(void **state)
{
    us_reset(US);
    return 0;
}

/* Standard Webhooks, with the idempotency key equal to the message id and a fresh timestamp. */
static void assert_signed(const struct us_req *r)
{
    const char *id = us_header(r, "webhook-id");
    assert_non_null(id);
    char idc[128];
    snprintf(idc, sizeof(idc), "%s", id);
    assert_string_equal(us_header(r, "idempotency-key"), idc);
    char ts[32];
    snprintf(ts, sizeof(ts), "%s", us_header(r, "webhook-timestamp"));
    long age = (long)time(NULL) - atol(ts);
    assert_true(age >= 0 && age < 60);
    th_assert_signed(r, SECRET_RAW, strlen(SECRET_RAW));
}

static void test_every_request_is_signed(void **state)
{
    char ids[4][37];
    th_enqueue_n(&S, 3,
                 "{\"operation_type\":\"api_call\",\"payload\":{\"upstream\":\"signed\","
                 "\"endpoint\":\"/s/%d\","
                 "\"data\":{\"x\":\"caf\\u00e9\"}}}",
                 ids);
    const unsigned char bytes[] = {0, 1, 2, 3, 0xff, '\r', '\n'};
    const char *h[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r =
        th_http(&S, "POST", "/api/offline/files", (const char *)bytes, sizeof(bytes), h);
    assert_int_equal(r->status, 201);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"upstream\":\"signed\","
             "\"endpoint\":\"/file\",\"file_id\":\"%s\"}}",
             th_str(r->json, "file_id"));
    th_resp_free(r);
    th_enqueue(&S, body, ids[3]);
    th_wait_all(&S, ids, 4, "completed", 30000);
    int n;
    struct us_req *reqs = us_requests(US, &n);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) {
        assert_int_equal(strncmp(reqs[i].path, "/signed/", 8), 0);
        assert_signed(&reqs[i]);
    }
    us_free_reqs(reqs, n);
    /* the unsigned upstream sends no signature headers */
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/plain\"}}",
               ids[0]);
    th_wait_all(&S, ids, 1, "completed", 30000);
    reqs = us_requests(US, &n);
    assert_null(us_header(&reqs[n - 1], "webhook-signature"));
    us_free_reqs(reqs, n);
}

static void test_concurrency_and_rate_limits(void **state)
{
    us_script(US, "/limited/", "201", 300);
    char ids[12][37];
    th_enqueue_n(&S, 12,
                 "{\"operation_type\":\"api_call\",\"payload\":{\"upstream\":\"limited\","
                 "\"endpoint\":\"/l/%d\"}}",
                 ids);
    th_wait_all(&S, ids, 12, "completed", 30000);
    assert_true(us_max_in_flight(US) <= 2);
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 12);
    /* at most rate_per_s + 1 (the burst) arrivals in any one-second window */
    for (int i = 0; i < n; i++) {
        int in_window = 0;
        for (int j = 0; j < n; j++)
            in_window += r[j].start_ms >= r[i].start_ms && r[j].start_ms < r[i].start_ms + 1000;
        if (in_window > 6)
            fprintf(stderr, "%d arrivals within 1 s of arrival %d\n", in_window, i);
        assert_true(in_window <= 6);
    }
    us_free_reqs(r, n);
}

static void test_circuit_breaker(void **state)
{
    us_script(US, "/flaky/", "503,503,503,201", 0);
    char ids[5][37];
    th_enqueue_n(&S, 5,
                 "{\"operation_type\":\"api_call\",\"payload\":{\"upstream\":\"flaky\","
                 "\"endpoint\":\"/f/%d\"},"
                 "\"max_attempts\":4}",
                 ids);
    th_wait_all(&S, ids, 5, "completed", 30000);
    int n;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 8); /* 3 failures, the probe, 4 more */
    for (int i = 0; i < 3; i++)
        assert_int_equal(r[i].status, 503);
    /* open: nothing for the 2 s cool-down; then one probe alone */
    double quiet = r[3].start_ms - r[2].end_ms;
    assert_true(quiet >= 1800);
    assert_int_equal(r[3].status, 201);
    assert_true(r[4].start_ms >= r[3].end_ms);
    us_free_reqs(r, n);
    /* no attempt was used while the breaker was open: only the 3 failures count */
    int attempts = 0;
    for (int i = 0; i < 5; i++) {
        char path[96];
        snprintf(path, sizeof(path), "/api/offline/queue/%s", ids[i]);
        struct resp *resp = th_http(&S, "GET", path, NULL, 0, NULL);
        attempts += (int)th_int(resp->json, "retry_count");
        th_resp_free(resp);
    }
    assert_int_equal(attempts, 3);
    char *log = th_svc_log(&S);
    char *open = strstr(log, "\"msg\":\"circuit breaker open\"");
    assert_non_null(open);
    char *half = strstr(open, "\"msg\":\"circuit breaker half-open\"");
    assert_non_null(half);
    assert_non_null(strstr(half, "\"msg\":\"circuit breaker closed\""));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_request_is_signed, reset),
        cmocka_unit_test_setup(test_concurrency_and_rate_limits, reset),
        cmocka_unit_test_setup(test_circuit_breaker, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
