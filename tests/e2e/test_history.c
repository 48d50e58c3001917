/* GET /api/offline/queue/stats/history: 90 buckets of 10 s, oldest first, with the exact counts
 * of what was enqueued, completed and failed in each and the queue depth, read from the
 * database, so two instances on one database answer the same. */
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

static struct upstream_srv *US;

static int group_setup(void **state)
{
    US = us_start();
    return 0;
}

static int group_teardown(void **state)
{
    us_stop(US);
    return 0;
}

/* Wall-clock seconds since the epoch (the database's buckets are aligned on it). */
static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sleeps until the clock is lo..hi seconds into a 10 s bucket that starts after after_s;
 * returns that bucket's start. */
static long long wait_into_bucket(long long after_s, double lo, double hi)
{
    for (;;) {
        double now = wall_s();
        double into = now - 10.0 * (long long)(now / 10);
        if (10 * (long long)(now / 10) > after_s && into >= lo && into < hi)
            return 10 * (long long)(now / 10);
        usleep(50000);
    }
}

/* "2026-12-02T16:41:10.000000Z" of a bucket start. */
static void bucket_text(long long start, char out[32])
{
    time_t t = (time_t)start;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
}

static void assert_point(json_t *p, long long start, long long enq, long long done,
                         long long failed)
{
    char at[32];
    bucket_text(start, at);
    assert_string_equal(th_str(p, "at"), at);
    assert_int_equal(th_int(p, "enqueued"), enq);
    assert_int_equal(th_int(p, "completed"), done);
    assert_int_equal(th_int(p, "failed"), failed);
    assert_int_equal(json_object_size(p), 5);
}

/* Three to deliver (one of them refused: failed at once) and two that wait an hour. */
static void enqueue_round(const struct svc *s, int ok, int bad, int later)
{
    char ids[8][37];
    int n = 0;
    for (int i = 0; i < ok; i++)
        th_enqueue(s, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/ok\"}}",
                   ids[n++]);
    for (int i = 0; i < bad; i++)
        th_enqueue(s, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/bad\"}}",
                   ids[n++]);
    for (int i = 0; i < ok + bad; i++) {
        json_t *op = th_wait_op(s, ids[i], TH_SETTLED, 5000);
        assert_string_equal(th_str(op, "status"), i < ok ? "completed" : "failed");
        json_decref(op);
    }
    for (int i = 0; i < later; i++)
        th_enqueue(s,
                   "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/ok\"},"
                   "\"delay_s\":3600}",
                   ids[0]);
}

static void test_history_counts_per_bucket(void **state)
{
    char up[160];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_POLL_MS=50", NULL};
    struct svc s, s2;
    PGconn *pg;
    char url[512];
    assert_int_equal(th_group_start("e2e_history", env, &s, &pg, url, sizeof(url)), 0);
    us_script(US, "/ok", "201", 0);
    us_script(US, "/bad", "400", 0);

    /* bucket A: 6 enqueued, 3 completed, 1 failed, 2 left waiting */
    long long a = wait_into_bucket(0, 0.3, 1.5);
    enqueue_round(&s, 3, 1, 2);
    assert_true(wall_s() < a + 5.5); /* all of it in bucket A, before its last depth sample */
    /* bucket B: 3 enqueued, 1 completed, 4 waiting in all */
    long long b = wait_into_bucket(a, 0.3, 1.5);
    assert_int_equal(b, a + 10);
    enqueue_round(&s, 1, 0, 2);

    int code;
    assert_int_equal(th_svc_start(&s2, url, env, &code), 0);
    struct resp *r = th_json(&s, "GET", "/api/offline/queue/stats/history", NULL);
    struct resp *r2 = th_json(&s2, "GET", "/api/offline/queue/stats/history", NULL);
    assert_true(wall_s() < b + 10); /* the same current bucket */
    assert_int_equal(r->status, 200);
    assert_int_equal(r2->status, 200);
    assert_string_equal(r->body, r2->body); /* from the database: every instance the same */
    assert_int_equal(th_int(r->json, "bucket_s"), 10);
    assert_int_equal(th_int(r->json, "window_s"), 900);
    json_t *points = json_object_get(r->json, "points");
    assert_int_equal(json_array_size(points), 90);
    for (size_t i = 0; i < 88; i++) /* nothing happened before A */
        assert_point(json_array_get(points, i), b - 10 * (89 - (long long)i), 0, 0, 0);
    assert_point(json_array_get(points, 88), a, 6, 3, 1);
    assert_point(json_array_get(points, 89), b, 3, 1, 0);
    /* depth: A's latest sample (taken after its round settled), the current bucket's live */
    assert_int_equal(th_int(json_array_get(points, 88), "depth"), 2);
    assert_int_equal(th_int(json_array_get(points, 89), "depth"), 4);
    json_t *first = json_object_get(json_array_get(points, 0), "depth");
    assert_true(json_is_null(first)); /* before the service ran nobody sampled */
    th_resp_free(r);
    th_resp_free(r2);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
    th_group_stop("e2e_history", &s, pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_counts_per_bucket),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
