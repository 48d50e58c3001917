/* Issue 11, the data points: a list page holds bounded memory (OFFLINEQ_MAX_PAGE_BYTES), a
 * PostgreSQL error text never reaches a client, and OFFLINEQ_MAX_PENDING holds exactly for
 * sequential enqueues on one instance. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DB_PAGES "e2e_security_data_pages"
#define DB_PENDING "e2e_security_data_pending"
#define BLOB_BYTES (1024 * 1024) /* one operation of ~1 MB */
#define OPS 24

static struct svc S;
static PGconn *pg;
static char url[512];

static const char *const pages_env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                        "OFFLINEQ_MAX_BODY_BYTES=8388608", NULL};

/* An api_call with a data string of blob_bytes characters (malloc'd). */
static char *big_body(size_t blob_bytes, int priority)
{
    size_t len = blob_bytes + 256;
    char *body = malloc(len);
    int o = snprintf(body, len,
                     "{\"operation_type\":\"api_call\",\"priority\":%d,\"payload\":{\"endpoint\":"
                     "\"/big\",\"method\":\"POST\",\"data\":{\"blob\":\"",
                     priority);
    for (size_t i = 0; i < blob_bytes; i++)
        body[o++] = (char)('a' + i % 26);
    snprintf(body + o, len - (size_t)o, "\"}}}");
    return body;
}

static void enqueue_big(const struct svc *s, size_t blob_bytes, int priority, char id[37])
{
    char *body = big_body(blob_bytes, priority);
    struct resp *r = th_json(s, "POST", "/api/offline/queue", body);
    assert_int_equal(r->status, 201);
    snprintf(id, 37, "%s", th_str(r->json, "id"));
    th_resp_free(r);
    free(body);
}

static int pages_setup(void **state)
{
    (void)state;
    if (th_group_start(DB_PAGES, pages_env, &S, &pg, url, sizeof(url)) != 0)
        return -1;
    for (int i = 0; i < OPS; i++) {
        char id[37];
        enqueue_big(&S, BLOB_BYTES, 0, id);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    th_group_stop(DB_PAGES, &S, pg);
    return 0;
}

/* The peak resident set of the service (VmHWM), in KiB. */
static long service_hwm_kib(const struct svc *s)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

struct page {
    size_t n; /* operations on the page */
    size_t body_len;
    char next[256]; /* "" when next_cursor is null */
};

/* GET /api/offline/queue?limit=100[&cursor=...]; appends the ids to ids (comma-separated). */
static struct page get_page(const struct svc *s, const char *cursor, char *ids, size_t ids_len)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/offline/queue?limit=100%s%s", cursor ? "&cursor=" : "",
             cursor ? cursor : "");
    struct resp *r = th_http(s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    json_t *ops = json_object_get(r->json, "operations");
    assert_true(json_is_array(ops));
    struct page p = {.n = json_array_size(ops), .body_len = r->body_len};
    for (size_t i = 0; i < p.n; i++) {
        size_t o = strlen(ids);
        snprintf(ids + o, ids_len - o, "%s%s", o ? "," : "", th_str(json_array_get(ops, i), "id"));
    }
    json_t *next = json_object_get(r->json, "next_cursor");
    assert_true(json_is_string(next) || json_is_null(next));
    if (json_is_string(next))
        snprintf(p.next, sizeof(p.next), "%s", json_string_value(next));
    th_resp_free(r);
    return p;
}

/* Every pending operation in execution order, comma-separated (static buffer). */
static const char *expected_ids(void)
{
    return th_sql(pg, "SELECT string_agg(id::text, ',' ORDER BY -priority, seq) "
                      "FROM offline_operations WHERE status = 'pending'");
}

/* Follows next_cursor from the first page; every page must hold 1..max_ops operations and at
 * most max_bytes of them (plus the envelope). Returns the number of pages. */
