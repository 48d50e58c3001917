/* Idempotency-Key on POST /api/offline/queue and /api/offline/queue/batch, against the real
 * service and a real PostgreSQL: a replay answers the first status, body and Location with
 * Idempotent-Replayed: true; another body is 422; a request still in flight is 409; the answer
 * holds across a restart and on another instance, per API key and route, for
 * OFFLINEQ_IDEMPOTENCY_TTL_S; errors are not kept. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_idempotency"
#define KEY_A "idem-writer-a-5f0c1d2e3b4a"
#define KEY_B "idem-writer-b-9e8d7c6b5a49"
#define QUEUE "/api/offline/queue"
#define BATCH "/api/offline/queue/batch"

static const char *const env[] = {
    "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9/api",
    "OFFLINEQ_API_KEYS=" KEY_A ":write," KEY_B ":write",
    NULL,
};
static struct svc S;
static PGconn *pg;
static char url[512];

static int group_setup(void **state)
{
    (void)state;
    return th_group_start(DB, env, &S, &pg, url, sizeof(url));
}

static int group_teardown(void **state)
{
    (void)state;
    th_group_stop(DB, &S, pg);
    return 0;
}

static int clean(void **state)
{
    (void)state;
    th_sql(pg, "TRUNCATE offline_operations, offlineq_op_counts, offlineq_idempotency");
    return 0;
}

/* POST body to path on s as api_key, with the Idempotency-Key header idem (NULL: none) and
 * Prefer prefer (NULL: none). */
static struct resp *post_on(const struct svc *s, const char *path, const char *api_key,
                            const char *idem, const char *prefer, const char *body)
{
    char auth[128], key[600], pref[128];
    const char *h[5];
    int n = 0;
    h[n++] = "Content-Type: application/json";
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_key);
    h[n++] = auth;
    if (idem != NULL) {
        snprintf(key, sizeof(key), "Idempotency-Key: %s", idem);
        h[n++] = key;
    }
    if (prefer != NULL) {
        snprintf(pref, sizeof(pref), "Prefer: %s", prefer);
        h[n++] = pref;
    }
    h[n] = NULL;
    return th_http(s, "POST", path, body, -1, h);
}

static struct resp *post(const char *path, const char *idem, const char *body)
{
    return post_on(&S, path, KEY_A, idem, NULL, body);
}

static const char *count_ops(void)
{
    return th_sql(pg, "SELECT count(*) FROM offline_operations");
}

static const char *count_keys(void)
{
    return th_sql(pg, "SELECT count(*) FROM offlineq_idempotency");
}

#define OP_1 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/items/1\"}}"
#define OP_2 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/items/2\"}}"

/* r carries header name with the value want (a missing header fails, not crashes). */
static void assert_header(const struct resp *r, const char *name, const char *want)
{
    const char *v = th_header(r, name);
    assert_non_null(v);
    assert_string_equal(v, want);
}

/* r answers exactly what first did: status, body bytes, Location, and says it is a replay. */
static void assert_replay_of(const struct resp *r, const struct resp *first)
{
    assert_int_equal(r->status, first->status);
    assert_string_equal(r->body, first->body);
    const char *loc = th_header(first, "Location");
    if (loc == NULL) {
        assert_null(th_header(r, "Location"));
    } else {
        char want[256];
        snprintf(want, sizeof(want), "%s", loc); /* th_header's buffer is shared */
        assert_header(r, "Location", want);
    }
    assert_header(r, "Idempotent-Replayed", "true");
}

