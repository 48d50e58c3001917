/* Every attempt on record (GET /queue/{id}/attempts), and what an attempt costs: a request that
 * reached the upstream counts whatever a network check finds after it; a lease that ran out
 * costs none, and an operation whose worker keeps dying fails after OFFLINEQ_MAX_LEASE_EXPIRIES. */
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

static struct upstream_srv *US, *PROBE;

static int group_setup(void **state)
{
    US = us_start();
    PROBE = us_start();
    return 0;
}

static int group_teardown(void **state)
{
    us_stop(US);
    us_stop(PROBE);
    return 0;
}

static int reset(void **state)
{
    us_reset(US);
    us_reset(PROBE);
    us_up(PROBE);
    return 0;
}

/* GET /queue/{id}/attempts, asserting 200; returns the attempts array (owned by *r). */
static json_t *attempts_of(const struct svc *s, const char *id, struct resp **r)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/offline/queue/%s/attempts", id);
    *r = th_json(s, "GET", path, NULL);
    assert_int_equal((*r)->status, 200);
    assert_string_equal(th_str((*r)->json, "id"), id);
    json_t *a = json_object_get((*r)->json, "attempts");
    assert_true(json_is_array(a));
    return a;
}

static void assert_attempt(json_t *a, int n, const char *outcome, long status, const char *error)
{
    assert_int_equal(th_int(a, "n"), n);
    assert_string_equal(th_str(a, "outcome"), outcome);
    if (status > 0)
        assert_int_equal(th_int(a, "status_code"), status);
    else
        assert_true(json_is_null(json_object_get(a, "status_code")));
    if (error != NULL)
        assert_string_equal(th_str(a, "error"), error);
    else
        assert_true(json_is_null(json_object_get(a, "error")));
    const char *at = th_str(a, "started_at");
    assert_int_equal(strlen(at), 24); /* 2026-12-02T00:00:00.000Z */
    assert_int_equal(at[23], 'Z');
    assert_true(json_is_number(json_object_get(a, "duration_ms")));
    assert_true(json_number_value(json_object_get(a, "duration_ms")) >= 0);
    assert_true(strlen(th_str(a, "instance")) > 0);
    assert_int_equal(json_object_size(a), 8);
}

