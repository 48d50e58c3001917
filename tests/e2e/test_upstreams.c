/* Upstreams seen and steered (issue 14 point 1): GET /api/offline/upstreams with the breaker,
 * the in-flight count, the pending work and the last five minutes of attempts; a pause that the
 * database keeps for every instance and across restarts, during which operations wait without
 * using attempts; and the upstream.* events. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_upstreams"
/* Two instances on one database: S answers the API and delivers nothing, S2 delivers. */
static struct svc S, S2;
static PGconn *PG;
static struct upstream_srv *US;
static char url[512];
static struct th_upstreams U;

static const char *const *service_env(bool delivers)
{
    static const char *env[8];
    env[0] = U.env;
    env[1] = "OFFLINEQ_BACKOFF_BASE_MS=50";
    env[2] = "OFFLINEQ_BACKOFF_MAX_MS=100";
    env[3] = "OFFLINEQ_POLL_MS=100";
    env[4] = delivers ? "OFFLINEQ_WORKERS=4" : "OFFLINEQ_WORKERS=0";
    env[5] = NULL;
    return env;
}

static double parse_ts(const char *s)
{
    struct tm tm = {0};
    assert_non_null(s);
    assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%S", &tm));
    return (double)timegm(&tm);
}

/* How long the other instance takes at most to hear of a pause (NOTIFY, then a reload). */
#define PROPAGATION_MS 500

static int group_setup(void **state)
{
    US = us_start();
    th_upstreams_write(&U, "upstreams",
                       "{\"default\":{\"base_url\":\"%s\"},"
                       "\"limited\":{\"base_url\":\"%s/limited\",\"max_concurrency\":3,"
                       "\"rate_per_s\":50},"
                       "\"flaky\":{\"base_url\":\"%s/flaky\",\"max_concurrency\":1,"
                       "\"breaker_failures\":2,\"breaker_cooldown_s\":2}}",
                       us_url(US), us_url(US), us_url(US));
    if (th_group_start(DB, service_env(false), &S, &PG, url, sizeof(url)) != 0)
        return -1;
    return th_svc_start(&S2, url, service_env(true), NULL);
}

static int group_teardown(void **state)
{
    assert_int_equal(th_svc_stop(&S2, SIGTERM), 0);
    th_group_stop(DB, &S, PG);
    us_stop(US);
    th_upstreams_remove(&U);
    return 0;
}

static int reset(void **state)
{
    us_reset(US);
    th_sql(PG, "DELETE FROM offline_operations");
    th_sql(PG, "DELETE FROM offlineq_events");
    return 0;
}

/* The upstream named name in a GET /upstreams answer of s (a new reference). */
static json_t *upstream_of(const struct svc *s, const char *name)
{
    struct resp *r = th_json(s, "GET", "/api/offline/upstreams", NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "window_s"), 300);
    json_t *list = json_object_get(r->json, "upstreams");
    assert_int_equal(json_array_size(list), 3);
    json_t *found = NULL;
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u)
    {
        if (strcmp(th_str(u, "name"), name) == 0)
            found = json_incref(u);
    }
    th_resp_free(r);
    assert_non_null(found);
    return found;
}

static const char *breaker_state(const json_t *u)
{
    return th_str(json_object_get(u, "breaker"), "state");
}

/* The data of the events of type in the log, as one JSON array text ("[]": none). */
static const char *events_of(const char *type)
{
    return th_sqlf(PG,
                   "SELECT coalesce(jsonb_agg(data - 'at' ORDER BY xid, id), '[]') "
                   "FROM offlineq_event_stream WHERE type = '%s'",
                   type);
}

static void enqueue_to(const char *upstream, int n, char ids[][37])
{
    char fmt[256];
    snprintf(fmt, sizeof(fmt),
             "{\"operation_type\":\"api_call\",\"payload\":{\"upstream\":\"%s\","
             "\"endpoint\":\"/op/%%d\",\"method\":\"POST\",\"data\":{}}}",
             upstream);
    th_enqueue_n(&S, n, fmt, ids);
}