static void test_replay_single(void **state)
{
    (void)state;
    struct resp *first = post(QUEUE, "order-1", OP_1);
    assert_int_equal(first->status, 201);
    assert_null(th_header(first, "Idempotent-Replayed"));
    char loc[128];
    snprintf(loc, sizeof(loc), QUEUE "/%s", th_str(first->json, "id"));
    assert_header(first, "Location", loc);
    assert_string_equal(count_keys(), "1");

    struct resp *again = post(QUEUE, "order-1", OP_1);
    assert_replay_of(again, first);
    /* a Structured Fields string is the same key */
    struct resp *quoted = post(QUEUE, "\"order-1\"", OP_1);
    assert_replay_of(quoted, first);
    assert_string_equal(count_ops(), "1");
    assert_string_equal(count_keys(), "1");
    /* the stored row: scoped to the route and the caller, the answer as sent */
    assert_string_equal(
        th_sqlf(pg,
                "SELECT scope ~ '^queue:[0-9a-f]{32}$' AND status = 201 AND location = '%s' "
                "AND body::jsonb->>'id' = '%s' AND preference_applied IS NULL "
                "AND length(request_sha256) = 32 FROM offlineq_idempotency WHERE key = 'order-1'",
                loc, th_str(first->json, "id")),
        "t");
    th_resp_free(quoted);
    th_resp_free(again);
    th_resp_free(first);
}

static void test_other_body_is_422(void **state)
{
    (void)state;
    struct resp *first = post(QUEUE, "order-2", OP_1);
    assert_int_equal(first->status, 201);
    struct resp *r = post(QUEUE, "order-2", OP_2);
    th_assert_error(r, 422, "idempotency_key_reused");
    assert_null(th_header(r, "Idempotent-Replayed"));
    th_resp_free(r);
    /* the body is compared as sent: the same object spaced differently is another request */
    r = post(QUEUE, "order-2",
             "{ \"operation_type\": \"api_call\", \"payload\": {\"endpoint\": \"/items/1\"} }");
    th_assert_error(r, 422, "idempotency_key_reused");
    th_resp_free(r);
    /* and the first answer stays */
    r = post(QUEUE, "order-2", OP_1);
    assert_replay_of(r, first);
    th_resp_free(r);
    assert_string_equal(count_ops(), "1");
    th_resp_free(first);
}

struct flight {
    const char *idem;
    const char *body;
    struct resp *r;
};

static void *fly(void *arg)
{
    struct flight *f = arg;
    f->r = post(QUEUE, f->idem, f->body);
    return NULL;
}

static void test_in_flight_is_409(void **state)
{
    (void)state;
    /* the first request holds the key's lock while its insert waits for this table lock */
    PGconn *holder = th_db_connect(url);
    th_sql(holder, "BEGIN");
    th_sql(holder, "LOCK TABLE offline_operations IN SHARE MODE");
    struct flight f = {.idem = "order-3", .body = OP_1};
    pthread_t t;
    pthread_create(&t, NULL, fly, &f);
    /* the enqueue holding an advisory lock in this database waits for the table lock (pg_locks
     * is the cluster's; other backends, the janitor's too, may wait on the table as well) */
    bool waiting = false;
    for (int i = 0; i < 500 && !waiting; i++) {
        waiting = strcmp(th_sql(pg, "SELECT count(*) FROM pg_locks a JOIN pg_locks w "
                                    "ON w.pid = a.pid AND w.locktype = 'relation' "
                                    "AND w.relation = 'offline_operations'::regclass "
                                    "AND NOT w.granted "
                                    "WHERE a.locktype = 'advisory' AND a.granted AND a.database = "
                                    "(SELECT oid FROM pg_database WHERE datname = "
                                    "current_database())"),
                         "1") == 0;
        if (!waiting)
            usleep(10 * 1000);
    }
    assert_true(waiting);

    struct resp *r = post(QUEUE, "order-3", OP_1);
    th_assert_error(r, 409, "idempotency_key_in_use");
    assert_header(r, "Retry-After", "1");
    th_resp_free(r);
    r = post(QUEUE, "order-3", OP_2); /* the lock comes first: in use, whatever the body */
    th_assert_error(r, 409, "idempotency_key_in_use");
    th_resp_free(r);
    assert_string_equal(count_keys(), "0"); /* nothing kept for the refused ones */

    th_sql(holder, "COMMIT");
    PQfinish(holder);
    pthread_join(t, NULL);
    assert_int_equal(f.r->status, 201);
    r = post(QUEUE, "order-3", OP_1);
    assert_replay_of(r, f.r);
    th_resp_free(r);
    assert_string_equal(count_ops(), "1");
    th_resp_free(f.r);
}

