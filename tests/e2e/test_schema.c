/* offlineq keeps everything in a schema of its own (OFFLINEQ_DB_SCHEMA, default offlineq):
 * it starts in a database whose public schema belongs to an application (golang-migrate's or
 * Rails' schema_migrations, someone else's offline_operations) and leaves all of it untouched;
 * an installation made before the schema existed (everything in public) is moved into it with
 * every operation and file; another schema name works and creates nothing elsewhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "harness.h"
#include "upstream.h"

#define WAIT_MS 15000

/* Columns and rows of each public table in tables, as text (malloc'd). */
static char *fingerprint(PGconn *pg, const char *const *tables)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (const char *const *t = tables; *t != NULL; t++) {
        const char *cols =
            th_sqlf(pg,
                    "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
                    "ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'public.%s'::regclass "
                    "AND attnum > 0 AND NOT attisdropped",
                    *t);
        len += (size_t)snprintf(out + len, cap - len, "%s(%s):", *t, cols);
        const char *rows = th_sqlf(pg,
                                   "SELECT coalesce(string_agg(to_jsonb(x)::text, '; ' "
                                   "ORDER BY to_jsonb(x)::text), '') FROM public.%s x",
                                   *t);
        len += (size_t)snprintf(out + len, cap - len, "%s\n", rows);
    }
    return out;
}

/* Every relation, function and type in public, by kind and name (malloc'd). */
static char *public_objects(PGconn *pg)
{
    return strdup(th_sql(pg, "SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM ("
                             "  SELECT 'class ' || relname FROM pg_class "
                             "  WHERE relnamespace = 'public'::regnamespace "
                             "  UNION ALL SELECT 'function ' || proname FROM pg_proc "
                             "  WHERE pronamespace = 'public'::regnamespace "
                             "  UNION ALL SELECT 'type ' || typname FROM pg_type "
                             "  WHERE typnamespace = 'public'::regnamespace) s(x)"));
}

/* Objects of schema (relations, functions, types) whose name starts with offlineq or is one of
 * the service's tables. */
static int count_ours(PGconn *pg, const char *schema)
{
    return atoi(
        th_sqlf(pg,
                "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = '%s'::regnamespace"
                "          AND (relname LIKE 'offline%%' OR relname = 'schema_migrations'))"
                "     + (SELECT count(*) FROM pg_proc WHERE pronamespace = '%s'::regnamespace"
                "          AND (proname LIKE 'offlineq%%' OR proname = 'enqueue'))"
                "     + (SELECT count(*) FROM pg_type WHERE typnamespace = '%s'::regnamespace"
                "          AND typname LIKE 'offline%%')",
                schema, schema, schema));
}

static void start_delivering(struct svc *s, const char *url, struct upstream_srv *us,
                             const char *extra)
{
    char up[300];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(us));
    const char *const env[] = {up, "OFFLINEQ_WORKERS=1", extra, NULL};
    assert_int_equal(th_svc_start(s, url, env, NULL), 0);
}

/* One operation through the API and one through the outbox function, called by app (the
 * application's connection, its own search_path), both delivered to the upstream. */
static void enqueue_both_ways(struct svc *s, PGconn *app, struct upstream_srv *us,
                              const char *schema)
{
    char id[37];
    json_t *op = th_enqueue_settled(
        s, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/via/api\"}}", "completed",
        WAIT_MS, id);
    json_decref(op);
    snprintf(
        id, sizeof(id), "%s",
        th_sqlf(app, "SELECT %s.enqueue('api_call', '{\"endpoint\":\"/via/outbox\"}')", schema));
    op = th_wait_op(s, id, TH_SETTLED, WAIT_MS);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    assert_int_equal(us_count(us, "/via/api"), 1);
    assert_int_equal(us_count(us, "/via/outbox"), 1);
    /* the triggers resolve offlineq's names in its schema whoever writes the rows (a function
     * redefined by CREATE OR REPLACE without its SET search_path would fail here) */
    th_sqlf(app, "UPDATE %s.offline_operations SET priority = priority + 1", schema);
    th_sqlf(app, "DELETE FROM %s.offline_operations", schema);
    th_sqlf(app, "SELECT %s.offlineq_emit('test.nudge', '{}')", schema);
}