static void test_list_shows_config_and_last_attempts(void **state)
{
    json_t *u = upstream_of(&S, "limited");
    char base[300];
    snprintf(base, sizeof(base), "%s/limited", us_url(US));
    assert_string_equal(th_str(u, "base_url"), base);
    assert_int_equal(th_int(u, "max_concurrency"), 3);
    assert_true(json_real_value(json_object_get(u, "rate_per_s")) == 50.0);
    assert_true(json_is_false(json_object_get(u, "paused")));
    assert_true(json_is_null(json_object_get(u, "paused_at")));
    assert_string_equal(breaker_state(u), "closed");
    assert_true(json_is_null(json_object_get(json_object_get(u, "breaker"), "until")));
    assert_int_equal(th_int(u, "in_flight"), 0);
    assert_int_equal(th_int(u, "pending"), 0);
    assert_int_equal(th_int(u, "attempts"), 0);
    assert_true(json_is_null(json_object_get(u, "success_ratio")));
    assert_true(json_is_null(json_object_get(u, "latency_p50_ms")));
    assert_true(json_is_null(json_object_get(u, "last_success_at")));
    json_decref(u);

    /* four answers of about 40 ms, one 400; S2 delivered them, S made no attempt */
    us_script(US, "/limited/op/", "200,200,200,200,400", 40);
    char ids[5][37];
    enqueue_to("limited", 5, ids);
    for (int i = 0; i < 5; i++)
        json_decref(th_wait_op(&S, ids[i], "completed,failed", 20000));
    u = upstream_of(&S2, "limited");
    assert_int_equal(th_int(u, "attempts"), 5);
    assert_true(json_real_value(json_object_get(u, "success_ratio")) == 0.8);
    double p50 = json_real_value(json_object_get(u, "latency_p50_ms"));
    double p95 = json_real_value(json_object_get(u, "latency_p95_ms"));
    assert_true(p50 >= 30 && p50 <= 1000); /* 40 ms and more, read to within 25 % */
    assert_true(p95 >= p50);
    double ok = parse_ts(th_str(u, "last_success_at"));
    double bad = parse_ts(th_str(u, "last_failure_at"));
    assert_true(fabs(ok - (double)time(NULL)) < 30 && fabs(bad - (double)time(NULL)) < 30);
    assert_int_equal(th_int(u, "in_flight"), 0);
    json_decref(u);
    u = upstream_of(&S, "limited");
    assert_int_equal(th_int(u, "attempts"), 0);
    json_decref(u);
}

static void test_pending_counts_each_upstream(void **state)
{
    th_sql(PG, "SELECT offlineq_upstream_pause('default', true), "
               "offlineq_upstream_pause('limited', true)");
    usleep(PROPAGATION_MS * 1000);
    char ids[3][37];
    enqueue_to("limited", 2, ids);
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/d\"}}", ids[2]);
    json_t *limited = upstream_of(&S, "limited"), *def = upstream_of(&S, "default");
    json_t *flaky = upstream_of(&S, "flaky");
    assert_int_equal(th_int(limited, "pending"), 2);
    assert_int_equal(th_int(def, "pending"), 1); /* no "upstream": the default one */
    assert_int_equal(th_int(flaky, "pending"), 0);
    json_decref(limited);
    json_decref(def);
    json_decref(flaky);
    th_sql(PG, "SELECT offlineq_upstream_pause('default', false), "
               "offlineq_upstream_pause('limited', false)");
    th_wait_all(&S, ids, 3, "completed", 20000);
}

static struct resp *pause_call(const struct svc *s, const char *name, const char *verb)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/offline/upstreams/%s/%s", name, verb);
    return th_json(s, "POST", path, NULL);
}

/* Paused through one instance, the other one holds the work too, and nothing is attempted. */
static void test_pause_holds_work_on_every_instance(void **state)
{
    struct resp *r = pause_call(&S, "default", "pause");
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "name"), "default");
    assert_true(json_is_true(json_object_get(r->json, "paused")));
    assert_true(fabs(parse_ts(th_str(r->json, "paused_at")) - (double)time(NULL)) < 30);
    th_resp_free(r);
    usleep(PROPAGATION_MS * 1000);
    /* a second pause changes nothing and tells nobody */
    r = pause_call(&S2, "default", "pause");
    assert_int_equal(r->status, 200);
    assert_true(json_is_true(json_object_get(r->json, "paused")));
    th_resp_free(r);
    assert_string_equal(events_of("upstream.paused"), "[{\"type\": \"upstream.paused\", "
                                                      "\"upstream\": \"default\"}]");

    char ids[4][37];
    enqueue_to("default", 3, ids);
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"upstream\":\"limited\","
               "\"endpoint\":\"/other\"}}",
               ids[3]);
    json_decref(th_wait_op(&S, ids[3], "completed", 20000)); /* other upstreams go on */
    usleep(1500 * 1000);
    assert_int_equal(us_count(US, "/op/"), 0);
    for (int i = 0; i < 3; i++) {
        json_t *op = th_wait_op(&S, ids[i], "pending", 1000);
        assert_int_equal(th_int(op, "retry_count"), 0);
        json_decref(op);
    }
    assert_string_equal(th_sql(PG,
                               "SELECT count(*) FROM offline_operations WHERE attempts IS NOT NULL "
                               "AND payload ->> 'upstream' = 'default'"),
                        "0");
    json_t *u = upstream_of(&S2, "default");
    assert_true(json_is_true(json_object_get(u, "paused")));
    assert_int_equal(th_int(u, "pending"), 3);
    json_decref(u);

    r = pause_call(&S, "default", "resume"); /* the other instance hears of it and goes on */
    assert_int_equal(r->status, 200);
    assert_true(json_is_false(json_object_get(r->json, "paused")));
    assert_true(json_is_null(json_object_get(r->json, "paused_at")));
    th_resp_free(r);
    th_wait_all(&S, ids, 3, "completed", 10000);
    for (int i = 0; i < 3; i++) {
        json_t *op = th_wait_op(&S, ids[i], "completed", 1000);
        assert_int_equal(th_int(op, "retry_count"), 0);
        json_decref(op);
    }
    assert_int_equal(us_count(US, "/op/"), 3);
    assert_string_equal(events_of("upstream.resumed"), "[{\"type\": \"upstream.resumed\", "
                                                       "\"upstream\": \"default\"}]");
}

