/* /api/offline/queue: enqueue (single, batch), list, get, delete, retry, stats, bulk actions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/cursor.h"
#include "api/endpoints.h"
#include "api/etag.h"
#include "api/parse.h"
#include "api/prefer.h"
#include "api/replay.h"
#include "api/reply.h"
#include "api/routes.h"
#include "app.h"
#include "core/jsonload.h"
#include "core/jsontext.h"
#include "core/time.h"
#include "core/validate.h"
#include "store/ops.h"
#include "store/stats.h"

#define BATCH_MAX 1000
#define CENTURY_S (100LL * 365 * 24 * 60 * 60) /* older_than_s: any age at all */

/* OFFLINEQ_MAX_PENDING: holds room for `adding` operations (pending.h), given back with
 * pending_settle once they are stored or refused. */
static int check_room(struct request *r, size_t adding, struct err *e)
{
    long long pending = 0;
    if (!pending_reserve(&r->app->pending, (long long)adding, r->app->cfg.max_pending, &pending)) {
        return err_set(e, ERR_QUEUE_FULL, "the queue holds %lld pending operations (limit %d)",
                       pending, r->app->cfg.max_pending);
    }
    return 0;
}

/* Gives back what an enqueue still holds: its connection and the room it did not use. */
static void give_back(struct request *r, struct db_conn *c, long long held)
{
    if (c != NULL)
        db_release(&r->app->db, c);
    if (held > 0)
        pending_settle(&r->app->pending, held, 0, 0);
}

/* Names operation i of a batch in e's field: "operations[3].payload.url". */
static void prefix_index(struct err *e, long i)
{
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "operations[%ld]", i);
    err_prefix_field(e, prefix);
}

/* The minimal answer for Prefer: return=minimal: {"id":"...","created":true}. */
static char *ids_body(const struct op_created *out)
{
    char *body = oq_malloc(64);
    snprintf(body, 64, "{\"id\":\"%s\",\"created\":%s}", out->id, out->created ? "true" : "false");
    return body;
}

/* The answer to a stored single enqueue that does not wait: 201 (stored), 200 (its dedup_key's
 * live operation), 202 at once for Prefer: wait=0; with return=minimal the body is the id
 * alone. Steals out->json. */
static void single_answer(struct op_created *out, const struct prefer *p, struct idem_answer *a)
{
    char loc[128];
    snprintf(loc, sizeof(loc), "/api/offline/queue/%s", out->id);
    bool minimal = p->ret == PREFER_RETURN_MINIMAL;
    const char *applied = prefer_applied(p, false);
    *a = (struct idem_answer){
        .status = p->wait_s == 0 ? 202
                  : out->created ? 201
                                 : 200,
        .body = minimal ? ids_body(out) : out->json,
        .location = oq_strdup(loc),
        .preference_applied = applied ? oq_strdup(applied) : NULL,
    };
    if (!minimal)
        out->json = NULL;
}

/* The answer to a stored single enqueue: single_answer's, or for Prefer: wait=N parked until
 * the operation finishes (200 when done, else 202; with return=minimal the id alone). Steals
 * out->json. */
static int answer_enqueue(struct request *r, struct op_created *out, const struct prefer *p)
{
    if (p->wait_s <= 0) {
        struct idem_answer a;
        single_answer(out, p, &a);
        return replay_send(r, &a, false);
    }
    reply_location(r, "/api/offline/queue/", out->id);
    bool minimal = p->ret == PREFER_RETURN_MINIMAL;
    char *json = minimal ? ids_body(out) : out->json;
    if (!minimal)
        out->json = NULL;
    reply_header(r, "Preference-Applied", prefer_applied(p, true));
    waiters_park(&r->api->waiters, r, out->id, p->wait_s, json, !minimal);
    return 0;
}

/* The request's trace context and id go with each operation it stores. */
static void with_trace(struct request *r, struct op_new *op)
{
    op->trace = &r->trace;
    op->tracestate = r->tracestate;
    op->request_id = r->request_id;
}