/* setup creates an application's objects in public; offlineq starts, works, and leaves every
 * one of tables as it was, with nothing of its own in public. */
static void check_isolated(const char *db, const char *setup, const char *const *tables)
{
    char url[512];
    th_db_create(db, url, sizeof(url));
    PGconn *app = th_db_connect_schema(url, NULL);
    th_sql(app, setup);
    char *before = fingerprint(app, tables), *objects = public_objects(app);

    struct upstream_srv *us = us_start();
    struct svc s;
    start_delivering(&s, url, us, NULL);
    enqueue_both_ways(&s, app, us, "offlineq");
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    char *after = fingerprint(app, tables), *objects_after = public_objects(app);
    assert_string_equal(after, before);
    assert_string_equal(objects_after, objects); /* nothing of offlineq's in public */
    assert_string_equal(th_sql(app, "SELECT to_regclass('offlineq.schema_migrations') IS NOT NULL "
                                    "AND to_regclass('offlineq.offline_operations') IS NOT NULL"),
                        "t");
    free(before), free(after), free(objects), free(objects_after);
    PQfinish(app);
    us_stop(us);
    th_db_drop(db);
}

static const char *const golang_tables[] = {"schema_migrations", "offline_operations", NULL};

static void test_isolated_from_golang_migrate(void **state)
{
    (void)state;
    check_isolated("e2e_schema_golang",
                   "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, "
                   "  dirty boolean NOT NULL);"
                   "INSERT INTO schema_migrations VALUES (20240501120000, false);"
                   "CREATE TABLE offline_operations (id serial PRIMARY KEY, title text NOT NULL, "
                   "  synced boolean NOT NULL DEFAULT false);"
                   "INSERT INTO offline_operations (title) VALUES ('theirs, not ours');",
                   golang_tables);
}

static const char *const rails_tables[] = {"schema_migrations", "ar_internal_metadata", NULL};

static void test_isolated_from_rails(void **state)
{
    (void)state;
    check_isolated(
        "e2e_schema_rails",
        "CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);"
        "INSERT INTO schema_migrations VALUES ('20230101000000'), ('20230202000000');"
        "CREATE TABLE ar_internal_metadata (key character varying NOT NULL PRIMARY KEY, "
        "  value character varying, created_at timestamp(6) NOT NULL, "
        "  updated_at timestamp(6) NOT NULL);"
        "INSERT INTO ar_internal_metadata VALUES ('environment', 'production', "
        "  '2023-01-01 00:00:00', '2023-01-01 00:00:00');",
        rails_tables);
}

/* OFFLINEQ_DB_SCHEMA names another schema: everything is there, nothing in offlineq or public. */
static void test_another_schema(void **state)
{
    (void)state;
    char url[512];
    th_db_create("e2e_schema_custom", url, sizeof(url));
    PGconn *app = th_db_connect_schema(url, NULL);
    struct upstream_srv *us = us_start();
    struct svc s;
    start_delivering(&s, url, us, "OFFLINEQ_DB_SCHEMA=oq_custom_1");
    enqueue_both_ways(&s, app, us, "oq_custom_1");
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    char *objects = public_objects(app);
    assert_string_equal(objects, "");
    free(objects);
    assert_string_equal(th_sql(app, "SELECT count(*) FROM pg_namespace WHERE nspname = 'offlineq'"),
                        "0");
    assert_string_equal(th_sql(app, "SELECT max(version) > 5 FROM oq_custom_1.schema_migrations"),
                        "t");
    assert_true(count_ours(app, "oq_custom_1") > 20);
    PQfinish(app);
    us_stop(us);
    th_db_drop("e2e_schema_custom");
}