static int walk_pages(const struct svc *s, size_t max_ops, size_t max_bytes, char *ids,
                      size_t ids_len)
{
    ids[0] = '\0';
    char cursor[256] = "";
    int pages = 0;
    do {
        struct page p = get_page(s, pages ? cursor : NULL, ids, ids_len);
        assert_true(p.n >= 1 && p.n <= max_ops);
        assert_true(p.body_len <= max_bytes + 64);
        snprintf(cursor, sizeof(cursor), "%s", p.next);
        pages++;
        assert_true(pages <= 100);
    } while (cursor[0] != '\0');
    return pages;
}

/* 24 operations of 1 MB: one list call stops at OFFLINEQ_MAX_PAGE_BYTES (8 MiB) and the
 * service's peak RSS grows by at most 32 MiB. */
static void test_list_page_memory_is_bounded(void **state)
{
    (void)state;
    bool measurable =
        getenv("OFFLINEQ_TEST_SANITIZED") == NULL &&
        (getenv("OFFLINEQ_TEST_WRAPPER") == NULL || !*getenv("OFFLINEQ_TEST_WRAPPER"));
    long before = service_hwm_kib(&S);
    char ids[OPS * 40] = "";
    struct page p = get_page(&S, NULL, ids, sizeof(ids));
    long after = service_hwm_kib(&S);
    fprintf(stderr, "list of %d x 1 MiB: %zu operations, %zu bytes, peak RSS +%ld KiB\n", OPS, p.n,
            p.body_len, after - before);
    assert_true(p.n >= 1 && p.n < OPS);
    assert_true(p.body_len <= 8 * 1024 * 1024 + 64);
    assert_true(p.next[0] != '\0');
    if (measurable)
        assert_true(after - before <= 32 * 1024);
}

/* Under the default cap the cursor walk returns every operation exactly once, in order. */
static void test_default_cap_walk_returns_all_once(void **state)
{
    (void)state;
    static char ids[OPS * 40 * 2];
    int pages = walk_pages(&S, OPS, 8 * 1024 * 1024, ids, sizeof(ids));
    assert_true(pages >= 3);
    assert_string_equal(ids, expected_ids());
}

/* With OFFLINEQ_MAX_PAGE_BYTES=3000000 a page holds two 1 MB operations and a next_cursor;
 * the cursors return all 24 exactly once; an operation larger than the cap comes alone. */
static void test_page_cap_setting(void **state)
{
    (void)state;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_MAX_BODY_BYTES=8388608",
                                      "OFFLINEQ_MAX_PAGE_BYTES=3000000", NULL};
    struct svc s2;
    int code = 0;
    assert_int_equal(th_svc_start(&s2, url, env, &code), 0);
    static char ids[OPS * 40 * 2];
    int pages = walk_pages(&s2, 2, 3000000, ids, sizeof(ids));
    assert_int_equal(pages, OPS / 2);
    assert_string_equal(ids, expected_ids());

    char big[37];
    enqueue_big(&s2, 3500000, 1000, big); /* first in execution order */
    ids[0] = '\0';
    struct page p = get_page(&s2, NULL, ids, sizeof(ids));
    assert_int_equal(p.n, 1);
    assert_string_equal(ids, big);
    assert_true(p.next[0] != '\0');
    ids[0] = '\0';
    p = get_page(&s2, p.next, ids, sizeof(ids));
    assert_int_equal(p.n, 2);
    assert_null(strstr(ids, big));

    /* limit still applies below the byte cap */
    struct resp *r = th_http(&s2, "GET", "/api/offline/queue?limit=1", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(json_array_size(json_object_get(r->json, "operations")), 1);
    assert_true(json_is_string(json_object_get(r->json, "next_cursor")));
    th_resp_free(r);

    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", big);
    r = th_http(&s2, "DELETE", path, NULL, 0, NULL);
    assert_int_equal(r->status, 204);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
}

/* A value PostgreSQL refuses (SQLSTATE class 22): the client gets a fixed message, the log
 * gets PostgreSQL's text with the request id. */