/* The preferences of an enqueue. One with an Idempotency-Key does not wait (wait=N is not
 * applied): its answer is stored when it commits. */
static void enqueue_prefer(struct request *r, bool keyed, struct prefer *p)
{
    prefer_parse(r, p);
    if (keyed && p->wait_s > 0)
        p->wait_s = -1;
}

int api_queue_create(struct request *r, struct err *e)
{
    struct idem_key key;
    int keyed = replay_key(r, "queue", &key, e);
    if (keyed < 0)
        return -1;
    struct op_new op = {0};
    struct op_created out = {0};
    struct idem_answer answer = {0};
    struct db_conn *c = NULL;
    int rc = -1;
    long long held = 0; /* room reserved by check_room */
    bool replayed = false;
    if (keyed && replay_begin(r, &key, &c, &replayed, e) != 0)
        goto out;
    if (replayed) {
        rc = 0;
        goto out;
    }
    if (check_room(r, 1, e) != 0)
        goto out;
    held = 1;
    if (api_parse_enqueue(r->json, &r->app->cfg, &op, e) != 0)
        goto out;
    with_trace(r, &op);
    struct prefer prefer;
    enqueue_prefer(r, keyed, &prefer);
    op.ids_only = prefer.ret == PREFER_RETURN_MINIMAL;
    if (!keyed && prefer.wait_s < 0 && ops_is_simple(&op)) {    /* group commit */
        coalesce_submit(&r->api->coalesce, r, &op, prefer.ret); /* the flusher settles the room */
        return 0;
    }
    if (c == NULL && (c = db_acquire(&r->app->db, e)) == NULL)
        goto out;
    if (ops_enqueue(c, &op, &out, e) != 0)
        goto out;
    if (keyed) {
        single_answer(&out, &prefer, &answer);
        if (idempotency_commit(c, &key, &answer, e) != 0)
            goto out;
    }
    db_release(&r->app->db, c);
    c = NULL;
    pending_settle(&r->app->pending, held, out.created ? 1 : 0, out.xid);
    held = 0;
    if (out.created) {
        metrics_op(&r->app->metrics, op.operation_type, OPC_ENQUEUED, 1);
        workers_nudge(&r->app->workers);
    }
    rc = keyed ? replay_send(r, &answer, false) : answer_enqueue(r, &out, &prefer);
out:
    give_back(r, c, held);
    api_op_new_free(&op);
    idempotency_answer_free(&answer);
    free(out.json);
    return rc;
}

static int parse_batch(struct request *r, struct op_new *ops, size_t n, bool ids_only,
                       struct err *e)
{
    const json_t *items = json_object_get(r->json, "operations");
    for (size_t i = 0; i < n; i++) {
        if (api_parse_enqueue(json_array_get(items, i), &r->app->cfg, &ops[i], e) != 0) {
            prefix_index(e, (long)i);
            return -1;
        }
        ops[i].ids_only = ids_only;
        with_trace(r, &ops[i]);
    }
    return 0;
}

/* {"operations":[op,...]} from the stored operations, in request order; with minimal each
 * item is {"id":"...","created":bool} (a dedup hit: the live operation's id, created false). */
static char *batch_body(const struct op_created *out, size_t n, bool minimal)
{
    size_t len = 32;
    for (size_t i = 0; i < n; i++)
        len += (minimal ? 64 : strlen(out[i].json)) + 1;
    char *body = oq_malloc(len);
    size_t p = (size_t)sprintf(body, "{\"operations\":[");
    for (size_t i = 0; i < n; i++) {
        if (minimal)
            p += (size_t)sprintf(body + p, "%s{\"id\":\"%s\",\"created\":%s}", i ? "," : "",
                                 out[i].id, out[i].created ? "true" : "false");
        else
            p += (size_t)sprintf(body + p, "%s%s", i ? "," : "", out[i].json);
    }
    sprintf(body + p, "]}");
    return body;
}