/* A schema name that is not a plain identifier, or one offlineq may not own, stops the start. */
static void test_schema_name_checked(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "OFFLINEQ_DB_SCHEMA=Offlineq",
        "OFFLINEQ_DB_SCHEMA=oq-1",
        "OFFLINEQ_DB_SCHEMA=1oq",
        "OFFLINEQ_DB_SCHEMA=oq;drop",
        "OFFLINEQ_DB_SCHEMA=",
        "OFFLINEQ_DB_SCHEMA=public",
        "OFFLINEQ_DB_SCHEMA=pg_oq",
        "OFFLINEQ_DB_SCHEMA=a123456789012345678901234567890123456789012345678901234567890123"};
    char url[512];
    th_db_create("e2e_schema_bad", url, sizeof(url));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const env[] = {bad[i], NULL};
        struct svc s;
        int code = 0;
        assert_int_equal(th_svc_start(&s, url, env, &code), -1);
        assert_int_equal(code, 2);
        char *log = th_svc_log(&s);
        if (strstr(log, "OFFLINEQ_DB_SCHEMA") == NULL)
            fail_msg("%s: the log does not name OFFLINEQ_DB_SCHEMA:\n%s", bad[i], log);
        free(log);
    }
    PGconn *pg = th_db_connect_schema(url, NULL);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE "
                                   "'pg\\_%' AND nspname NOT IN ('public', 'information_schema')"),
                        "0");
    PQfinish(pg);
    th_db_drop("e2e_schema_bad");
}

/* ---- upgrade: an installation made by the service before 006 ---- */

#define OP_DONE "a0000000-0000-4000-8000-000000000001"
#define OP_FAILED "a0000000-0000-4000-8000-000000000002"
#define OP_CONFLICT "a0000000-0000-4000-8000-000000000003"
#define OP_PENDING "a0000000-0000-4000-8000-000000000004"
#define OP_FILE "a0000000-0000-4000-8000-000000000005"
#define OP_LEASED "a0000000-0000-4000-8000-000000000006"
#define FILE_ID "f0000000-0000-4000-8000-0000000000f1"
#define FILE_BYTES 5000

/* What the service's migrate.c did before 006, in public: its bootstrap table, then 001-005,
 * each recorded, in one transaction. */
static void install_before_006(PGconn *pg)
{
    th_install_migrations(pg, 5);
}

static void file_bytes(unsigned char *d)
{
    for (int i = 0; i < FILE_BYTES; i++)
        d[i] = (unsigned char)((i * 31 + 7) & 0xff);
}