/* The pause is in the database: a restarted instance keeps holding the work. */
static void test_pause_survives_a_restart(void **state)
{
    struct resp *r = pause_call(&S, "limited", "pause");
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&S2, SIGTERM), 0);
    assert_int_equal(th_svc_stop(&S, SIGTERM), 0);
    assert_int_equal(th_svc_start(&S, url, service_env(false), NULL), 0);
    assert_int_equal(th_svc_start(&S2, url, service_env(true), NULL), 0);
    json_t *u = upstream_of(&S2, "limited");
    assert_true(json_is_true(json_object_get(u, "paused")));
    json_decref(u);
    char ids[2][37];
    enqueue_to("limited", 2, ids);
    usleep(1000 * 1000);
    assert_int_equal(us_count(US, "/limited/"), 0);
    r = pause_call(&S2, "limited", "resume");
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    th_wait_all(&S, ids, 2, "completed", 10000);
}

static void test_pause_of_an_unknown_upstream(void **state)
{
    struct resp *r = pause_call(&S, "nowhere", "pause");
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    r = pause_call(&S, "nowhere", "resume");
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    assert_string_equal(th_sql(PG, "SELECT count(*) FROM offlineq_settings "
                                   "WHERE key = 'upstreams_paused' AND value ? 'nowhere'"),
                        "0");
    assert_string_equal(events_of("upstream.paused"), "[]");
}

/* The breaker: its state and until when in the delivering instance's view, and one
 * upstream.breaker_opened and one upstream.breaker_closed in every instance's event stream. */
static void test_breaker_state_and_events(void **state)
{
    us_script(US, "/flaky/", "503,503,201", 0);
    char ids[1][37];
    enqueue_to("flaky", 1, ids);
    assert_int_equal(us_wait_count(US, "/flaky/", 2, 10000), 2);
    json_t *u = NULL;
    for (int i = 0; i < 100; i++) { /* the second answer is being taken in */
        json_decref(u);
        u = upstream_of(&S2, "flaky");
        if (strcmp(breaker_state(u), "open") == 0)
            break;
        usleep(20 * 1000);
    }
    assert_string_equal(breaker_state(u), "open");
    double until = parse_ts(th_str(json_object_get(u, "breaker"), "until"));
    assert_true(until >= (double)time(NULL) - 1 && until <= (double)time(NULL) + 3);
    assert_true(json_is_null(json_object_get(u, "last_success_at")));
    assert_true(json_is_string(json_object_get(u, "last_failure_at")));
    assert_int_equal(th_int(u, "attempts"), 2);
    assert_true(json_real_value(json_object_get(u, "success_ratio")) == 0.0);
    json_decref(u);
    json_decref(th_wait_op(&S, ids[0], "completed", 20000));
    u = upstream_of(&S2, "flaky");
    assert_string_equal(breaker_state(u), "closed");
    json_decref(u);
    assert_string_equal(events_of("upstream.breaker_opened"),
                        "[{\"type\": \"upstream.breaker_opened\", \"upstream\": \"flaky\"}]");
    assert_string_equal(events_of("upstream.breaker_closed"),
                        "[{\"type\": \"upstream.breaker_closed\", \"upstream\": \"flaky\"}]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_list_shows_config_and_last_attempts, reset),
        cmocka_unit_test_setup(test_pending_counts_each_upstream, reset),
        cmocka_unit_test_setup(test_pause_holds_work_on_every_instance, reset),
        cmocka_unit_test_setup(test_pause_survives_a_restart, reset),
        cmocka_unit_test_setup(test_pause_of_an_unknown_upstream, reset),
        cmocka_unit_test_setup(test_breaker_state_and_events, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
