/* Retention (issue 13, point 5): the janitor deletes completed and failed operations past
 * OFFLINEQ_RETAIN_COMPLETED_S / OFFLINEQ_RETAIN_FAILED_S (defaults here: 7 and 30 days), in
 * short batches that skip locked rows, counts them in offlineq_operations_deleted_total, drops
 * files no operation needs any more, and never keeps an enqueue or a claim waiting. Rows are
 * aged by SQL (created_at, completed_at, updated_at moved into the past). */
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

#define DB "e2e_retention"
#define DB_KEEP "e2e_retention_keep"
static struct svc S;
static PGconn *pg;
static struct upstream_srv *US;
static char up_env[160];
static PGconn *TX; /* a test's own transaction; closed even when the test fails */

static void close_tx(void)
{
    if (TX != NULL)
        PQfinish(TX);
    TX = NULL;
}

#define API_X "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}"
/* A pass of the janitor runs every second; this is several of them. */
#define PASSES_MS 6000

static int group_setup(void **state)
{
    US = us_start();
    snprintf(up_env, sizeof(up_env), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    const char *env[] = {up_env, "OFFLINEQ_WORKERS=1", NULL};
    return th_group_start(DB, env, &S, &pg, NULL, 0);
}

static int group_teardown(void **state)
{
    close_tx(); /* a janitor waiting on its locks could not stop */
    th_group_stop(DB, &S, pg);
    us_stop(US);
    return 0;
}

static int clean(void **state)
{
    close_tx();
    th_sql(pg, "TRUNCATE offline_operations, offlineq_op_counts");
    return 0;
}

/* Enqueues one operation and waits until it is delivered (completed). */
static void completed_op(char id[37])
{
    json_decref(th_enqueue_settled(&S, API_X, "completed", 10000, id));
}

/* Moves an ended operation's times days into the past (created a day before it ended). */
static void age(PGconn *c, const char *id, int days)
{
    th_sqlf(c,
            "UPDATE offline_operations SET created_at = now() - make_interval(days => %d + 1), "
            "updated_at = now() - make_interval(days => %d), "
            "completed_at = CASE WHEN status = 'completed' THEN now() - make_interval(days => %d) "
            "END WHERE id = '%s'",
            days, days, days, id);
}

static bool exists(const char *id)
{
    return strcmp(th_sqlf(pg, "SELECT count(*) FROM offline_operations WHERE id = '%s'", id),
                  "1") == 0;
}

/* The deleted_total of reason in /metrics. */
static long long deleted_total(const struct svc *s, const char *reason)
{
    char series[128];
    snprintf(series, sizeof(series), "offlineq_operations_deleted_total{reason=\"%s\"}", reason);
    return th_metric(s, series);
}

/* Waits until id is gone (true) or PASSES_MS pass (false). */
static bool gone_soon(const char *id)
{
    for (double t0 = th_now_ms(); th_now_ms() - t0 < PASSES_MS; usleep(100 * 1000))
        if (!exists(id))
            return true;
    return false;
}

static void test_retention_deletes_what_aged(void **state)
{
    long long done0 = deleted_total(&S, "retention_completed");
    long long failed0 = deleted_total(&S, "retention_failed");
    char c_old[2][37], c_young[37], c_edge[37], f_old[37], f_young[37], p_old[37], x_old[37];
    /* enqueue order is time order: the old ones first */
    completed_op(c_old[0]);
    completed_op(c_old[1]);
    completed_op(f_old);
    completed_op(c_edge);
    completed_op(c_young);
    completed_op(f_young);
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},"
               "\"delay_s\":86400}",
               p_old);
    th_enqueue(&S,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"},"
               "\"delay_s\":86400}",
               x_old);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'failed' WHERE id IN ('%s', '%s')", f_old,
            f_young);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'conflict' WHERE id = '%s'", x_old);
    age(pg, c_old[0], 8);
    age(pg, c_old[1], 8);
    age(pg, f_old, 31);
    age(pg, c_edge, 6); /* younger than 7 days */
    age(pg, f_young, 29);
    age(pg, p_old, 100); /* live: never deleted by age */
    age(pg, x_old, 100);
    assert_true(gone_soon(c_old[0]));
    assert_true(gone_soon(c_old[1]));
    assert_true(gone_soon(f_old));
    usleep(1500 * 1000); /* another pass */
    assert_true(exists(c_edge));
    assert_true(exists(c_young));
    assert_true(exists(f_young));
    assert_true(exists(p_old));
    assert_true(exists(x_old));
    assert_int_equal(deleted_total(&S, "retention_completed") - done0, 2);
    assert_int_equal(deleted_total(&S, "retention_failed") - failed0, 1);
    /* the counters follow */
    struct resp *r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(th_int(r->json, "completed"), 2);
    assert_int_equal(th_int(r->json, "failed"), 1);
    th_resp_free(r);
}