/* Operations in every status, as the service left them, and a stored file an upload needs. */
static void fill_before_006(PGconn *pg)
{
    th_sql(pg, "INSERT INTO offlineq_operation_types (name) VALUES ('api_call'), "
               "('file_upload'), ('model_push'), ('metric_log'), ('experiment_sync') "
               "ON CONFLICT DO NOTHING");
    th_sql(pg, "INSERT INTO offlineq_settings (key, value) VALUES "
               "('default_max_attempts', '5'), ('auto_sync', 'true') ON CONFLICT DO NOTHING");
    th_sqlf(pg,
            "INSERT INTO offlineq_files (id, content_type, size, sha256, data) "
            "SELECT '" FILE_ID "', 'application/x-legacy', %d, encode(sha256(b), 'hex'), b "
            "FROM (SELECT decode(string_agg(lpad(to_hex((i * 31 + 7) %% 256), 2, '0'), '' "
            "      ORDER BY i), 'hex') FROM generate_series(0, %d) i) s(b)",
            FILE_BYTES, FILE_BYTES - 1);
    th_sql(
        pg,
        "INSERT INTO offline_operations (id, operation_type, payload, priority, status, "
        "  retry_count, max_attempts, error_message, dedup_key, group_key, created_at, "
        "  updated_at, next_attempt_at, completed_at, result, depends_on, conflict_strategy, "
        "  file_id) VALUES "
        "('" OP_DONE "', 'api_call', '{\"endpoint\":\"/legacy/done\",\"data\":{\"n\":1}}', 2, "
        "  'completed', 1, 5, NULL, 'legacy-done', 'g-legacy', '2026-01-02 03:04:05.678+00', "
        "  '2026-01-02 03:05:00+00', '2026-01-02 03:04:30+00', '2026-01-02 03:05:00+00', "
        "  '{\"status_code\":200,\"body\":{\"ok\":true}}', NULL, NULL, NULL), "
        "('" OP_FAILED "', 'api_call', '{\"endpoint\":\"/legacy/failed\"}', 0, 'failed', 5, 5, "
        "  'HTTP 500: boom', 'legacy-failed', NULL, '2026-01-03 00:00:00+00', "
        "  '2026-01-03 00:10:00+00', '2026-01-03 00:09:00+00', NULL, NULL, NULL, NULL, NULL), "
        "('" OP_CONFLICT "', 'api_call', '{\"endpoint\":\"/legacy/conflict\",\"method\":\"PUT\"}',"
        "  -3, 'conflict', 0, 5, 'conflict: the remote copy changed', 'legacy-conflict', NULL, "
        "  '2026-01-04 00:00:00+00', '2026-01-04 00:01:00+00', '2026-01-04 00:00:00+00', NULL, "
        "  NULL, NULL, 'manual', NULL), "
        "('" OP_PENDING "', 'api_call', '{\"endpoint\":\"/legacy/pending\"}', 5, 'pending', 2, 7,"
        "  'HTTP 503', 'legacy-pending', 'g-legacy', '2026-01-05 00:00:00+00', "
        "  '2026-01-05 00:00:00+00', '2026-01-05 00:00:00+00', NULL, NULL, "
        "  '{" OP_DONE "}', NULL, NULL), "
        "('" OP_FILE "', 'file_upload', '{\"file_id\":\"" FILE_ID "\",\"endpoint\":"
        "  \"/legacy/file\",\"field\":\"doc\",\"filename\":\"legacy.bin\"}', 0, 'pending', 0, 5, "
        "  NULL, NULL, NULL, '2026-01-06 00:00:00+00', '2026-01-06 00:00:00+00', "
        "  '2026-01-06 00:00:00+00', NULL, NULL, NULL, NULL, '" FILE_ID "')");
    /* claimed by an instance that died before the upgrade: its lease ran out long ago */
    th_sql(pg, "INSERT INTO offline_operations (id, operation_type, payload, priority, status, "
               "  max_attempts, dedup_key, created_at, updated_at, next_attempt_at, lease_owner, "
               "  lease_expires_at, first_attempt_at) VALUES "
               "('" OP_LEASED "', 'api_call', '{\"endpoint\":\"/legacy/leased\"}', 1, "
               "  'in_progress', 5, 'legacy-leased', '2026-01-07 00:00:00+00', "
               "  '2026-01-07 00:00:01+00', '2026-01-07 00:00:00+00', 'old-host:1:dead', "
               "  '2026-01-07 00:01:00+00', '2026-01-07 00:00:01+00')");
}

struct want_op {
    const char *id, *json; /* the fields that must read so through the API */
};