#define RACERS 8

struct racer {
    pthread_barrier_t *start;
    struct resp *r;
};

static void *race(void *arg)
{
    struct racer *x = arg;
    pthread_barrier_wait(x->start);
    x->r = post(QUEUE, "race-1", OP_1);
    return NULL;
}

/* Concurrent requests with one key: one enqueues, each other one is 409 or its replay. */
static void test_concurrent_same_key(void **state)
{
    (void)state;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    struct racer x[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
        x[i] = (struct racer){.start = &start};
        pthread_create(&t[i], NULL, race, &x[i]);
    }
    int fresh = 0;
    char id[37] = "";
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < RACERS; i++) {
        const struct resp *r = x[i].r;
        if (r->status == 409) {
            th_assert_error(r, 409, "idempotency_key_in_use");
            continue;
        }
        assert_int_equal(r->status, 201);
        fresh += th_header(r, "Idempotent-Replayed") == NULL;
        if (id[0] == '\0')
            snprintf(id, sizeof(id), "%s", th_str(r->json, "id"));
        assert_string_equal(th_str(r->json, "id"), id);
    }
    assert_int_equal(fresh, 1);
    assert_string_equal(count_ops(), "1");
    for (int i = 0; i < RACERS; i++)
        th_resp_free(x[i].r);
    pthread_barrier_destroy(&start);
}

static void test_scope_is_key_and_route(void **state)
{
    (void)state;
    struct resp *a = post(QUEUE, "shared", OP_1);
    assert_int_equal(a->status, 201);
    /* the same key from another API key is another client's */
    struct resp *b = post_on(&S, QUEUE, KEY_B, "shared", NULL, OP_2);
    assert_int_equal(b->status, 201);
    assert_null(th_header(b, "Idempotent-Replayed"));
    assert_string_not_equal(th_str(a->json, "id"), th_str(b->json, "id"));
    /* and on the batch route it is another key */
    struct resp *c = post(BATCH, "shared", "{\"operations\":[" OP_1 "]}");
    assert_int_equal(c->status, 201);
    assert_null(th_header(c, "Idempotent-Replayed"));
    assert_string_equal(count_ops(), "3");
    assert_string_equal(count_keys(), "3");
    assert_string_equal(
        th_sql(pg, "SELECT count(DISTINCT scope) FROM offlineq_idempotency WHERE key = 'shared'"),
        "3");
    struct resp *r = post_on(&S, QUEUE, KEY_B, "shared", NULL, OP_2);
    assert_replay_of(r, b);
    th_resp_free(r);
    th_resp_free(c);
    th_resp_free(b);
    th_resp_free(a);
}

static void test_batch_replay(void **state)
{
    (void)state;
    /* dedup_key makes it the statement-per-operation path, in the key's transaction */
    const char *body =
        "{\"operations\":[" OP_1 ",{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":"
        "\"/items/9\"},\"dedup_key\":\"d9\"}," OP_2 "]}";
    struct resp *first = post(BATCH, "batch-1", body);
    assert_int_equal(first->status, 201);
    assert_int_equal(json_array_size(json_object_get(first->json, "operations")), 3);
    assert_null(th_header(first, "Location"));
    struct resp *r = post(BATCH, "batch-1", body);
    assert_replay_of(r, first);
    th_resp_free(r);
    assert_string_equal(count_ops(), "3");
    r = post(BATCH, "batch-1", "{\"operations\":[" OP_1 "]}");
    th_assert_error(r, 422, "idempotency_key_reused");
    th_resp_free(r);

    /* return=minimal: the first answer's form and Preference-Applied are what is replayed */
    struct resp *min =
        post_on(&S, BATCH, KEY_A, "batch-2", "return=minimal", "{\"operations\":[" OP_1 "]}");
    assert_int_equal(min->status, 201);
    assert_header(min, "Preference-Applied", "return=minimal");
    r = post(BATCH, "batch-2", "{\"operations\":[" OP_1 "]}");
    assert_replay_of(r, min);
    assert_header(r, "Preference-Applied", "return=minimal");
    assert_non_null(
        json_object_get(json_array_get(json_object_get(r->json, "operations"), 0), "created"));
    th_resp_free(r);
    th_resp_free(min);
    th_resp_free(first);
}

