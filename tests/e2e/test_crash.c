/* Crashes, several instances and shutdown: nothing accepted is lost, nothing runs twice at
 * once, leases come back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "runs.h"
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
    char path[128];
    for (const char *n = "ab"; *n; n++) { /* also when a test stopped half-way */
        snprintf(path, sizeof(path), "/tmp/offlineq-crash-%d-%c.json", (int)getpid(), *n);
        unlink(path);
    }
    return 0;
}

static void env_for(char *buf, size_t len)
{
    snprintf(buf, len, "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
}

/* Enqueues n api_calls to /c/<i> in batches of 1000 (an API-only instance). */
static void fill(const char *db_url, int n, int max_attempts)
{
    char up[128];
    env_for(up, sizeof(up));
    const char *env[] = {up, NULL};
    struct svc api;
    assert_int_equal(th_svc_start(&api, db_url, env, NULL), 0);
    run_fill(&api, "/c/", n, max_attempts, 0);
    assert_int_equal(th_svc_stop(&api, SIGTERM), 0);
}

static void test_kill_9_while_in_flight(void **state)
{
    us_reset(US);
    us_script(US, "/c/", "201", 150);
    char url[512], up[128];
    th_db_create("e2e_crash_kill", url, sizeof(url));
    fill(url, 60, 5);
    env_for(up, sizeof(up));
    /* three kills: an operation may be caught by each, so four expiries before one fails */
    const char *env[] = {up, "OFFLINEQ_WORKERS=4", "OFFLINEQ_LEASE_S=2",
                         "OFFLINEQ_MAX_LEASE_EXPIRIES=4", NULL};
    struct svc s;
    PGconn *pg = th_db_connect(url);
    for (int kill_no = 0; kill_no < 3; kill_no++) {
        assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
        us_wait_count(US, "/c/", 8 * (kill_no + 1), 20000);
        for (int i = 0; i < 400 && us_in_flight(US) == 0; i++)
            usleep(5000);
        assert_true(us_in_flight(US) > 0);
        th_svc_stop(&s, SIGKILL); /* mid-request */
        assert_true(run_count_where(pg, "status = 'in_progress'") > 0);
    }
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    run_wait_settled(pg, 60, 60000);
    assert_int_equal(run_count_where(pg, "status = 'completed'"), 60);
    assert_int_equal(run_count_where(pg, "status = 'in_progress' OR lease_owner IS NOT NULL"), 0);
    struct run_check d;
    run_check_deliveries(US, pg, "/c/", 60, true, &d);
    fprintf(stderr, "kill -9 x3: 60 operations completed, %d duplicate deliveries (same key)\n",
            d.duplicates);
    /* the crashes used up no attempt: every answer was a 201; each lease that ran out is on
     * record as a lease_expired attempt, followed by the one that succeeded */
    assert_int_equal(run_count_where(pg, "retry_count > 0"), 0);
    assert_true(run_count_where(pg, "lease_expiries > 0") > 0);
    assert_int_equal(run_count_where(pg, "lease_expiries <> (SELECT count(*) FROM "
                                         "jsonb_array_elements(attempts) a "
                                         "WHERE a ->> 'outcome' = 'lease_expired')"),
                     0);
    assert_int_equal(run_count_where(pg, "attempts -> -1 ->> 'outcome' <> 'succeeded' "
                                         "OR jsonb_array_length(attempts) <> lease_expiries + 1"),
                     0);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop("e2e_crash_kill");
}

/* An upstreams file naming this instance in a header, so the upstream can tell who sent. */
static void instance_env(char *env, size_t len, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/tmp/offlineq-crash-%d-%s.json", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"default\":{\"base_url\":\"%s\",\"headers\":{\"X-Instance\":\"%s\"}}}",
            us_url(US), name);
    fclose(f);
    snprintf(env, len, "OFFLINEQ_UPSTREAMS_FILE=%s", path);
}

/* Two instances, 4 workers each, 5000 operations: each delivered exactly once (so never
 * twice at once), both instances took part. */
