/* Randomized model test: random enqueue / delete / retry / clear / redrive / engine outcome
 * sequences against the real service, checked after every step against an in-memory model
 * of what the API must answer. Seed: OFFLINEQ_MODEL_SEED (printed on every run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_model"
#define STEPS 500
#define MAX_OPS 1024
#define KEYS 8

enum st { PENDING, IN_PROGRESS, COMPLETED, FAILED, CONFLICT, N_ST };
static const char *const st_name[] = {"pending", "in_progress", "completed", "failed", "conflict"};

struct mop {
    char id[37];
    long seq;
    int priority;
    int key; /* -1: no dedup_key */
    enum st st;
    bool alive;
};

static struct mop ops[MAX_OPS];
static int n_ops;
static long next_seq;
static struct svc S;
static PGconn *pg;
static unsigned seed;

static bool is_live(enum st s)
{
    return s == PENDING || s == IN_PROGRESS || s == CONFLICT;
}

static struct mop *live_holder(int key)
{
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].alive && ops[i].key == key && key >= 0 && is_live(ops[i].st))
            return &ops[i];
    }
    return NULL;
}

static struct mop *pick(void)
{
    int alive = 0;
    for (int i = 0; i < n_ops; i++)
        alive += ops[i].alive;
    if (alive == 0)
        return NULL;
    int k = rand() % alive;
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].alive && k-- == 0)
            return &ops[i];
    }
    return NULL;
}

static void step_enqueue(void)
{
    int priority = (rand() % 3) * 5 - 5;
    int key = rand() % 2 == 0 ? -1 : rand() % KEYS;
    char body[512], dk[32] = "null";
    if (key >= 0)
        snprintf(dk, sizeof(dk), "\"k%d\"", key);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/m\"},"
             "\"priority\":%d,\"dedup_key\":%s}",
             priority, dk);
    struct resp *r = th_json(&S, "POST", "/api/offline/queue", body);
    struct mop *holder = live_holder(key);
    if (holder != NULL) {
        assert_int_equal(r->status, 200);
        assert_string_equal(th_str(r->json, "id"), holder->id);
    } else {
        assert_int_equal(r->status, 201);
        assert_true(n_ops < MAX_OPS);
        struct mop *m = &ops[n_ops++];
        *m = (struct mop){
            .seq = next_seq++, .priority = priority, .key = key, .st = PENDING, .alive = true};
        snprintf(m->id, sizeof(m->id), "%s", th_str(r->json, "id"));
    }
    th_resp_free(r);
}

static void op_path(char *out, size_t len, const struct mop *m, const char *suffix)
{
    snprintf(out, len, "/api/offline/queue/%s%s",
             m ? m->id : "00000000-0000-4000-8000-00000000dead", suffix);
}

static void step_delete(void)
{
    struct mop *m = rand() % 8 ? pick() : NULL;
    char path[128];
    op_path(path, sizeof(path), m, "");
    struct resp *r = th_http(&S, "DELETE", path, NULL, 0, NULL);
    long want = m == NULL ? 404 : m->st == IN_PROGRESS ? 409 : 204;
    assert_int_equal(r->status, want);
    if (want == 204)
        m->alive = false;
    th_resp_free(r);
}

static void step_retry(void)
{
    struct mop *m = rand() % 8 ? pick() : NULL;
    char path[128];
    op_path(path, sizeof(path), m, "/retry");
    struct resp *r = th_http(&S, "POST", path, NULL, 0, NULL);
    long want = 404;
    if (m != NULL && (m->st == FAILED || m->st == CONFLICT)) {
        struct mop *holder = live_holder(m->key);
        want = holder != NULL && holder != m ? 409 : 200;
    } else if (m != NULL) {
        want = 409;
    }
    assert_int_equal(r->status, want);
    if (want == 200) {
        m->st = PENDING;
        assert_string_equal(th_str(r->json, "status"), "pending");
    }
    th_resp_free(r);
}

/* What the execution engine would do: move an operation on, the way it may move. */
static void step_outcome(void)
{
    struct mop *m = pick();
    if (m == NULL || m->st == COMPLETED || m->st == FAILED)
        return;
    enum st to;
    if (m->st == PENDING)
        to = (enum st)(1 + rand() % 4);
    else if (m->st == IN_PROGRESS)
        to = rand() % 2 ? COMPLETED : FAILED;
    else
        to = COMPLETED;
    th_sqlf(pg,
            "UPDATE offline_operations SET status = '%s', updated_at = now(), "
            "completed_at = CASE WHEN '%s' = 'completed' THEN now() END WHERE id = '%s'",
            st_name[to], st_name[to], m->id);
    m->st = to;
}