static const struct want_op want_ops[] = {
    {OP_DONE, "{\"id\":\"" OP_DONE "\",\"operation_type\":\"api_call\",\"payload\":"
              "{\"endpoint\":\"/legacy/done\",\"data\":{\"n\":1}},\"priority\":2,\"status\":"
              "\"completed\",\"retry_count\":1,\"max_attempts\":5,\"error_message\":null,"
              "\"dedup_key\":\"legacy-done\",\"group_key\":\"g-legacy\",\"created_at\":"
              "\"2026-01-02T03:04:05.678000Z\",\"completed_at\":\"2026-01-02T03:05:00.000000Z\","
              "\"result\":{\"status_code\":200,\"body\":{\"ok\":true}},\"depends_on\":null,"
              "\"conflict_strategy\":null}"},
    {OP_FAILED, "{\"id\":\"" OP_FAILED "\",\"operation_type\":\"api_call\",\"payload\":"
                "{\"endpoint\":\"/legacy/failed\"},\"priority\":0,\"status\":\"failed\","
                "\"retry_count\":5,\"max_attempts\":5,\"error_message\":\"HTTP 500: boom\","
                "\"dedup_key\":\"legacy-failed\",\"group_key\":null,\"created_at\":"
                "\"2026-01-03T00:00:00.000000Z\",\"completed_at\":null,\"result\":null,"
                "\"depends_on\":null,\"conflict_strategy\":null}"},
    {OP_CONFLICT, "{\"id\":\"" OP_CONFLICT "\",\"operation_type\":\"api_call\",\"payload\":"
                  "{\"endpoint\":\"/legacy/conflict\",\"method\":\"PUT\"},\"priority\":-3,"
                  "\"status\":\"conflict\",\"retry_count\":0,\"max_attempts\":5,"
                  "\"error_message\":\"conflict: the remote copy changed\",\"dedup_key\":"
                  "\"legacy-conflict\",\"group_key\":null,\"created_at\":"
                  "\"2026-01-04T00:00:00.000000Z\",\"completed_at\":null,\"result\":null,"
                  "\"depends_on\":null,\"conflict_strategy\":\"manual\"}"},
    {OP_PENDING, "{\"id\":\"" OP_PENDING "\",\"operation_type\":\"api_call\",\"payload\":"
                 "{\"endpoint\":\"/legacy/pending\"},\"priority\":5,\"status\":\"pending\","
                 "\"retry_count\":2,\"max_attempts\":7,\"error_message\":\"HTTP 503\","
                 "\"dedup_key\":\"legacy-pending\",\"group_key\":\"g-legacy\",\"created_at\":"
                 "\"2026-01-05T00:00:00.000000Z\",\"completed_at\":null,\"result\":null,"
                 "\"depends_on\":[\"" OP_DONE "\"],\"conflict_strategy\":null}"},
    {OP_FILE, "{\"id\":\"" OP_FILE "\",\"operation_type\":\"file_upload\",\"payload\":"
              "{\"file_id\":\"" FILE_ID "\",\"endpoint\":\"/legacy/file\",\"field\":\"doc\","
              "\"filename\":\"legacy.bin\"},\"priority\":0,\"status\":\"pending\","
              "\"retry_count\":0,\"max_attempts\":5,\"error_message\":null,\"dedup_key\":null,"
              "\"group_key\":null,\"created_at\":\"2026-01-06T00:00:00.000000Z\","
              "\"completed_at\":null,\"result\":null,\"depends_on\":null,"
              "\"conflict_strategy\":null}"},
    /* in_progress, or pending again once a sweep took its dead lease back */
    {OP_LEASED, "{\"id\":\"" OP_LEASED "\",\"operation_type\":\"api_call\",\"payload\":"
                "{\"endpoint\":\"/legacy/leased\"},\"priority\":1,\"max_attempts\":5,"
                "\"dedup_key\":\"legacy-leased\",\"group_key\":null,\"created_at\":"
                "\"2026-01-07T00:00:00.000000Z\",\"completed_at\":null,\"result\":null,"
                "\"depends_on\":null}"},
};

static json_t *get_json(const struct svc *s, const char *path, long status)
{
    struct resp *r = th_http(s, "GET", path, NULL, 0, NULL);
    if (r->status != status)
        fail_msg("GET %s: %ld %s", path, r->status, r->body);
    json_t *j = json_incref(r->json);
    th_resp_free(r);
    return j;
}

/* Every field listed in want reads the same in the operation the API serves. */
static void assert_op(const struct svc *s, const struct want_op *w)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", w->id);
    json_t *got = get_json(s, path, 200), *want = json_loads(w->json, 0, NULL);
    assert_non_null(want);
    const char *key;
    json_t *v;
    json_object_foreach(want, key, v)
    {
        json_t *g = json_object_get(got, key);
        if (g == NULL || !json_equal(g, v)) {
            char *gs = g != NULL ? json_dumps(g, JSON_ENCODE_ANY) : strdup("(missing)");
            char *ws = json_dumps(v, JSON_ENCODE_ANY);
            fail_msg("operation %s: %s is %s, want %s", w->id, key, gs, ws);
        }
    }
    json_decref(got);
    json_decref(want);
}