static void test_dedup_hit_is_replayed_as_dedup(void **state)
{
    (void)state;
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/d\"},"
                       "\"dedup_key\":\"doc-7\"}";
    struct resp *plain = post(QUEUE, NULL, body);
    assert_int_equal(plain->status, 201);
    struct resp *first = post(QUEUE, "dedup-1", body);
    assert_int_equal(first->status, 200); /* the live operation with that dedup_key */
    assert_string_equal(th_str(first->json, "id"), th_str(plain->json, "id"));
    struct resp *r = post(QUEUE, "dedup-1", body);
    assert_replay_of(r, first);
    assert_string_equal(th_str(r->json, "id"), th_str(plain->json, "id"));
    th_resp_free(r);
    assert_string_equal(count_ops(), "1");
    th_resp_free(first);
    th_resp_free(plain);
}

static void test_prefer_with_key(void **state)
{
    (void)state;
    /* wait=N is not applied with a key (the answer is stored when it commits) */
    double t0 = th_now_ms();
    struct resp *w = post_on(&S, QUEUE, KEY_A, "wait-1", "wait=5", OP_1);
    assert_int_equal(w->status, 201);
    assert_true(th_now_ms() - t0 < 4000);
    assert_null(th_header(w, "Preference-Applied"));
    th_resp_free(w);
    /* wait=0 is 202 at once, and replayed as such */
    struct resp *a = post_on(&S, QUEUE, KEY_A, "wait-0", "respond-async, wait=0", OP_2);
    assert_int_equal(a->status, 202);
    struct resp *r = post(QUEUE, "wait-0", OP_2);
    assert_replay_of(r, a);
    th_resp_free(r);
    th_resp_free(a);
    /* return=minimal: the id alone, replayed with its Preference-Applied */
    struct resp *m = post_on(&S, QUEUE, KEY_A, "min-1", "return=minimal", OP_1);
    assert_int_equal(m->status, 201);
    assert_int_equal(json_object_size(m->json), 2);
    r = post(QUEUE, "min-1", OP_1);
    assert_replay_of(r, m);
    assert_header(r, "Preference-Applied", "return=minimal");
    th_resp_free(r);
    th_resp_free(m);
}

static void test_invalid_key_is_400(void **state)
{
    (void)state;
    char long_key[300];
    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    /* and a quoted key holding a quote or a backslash: an escape would make two spellings */
    const char *bad[] = {long_key, "caf\xc3\xa9", "\"\"", "tab\there", "\"a\\\"b\"", "\"a\\\\b\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp *r = post(QUEUE, bad[i], OP_1);
        th_assert_error(r, 400, "invalid_request");
        assert_non_null(
            strstr(th_str(json_object_get(r->json, "error"), "message"), "Idempotency-Key"));
        th_resp_free(r);
        r = post(BATCH, bad[i], "{\"operations\":[" OP_1 "]}");
        th_assert_error(r, 400, "invalid_request");
        th_resp_free(r);
    }
    assert_string_equal(count_ops(), "0");
    assert_string_equal(count_keys(), "0");
    long_key[255] = '\0'; /* 255 is the longest */
    struct resp *r = post(QUEUE, long_key, OP_1);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
}