const struct field_rule api_batch_rules[] = {
    {.name = "operations", .type = V_ARRAY, .required = true},
    {.name = NULL},
};

/* Stores the n operations of a batch on c (keyed: in its open transaction) and returns its
 * answer's body, or NULL with *e (naming the operation the database refused). */
static char *store_batch(struct db_conn *c, bool keyed, const struct op_new *ops, size_t n,
                         struct op_created *out, bool minimal, struct err *e)
{
    long failed = -1;
    int rc = keyed ? ops_enqueue_batch_in(c, ops, n, out, &failed, e)
                   : ops_enqueue_batch(c, ops, n, out, &failed, e);
    if (rc != 0) {
        if (failed >= 0 && e->code == ERR_INVALID_REQUEST)
            prefix_index(e, failed);
        return NULL;
    }
    return batch_body(out, n, minimal);
}

/* After the batch's commit: the room it stored into, its metrics, the workers. */
static void settle_batch(struct request *r, const struct op_new *ops, size_t n,
                         const struct op_created *out, long long held)
{
    long long stored = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i].created)
            metrics_op(&r->app->metrics, ops[i].operation_type, OPC_ENQUEUED, 1);
        stored += out[i].created;
    }
    pending_settle(&r->app->pending, held, stored, out[0].xid); /* one transaction */
    workers_wake(&r->app->workers);
}

int api_queue_batch(struct request *r, struct err *e)
{
    size_t n = json_array_size(json_object_get(r->json, "operations"));
    if (n == 0 || n > BATCH_MAX)
        return err_field(e, ERR_INVALID_REQUEST, "operations", "operations must hold 1 to %d items",
                         BATCH_MAX);
    struct idem_key key;
    int keyed = replay_key(r, "batch", &key, e);
    if (keyed < 0)
        return -1;
    struct op_new *ops = oq_calloc(n, sizeof(*ops));
    struct op_created *out = oq_calloc(n, sizeof(*out));
    struct idem_answer answer = {.status = 201};
    struct db_conn *c = NULL;
    int rc = -1;
    long long held = 0; /* room reserved by check_room */
    bool replayed = false;
    if (keyed && replay_begin(r, &key, &c, &replayed, e) != 0)
        goto out;
    if (replayed) {
        rc = 0;
        goto out;
    }
    if (check_room(r, n, e) != 0)
        goto out;
    held = (long long)n;
    struct prefer prefer;
    prefer_parse(r, &prefer); /* wait=N is for a single enqueue; return= applies here */
    const char *applied = prefer_applied(&prefer, false);
    answer.preference_applied = applied ? oq_strdup(applied) : NULL;
    bool minimal = prefer.ret == PREFER_RETURN_MINIMAL;
    if (parse_batch(r, ops, n, minimal, e) != 0)
        goto out;
    if (c == NULL && (c = db_acquire(&r->app->db, e)) == NULL)
        goto out;
    answer.body = store_batch(c, keyed, ops, n, out, minimal, e);
    if (answer.body == NULL || (keyed && idempotency_commit(c, &key, &answer, e) != 0))
        goto out;
    db_release(&r->app->db, c);
    c = NULL;
    settle_batch(r, ops, n, out, held);
    held = 0;
    rc = replay_send(r, &answer, false);
out:
    give_back(r, c, held);
    for (size_t i = 0; i < n; i++) {
        api_op_new_free(&ops[i]);
        free(out[i].json);
    }
    idempotency_answer_free(&answer);
    free(ops);
    free(out);
    return rc;
}

/* The page is built once: ops_list appends the operations straight from the database's
 * answer into the body, which is then sent as it is. */
