/* Several instances behave as one (issue 15 points 1-3): an upstream's rate_per_s and
 * max_concurrency hold for the deployment, not for each instance; a killed instance's part goes
 * to the others within the fleet's ttl; one instance's breaker stops the others within a second
 * and one half-open probe decides for all; after an outage delivery ramps up from
 * ramp_start_concurrency instead of stampeding; a Retry-After holds the whole upstream. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_fleet"
#define MAX_FLEET 3
/* S answers the API and delivers nothing; F[] deliver. */
static struct svc S, F[MAX_FLEET];
static int n_fleet;
static PGconn *PG;
static struct upstream_srv *US;
static char url[512];
static struct th_upstreams U, LAX; /* LAX: the second instance's, in the breaker test */

/* The fleet's ttl (engine/janitor.h FLEET_TTL_MS) and beat. */
#define TTL_MS 3000
#define BEAT_MS 500

static int group_setup(void **state)
{
    US = us_start();
    static char upstreams[300];
    snprintf(upstreams, sizeof(upstreams), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *env[] = {upstreams, NULL};
    return th_group_start(DB, env, &S, &PG, url, sizeof(url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, PG);
    us_stop(US);
    return 0;
}

static int reset(void **state)
{
    us_reset(US);
    us_up(US);
    th_sql(PG, "DELETE FROM offline_operations");
    th_sql(PG, "DELETE FROM offlineq_events");
    th_sql(PG, "DELETE FROM offlineq_settings WHERE key = 'upstream_breakers'");
    return 0;
}

/* Starts n delivering instances with the upstreams file of fmt, each with extra[i] (may be
 * NULL) added to the environment. */
static void start_fleet(int n, const char *const *extra, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void start_fleet(int n, const char *const *extra, const char *fmt, ...)
{
    char doc[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(doc, sizeof(doc), fmt, ap);
    va_end(ap);
    th_upstreams_write(&U, "fleet", "%s", doc);
    for (int i = 0; i < n; i++) {
        const char *workers = extra && strncmp(extra[i], "OFFLINEQ_WORKERS=", 17) == 0
                                  ? extra[i]
                                  : "OFFLINEQ_WORKERS=4";
        const char *env[] = {U.env,
                             workers,
                             "OFFLINEQ_POLL_MS=100",
                             "OFFLINEQ_BACKOFF_BASE_MS=50",
                             "OFFLINEQ_BACKOFF_MAX_MS=100",
                             "OFFLINEQ_CHECK_INTERVAL_S=1",
                             extra && extra[i] != workers ? extra[i] : NULL,
                             NULL};
        assert_int_equal(th_svc_start(&F[i], url, env, NULL), 0);
    }
    n_fleet = n;
}

static void stop_fleet(void)
{
    for (int i = 0; i < n_fleet; i++) {
        if (F[i].pid > 0)
            assert_int_equal(th_svc_stop(&F[i], SIGTERM), 0);
        F[i].pid = 0;
    }
    n_fleet = 0;
    if (U.path[0])
        th_upstreams_remove(&U);
    if (LAX.path[0])
        th_upstreams_remove(&LAX);
    U.path[0] = LAX.path[0] = '\0';
}

/* The named upstream in s's GET /upstreams (a new reference). */
static json_t *upstream_of(const struct svc *s, const char *name)
{
    struct resp *r = th_json(s, "GET", "/api/offline/upstreams", NULL);
    assert_int_equal(r->status, 200);
    json_t *found = NULL;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(r->json, "upstreams"), i, u)
    {
        if (strcmp(th_str(u, "name"), name) == 0)
            found = json_incref(u);
    }
    th_resp_free(r);
    assert_non_null(found);
    return found;
}

/* Waits until every delivering instance counts n live instances, then two beats more, so each
 * uses its part. */
static void wait_settled(int n)
{
    for (int i = 0; i < n_fleet; i++) {
        long long seen = 0;
        for (int k = 0; k < 100 && seen != n; k++) {
            json_t *u = upstream_of(&F[i], "default");
            seen = th_int(u, "instances");
            json_decref(u);
            if (seen != n)
                usleep(100000);
        }
        assert_int_equal(seen, n);
    }
    usleep(3 * BEAT_MS * 1000);
}

/* Enqueues n api_call operations of max_attempts each (batches of 250). */
static void enqueue_n(int n, int max_attempts)
{
    for (int start = 0; start < n; start += 250) {
        char *body = malloc(250 * 130 + 64);
        size_t o = (size_t)sprintf(body, "{\"operations\":[");
        for (int i = start; i < start + 250 && i < n; i++)
            o += (size_t)sprintf(body + o,
                                 "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":"
                                 "\"/f/%d\"},\"max_attempts\":%d}",
                                 i > start ? "," : "", i, max_attempts);
        sprintf(body + o, "]}");
        struct resp *r = th_json(&S, "POST", "/api/offline/queue/batch", body);
        assert_int_equal(r->status, 201);
        th_resp_free(r);
        free(body);
    }
}

/* Requests recorded so far that arrived in [from_ms, to_ms). */
static int arrivals_between(double from_ms, double to_ms)
{
    int n = 0, k = 0;
    struct us_req *reqs = us_requests(US, &n);
    for (int i = 0; i < n; i++)
        k += reqs[i].start_ms >= from_ms && reqs[i].start_ms < to_ms;
    us_free_reqs(reqs, n);
    return k;
}

/* The most requests in flight at the upstream at once within [from_ms, to_ms), from the
 * recorded arrival and answer times (us_max_in_flight would count the services' HEAD probes
 * of the network check too, and a request until its answer has been sent). */
static int max_in_flight_between(double from_ms, double to_ms)
{
    int n = 0, most = 0;
    struct us_req *reqs = us_requests(US, &n);
    double now = th_now_ms();
    for (int i = 0; i < n; i++) { /* in flight is highest just after some arrival */
        double t = reqs[i].start_ms;
        if (t < from_ms || t >= to_ms)
            continue;
        int k = 0;
        for (int j = 0; j < n; j++) {
            double end = reqs[j].end_ms > 0 ? reqs[j].end_ms : now;
            k += reqs[j].start_ms <= t && end > t;
        }
        most = k > most ? k : most;
    }
    us_free_reqs(reqs, n);
    return most;
}

/* The first moment at or after from_ms at which want requests were in flight, or -1. */
static double first_reaching(int want, double from_ms)
{
    int n = 0;
    double first = -1;
    struct us_req *reqs = us_requests(US, &n);
    double now = th_now_ms();
    for (int i = 0; i < n; i++) {
        double t = reqs[i].start_ms;
        if (t < from_ms || (first >= 0 && t >= first))
            continue;
        int k = 0;
        for (int j = 0; j < n; j++) {
            double end = reqs[j].end_ms > 0 ? reqs[j].end_ms : now;
            k += reqs[j].start_ms <= t && end > t;
        }
        if (k >= want)
            first = t;
    }
    us_free_reqs(reqs, n);
    return first;
}

/* GET path on s: the integer or null field name of the answer (or of the "default" upstream in
 * /upstreams); -1 for null. */
static long long eta_of(const struct svc *s, bool of_upstream)
{
    json_t *o;
    if (of_upstream) {
        o = upstream_of(s, "default");
    } else {
        struct resp *r = th_json(s, "GET", "/api/offline/sync/status", NULL);
        assert_int_equal(r->status, 200);
        o = json_incref(r->json);
        th_resp_free(r);
    }
    json_t *v = json_object_get(o, "eta_s");
    assert_true(json_is_integer(v) || json_is_null(v));
    long long eta = json_is_null(v) ? -1 : json_integer_value(v);
    json_decref(o);
    return eta;
}

/* What is not delivered yet: pending, and claimed (waiting for a slot or a rate token). */
static long long pending_count(void)
{
    return atoll(th_sql(PG, "SELECT count(*) FROM offline_operations "
                            "WHERE status IN ('pending', 'in_progress')"));
}

static double first_arrival(void)
{
    int n = 0;
    double first = -1;
    struct us_req *reqs = us_requests(US, &n);
    for (int i = 0; i < n; i++)
        first = first < 0 || reqs[i].start_ms < first ? reqs[i].start_ms : first;
    us_free_reqs(reqs, n);
    return first;
}

/* ---- point 1: the limits hold for the deployment ---- */

/* rate_per_s 20 over three instances: the upstream sees 16-22 requests per second over 10 s
 * (each instance alone would send 20: 60 together). */
static void test_rate_holds_for_the_deployment(void **state)
{
    start_fleet(3, NULL, "{\"default\":{\"base_url\":\"%s\",\"rate_per_s\":20}}", us_url(US));
    wait_settled(3);
    enqueue_n(400, 5);
    assert_true(us_wait_arrivals(US, 20, 10000) >= 20);
    double t0 = th_now_ms() + 500; /* well into the steady state */
    usleep(10500 * 1000);
    int n = arrivals_between(t0, t0 + 10000);
    print_message("rate_per_s 20, 3 instances: %d requests in 10 s\n", n);
    assert_in_range(n, 160, 220);
    /* eta_s (point 4), asked of the instance that delivers nothing: pending over the three
     * instances' rates together (~20/s), the same in /sync/status (one upstream) */
    long long pending = pending_count(), up = eta_of(&S, true), all = eta_of(&S, false);
    print_message("eta_s with %lld unfinished at 20/s: %lld (upstreams), %lld (sync/status)\n",
                  pending, up, all);
    assert_true(pending > 60);
    assert_in_range(up, pending / 25, pending / 15 + 1);
    assert_in_range(all, pending / 25 - 5, pending / 15 + 6); /* pending from a 2 s cache */
    /* auto-sync off, no pass running: the workers claim nothing on their own, nothing drains */
    struct resp *r = th_http(&S, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    assert_int_equal(eta_of(&S, true), -1);
    r = th_http(&S, "POST", "/api/offline/sync/start-auto", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    assert_true(eta_of(&S, true) >= 0);
}

/* max_concurrency 4 over three instances: never more than 4 in flight at the upstream (parts
 * 2, 1, 1: all 4 used). One instance killed: the others take its part within the ttl. */
static void test_concurrency_holds_and_a_dead_part_moves(void **state)
{
    us_script(US, "/f/", "200", 200);
    start_fleet(3, NULL, "{\"default\":{\"base_url\":\"%s\",\"max_concurrency\":4}}", us_url(US));
    wait_settled(3);
    enqueue_n(600, 5);
    assert_true(us_wait_arrivals(US, 40, 10000) >= 40);
    usleep(2000 * 1000);
    assert_int_equal(max_in_flight_between(0, th_now_ms()), 4);
    /* its part (2 or 1 of the 4 slots) is gone until the others count it dead */
    assert_int_equal(kill(F[0].pid, SIGKILL), 0);
    int status = 0;
    waitpid(F[0].pid, &status, 0);
    F[0].pid = 0;
    double killed = th_now_ms();
    usleep(500 * 1000);
    /* the dead instance's requests are gone; what is left is the others' 2 of 4 */
    double back = -1;
    for (int k = 0; k < 60 && back < 0; k++) {
        usleep(100 * 1000);
        back = first_reaching(4, killed + 400);
    }
    print_message("max_concurrency 4: the dead instance's part was taken %.0f ms after the kill\n",
                  back - killed);
    assert_true(back > 0);
    assert_true(back - killed <= TTL_MS + 2 * BEAT_MS + 500);
    assert_int_equal(max_in_flight_between(0, th_now_ms()), 4);
}

/* ---- point 2: one breaker for the deployment ---- */

/* The first instance opens the breaker after 3 failures; the second would take 100,000. Once
 * the first opened it, the second sends nothing within a second; after the cool-down one probe
 * at a time goes, for both; the breaker opens once, and its close reaches both. */
static void test_one_breaker_for_the_deployment(void **state)
{
    us_script(US, "/f/", "503", 0);
    const char *first = "{\"default\":{\"base_url\":\"%s\",\"breaker_failures\":3,"
                        "\"breaker_cooldown_s\":3}}";
    start_fleet(1, NULL, first, us_url(US));
    th_upstreams_write(&LAX, "fleet-lax",
                       "{\"default\":{\"base_url\":\"%s\",\"breaker_failures\":100000,"
                       "\"breaker_cooldown_s\":3}}",
                       us_url(US));
    const char *env[] = {LAX.env,
                         "OFFLINEQ_WORKERS=4",
                         "OFFLINEQ_POLL_MS=100",
                         "OFFLINEQ_BACKOFF_BASE_MS=50",
                         "OFFLINEQ_BACKOFF_MAX_MS=100",
                         NULL};
    assert_int_equal(th_svc_start(&F[1], url, env, NULL), 0);
    n_fleet = 2;
    enqueue_n(200, 1000); /* work left for the second instance throughout */
    double opened = -1;
    for (int k = 0; k < 200 && opened < 0; k++) {
        if (atoi(th_sql(PG, "SELECT count(*) FROM offlineq_event_stream "
                            "WHERE type = 'upstream.breaker_opened'")) > 0)
            opened = th_now_ms();
        else
            usleep(25 * 1000);
    }
    assert_true(opened > 0);
    usleep(5000 * 1000);
    int quiet = arrivals_between(opened + 1000, opened + 2700);
    print_message("breaker: %d requests from 1 s after it opened to its cool-down\n", quiet);
    assert_int_equal(quiet, 0);
    /* the probes: one per cool-down for both instances, each failing */
    int n = 0;
    struct us_req *reqs = us_requests(US, &n);
    int probes = 0;
    double last = -1;
    for (int i = 0; i < n; i++) {
        if (reqs[i].start_ms < opened + 1000)
            continue;
        if (last >= 0)
            assert_true(reqs[i].start_ms - last >= 2500); /* never two in one half-open */
        last = reqs[i].start_ms;
        probes++;
    }
    us_free_reqs(reqs, n);
    assert_in_range(probes, 1, 2);
    /* the upstream recovers: the next probe closes it for both */
    us_script(US, "/f/", "200", 0);
    int before = us_count(US, NULL);
    assert_true(us_wait_count(US, NULL, before + 50, 10000) >= before + 50);
    assert_string_equal(th_sql(PG, "SELECT count(*) FROM offlineq_event_stream "
                                   "WHERE type = 'upstream.breaker_opened'"),
                        "1");
    assert_string_equal(th_sql(PG, "SELECT count(*) FROM offlineq_event_stream "
                                   "WHERE type = 'upstream.breaker_closed'"),
                        "1");
    for (int i = 0; i < 2; i++) {
        json_t *u = upstream_of(&F[i], "default");
        assert_string_equal(th_str(json_object_get(u, "breaker"), "state"), "closed");
        json_decref(u);
    }
}

/* ---- point 3: a recovery ramp, not a stampede ---- */

/* 2,000 operations held through an outage: when the upstream returns, at most 2 requests in
 * flight in the first second (ramp_start_concurrency 1, doubling), all 8 within a few. */
static void test_recovery_ramps_up(void **state)
{
    us_down(US);
    us_script(US, "/f/", "200", 100);
    const char *extra[] = {"OFFLINEQ_WORKERS=8"};
    start_fleet(1, extra, "{\"default\":{\"base_url\":\"%s\",\"max_concurrency\":8}}", us_url(US));
    for (int k = 0; k < 100; k++) {
        struct resp *r = th_json(&F[0], "GET", "/api/offline/network-status", NULL);
        bool offline = strcmp(th_str(r->json, "status"), "offline") == 0;
        th_resp_free(r);
        if (offline)
            break;
        usleep(100 * 1000);
    }
    enqueue_n(2000, 5);
    /* nothing delivered in the last minute and this instance offline: no estimate */
    assert_int_equal(eta_of(&F[0], true), -1);
    assert_int_equal(eta_of(&F[0], false), -1);
    us_up(US);
    assert_true(us_wait_arrivals(US, 1, 10000) >= 1);
    usleep(5000 * 1000);
    double t0 = first_arrival(); /* requests are recorded once answered */
    int first_second = max_in_flight_between(t0, t0 + 1000);
    double full = first_reaching(8, t0);
    print_message("ramp: %d in flight at most in the first second, 8 after %.0f ms\n", first_second,
                  full - t0);
    for (int k = 0; k < 5; k++)
        print_message("ramp: second %d: %d in flight at most\n", k + 1,
                      max_in_flight_between(t0 + k * 1000, t0 + (k + 1) * 1000));
    assert_in_range(first_second, 1, 2);
    assert_true(full > 0 && full - t0 <= 4500);
    assert_int_equal(max_in_flight_between(0, th_now_ms()), 8);
}

/* A 429 with Retry-After: 2 holds the whole upstream, for both instances: nothing for 2 s
 * (once the other instance has heard of it: HOLD_SHARED_MS), then delivery goes on. */
#define HOLD_SHARED_MS 150
static void test_retry_after_holds_the_upstream(void **state)
{
    struct us_rule rule = {.path = "/f/", .n_statuses = 2, .statuses = {429, 200}, .delay_ms = 20};
    snprintf(rule.retry_after, sizeof(rule.retry_after), "2");
    us_rule(US, &rule);
    start_fleet(2, NULL, "{\"default\":{\"base_url\":\"%s\"}}", us_url(US));
    wait_settled(2);
    enqueue_n(40, 5);
    assert_true(us_wait_arrivals(US, 40, 15000) >= 40);
    int n = 0, limited = -1;
    struct us_req *reqs = us_requests(US, &n);
    for (int i = 0; i < n; i++)
        limited = reqs[i].status == 429 && limited < 0 ? i : limited;
    assert_true(limited >= 0);
    double answered = reqs[limited].end_ms;
    int early = 0, held = 0, after = 0;
    for (int i = 0; i < n; i++) {
        if (i == limited)
            continue;
        if (reqs[i].start_ms <= answered + HOLD_SHARED_MS)
            early++; /* under way before the 429 was read, or heard of */
        else if (reqs[i].start_ms < answered + 1950)
            held++;
        else
            after++;
    }
    us_free_reqs(reqs, n);
    print_message("Retry-After 2: %d requests under way, %d during the hold, %d after\n", early,
                  held, after);
    assert_int_equal(held, 0); /* the other instance too: without the shared hold it goes on */
    assert_true(after >= 20);
    for (int k = 0; k < 50 && pending_count() > 0; k++)
        usleep(100 * 1000);
    assert_int_equal(pending_count(), 0);
    assert_int_equal(eta_of(&S, true), 0); /* drained */
    assert_int_equal(eta_of(&S, false), 0);
}

static int cleanup(void **state)
{
    stop_fleet();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rate_holds_for_the_deployment, reset, cleanup),
        cmocka_unit_test_setup_teardown(test_concurrency_holds_and_a_dead_part_moves, reset,
                                        cleanup),
        cmocka_unit_test_setup_teardown(test_one_breaker_for_the_deployment, reset, cleanup),
        cmocka_unit_test_setup_teardown(test_recovery_ramps_up, reset, cleanup),
        cmocka_unit_test_setup_teardown(test_retry_after_holds_the_upstream, reset, cleanup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