static void test_errors_are_not_kept(void **state)
{
    (void)state;
    /* refused in C: nothing kept, the key is free for the corrected request */
    struct resp *r = post(QUEUE, "fix-1", "{\"operation_type\":\"api_call\",\"payload\":{}}");
    th_assert_invalid(r, "payload.endpoint");
    th_resp_free(r);
    assert_string_equal(count_keys(), "0");
    r = post(QUEUE, "fix-1", OP_1);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    /* refused by the database half-way through a batch: no operation and no key kept */
    const char *body = "{\"operations\":[" OP_1 ",{\"operation_type\":\"api_call\",\"payload\":"
                       "{\"endpoint\":\"/x\"},\"depends_on\":"
                       "[\"00000000-0000-4000-8000-000000000000\"]}]}";
    r = post(BATCH, "fix-2", body);
    th_assert_invalid(r, "operations[1].depends_on");
    th_resp_free(r);
    assert_string_equal(count_ops(), "1");
    assert_string_equal(count_keys(), "1");
    r = post(BATCH, "fix-2", "{\"operations\":[" OP_2 "]}");
    assert_int_equal(r->status, 201);
    assert_null(th_header(r, "Idempotent-Replayed"));
    th_resp_free(r);
    assert_string_equal(count_ops(), "2");
    assert_string_equal(count_keys(), "2");
}

static void test_without_key_nothing_changes(void **state)
{
    (void)state;
    struct resp *a = post(QUEUE, NULL, OP_1);
    struct resp *b = post(QUEUE, NULL, OP_1);
    assert_int_equal(a->status, 201);
    assert_int_equal(b->status, 201);
    assert_string_not_equal(th_str(a->json, "id"), th_str(b->json, "id"));
    assert_null(th_header(b, "Idempotent-Replayed"));
    struct resp *c = post(BATCH, NULL, "{\"operations\":[" OP_1 "]}");
    struct resp *d = post(BATCH, NULL, "{\"operations\":[" OP_1 "]}");
    assert_int_equal(d->status, 201);
    assert_null(th_header(d, "Idempotent-Replayed"));
    assert_string_equal(count_ops(), "4");
    assert_string_equal(count_keys(), "0");
    th_resp_free(d);
    th_resp_free(c);
    th_resp_free(b);
    th_resp_free(a);
}

static void test_restart_and_other_instance(void **state)
{
    (void)state;
    struct resp *first = post(QUEUE, "restart-1", OP_1);
    assert_int_equal(first->status, 201);
    assert_int_equal(th_svc_stop(&S, SIGTERM), 0);
    assert_int_equal(th_svc_start(&S, url, env, NULL), 0);
    struct resp *r = post(QUEUE, "restart-1", OP_1);
    assert_replay_of(r, first);
    th_resp_free(r);
    /* a second instance on the same database knows the key too */
    struct svc other;
    assert_int_equal(th_svc_start(&other, url, env, NULL), 0);
    r = post_on(&other, QUEUE, KEY_A, "restart-1", NULL, OP_1);
    assert_replay_of(r, first);
    th_resp_free(r);
    r = post_on(&other, QUEUE, KEY_A, "restart-1", NULL, OP_2);
    th_assert_error(r, 422, "idempotency_key_reused");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&other, SIGTERM), 0);
    assert_string_equal(count_ops(), "1");
    th_resp_free(first);
}