int api_queue_list(struct request *r, struct err *e)
{
    struct list_query q = {0};
    struct list_page page = {0};
    char st[128];
    if (api_parse_list_query(http_query(r, "status"), http_query(r, "cursor"),
                             http_query(r, "operation_type"), http_query(r, "limit"), &q, st,
                             sizeof(st), e) != 0)
        return -1;
    q.max_bytes = r->app->cfg.max_page_bytes;
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    struct oq_buf body = {0};
    oq_buf_str(&body, "{\"operations\":");
    int rc = ops_list(c, &q, &body, &page, e);
    db_release(&r->app->db, c);
    if (rc != 0) {
        free(body.data);
        return -1;
    }
    char next[CURSOR_MAX + 2] = "null";
    if (page.has_more) {
        char cur[CURSOR_MAX];
        cursor_encode(page.last_priority, page.last_seq, cur);
        snprintf(next, sizeof(next), "\"%s\"", cur);
    }
    oq_buf_str(&body, ",\"next_cursor\":");
    oq_buf_str(&body, next);
    oq_buf_str(&body, "}");
    return reply_json_text(r, 200, body.data);
}

/* Runs fn(conn, id) for the {id} of the route; ids that are not UUIDs are unknown (404). */
static char *with_id(struct request *r, char *(*fn)(struct db_conn *, const char *, struct err *),
                     struct err *e)
{
    const char *id = routes_path_uuid(r, "operation", e);
    struct db_conn *c = id ? db_acquire(&r->app->db, e) : NULL;
    if (c == NULL)
        return NULL;
    char *json = fn(c, id, e);
    db_release(&r->app->db, c);
    return json;
}

int api_queue_get(struct request *r, struct err *e)
{
    char *json = with_id(r, ops_get, e);
    return json ? reply_json_text(r, 200, json) : -1;
}

int api_queue_attempts(struct request *r, struct err *e)
{
    char *json = with_id(r, ops_attempts, e);
    return json ? reply_json_text(r, 200, json) : -1;
}

int api_queue_retry(struct request *r, struct err *e)
{
    char *json = with_id(r, ops_retry, e);
    return json ? reply_json_text(r, 200, json) : -1;
}

/* ops_delete in the shape with_id takes: a non-NULL marker on success. */
static char *delete_one(struct db_conn *c, const char *id, struct err *e)
{
    return ops_delete(c, id, e) == 0 ? oq_strdup("") : NULL;
}

int api_queue_delete(struct request *r, struct err *e)
{
    char *done = with_id(r, delete_one, e);
    if (done == NULL)
        return -1;
    free(done);
    metrics_deleted(&r->app->metrics, DELETED_API, 1);
    return reply_empty(r, 204);
}

/* The key of the stats: their version from the database, and the second (the age of the
 * oldest pending operation moves with the clock; a second is enough). */
static void stats_key(const char *version, char *key)
{
    snprintf(key, ETAG_KEY_MAX, "q%s.%ld", version, (long)time(NULL));
}

static int read_stats_key(struct request *r, char *key, struct err *e)
{
    char version[STATS_VERSION_LEN];
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    int rc = stats_version(c, version, e);
    db_release(&r->app->db, c);
    if (rc == 0)
        stats_key(version, key);
    return rc;
}

static char *make_stats(struct request *r, char *key, struct err *e)
{
    char version[STATS_VERSION_LEN];
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return NULL;
    char *json = stats_queue(c, version, e);
    db_release(&r->app->db, c);
    if (json != NULL)
        stats_key(version, key);
    return json;
}

static const struct etag_source stats_source = {.key = read_stats_key, .make = make_stats};

/* The ETag comes from the counts in the database (store/stats.c), so it changes with the
 * commit that changed them, whichever instance made it. */
int api_queue_stats(struct request *r, struct err *e)
{
    return etag_reply(r, &r->api->queue_stats_etag, &stats_source, e);
}

const struct field_rule api_clear_rules[] = {
    {.name = "older_than_s", .type = V_NUMBER, .min = 0, .max = CENTURY_S},
    {.name = NULL},
};