static void test_database_error_text_stays_in_the_log(void **state)
{
    (void)state;
    static const char *const h[] = {"X-Request-Id: sec-data-pg-error-1", NULL};
    struct resp *r = th_http(&S, "GET", "/api/offline/queue?operation_type=%ff", NULL, 0, h);
    th_assert_error(r, 400, "invalid_request");
    const char *msg = th_str(json_object_get(r->json, "error"), "message");
    assert_string_equal(msg, "a value in the request is not valid UTF-8");
    assert_null(strstr(r->body, "byte sequence"));
    assert_null(strstr(r->body, "UTF8"));
    th_resp_free(r);
    usleep(200 * 1000);
    char *log = th_svc_log(&S);
    char *line = strstr(log, "sec-data-pg-error-1");
    assert_non_null(line);
    char *eol = strchr(line, '\n');
    if (eol)
        *eol = '\0';
    char *start = line;
    while (start > log && start[-1] != '\n')
        start--;
    fprintf(stderr, "log: %s\n", start);
    assert_non_null(strstr(start, "invalid byte sequence"));
    free(log);
}

/* ---- OFFLINEQ_MAX_PENDING=5 ---- */

static int pending_setup(void **state)
{
    (void)state;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_MAX_PENDING=5", NULL};
    return th_group_start(DB_PENDING, env, &S, &pg, url, sizeof(url));
}

static int pending_teardown(void **state)
{
    (void)state;
    th_group_stop(DB_PENDING, &S, pg);
    return 0;
}

#define SIMPLE "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/p\"}}"

static long post(const char *path, const char *body, char *id_out)
{
    struct resp *r = th_json(&S, "POST", path, body);
    long status = r->status;
    if (status == 429) {
        th_assert_error(r, 429, "queue_full");
        assert_non_null(th_header(r, "Retry-After"));
    }
    if (id_out != NULL && status == 201)
        snprintf(id_out, 37, "%s", th_str(r->json, "id"));
    th_resp_free(r);
    return status;
}

static long pending_count(void)
{
    return atol(th_sql(pg, "SELECT count(*) FROM offline_operations WHERE status = 'pending'"));
}

static char ids5[5][37];

/* Five sequential enqueues by every path (grouped single, dedup_key, batch) are 201; the
 * sixth by any path is 429 queue_full, and the database holds five. */
static void test_sequential_enqueues_stop_at_the_limit(void **state)
{
    (void)state;
    assert_int_equal(post("/api/offline/queue", SIMPLE, ids5[0]), 201);
    assert_int_equal(post("/api/offline/queue", SIMPLE, ids5[1]), 201);
    assert_int_equal(post("/api/offline/queue", SIMPLE, ids5[2]), 201);
    assert_int_equal(post("/api/offline/queue",
                          "{\"operation_type\":\"api_call\",\"dedup_key\":\"k1\","
                          "\"payload\":{\"endpoint\":\"/p\"}}",
                          ids5[3]),
                     201);
    struct resp *r =
        th_json(&S, "POST", "/api/offline/queue/batch", "{\"operations\":[" SIMPLE "]}");
    assert_int_equal(r->status, 201);
    snprintf(ids5[4], 37, "%s",
             th_str(json_array_get(json_object_get(r->json, "operations"), 0), "id"));
    th_resp_free(r);
    assert_int_equal(post("/api/offline/queue", SIMPLE, NULL), 429);
    assert_int_equal(post("/api/offline/queue",
                          "{\"operation_type\":\"api_call\",\"dedup_key\":\"k2\","
                          "\"payload\":{\"endpoint\":\"/p\"}}",
                          NULL),
                     429);
    assert_int_equal(post("/api/offline/queue/batch", "{\"operations\":[" SIMPLE "]}", NULL), 429);
    assert_int_equal(pending_count(), 5);
}

static void delete_op(const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    struct resp *r = th_http(&S, "DELETE", path, NULL, 0, NULL);
    assert_int_equal(r->status, 204);
    th_resp_free(r);
}

/* Deleting (or completing) frees room at the next fold (twice a second); a batch that does not
 * fit whole is refused whole. */
