/* Rolling upgrades (issue 15 point 6): a service keeps serving on a schema that a newer one
 * migrated when every newer migration declares itself compatible with it, and answers 503
 * not_ready, using the database for nothing, past one that does not (at start-up it refuses
 * to start). The newer migrations are synthetic rows in schema_migrations, plus expand-only
 * DDL for the compatible one. */
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

#define DB "e2e_upgrade"
#define BODY "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/up/%d\"}}"

static struct upstream_srv *US;

static void assert_not_ready(struct resp *r, const char *message)
{
    th_assert_error(r, 503, "not_ready");
    assert_string_equal(th_str(json_object_get(r->json, "error"), "message"), message);
    th_resp_free(r);
}

/* Tries POST /api/offline/queue (/up/<n>) until it answers status or timeout_ms pass; returns
 * the last response. */
static struct resp *enqueue_until(const struct svc *s, long status, int n, int timeout_ms)
{
    char body[128];
    snprintf(body, sizeof(body), BODY, n);
    double until = th_now_ms() + timeout_ms;
    struct resp *r = th_json(s, "POST", "/api/offline/queue", body);
    while (r->status != status && th_now_ms() < until) {
        th_resp_free(r);
        usleep(100 * 1000);
        r = th_json(s, "POST", "/api/offline/queue", body);
    }
    return r;
}

/* The declared compatibility is recorded as each migration is applied: 017 declares 16; the
 * ones before it declared nothing, so each counts as compatible only from itself. */
static void assert_recorded(PGconn *pg)
{
    assert_string_equal(th_sql(pg, "SELECT compatible_from FROM schema_migrations "
                                   "WHERE version = 17"),
                        "16");
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM schema_migrations "
                                   "WHERE version < 17 AND compatible_from <> version"),
                        "0");
}

static void test_rolling_upgrade(void **state)
{
    (void)state;
    char url[512], env_up[300];
    th_db_create(DB, url, sizeof(url));
    snprintf(env_up, sizeof(env_up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *const env[] = {env_up, "OFFLINEQ_WORKERS=1", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PGconn *pg = th_db_connect(url);
    assert_recorded(pg);
    int mine = atoi(th_sql(pg, "SELECT max(version) FROM schema_migrations"));
    assert_true(mine >= 17);

    /* A newer service applied an expand-only migration that declares this one compatible. */
    th_sql(pg, "ALTER TABLE offline_operations ADD COLUMN upgrade_note text");
    th_sqlf(pg,
            "INSERT INTO schema_migrations (version, name, compatible_from) "
            "VALUES (999, '999_expand.sql', %d)",
            mine);
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    struct resp *r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "status"), "ready");
    th_resp_free(r);
    char *log = th_svc_log(&s), want[256];
    snprintf(want, sizeof(want),
             "database schema version 999 is newer than this binary (%d) and compatible with "
             "it (from %d): nothing to migrate",
             mine, mine);
    assert_non_null(strstr(log, want));
    assert_null(strstr(log, "applied migration")); /* nothing rolled back or applied again */
    free(log);
    char id[37];
    json_t *op = th_enqueue_settled(&s,
                                    "{\"operation_type\":\"api_call\",\"payload\":"
                                    "{\"endpoint\":\"/up/0\"}}",
                                    "completed", 10000, id);
    json_decref(op);
    assert_int_equal(us_count(US, "/up/0"), 1);
    assert_string_equal(th_sqlf(pg,
                                "SELECT count(*) FILTER (WHERE version > %d) || '/' || "
                                "max(version) FROM schema_migrations",
                                mine),
                        "1/999");

    /* Then it applied one that is not (a contract step): the running service stops using the
     * database within the janitor's check (1 s), without a /readyz to tell it. */
    th_sql(pg, "INSERT INTO schema_migrations (version, name, compatible_from) "
               "VALUES (1000, '1000_contract.sql', 1000)");
    char msg[320];
    snprintf(msg, sizeof(msg),
             "database schema version 1000 is newer than this binary knows (%d) and not "
             "compatible with it: its migrations past %d need a service of schema version 1000 "
             "or newer",
             mine, mine);
    r = enqueue_until(&s, 503, 1, 3000);
    assert_not_ready(r, msg);
    assert_not_ready(th_http(&s, "GET", "/readyz", NULL, 0, NULL), msg);
    assert_not_ready(th_http(&s, "GET", "/api/offline/queue", NULL, 0, NULL), msg);
    r = th_http(&s, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200); /* alive: not restarted, only out of rotation */
    th_resp_free(r);
    /* An outbox row the newer service (or the application) stores meanwhile stays untouched:
     * its NOTIFY reaches the listener, but no worker claims it. */
    const char *outbox =
        th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/up/2\"}')");
    char outbox_id[37];
    snprintf(outbox_id, sizeof(outbox_id), "%s", outbox);
    usleep(2500 * 1000);
    assert_int_equal(us_count(US, "/up/2"), 0);
    assert_string_equal(th_sqlf(pg,
                                "SELECT status || '/' || retry_count FROM offline_operations "
                                "WHERE id = '%s'",
                                outbox_id),
                        "pending/0");

    /* The row goes (the contract step never happened after all): serving again, by itself. */
    th_sql(pg, "DELETE FROM schema_migrations WHERE version = 1000");
    r = enqueue_until(&s, 201, 3, 3000);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    assert_int_equal(us_wait_count(US, "/up/2", 1, 10000), 1);
    assert_int_equal(us_wait_count(US, "/up/3", 1, 10000), 1);
    r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    log = th_svc_log(&s);
    char *first = strstr(log, "\"event\":\"schema_incompatible\"");
    assert_non_null(first);
    assert_null(strstr(first + 1, "\"event\":\"schema_incompatible\"")); /* logged once */
    assert_non_null(strstr(log, "\"event\":\"schema_compatible\""));
    free(log);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* Started on an incompatible schema, it refuses to start and changes nothing. */
    th_sql(pg, "INSERT INTO schema_migrations (version, name, compatible_from) "
               "VALUES (1000, '1000_contract.sql', 1000)");
    int code = 0;
    assert_int_equal(th_svc_start(&s, url, env, &code), -1);
    assert_int_equal(code, 1);
    log = th_svc_log(&s);
    char line[400];
    snprintf(line, sizeof(line), "start-up failed: %s", msg);
    assert_non_null(strstr(log, line));
    free(log);
    assert_string_equal(th_sqlf(pg,
                                "SELECT count(*) FILTER (WHERE version > %d) || '/' || "
                                "max(version) FROM schema_migrations",
                                mine),
                        "2/1000");
    PQfinish(pg);
    th_db_drop(DB);
}

static int setup(void **state)
{
    (void)state;
    US = us_start();
    return US != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    us_stop(US);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rolling_upgrade),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