static double optional_seconds(const json_t *body)
{
    const json_t *v = json_object_get(body, "older_than_s");
    return v ? jsonnum_value(v) : -1;
}

int api_queue_clear_completed(struct request *r, struct err *e)
{
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    long long n = ops_clear_completed(c, optional_seconds(r->json), e);
    db_release(&r->app->db, c);
    if (n > 0)
        metrics_deleted(&r->app->metrics, DELETED_CLEAR_COMPLETED, (unsigned long long)n);
    return n < 0 ? -1 : reply_json(r, 200, json_pack("{s:I}", "cleared", (json_int_t)n));
}

static const char *const retry_statuses[] = {"failed", "conflict", NULL};
static const char *const delete_statuses[] = {"pending", "completed", "failed", "conflict", NULL};

/* The filter of a bulk action: over every operation that matches, not a page. */
#define BULK_FILTER_RULES(STATUSES)                                                                \
    {.name = "status", .type = V_STRING, .one_of = STATUSES},                                      \
        {.name = "operation_type", .type = V_STRING, .min = 1, .max = 100},                        \
        {.name = "upstream", .type = V_STRING, .min = 1, .max = 100},                              \
        {.name = "created_before", .type = V_STRING, .min = 1, .max = 64},                         \
        {.name = "created_after", .type = V_STRING, .min = 1, .max = 64},                          \
        {.name = "error_contains", .type = V_STRING, .min = 1, .max = 200},                        \
        {.name = "older_than_s", .type = V_NUMBER, .min = 0, .max = CENTURY_S},                    \
    {                                                                                              \
        .name = "dry_run", .type = V_BOOL                                                          \
    }

const struct field_rule api_retry_failed_rules[] = {
    BULK_FILTER_RULES(retry_statuses),
    {.name = NULL},
};

const struct field_rule api_bulk_delete_rules[] = {
    BULK_FILTER_RULES(delete_statuses),
    {.name = "all", .type = V_BOOL},
    {.name = NULL},
};

static int filter_time(const json_t *body, const char *key, const char **out, struct err *e)
{
    double t;
    *out = validate_str(body, key, NULL);
    if (*out != NULL && time_parse_rfc3339(*out, &t) != 0)
        return err_field(e, ERR_INVALID_REQUEST, key,
                         "%s must be an RFC 3339 date-time (2026-12-02T10:00:00Z)", key);
    return 0;
}

/* The filter of body (checked by the route's rules); retry's status defaults to failed. */
static int parse_filter(const json_t *body, bool retry, struct bulk_filter *f, struct err *e)
{
    *f = (struct bulk_filter){
        .status = validate_str(body, "status", retry ? "failed" : NULL),
        .operation_type = validate_str(body, "operation_type", NULL),
        .upstream = validate_str(body, "upstream", NULL),
        .error_contains = validate_str(body, "error_contains", NULL),
        .older_than_s = optional_seconds(body),
    };
    if (filter_time(body, "created_before", &f->created_before, e) != 0 ||
        filter_time(body, "created_after", &f->created_after, e) != 0)
        return -1;
    return 0;
}

static bool is_dry_run(const json_t *body)
{
    return json_is_true(json_object_get(body, "dry_run"));
}

/* Runs batch (ops_bulk_retry / ops_bulk_delete) until a batch takes less than a whole one;
 * each batch is its own statement and transaction, so *done counts what the batches that went
 * through changed, also when a later one failed (then -1 with *e: the same request again takes
 * the rest, a filter being idempotent). */
static int run_batches(struct request *r, const struct bulk_filter *f,
                       long long (*batch)(struct db_conn *, const struct bulk_filter *,
                                          struct err *),
                       long long *done, struct err *e)
{
    *done = 0;
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    long long n;
    do {
        n = batch(c, f, e);
        *done += n > 0 ? n : 0;
    } while (n == OPS_BULK_BATCH);
    db_release(&r->app->db, c);
    return n < 0 ? -1 : 0;
}