static void step_clear(void)
{
    int want = 0;
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].alive && ops[i].st == COMPLETED) {
            ops[i].alive = false;
            want++;
        }
    }
    struct resp *r = th_http(&S, "POST", "/api/offline/queue/clear-completed", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "cleared"), want);
    th_resp_free(r);
}

/* Redrive: per dedup_key only the newest failed one, and none whose key is held. */
static void step_redrive(void)
{
    int want = 0;
    bool key_done[KEYS] = {false};
    for (int i = n_ops - 1; i >= 0; i--) {
        struct mop *m = &ops[i];
        if (!m->alive || m->st != FAILED)
            continue;
        if (m->key >= 0 && (key_done[m->key] || live_holder(m->key) != NULL))
            continue;
        if (m->key >= 0)
            key_done[m->key] = true;
        m->st = PENDING;
        want++;
    }
    struct resp *r = th_http(&S, "POST", "/api/offline/queue/retry-failed", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(th_int(r->json, "retried"), want);
    th_resp_free(r);
}

static int by_execution_order(const void *a, const void *b)
{
    const struct mop *x = *(const struct mop *const *)a, *y = *(const struct mop *const *)b;
    if (x->priority != y->priority)
        return y->priority - x->priority;
    return x->seq < y->seq ? -1 : 1;
}

/* Pages through every status with a random page size; compares ids, order and status. */
static void check_list(void)
{
    struct mop *want[MAX_OPS];
    int n = 0;
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].alive)
            want[n++] = &ops[i];
    }
    qsort(want, (size_t)n, sizeof(want[0]), by_execution_order);
    int limit = 1 + rand() % 9, got = 0;
    char cursor[128] = "";
    do {
        char path[256];
        snprintf(path, sizeof(path),
                 "/api/offline/queue?status=pending,in_progress,completed,failed,conflict"
                 "&limit=%d%s%s",
                 limit, cursor[0] ? "&cursor=" : "", cursor);
        struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
        assert_int_equal(r->status, 200);
        json_t *page = json_object_get(r->json, "operations");
        for (size_t i = 0; i < json_array_size(page); i++, got++) {
            assert_true(got < n);
            assert_string_equal(th_str(json_array_get(page, i), "id"), want[got]->id);
            assert_string_equal(th_str(json_array_get(page, i), "status"), st_name[want[got]->st]);
        }
        const char *next = th_str(r->json, "next_cursor");
        snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
        th_resp_free(r);
    } while (cursor[0]);
    assert_int_equal(got, n);
}

static void check_stats(void)
{
    long long count[N_ST] = {0}, total = 0;
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].alive) {
            count[ops[i].st]++;
            total++;
        }
    }
    struct resp *r = th_http(&S, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    for (int s = 0; s < N_ST; s++)
        assert_int_equal(th_int(r->json, st_name[s]), count[s]);
    assert_int_equal(th_int(r->json, "total"), total);
    th_resp_free(r);
}

static void check_one(void)
{
    struct mop *m = NULL;
    int i = n_ops ? rand() % n_ops : 0;
    if (n_ops)
        m = &ops[i];
    if (m == NULL)
        return;
    char path[128];
    op_path(path, sizeof(path), m, "");
    struct resp *r = th_http(&S, "GET", path, NULL, 0, NULL);
    if (!m->alive) {
        th_assert_error(r, 404, "not_found");
    } else {
        assert_int_equal(r->status, 200);
        assert_string_equal(th_str(r->json, "status"), st_name[m->st]);
        assert_int_equal(th_int(r->json, "priority"), m->priority);
    }
    th_resp_free(r);
}

static void test_random_sequences_match_model(void **state)
{
    fprintf(stderr, "model test seed: %u (set OFFLINEQ_MODEL_SEED to replay)\n", seed);
    srand(seed);
    for (int step = 0; step < STEPS; step++) {
        int dice = rand() % 100;
        if (dice < 40)
            step_enqueue();
        else if (dice < 50)
            step_delete();
        else if (dice < 60)
            step_retry();
        else if (dice < 85)
            step_outcome();
        else if (dice < 90)
            step_clear();
        else
            step_redrive();
        check_one();
        if (step % 10 == 0) {
            check_stats();
            check_list();
        }
    }
    check_stats();
    check_list();
}

static int group_setup(void **state)
{
    const char *s = getenv("OFFLINEQ_MODEL_SEED");
    seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    return th_group_start(DB, env, &S, &pg, NULL, 0);
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_sequences_match_model),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
