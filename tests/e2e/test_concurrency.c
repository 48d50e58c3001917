/* Races: many clients enqueueing the same dedup_key at once get exactly one operation. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_concurrency"
#define THREADS 16
#define ROUNDS 20
static struct svc S;
static PGconn *pg;

static int group_setup(void **state)
{
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_HTTP_THREADS=8", "OFFLINEQ_DB_POOL_SIZE=16", NULL};
    return th_group_start(DB, env, &S, &pg, NULL, 0);
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    return 0;
}

struct racer {
    pthread_barrier_t *start;
    const char *body;
    const char *path;
    long status;
    char id[37];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->start);
    struct resp *resp = th_json(&S, "POST", r->path, r->body);
    r->status = resp->status;
    const json_t *op = resp->json;
    if (strstr(r->path, "batch"))
        op = json_array_get(json_object_get(resp->json, "operations"), 0);
    snprintf(r->id, sizeof(r->id), "%s", op ? th_str(op, "id") : "");
    th_resp_free(resp);
    return NULL;
}

static void run_race(const char *path, const char *body_fmt, int round, long created_status)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    struct racer racers[THREADS];
    pthread_t t[THREADS];
    char body[512];
    snprintf(body, sizeof(body), body_fmt, round);
    for (int i = 0; i < THREADS; i++) {
        racers[i] = (struct racer){.start = &start, .body = body, .path = path};
        pthread_create(&t[i], NULL, race, &racers[i]);
    }
    int created = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        if (racers[i].status == created_status && strcmp(path, "/api/offline/queue") == 0)
            created++;
        assert_true(racers[i].status == 200 || racers[i].status == 201);
        assert_string_equal(racers[i].id, racers[0].id);
    }
    if (strcmp(path, "/api/offline/queue") == 0)
        assert_int_equal(created, 1); /* exactly one 201, the others 200 */
    pthread_barrier_destroy(&start);
}

static void test_concurrent_duplicate_dedup_key(void **state)
{
    for (int round = 0; round < ROUNDS; round++)
        run_race("/api/offline/queue",
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/"
                 "x\"},\"dedup_key\":\"race-%d\"}",
                 round, 201);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "20");
    assert_string_equal(th_sql(pg, "SELECT count(DISTINCT dedup_key) FROM offline_operations"),
                        "20");
}

static void test_concurrent_batches_share_dedup_key(void **state)
{
    th_sql(pg, "TRUNCATE offline_operations, offlineq_op_counts");
    for (int round = 0; round < ROUNDS; round++)
        run_race(
            "/api/offline/queue/batch",
            "{\"operations\":[{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/b\"},"
            "\"dedup_key\":\"batch-race-%d\"}]}",
            round, 201);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"), "20");
    struct resp *r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(th_int(r->json, "pending"), 20); /* counters agree with the rows */
    th_resp_free(r);
}

/* Simple enqueues from many connections at once are stored in shared commits (group commit):
 * every request still gets its own 201, Location and operation, and every one is stored. */
static void test_concurrent_simple_enqueues_each_stored(void **state)
{
    th_sql(pg, "TRUNCATE offline_operations, offlineq_op_counts");
    int total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        struct racer racers[THREADS];
        pthread_t t[THREADS];
        char bodies[THREADS][256];
        for (int i = 0; i < THREADS; i++) {
            snprintf(bodies[i], sizeof(bodies[i]),
                     "{\"operation_type\":\"api_call\",\"priority\":%d,"
                     "\"payload\":{\"endpoint\":\"/g\",\"data\":{\"round\":%d,\"i\":%d}}}",
                     i % 3, round, i);
            racers[i] =
                (struct racer){.start = &start, .body = bodies[i], .path = "/api/offline/queue"};
            pthread_create(&t[i], NULL, race, &racers[i]);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(racers[i].status, 201);
            char q[256];
            snprintf(
                q, sizeof(q),
                "SELECT payload #>> '{data,round}' || '/' || (payload #>> '{data,i}') || '/' || "
                "priority FROM offline_operations WHERE id = '%s'",
                racers[i].id);
            char want[64];
            snprintf(want, sizeof(want), "%d/%d/%d", round, i, i % 3);
            assert_string_equal(th_sql(pg, q), want); /* each answer names its own operation */
            total++;
        }
        pthread_barrier_destroy(&start);
    }
    char n[16];
    snprintf(n, sizeof(n), "%d", total);
    assert_string_equal(th_sql(pg, "SELECT count(DISTINCT id) FROM offline_operations"), n);
    struct resp *r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(th_int(r->json, "pending"), total);
    th_resp_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_duplicate_dedup_key),
        cmocka_unit_test(test_concurrent_batches_share_dedup_key),
        cmocka_unit_test(test_concurrent_simple_enqueues_each_stored),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