static void test_ttl(void **state)
{
    (void)state;
    /* a live answer whose row is older than the TTL is not replayed: the key is new again */
    struct resp *old = post(QUEUE, "ttl-1", OP_1);
    assert_int_equal(old->status, 201);
    th_sql(pg, "UPDATE offlineq_idempotency SET created_at = now() - interval '86401 seconds'");
    struct resp *r = post(QUEUE, "ttl-1", OP_2);
    assert_int_equal(r->status, 201);
    assert_null(th_header(r, "Idempotent-Replayed"));
    assert_string_not_equal(th_str(r->json, "id"), th_str(old->json, "id"));
    th_resp_free(r);
    th_resp_free(old);
    assert_string_equal(count_keys(), "1"); /* replaced */
    /* OFFLINEQ_IDEMPOTENCY_TTL_S=1 on an instance of its own: replayed within it, the
     * janitor deletes the row after it, and the key then takes another body */
    const char *short_env[] = {env[0], env[1], "OFFLINEQ_IDEMPOTENCY_TTL_S=1", NULL};
    struct svc brief;
    th_sql(pg, "TRUNCATE offlineq_idempotency");
    assert_int_equal(th_svc_start(&brief, url, short_env, NULL), 0);
    struct resp *first = post_on(&brief, QUEUE, KEY_A, "ttl-2", NULL, OP_1);
    assert_int_equal(first->status, 201);
    r = post_on(&brief, QUEUE, KEY_A, "ttl-2", NULL, OP_1);
    if (strcmp(th_sql(pg, "SELECT count(*) FROM offlineq_idempotency "
                          "WHERE created_at > now() - interval '1 second'"),
               "1") == 0)
        assert_replay_of(r, first); /* unless this machine took a second for it */
    th_resp_free(r);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = strcmp(count_keys(), "0") == 0;
        if (!gone)
            usleep(100 * 1000);
    }
    assert_true(gone);
    r = post_on(&brief, QUEUE, KEY_A, "ttl-2", NULL, OP_2);
    assert_int_equal(r->status, 201);
    assert_null(th_header(r, "Idempotent-Replayed"));
    th_resp_free(r);
    th_resp_free(first);
    assert_int_equal(th_svc_stop(&brief, SIGTERM), 0);
}

/* With OFFLINEQ_ENCRYPTION_KEY the stored answer (which holds the payload) is sealed. */
static void test_sealed_answer(void **state)
{
    (void)state;
    const char *db = "e2e_idempotency_sealed";
    const char *sealed_env[] = {
        env[0], env[1],
        "OFFLINEQ_ENCRYPTION_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        NULL};
    struct svc s;
    PGconn *spg = NULL;
    assert_int_equal(th_group_start(db, sealed_env, &s, &spg, NULL, 0), 0);
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/secret\","
                       "\"data\":{\"card\":\"4111-1111\"}}}";
    struct resp *first = post_on(&s, QUEUE, KEY_A, "sealed-1", NULL, body);
    assert_int_equal(first->status, 201);
    assert_non_null(strstr(first->body, "4111-1111"));
    assert_string_equal(th_sql(spg, "SELECT body::jsonb ? '$enc2' AND strpos(body, '4111') = 0 "
                                    "FROM offlineq_idempotency"),
                        "t");
    struct resp *r = post_on(&s, QUEUE, KEY_A, "sealed-1", NULL, body);
    assert_replay_of(r, first);
    th_resp_free(r);
    th_resp_free(first);
    th_group_stop(db, &s, spg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_replay_single, clean),
        cmocka_unit_test_setup(test_other_body_is_422, clean),
        cmocka_unit_test_setup(test_in_flight_is_409, clean),
        cmocka_unit_test_setup(test_concurrent_same_key, clean),
        cmocka_unit_test_setup(test_scope_is_key_and_route, clean),
        cmocka_unit_test_setup(test_batch_replay, clean),
        cmocka_unit_test_setup(test_dedup_hit_is_replayed_as_dedup, clean),
        cmocka_unit_test_setup(test_prefer_with_key, clean),
        cmocka_unit_test_setup(test_invalid_key_is_400, clean),
        cmocka_unit_test_setup(test_errors_are_not_kept, clean),
        cmocka_unit_test_setup(test_without_key_nothing_changes, clean),
        cmocka_unit_test_setup(test_restart_and_other_instance, clean),
        cmocka_unit_test_setup(test_ttl, clean),
        cmocka_unit_test_setup(test_sealed_answer, clean),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