/* More than a batch (1000 per statement): all go, over one or a few passes. */
static void test_retention_many(void **state)
{
    long long done0 = deleted_total(&S, "retention_completed");
    th_sql(pg, "INSERT INTO offline_operations (operation_type, payload, status, created_at, "
               "updated_at, completed_at) SELECT 'api_call', '{\"endpoint\":\"/x\"}', 'completed', "
               "now() - interval '9 days' + i * interval '1 ms', now() - interval '8 days', "
               "now() - interval '8 days' + i * interval '1 ms' FROM generate_series(1, 2500) i");
    char young[37];
    completed_op(young);
    double t0 = th_now_ms();
    while (strcmp(th_sql(pg, "SELECT count(*) FROM offline_operations"), "1") != 0 &&
           th_now_ms() - t0 < PASSES_MS)
        usleep(100 * 1000);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "1");
    assert_true(exists(young));
    assert_int_equal(deleted_total(&S, "retention_completed") - done0, 2500);
}

static const char *upload(char file[37])
{
    const char *const h[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r = th_http(&S, "POST", "/api/offline/files", "0123456789", 10, h);
    assert_int_equal(r->status, 201);
    snprintf(file, 37, "%s", th_str(r->json, "file_id"));
    th_resp_free(r);
    return file;
}

static long file_status(const char *file)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/files/%s", file);
    struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
    long st = r->status;
    th_resp_free(r);
    return st;
}

/* A failed operation keeps its file; once retention deletes the last operation that needs it,
 * the file goes too (and not before). */
static void test_retention_drops_files(void **state)
{
    char file[37], a[37], b[37], body[256];
    upload(file);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\","
             "\"endpoint\":\"/u\"},\"delay_s\":86400}",
             file);
    th_enqueue(&S, body, a);
    th_enqueue(&S, body, b);
    th_sqlf(pg, "UPDATE offline_operations SET status = 'failed' WHERE id IN ('%s', '%s')", a, b);
    age(pg, a, 31);
    assert_true(gone_soon(a));
    assert_true(exists(b));
    assert_int_equal(file_status(file), 200);
    age(pg, b, 31);
    assert_true(gone_soon(b));
    assert_int_equal(file_status(file), 404);
}

/* Retention never holds up the queue and waits for nobody: while another transaction holds
 * aged rows (FOR KEY SHARE, as an enqueue holds the file it names), the janitor skips them and
 * deletes the rest, an enqueue is answered and its operation claimed and delivered; the held
 * rows go once they are free. */
static void test_retention_blocks_nobody(void **state)
{
    char held[2][37], free_op[37], fresh[37];
    completed_op(held[0]);
    completed_op(held[1]);
    completed_op(free_op);
    PGconn *tx = TX = th_db_connect(S.db_url);
    th_sql(tx, "BEGIN");
    th_sqlf(tx, "SELECT 1 FROM offline_operations WHERE id IN ('%s', '%s') FOR KEY SHARE", held[0],
            held[1]);
    age(pg, held[0], 8); /* committed: due for deletion, but held */
    age(pg, held[1], 8);
    age(pg, free_op, 8);
    double t0 = th_now_ms();
    json_decref(th_enqueue_settled(&S, API_X, "completed", 5000, fresh));
    assert_true(th_now_ms() - t0 < 2000); /* enqueued, claimed, delivered */
    assert_true(gone_soon(free_op));      /* behind the held ones in enqueue order */
    usleep(1500 * 1000);
    assert_true(exists(held[0])); /* skipped, not waited for */
    assert_true(exists(held[1]));
    th_sql(tx, "COMMIT");
    assert_true(gone_soon(held[0]));
    assert_true(gone_soon(held[1]));
    assert_true(exists(fresh));
    close_tx();
}