static int answer_dry_run(struct request *r, bool retry, const struct bulk_filter *f, struct err *e)
{
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    long long n = ops_bulk_count(c, retry, f, e);
    db_release(&r->app->db, c);
    return n < 0 ? -1
                 : reply_json(r, 200,
                              json_pack("{s:I, s:b}", "matched", (json_int_t)n, "dry_run", 1));
}

int api_queue_retry_failed(struct request *r, struct err *e)
{
    json_t *none = json_object();
    const json_t *body = r->json ? r->json : none;
    struct bulk_filter f;
    int rc = parse_filter(body, true, &f, e);
    if (rc == 0 && is_dry_run(body)) {
        rc = answer_dry_run(r, true, &f, e);
    } else if (rc == 0) {
        long long n;
        rc = run_batches(r, &f, ops_bulk_retry, &n, e);
        if (n > 0)
            workers_wake(&r->app->workers);
        if (rc == 0)
            rc = reply_json(r, 200, json_pack("{s:I}", "retried", (json_int_t)n));
    }
    json_decref(none);
    return rc;
}

/* A delete over the whole queue must say so: an empty filter is a mistake more often. */
static bool has_filter(const json_t *body)
{
    for (const struct field_rule *rule = api_bulk_delete_rules; rule->name; rule++) {
        if (strcmp(rule->name, "dry_run") != 0 && strcmp(rule->name, "all") != 0 &&
            json_object_get(body, rule->name) != NULL)
            return true;
    }
    return false;
}

int api_queue_bulk_delete(struct request *r, struct err *e)
{
    struct bulk_filter f;
    if (parse_filter(r->json, false, &f, e) != 0)
        return -1;
    if (!has_filter(r->json) && !json_is_true(json_object_get(r->json, "all")))
        return err_field(e, ERR_INVALID_REQUEST, "all",
                         "a delete without a filter deletes every operation that is not in "
                         "progress: send \"all\": true to mean it");
    if (is_dry_run(r->json))
        return answer_dry_run(r, false, &f, e);
    long long n;
    int rc = run_batches(r, &f, ops_bulk_delete, &n, e);
    if (n > 0)
        metrics_deleted(&r->app->metrics, DELETED_API, (unsigned long long)n);
    return rc != 0 ? -1 : reply_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)n));
}

static const char *const resolutions[] = {"local", "remote", "merged", NULL};

const struct field_rule api_resolve_rules[] = {
    {.name = "resolution", .type = V_STRING, .required = true, .one_of = resolutions},
    {.name = "data", .type = V_OBJECT},
    {.name = NULL},
};

int api_queue_resolve(struct request *r, struct err *e)
{
    const char *resolution = validate_str(r->json, "resolution", "");
    const json_t *data = json_object_get(r->json, "data");
    if (strcmp(resolution, "merged") == 0 && data == NULL)
        return err_field(e, ERR_INVALID_REQUEST, "data", "a merged resolution needs data");
    const char *id = routes_path_uuid(r, "operation", e);
    if (id == NULL)
        return -1;
    char *data_text = data ? jsontext(data) : NULL;
    struct db_conn *c = db_acquire(&r->app->db, e);
    char *json = c ? ops_resolve(c, id, resolution, data_text, e) : NULL;
    if (c != NULL)
        db_release(&r->app->db, c);
    free(data_text);
    if (json == NULL)
        return -1;
    workers_wake(&r->app->workers);
    return reply_json_text(r, 200, json);
}

/* The last 15 minutes in 10 s buckets, all from the database (store/stats.c): every instance
 * answers the same. */
int api_queue_stats_history(struct request *r, struct err *e)
{
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    char *json = stats_history(c, e);
    db_release(&r->app->db, c);
    return json ? reply_json_text(r, 200, json) : -1;
}