static void test_room_returns_and_batches_fit_whole(void **state)
{
    (void)state;
    delete_op(ids5[0]);
    delete_op(ids5[1]);
    th_sql(pg, "UPDATE offline_operations SET status = 'completed', completed_at = now() "
               "WHERE status = 'pending' AND dedup_key = 'k1'");
    usleep(1200 * 1000);
    assert_int_equal(pending_count(), 2);
    assert_int_equal(post("/api/offline/queue", SIMPLE, NULL), 201);
    assert_int_equal(post("/api/offline/queue", SIMPLE, NULL), 201);
    assert_int_equal(pending_count(), 4);
    long status = post("/api/offline/queue/batch",
                       "{\"operations\":[" SIMPLE "," SIMPLE "," SIMPLE "]}", NULL);
    assert_int_equal(status, 429);
    assert_int_equal(pending_count(), 4);
    assert_int_equal(post("/api/offline/queue/batch", "{\"operations\":[" SIMPLE "]}", NULL), 201);
    assert_int_equal(post("/api/offline/queue", SIMPLE, NULL), 429);
    assert_int_equal(pending_count(), 5);
}

#define RACERS 8

struct racer {
    pthread_barrier_t *start;
    long status;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->start);
    struct resp *resp = th_json(&S, "POST", "/api/offline/queue", SIMPLE);
    r->status = resp->status;
    th_resp_free(resp);
    return NULL;
}

/* 8 concurrent enqueues against an empty queue with room for 5: on one instance, never more
 * than 5 are accepted (each request reserves its room before it is stored). */
static void test_concurrent_enqueues_stay_within_the_limit(void **state)
{
    (void)state;
    th_sql(pg, "DELETE FROM offline_operations");
    usleep(1200 * 1000);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    struct racer racers[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.start = &start};
        pthread_create(&t[i], NULL, race, &racers[i]);
    }
    int accepted = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        assert_true(racers[i].status == 201 || racers[i].status == 429);
        accepted += racers[i].status == 201;
    }
    pthread_barrier_destroy(&start);
    fprintf(stderr, "%d concurrent enqueues, room for 5: %d accepted\n", RACERS, accepted);
    assert_true(accepted >= 1 && accepted <= 5);
    assert_int_equal(pending_count(), accepted);
}

/* Two instances: each counts the other's operations from its next fold (and from its start). */
static void test_second_instance_sees_the_count_after_a_fold(void **state)
{
    (void)state;
    th_sql(pg, "DELETE FROM offline_operations");
    usleep(1200 * 1000);
    char ids[5][37];
    for (int i = 0; i < 5; i++)
        assert_int_equal(post("/api/offline/queue", SIMPLE, ids[i]), 201);
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_MAX_PENDING=5", NULL};
    struct svc s2;
    int code = 0;
    assert_int_equal(th_svc_start(&s2, url, env, &code), 0);
    struct resp *r = th_json(&s2, "POST", "/api/offline/queue", SIMPLE);
    th_assert_error(r, 429, "queue_full"); /* its first fold ran at start-up */
    th_resp_free(r);
    delete_op(ids[0]);
    usleep(1200 * 1000);
    r = th_json(&s2, "POST", "/api/offline/queue", SIMPLE);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    usleep(1200 * 1000);
    assert_int_equal(post("/api/offline/queue", SIMPLE, NULL), 429);
    assert_int_equal(pending_count(), 5);
    assert_int_equal(th_svc_stop(&s2, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest pages[] = {
        cmocka_unit_test(test_list_page_memory_is_bounded),
        cmocka_unit_test(test_default_cap_walk_returns_all_once),
        cmocka_unit_test(test_page_cap_setting),
        cmocka_unit_test(test_database_error_text_stays_in_the_log),
    };
    const struct CMUnitTest pending[] = {
        cmocka_unit_test(test_sequential_enqueues_stop_at_the_limit),
        cmocka_unit_test(test_room_returns_and_batches_fit_whole),
        cmocka_unit_test(test_concurrent_enqueues_stay_within_the_limit),
        cmocka_unit_test(test_second_instance_sees_the_count_after_a_fold),
    };
    int rc = cmocka_run_group_tests_name("pages", pages, pages_setup, group_teardown);
    rc |= cmocka_run_group_tests_name("pending", pending, pending_setup, pending_teardown);
    return rc;
}