static void assert_upgraded_state(const struct svc *s, PGconn *app)
{
    for (size_t i = 0; i < sizeof(want_ops) / sizeof(want_ops[0]); i++)
        assert_op(s, &want_ops[i]);
    json_t *stats = get_json(s, "/api/offline/queue/stats", 200);
    assert_int_equal(th_int(stats, "pending") + th_int(stats, "in_progress"), 3);
    assert_int_equal(th_int(stats, "completed"), 1);
    assert_int_equal(th_int(stats, "failed"), 1);
    assert_int_equal(th_int(stats, "conflict"), 1);
    json_decref(stats);
    unsigned char bytes[FILE_BYTES], digest[SHA256_DIGEST_LENGTH];
    file_bytes(bytes);
    SHA256(bytes, sizeof(bytes), digest);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    json_t *file = get_json(s, "/api/offline/files/" FILE_ID, 200);
    assert_int_equal(th_int(file, "size"), FILE_BYTES);
    assert_string_equal(th_str(file, "sha256"), hex);
    assert_string_equal(th_str(file, "content_type"), "application/x-legacy");
    json_decref(file);
    /* the dedup index came along: the live key still answers with its operation */
    struct resp *r = th_json(s, "POST", "/api/offline/queue",
                             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":"
                             "\"/legacy/again\"},\"dedup_key\":\"legacy-pending\"}");
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "id"), OP_PENDING);
    th_resp_free(r);
    /* in the schema now; public keeps only the deprecated outbox wrapper */
    char *objects = public_objects(app);
    assert_string_equal(objects, "function offlineq_enqueue");
    free(objects);
    assert_string_equal(th_sql(app, "SELECT string_agg(version::text, ',' ORDER BY version) "
                                    "FROM offlineq.schema_migrations WHERE version <= 6"),
                        "1,2,3,4,5,6");
}

static void test_upgrade_from_public(void **state)
{
    (void)state;
    char url[512];
    th_db_create("e2e_schema_upgrade", url, sizeof(url));
    PGconn *app = th_db_connect_schema(url, NULL);
    install_before_006(app);
    fill_before_006(app);
    assert_int_equal(count_ours(app, "public") > 30, 1);

    /* the service migrates on start; first without workers: nothing may move yet */
    struct svc s;
    static const char *const api_only[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, url, api_only, NULL), 0);
    assert_upgraded_state(&s, app);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* the queue still works: the pending ones are delivered, the file byte for byte, and the
     * outbox function's old name still enqueues (for one release) */
    struct upstream_srv *us = us_start();
    start_delivering(&s, url, us, NULL);
    char via_old[37];
    snprintf(
        via_old, sizeof(via_old), "%s",
        th_sql(app, "SELECT offlineq_enqueue('api_call', '{\"endpoint\":\"/legacy/old-name\"}')"));
    const char *ids[] = {OP_PENDING, OP_FILE, OP_LEASED, via_old};
    for (int i = 0; i < 4; i++) {
        json_t *op = th_wait_op(&s, ids[i], TH_SETTLED, WAIT_MS);
        assert_string_equal(th_str(op, "status"), "completed");
        json_decref(op);
    }
    assert_int_equal(us_count(us, "/legacy/pending"), 1);
    assert_int_equal(us_count(us, "/legacy/leased"), 1);
    assert_int_equal(us_count(us, "/legacy/old-name"), 1);
    int n = 0;
    struct us_req *reqs = us_requests(us, &n);
    const struct us_req *up = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(reqs[i].path, "/legacy/file") == 0)
            up = &reqs[i];
    }
    assert_non_null(up);
    unsigned char bytes[FILE_BYTES];
    file_bytes(bytes);
    assert_non_null(memmem(up->body, up->body_len, bytes, sizeof(bytes)));
    us_free_reqs(reqs, n);
    /* the old name is the wrapper, the new one the function */
    assert_string_equal(
        th_sql(app, "SELECT count(*) FROM pg_proc WHERE proname = 'enqueue' AND pronamespace = "
                    "'offlineq'::regnamespace AND proconfig = '{search_path=offlineq}'"),
        "1");
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    us_stop(us);
    PQfinish(app);
    th_db_drop("e2e_schema_upgrade");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isolated_from_golang_migrate),
        cmocka_unit_test(test_isolated_from_rails),
        cmocka_unit_test(test_another_schema),
        cmocka_unit_test(test_schema_name_checked),
        cmocka_unit_test(test_upgrade_from_public),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