static void test_two_instances_5000(void **state)
{
    us_reset(US);
    us_script(US, "/c/", "201", 0);
    char url[512], env_a[256], env_b[256];
    th_db_create("e2e_crash_two", url, sizeof(url));
    fill(url, 5000, 5);
    instance_env(env_a, sizeof(env_a), "a");
    instance_env(env_b, sizeof(env_b), "b");
    const char *ea[] = {env_a, "OFFLINEQ_WORKERS=4", NULL};
    const char *eb[] = {env_b, "OFFLINEQ_WORKERS=4", NULL};
    struct svc a, b;
    double t0 = th_now_ms();
    assert_int_equal(th_svc_start(&a, url, ea, NULL), 0);
    assert_int_equal(th_svc_start(&b, url, eb, NULL), 0);
    PGconn *pg = th_db_connect(url);
    run_wait_settled(pg, 5000, 120000);
    double secs = (th_now_ms() - t0) / 1000;
    assert_int_equal(run_count_where(pg, "status = 'completed'"), 5000);
    struct run_check d;
    run_check_deliveries(US, pg, "/c/", 5000, true, &d);
    assert_int_equal(d.duplicates, 0);
    int n, by_a = 0, by_b = 0;
    struct us_req *r = us_requests(US, &n);
    assert_int_equal(n, 5000);
    for (int i = 0; i < n; i++) {
        const char *who = us_header(&r[i], "x-instance");
        by_a += who && strcmp(who, "a") == 0;
        by_b += who && strcmp(who, "b") == 0;
    }
    us_free_reqs(r, n);
    assert_int_equal(by_a + by_b, 5000);
    assert_true(by_a > 0 && by_b > 0);
    fprintf(stderr, "two instances: 5000 operations in %.1f s (%.0f/s), %d by a, %d by b\n", secs,
            5000 / secs, by_a, by_b);
    assert_int_equal(th_svc_stop(&a, SIGTERM), 0);
    assert_int_equal(th_svc_stop(&b, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop("e2e_crash_two");
    unlink(env_a + strlen("OFFLINEQ_UPSTREAMS_FILE="));
    unlink(env_b + strlen("OFFLINEQ_UPSTREAMS_FILE="));
}

static void test_shutdown_grace(void **state)
{
    us_reset(US);
    us_script(US, "/c/0", "201", 1500);
    char url[512], up[128];
    th_db_create("e2e_crash_grace", url, sizeof(url));
    env_for(up, sizeof(up));
    PGconn *pg = th_db_connect(url);
    /* within the grace: the running operation finishes */
    fill(url, 1, 5);
    const char *env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_SHUTDOWN_GRACE_S=3", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    assert_int_equal(us_wait_arrivals(US, 1, 10000), 1);
    usleep(100000);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    assert_int_equal(run_count_where(pg, "status = 'completed'"), 1);
    /* past the grace: interrupted, released with no attempt used, done by the next instance */
    th_sql(pg, "UPDATE offline_operations SET payload = '{\"endpoint\":\"/c/1\"}'");
    th_sql(pg, "UPDATE offline_operations SET status = 'pending', completed_at = NULL");
    const char *short_env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_SHUTDOWN_GRACE_S=1", NULL};
    us_reset(US);
    us_script(US, "/c/1", "201", 6000);
    assert_int_equal(th_svc_start(&s, url, short_env, NULL), 0);
    assert_int_equal(us_wait_arrivals(US, 1, 10000), 1);
    usleep(100000);
    double t0 = th_now_ms();
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    assert_true(th_now_ms() - t0 < 4000);
    assert_int_equal(
        run_count_where(pg, "status = 'pending' AND retry_count = 0 AND lease_owner IS NULL"), 1);
    us_reset(US);
    us_script(US, "/c/1", "201", 0);
    assert_int_equal(th_svc_start(&s, url, short_env, NULL), 0);
    run_wait_settled(pg, 1, 10000);
    assert_int_equal(run_count_where(pg, "status = 'completed' AND retry_count = 0"), 1);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop("e2e_crash_grace");
}

/* A handler running longer than the lease keeps it by heartbeats: sent once, no reaping. */
static void test_heartbeat_keeps_long_handlers_leased(void **state)
{
    us_reset(US);
    us_script(US, "/c/0", "201", 5000);
    char url[512], up[128];
    th_db_create("e2e_crash_heartbeat", url, sizeof(url));
    fill(url, 1, 5);
    env_for(up, sizeof(up));
    const char *env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_LEASE_S=2", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    PGconn *pg = th_db_connect(url);
    run_wait_settled(pg, 1, 15000);
    assert_int_equal(run_count_where(pg, "status = 'completed' AND retry_count = 0"), 1);
    assert_int_equal(us_count(US, "/c/0"), 1);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop("e2e_crash_heartbeat");
}

/* With the fallback poll at a minute, only NOTIFY can wake the workers: an enqueue through the
 * outbox function (another process) is delivered within a second. */
static void test_notify_wakes_idle_workers(void **state)
{
    us_reset(US);
    char url[512], up[128];
    th_db_create("e2e_crash_notify", url, sizeof(url));
    env_for(up, sizeof(up));
    const char *env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_POLL_MS=60000", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    PGconn *pg = th_db_connect(url);
    usleep(500000); /* the workers have looked once and sleep */
    double t0 = th_now_ms();
    th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/c/0\"}')");
    assert_int_equal(us_wait_arrivals(US, 1, 5000), 1);
    double ms = th_now_ms() - t0;
    fprintf(stderr, "outbox enqueue to upstream arrival: %.1f ms\n", ms);
    assert_true(ms < 1000);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop("e2e_crash_notify");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_9_while_in_flight),
        cmocka_unit_test(test_two_instances_5000),
        cmocka_unit_test(test_shutdown_grace),
        cmocka_unit_test(test_heartbeat_keeps_long_handlers_leased),
        cmocka_unit_test(test_notify_wakes_idle_workers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