static void test_every_attempt_on_record(void **state)
{
    char up[160];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *env[] = {up,
                         "OFFLINEQ_WORKERS=2",
                         "OFFLINEQ_BACKOFF_BASE_MS=20",
                         "OFFLINEQ_BACKOFF_MAX_MS=50",
                         "OFFLINEQ_POLL_MS=50",
                         NULL};
    struct svc s;
    PGconn *pg;
    assert_int_equal(th_group_start("e2e_attempts_record", env, &s, &pg, NULL, 0), 0);
    struct us_rule big = {.path = "/rec", .statuses = {503, 500, 201}, .n_statuses = 3};
    /* an answer longer than the excerpt: 1100 bytes, 'é' (2 bytes) across the 1024th byte */
    memset(big.body, 'x', 1023);
    memcpy(big.body + 1023, "\xc3\xa9", 2);
    memset(big.body + 1025, 'y', 75);
    us_rule(US, &big);
    char id[37];
    th_enqueue(&s, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/rec\"}}", id);
    json_t *op = th_wait_op(&s, id, TH_SETTLED, 20000);
    if (strcmp(th_str(op, "status"), "completed") != 0) {
        char *log = th_svc_log(&s);
        fprintf(stderr, "%s\nupstream: %d requests, %d in flight, %d probes\n", log,
                us_count(US, NULL), us_in_flight(US), us_probes(US));
        free(log);
    }
    assert_string_equal(th_str(op, "status"), "completed");
    assert_int_equal(th_int(op, "retry_count"), 2);
    json_decref(op);

    struct resp *r;
    json_t *list = attempts_of(&s, id, &r);
    assert_int_equal(json_array_size(list), 3);
    assert_attempt(json_array_get(list, 0), 1, "retry", 503, "HTTP 503 from the upstream");
    assert_attempt(json_array_get(list, 1), 2, "retry", 500, "HTTP 500 from the upstream");
    assert_attempt(json_array_get(list, 2), 3, "succeeded", 201, NULL);
    /* the first KiB of the answer, cut before the character that does not fit */
    const char *ex = th_str(json_array_get(list, 2), "response_excerpt");
    assert_int_equal(strlen(ex), 1023);
    assert_int_equal(strspn(ex, "x"), 1023);
    /* oldest first, each after the one before */
    assert_true(strcmp(th_str(json_array_get(list, 0), "started_at"),
                       th_str(json_array_get(list, 2), "started_at")) <= 0);
    th_resp_free(r);

    /* unknown and malformed ids */
    r = th_json(&s, "GET", "/api/offline/queue/00000000-0000-7000-8000-000000000000/attempts",
                NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    r = th_json(&s, "GET", "/api/offline/queue/nope/attempts", NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);

    /* deleted with the operation */
    char path[128];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    r = th_http(&s, "DELETE", path, NULL, -1, NULL);
    assert_int_equal(r->status, 204);
    th_resp_free(r);
    snprintf(path, sizeof(path), "/api/offline/queue/%s/attempts", id);
    r = th_json(&s, "GET", path, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);

    /* a pending operation has none yet; ids are time-ordered (UUIDv7) */
    char later[37];
    th_enqueue(&s,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/rec\"},"
               "\"delay_s\":3600}",
               later);
    assert_int_equal(later[14], '7');
    assert_true(strcmp(later, id) > 0);
    list = attempts_of(&s, later, &r);
    assert_int_equal(json_array_size(list), 0);
    th_resp_free(r);
    th_group_stop("e2e_attempts_record", &s, pg);
}

/* The upstream drops the connection after reading the request, twice, then answers 200, while
 * the network check fails each time: the requests reached the upstream, so each counts. */
static void test_a_request_that_reached_the_upstream_counts(void **state)
{
    char up[160], check[160];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    snprintf(check, sizeof(check), "OFFLINEQ_CHECK_URLS=%s/", us_url(PROBE));
    const char *env[] = {up,
                         check,
                         "OFFLINEQ_BACKOFF_BASE_MS=20",
                         "OFFLINEQ_BACKOFF_MAX_MS=50",
                         "OFFLINEQ_POLL_MS=50",
                         "OFFLINEQ_CHECK_INTERVAL_S=1",
                         "OFFLINEQ_WORKERS=1",
                         NULL};
    struct svc s;
    PGconn *pg;
    assert_int_equal(th_group_start("e2e_attempts_reached", env, &s, &pg, NULL, 0), 0);
    us_script(US, "/drop", "0,0,200", 0);
    us_down(PROBE); /* the check after the first dropped connection finds the network gone */
    char id[37];
    th_enqueue(&s, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/drop\"}}", id);
    assert_true(us_wait_count(US, "/drop", 1, 10000) >= 1);
    usleep(300000);
    us_up(PROBE); /* back online: the next attempts go */
    json_t *op = th_wait_op(&s, id, TH_SETTLED, 20000);
    assert_string_equal(th_str(op, "status"), "completed");
    assert_int_equal(us_count(US, "/drop"), 3);
    assert_int_equal(th_int(op, "retry_count"), 2); /* three attempts, two failed */
    json_decref(op);
    struct resp *r;
    json_t *list = attempts_of(&s, id, &r);
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(th_str(json_array_get(list, 0), "outcome"), "retry");
    assert_string_equal(th_str(json_array_get(list, 1), "outcome"), "retry");
    assert_string_equal(th_str(json_array_get(list, 2), "outcome"), "succeeded");
    th_resp_free(r);
    th_group_stop("e2e_attempts_reached", &s, pg);
}

/* A poison operation: its worker dies (SIGKILL) each time it runs. Each lease that runs out is
 * an attempt on record that costs nothing; the third ends it failed. */
static void test_poison_operation_fails_after_three_lease_expiries(void **state)
{
    char up[160];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *env[] = {up, "OFFLINEQ_LEASE_S=2", "OFFLINEQ_POLL_MS=50", "OFFLINEQ_WORKERS=1",
                         NULL};
    char url[512];
    th_db_create("e2e_attempts_poison", url, sizeof(url));
    PGconn *pg = th_db_connect(url);
    /* answers after 15 s: the three runs below overlap at the upstream, which counts them */
    us_script(US, "/poison", "200", 15000);
    struct svc s;
    char id[37];
    for (int death = 0; death < 3; death++) {
        assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
        if (death == 0)
            th_enqueue(&s,
                       "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/poison\"},"
                       "\"max_attempts\":5}",
                       id);
        for (int i = 0; i < 2000 && us_in_flight(US) < death + 1; i++)
            usleep(5000);
        assert_int_equal(us_in_flight(US), death + 1); /* this run's request is in flight */
        th_svc_stop(&s, SIGKILL);                      /* mid-request */
    }
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    json_t *op = th_wait_op(&s, id, "failed", 15000);
    assert_string_equal(th_str(op, "status"), "failed");
    assert_string_equal(th_str(op, "error_message"),
                        "lease expired 3 times; the worker running it died");
    assert_int_equal(th_int(op, "retry_count"), 0);
    json_decref(op);
    assert_int_equal(us_in_flight(US) + us_count(US, "/poison"), 3); /* not run a fourth time */
    struct resp *r;
    json_t *list = attempts_of(&s, id, &r);
    assert_int_equal(json_array_size(list), 3);
    for (int i = 0; i < 3; i++) {
        json_t *a = json_array_get(list, (size_t)i);
        assert_int_equal(th_int(a, "n"), i + 1);
        assert_string_equal(th_str(a, "outcome"), "lease_expired");
        assert_true(json_is_null(json_object_get(a, "status_code")));
        assert_true(strstr(th_str(a, "error"), "ran out") != NULL);
    }
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop("e2e_attempts_poison");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_every_attempt_on_record, reset),
        cmocka_unit_test_setup(test_a_request_that_reached_the_upstream_counts, reset),
        cmocka_unit_test_setup(test_poison_operation_fails_after_three_lease_expiries, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