/* 0 keeps forever: another service on another database, both retentions 0. */
static void test_retention_zero_keeps_forever(void **state)
{
    struct svc k;
    PGconn *kpg = NULL;
    const char *env[] = {up_env, "OFFLINEQ_WORKERS=0", "OFFLINEQ_RETAIN_COMPLETED_S=0",
                         "OFFLINEQ_RETAIN_FAILED_S=0", NULL};
    assert_int_equal(th_group_start(DB_KEEP, env, &k, &kpg, NULL, 0), 0);
    th_sql(kpg, "INSERT INTO offline_operations (operation_type, payload, status, created_at, "
                "updated_at, completed_at) SELECT 'api_call', '{\"endpoint\":\"/x\"}', s, "
                "now() - interval '3650 days', now() - interval '3650 days', "
                "CASE WHEN s = 'completed' THEN now() - interval '3650 days' END "
                "FROM unnest(ARRAY['completed', 'failed']) s");
    usleep(PASSES_MS / 2 * 1000);
    assert_string_equal(th_sql(kpg, "SELECT count(*) FROM offline_operations"), "2");
    assert_int_equal(deleted_total(&k, "retention_completed"), 0);
    assert_int_equal(deleted_total(&k, "retention_failed"), 0);
    th_group_stop(DB_KEEP, &k, kpg);
}

/* A bad setting stops the start with a message naming it, like every other. */
static void test_retention_config_checked(void **state)
{
    static const char *const bad[] = {"OFFLINEQ_RETAIN_COMPLETED_S=-1",
                                      "OFFLINEQ_RETAIN_FAILED_S=abc",
                                      "OFFLINEQ_RETAIN_FAILED_S=3000000000"};
    for (size_t i = 0; i < 3; i++) {
        struct svc b;
        const char *env[] = {bad[i], NULL};
        int code = 0;
        assert_int_equal(th_svc_start(&b, S.db_url, env, &code), -1);
        assert_int_not_equal(code, 0);
        char *log = th_svc_log(&b);
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(strchr(bad[i], '=') - bad[i]), bad[i]);
        assert_non_null(strstr(log, name));
        free(log);
    }
}

/* DELETE /queue/{id} and clear-completed count too. */
static void test_api_deletes_counted(void **state)
{
    long long api0 = deleted_total(&S, "api"), clear0 = deleted_total(&S, "clear_completed");
    char a[37], b[37], c[37];
    completed_op(a);
    completed_op(b);
    completed_op(c);
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", a);
    struct resp *r = th_http(&S, "DELETE", path, NULL, 0, NULL);
    assert_int_equal(r->status, 204);
    th_resp_free(r);
    r = th_json(&S, "POST", "/api/offline/queue/clear-completed", "{}");
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "cleared"), 2);
    th_resp_free(r);
    assert_int_equal(deleted_total(&S, "api") - api0, 1);
    assert_int_equal(deleted_total(&S, "clear_completed") - clear0, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_retention_deletes_what_aged, clean),
        cmocka_unit_test_setup(test_retention_many, clean),
        cmocka_unit_test_setup(test_retention_drops_files, clean),
        cmocka_unit_test_setup(test_retention_blocks_nobody, clean),
        cmocka_unit_test_setup(test_retention_zero_keeps_forever, clean),
        cmocka_unit_test_setup(test_retention_config_checked, clean),
        cmocka_unit_test_setup(test_api_deletes_counted, clean),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
