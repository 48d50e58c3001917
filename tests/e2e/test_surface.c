/* What pollers and scrapers see: ETags with 304 on the polled endpoints (also while the
 * database is away), and Prometheus metrics that move as operations run. */
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

#define DB "e2e_surface"
static struct svc S;
static struct upstream_srv *US;
static char url[512];

static int group_setup(void **state)
{
    US = us_start();
    static char up[128];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *env[] = {up, "OFFLINEQ_WORKERS=2", NULL};
    return th_group_start(DB, env, &S, NULL, url, sizeof(url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, NULL);
    us_stop(US);
    return 0;
}

/* GET path, then GET it again with If-None-Match: 304 with the same ETag and no body. */
static void assert_304(const char *path, char *etag_out)
{
    for (int attempt = 0; attempt < 3; attempt++) { /* stats' ETag includes the second */
        struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
        assert_int_equal(r->status, 200);
        char etag[160], h[200];
        snprintf(etag, sizeof(etag), "%s", th_header(r, "ETag"));
        th_resp_free(r);
        snprintf(h, sizeof(h), "If-None-Match: %s", etag);
        const char *hs[] = {h, NULL};
        r = th_http(&S, "GET", path, NULL, 0, hs);
        long st = r->status;
        if (st == 304) {
            assert_int_equal(r->body_len, 0);
            assert_string_equal(th_header(r, "ETag"), etag);
        }
        th_resp_free(r);
        if (st == 304) {
            if (etag_out)
                snprintf(etag_out, 160, "%s", etag);
            return;
        }
    }
    fail_msg("%s never answered 304", path);
}

static long status_with(const char *path, const char *etag)
{
    char h[200];
    snprintf(h, sizeof(h), "If-None-Match: %s", etag);
    const char *hs[] = {h, NULL};
    struct resp *r = th_http(&S, "GET", path, NULL, 0, hs);
    long st = r->status;
    th_resp_free(r);
    return st;
}

static void test_etags_and_304(void **state)
{
    char etag[160];
    assert_304("/api/offline/queue/stats", etag);
    assert_304("/api/offline/network-status", etag);
    /* a new check is a new state */
    struct resp *r = th_http(&S, "POST", "/api/offline/check-connectivity", NULL, 0, NULL);
    th_resp_free(r);
    assert_int_equal(status_with("/api/offline/network-status", etag), 200);
    assert_304("/api/offline/sync/status", etag);
    /* what the sync status shows changes its tag at once (auto_sync; the tag names the content,
     * so an operation that came and went, pending 0 before and after, need not) */
    r = th_http(&S, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    th_resp_free(r);
    assert_int_equal(status_with("/api/offline/sync/status", etag), 200);
    r = th_http(&S, "POST", "/api/offline/sync/start-auto", NULL, 0, NULL);
    th_resp_free(r);
    char id[37];
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/e\"}}", id);
    json_decref(th_wait_op(&S, id, "completed", 5000));
    /* with the database away, unchanged state still answers 304 (once the operation above has
     * settled: its pending count is part of the sync status) */
    usleep(500 * 1000);
    char net[160], sync[160];
    assert_304("/api/offline/network-status", net);
    assert_304("/api/offline/sync/status", sync);
    char admin[512];
    snprintf(admin, sizeof(admin), "%s", url);
    char *db = strstr(admin, DB);
    memcpy(db, "postgres", 8);
    memmove(db + 8, db + strlen(DB), strlen(db + strlen(DB)) + 1);
    PGconn *pg = th_db_connect(admin);
    th_sql(pg, "ALTER DATABASE " DB " ALLOW_CONNECTIONS false");
    th_sql(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" DB "'");
    assert_int_equal(status_with("/api/offline/network-status", net), 304);
    assert_int_equal(status_with("/api/offline/sync/status", sync), 304);
    th_sql(pg, "ALTER DATABASE " DB " ALLOW_CONNECTIONS true");
    PQfinish(pg);
}

/* name{labels} value lines of the exposition, summed for a name and label match. */
static double metric(const char *text, const char *name, const char *label)
{
    double sum = 0;
    size_t n = strlen(name);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        char one[512];
        snprintf(one, sizeof(one), "%.*s", (int)(eol ? eol - p : (long)strlen(p)), p);
        if (*one != '#' && strncmp(one, name, n) == 0 && (one[n] == '{' || one[n] == ' ')) {
            const char *sp = strrchr(one, ' ');
            if (sp && (label == NULL || (strstr(one, label) && strstr(one, label) < sp)))
                sum += atof(sp + 1);
        }
        p = eol ? eol + 1 : NULL;
    }
    return sum;
}

static char *scrape(void)
{
    struct resp *r = th_http(&S, "GET", "/metrics", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(th_header(r, "Content-Type"), "text/plain"));
    char *t = strdup(r->body);
    th_resp_free(r);
    /* well-formed: every sample line is "name[{labels}] number" and has a TYPE */
    for (char *line = t; *line;) {
        char *eol = strchr(line, '\n');
        if (*line != '#' && eol != line) {
            char name[128], one[512];
            snprintf(one, sizeof(one), "%.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
            assert_int_equal(sscanf(one, "%127[a-z_]", name), 1);
            assert_int_equal(strncmp(name, "offlineq_", 9), 0);
            char *sp = strrchr(one, ' ');
            char *end = NULL;
            assert_non_null(sp);
            strtod(sp + 1, &end);
            assert_true(end != sp + 1 && *end == '\0');
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    return t;
}

static void test_metrics_move(void **state)
{
    us_script(US, "/bad", "400", 0);
    char *before = scrape();
    char ids[3][37];
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/m1\"}}", ids[0]);
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/m2\"}}", ids[1]);
    th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/bad\"}}", ids[2]);
    for (int i = 0; i < 3; i++)
        json_decref(th_wait_op(&S, ids[i], "completed,failed", 5000));
    /* the counters move right after the outcome is committed: give the worker that moment */
    char *after = NULL;
    for (int i = 0; i < 50; i++) {
        free(after);
        after = scrape();
        if (metric(after, "offlineq_operations_failed_total", "operation_type=\"api_call\"") -
                    metric(before, "offlineq_operations_failed_total",
                           "operation_type=\"api_call\"") ==
                1 &&
            metric(after, "offlineq_enqueue_to_completion_seconds_count", NULL) -
                    metric(before, "offlineq_enqueue_to_completion_seconds_count", NULL) ==
                2)
            break;
        usleep(20000);
    }
    const char *api = "operation_type=\"api_call\"";
    assert_true(metric(after, "offlineq_operations_enqueued_total", api) -
                    metric(before, "offlineq_operations_enqueued_total", api) ==
                3);
    assert_true(metric(after, "offlineq_operations_completed_total", api) -
                    metric(before, "offlineq_operations_completed_total", api) ==
                2);
    assert_true(metric(after, "offlineq_operations_failed_total", api) -
                    metric(before, "offlineq_operations_failed_total", api) ==
                1);
    assert_true(metric(after, "offlineq_execution_duration_seconds_count", NULL) -
                    metric(before, "offlineq_execution_duration_seconds_count", NULL) ==
                3);
    /* by upstream: the attempts against "default", none outside an upstream; the series
     * without the label still add up (sum without(upstream)) */
    const char *api_def = "operation_type=\"api_call\",upstream=\"default\"";
    assert_true(metric(after, "offlineq_operations_failed_total", api_def) -
                    metric(before, "offlineq_operations_failed_total", api_def) ==
                1);
    assert_true(metric(after, "offlineq_operations_completed_total", api_def) -
                    metric(before, "offlineq_operations_completed_total", api_def) ==
                2);
    assert_true(
        metric(after, "offlineq_execution_duration_seconds_count", "upstream=\"default\"") -
            metric(before, "offlineq_execution_duration_seconds_count", "upstream=\"default\"") ==
        3);
    assert_true(metric(after, "offlineq_execution_duration_seconds_bucket",
                       "upstream=\"default\",le=\"+Inf\"") -
                    metric(before, "offlineq_execution_duration_seconds_bucket",
                           "upstream=\"default\",le=\"+Inf\"") ==
                3);
    assert_non_null(strstr(after, "\nofflineq_execution_duration_seconds_count{upstream=\"\"} "));
    assert_non_null(
        strstr(after, "\nofflineq_operations_enqueued_total{operation_type=\"api_call\"} "));
    assert_non_null(strstr(after, "\nofflineq_queue_oldest_pending_age_seconds "));
    assert_true(metric(after, "offlineq_queue_oldest_pending_age_seconds", NULL) >= 0);
    assert_true(metric(after, "offlineq_enqueue_to_completion_seconds_count", NULL) -
                    metric(before, "offlineq_enqueue_to_completion_seconds_count", NULL) ==
                2);
    assert_true(metric(after, "offlineq_http_requests_total",
                       "route=\"/api/offline/queue\",status=\"201\"") -
                    metric(before, "offlineq_http_requests_total",
                           "route=\"/api/offline/queue\",status=\"201\"") ==
                3);
    assert_true(metric(after, "offlineq_queue_operations", "status=\"failed\"") >= 1);
    assert_true(metric(after, "offlineq_network_online", NULL) == 1);
    assert_true(metric(after, "offlineq_workers", "state=\"idle\"") +
                    metric(after, "offlineq_workers", "state=\"busy\"") ==
                2);
    assert_true(metric(after, "offlineq_database_up", NULL) == 1);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_move),
        cmocka_unit_test(test_etags_and_304),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
