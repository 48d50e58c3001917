/* /api/offline/queue: enqueue (single, batch), list, get, delete, retry, stats, bulk actions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/park/coalesce.h"
#include "api/cursor.h"
#include "api/etag.h"
#include "core/jsonload.h"
#include "core/jsontext.h"
#include "handlers/handlers.h"
#include "store/ops.h"
#include "api/reply.h"
#include "api/routes.h"
#include "core/validate.h"
#include "api/park/waiters.h"
#include "core/pgarray.h"

#define BATCH_MAX 1000
#define LIST_DEFAULT 50
#define LIST_MAX 1000

static const char *const conflict_strategies[] = {"local_wins", "remote_wins", "last_write_wins",
                                                  "merge", "manual", NULL};

static const struct field_rule enqueue_rules[] = {
    {.name = "operation_type", .type = V_STRING, .required = true, .min = 1, .max = 100},
    {.name = "payload", .type = V_OBJECT, .required = true},
    {.name = "priority", .type = V_INT, .min = -1000, .max = 1000},
    {.name = "dedup_key", .type = V_STRING, .nullable = true, .min = 1, .max = 255},
    {.name = "group_key", .type = V_STRING, .nullable = true, .min = 1, .max = 255},
    {.name = "max_attempts", .type = V_INT, .min = 1, .max = 1000},
    {.name = "delay_s", .type = V_NUMBER, .min = 0, .max = 31536000},
    {.name = "depends_on", .type = V_ARRAY},
    {.name = "expires_in_s", .type = V_NUMBER, .min = 0, .max = 31536000},
    {.name = "max_retry_duration_s", .type = V_INT, .min = 1, .max = 31536000},
    {.name = "conflict_strategy", .type = V_STRING, .nullable = true, .one_of = conflict_strategies},
    {.name = NULL},
};

#define DEPENDS_MAX 100

/* depends_on: up to 100 operation ids, as a uuid[] literal. */
static int parse_depends_on(const json_t *list, char **out, struct err *e)
{
    size_t n = json_array_size(list);
    *out = NULL;
    if (list == NULL || n == 0)
        return 0;
    if (n > DEPENDS_MAX)
        return err_field(e, ERR_INVALID_REQUEST, "depends_on", "depends_on holds at most %d ids",
                         DEPENDS_MAX);
    struct pgarray ids;
    pgarray_init(&ids);
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(list, i));
        if (!oq_is_uuid(id)) {
            pgarray_close(&ids);
            return err_field(e, ERR_INVALID_REQUEST, "depends_on",
                             "depends_on must be a list of operation ids");
        }
        pgarray_add(&ids, id);
    }
    *out = pgarray_finish(&ids);
    return 0;
}

/* The service's own payload keys: a sealed payload's envelope ("$enc", "$enc2") and the id it
 * was sealed for ("$id", which the row takes on insert: migration 004). A client's payload that
 * held one would be stored as something else, so it is refused, as offlineq_enqueue() does. */
static int check_reserved_keys(const json_t *payload, struct err *e)
{
    static const char *const reserved[] = {"$id", "$enc", "$enc2"};
    for (size_t i = 0; i < OQ_ARRAY_LEN(reserved); i++) {
        if (json_object_get(payload, reserved[i]) != NULL)
            return err_field(e, ERR_INVALID_REQUEST, reserved[i],
                             "payload key %s is the service's own (sealed payloads)", reserved[i]);
    }
    return 0;
}

/* Checks one enqueue body and fills *op (borrowing strings from body). */
int api_parse_enqueue(const json_t *body, const struct config *cfg, struct op_new *op,
                         struct err *e)
{
    if (validate_object(body, enqueue_rules, false, e) != 0)
        return -1;
    const char *type = validate_str(body, "operation_type", NULL);
    const struct handler *h = handlers_find(type);
    if (h == NULL)
        return err_field(e, ERR_INVALID_REQUEST, "operation_type",
                         "unknown operation_type \"%.100s\"", type);
    const json_t *payload = json_object_get(body, "payload");
    if (check_reserved_keys(payload, e) != 0 || h->validate(payload, cfg, e) != 0) {
        err_prefix_field(e, "payload");
        return -1;
    }
    const json_t *delay = json_object_get(body, "delay_s");
    const json_t *expires = json_object_get(body, "expires_in_s");
    char *depends_on = NULL;
    if (parse_depends_on(json_object_get(body, "depends_on"), &depends_on, e) != 0)
        return -1;
    *op = (struct op_new){
        .operation_type = type,
        .priority = (int)jsonnum_value(json_object_get(body, "priority")),
        .dedup_key = validate_str(body, "dedup_key", NULL),
        .group_key = validate_str(body, "group_key", NULL),
        .max_attempts = (int)jsonnum_value(json_object_get(body, "max_attempts")),
        .delay_s = delay ? jsonnum_value(delay) : -1,
        .depends_on = depends_on,
        .expires_in_s = expires ? jsonnum_value(expires) : -1,
        .max_retry_duration_s = (int)jsonnum_value(json_object_get(body, "max_retry_duration_s")),
        .conflict_strategy = validate_str(body, "conflict_strategy", NULL),
        .stores_file = h->stores_file,
    };
    op->payload_json = jsontext(payload);
    OQ_ASSERT(op->payload_json != NULL);
    return 0;
}

static void set_location(struct request *r, const char *id)
{
    char loc[96];
    snprintf(loc, sizeof(loc), "/api/offline/queue/%s", id);
    reply_header(r, "Location", loc);
}

/* OFFLINEQ_MAX_PENDING: holds room for `adding` operations (pending.h), given back with
 * pending_settle once they are stored or refused. */
static int check_room(struct request *r, size_t adding, struct err *e)
{
    long long pending = 0;
    if (!pending_reserve(&r->app->pending, (long long)adding, r->app->cfg.max_pending, &pending)) {
        reply_header(r, "Retry-After", "5");
        return err_set(e, ERR_QUEUE_FULL, "the queue holds %lld pending operations (limit %d)",
                       pending, r->app->cfg.max_pending);
    }
    return 0;
}

void api_op_new_free(struct op_new *op)
{
    free(op->payload_json);
    free(op->depends_on);
}

int api_queue_create(struct request *r, struct err *e)
{
    struct op_new op = {0};
    struct op_created out = {0};
    struct db_conn *c = NULL;
    int rc = -1;
    long long held = 0; /* room reserved by check_room */
    if (check_room(r, 1, e) != 0)
        goto out;
    held = 1;
    if (api_parse_enqueue(r->json, &r->app->cfg, &op, e) != 0)
        goto out;
    double wait_s = waiters_prefer_wait(http_header(r, "Prefer"));
    if (wait_s < 0 && ops_is_simple(&op)) { /* group commit with concurrent requests */
        coalesce_submit(r, &op);                   /* the flusher settles the room */
        return 0;
    }
    c = db_acquire(&r->app->db, e);
    if (c == NULL || ops_enqueue(c, &op, &out, e) != 0)
        goto out;
    db_release(&r->app->db, c);
    c = NULL;
    pending_settle(&r->app->pending, held, out.created ? 1 : 0, out.xid);
    held = 0;
    if (out.created) {
        metrics_op(&r->app->metrics, op.operation_type, OPC_ENQUEUED, 1);
        workers_wake(&r->app->workers);
    }
    set_location(r, out.id);
    if (wait_s > 0) {
        reply_header(r, "Preference-Applied", "wait");
        waiters_park(r, out.id, wait_s, out.json); /* 200 when it finishes, else 202 */
        rc = 0;
    } else {
        rc = reply_json_text(r, wait_s == 0 ? 202 : out.created ? 201 : 200, out.json);
    }
    out.json = NULL;
out:
    if (c != NULL)
        db_release(&r->app->db, c);
    if (held > 0)
        pending_settle(&r->app->pending, held, 0, 0);
    api_op_new_free(&op);
    free(out.json);
    return rc;
}

static int parse_batch(struct request *r, struct op_new *ops, size_t n, struct err *e)
{
    const json_t *items = json_object_get(r->json, "operations");
    for (size_t i = 0; i < n; i++) {
        if (api_parse_enqueue(json_array_get(items, i), &r->app->cfg, &ops[i], e) != 0) {
            char prefix[48];
            snprintf(prefix, sizeof(prefix), "operations[%zu]", i);
            err_prefix_field(e, prefix);
            return -1;
        }
    }
    return 0;
}

/* {"operations":[op,...]} from the stored operations, in request order. */
static char *batch_body(const struct op_created *out, size_t n)
{
    size_t len = 32;
    for (size_t i = 0; i < n; i++)
        len += strlen(out[i].json) + 1;
    char *body = oq_malloc(len);
    size_t p = (size_t)sprintf(body, "{\"operations\":[");
    for (size_t i = 0; i < n; i++)
        p += (size_t)sprintf(body + p, "%s%s", i ? "," : "", out[i].json);
    sprintf(body + p, "]}");
    return body;
}

const struct field_rule api_batch_rules[] = {
    {.name = "operations", .type = V_ARRAY, .required = true},
    {.name = NULL},
};

int api_queue_batch(struct request *r, struct err *e)
{
    size_t n = json_array_size(json_object_get(r->json, "operations"));
    if (n == 0 || n > BATCH_MAX)
        return err_field(e, ERR_INVALID_REQUEST, "operations",
                         "operations must hold 1 to %d items", BATCH_MAX);
    struct op_new *ops = oq_calloc(n, sizeof(*ops));
    struct op_created *out = oq_calloc(n, sizeof(*out));
    struct db_conn *c = NULL;
    long failed = -1;
    int rc = -1;
    long long held = 0, stored = 0; /* room reserved by check_room */
    if (check_room(r, n, e) != 0)
        goto out;
    held = (long long)n;
    if (parse_batch(r, ops, n, e) != 0)
        goto out;
    c = db_acquire(&r->app->db, e);
    if (c == NULL)
        goto out;
    if (ops_enqueue_batch(c, ops, n, out, &failed, e) != 0) {
        if (failed >= 0 && e->code == ERR_INVALID_REQUEST) {
            char prefix[48];
            snprintf(prefix, sizeof(prefix), "operations[%ld]", failed);
            err_prefix_field(e, prefix);
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (out[i].created)
            metrics_op(&r->app->metrics, ops[i].operation_type, OPC_ENQUEUED, 1);
        stored += out[i].created;
    }
    pending_settle(&r->app->pending, held, stored, out[0].xid); /* one transaction */
    held = 0;
    workers_wake(&r->app->workers);
    rc = reply_json_text(r, 201, batch_body(out, n));
out:
    if (c != NULL)
        db_release(&r->app->db, c);
    if (held > 0)
        pending_settle(&r->app->pending, held, 0, 0);
    for (size_t i = 0; i < n; i++) {
        api_op_new_free(&ops[i]);
        free(out[i].json);
    }
    free(ops);
    free(out);
    return rc;
}

static const char *const statuses[] = {"pending", "in_progress", "completed", "failed",
                                       "conflict", NULL};

/* "pending,failed" -> "{pending,failed}" after checking every name. */
static int parse_statuses(const char *s, char *out, size_t len, struct err *e)
{
    struct pgarray a;
    pgarray_init(&a);
    const char *p = s;
    do {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (const char *const *st = statuses; *st && !known; st++)
            known = strlen(*st) == n && strncmp(*st, p, n) == 0;
        if (!known || pgarray_len(&a) + n + 1 >= len) {
            pgarray_close(&a);
            return err_field(e, ERR_INVALID_REQUEST, "status",
                             "status must be a comma-separated list of pending, in_progress, "
                             "completed, failed, conflict");
        }
        pgarray_addn(&a, p, n);
        p += n;
    } while (*p++ == ',');
    char *literal = pgarray_finish(&a);
    snprintf(out, len, "%s", literal);
    free(literal);
    return 0;
}

static int parse_limit(const char *s, int *limit, struct err *e)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : LIST_DEFAULT;
    if (s != NULL && (end == s || *end != '\0' || *s == '+' || *s == ' '))
        v = -1;
    if (v < 1 || v > LIST_MAX)
        return err_field(e, ERR_INVALID_REQUEST, "limit", "limit must be an integer from 1 to %d",
                         LIST_MAX);
    *limit = (int)v;
    return 0;
}

int api_parse_list_query(const char *status, const char *cursor, const char *type,
                         const char *limit, struct list_query *q, char *statuses_buf, size_t len,
                         struct err *e)
{
    if (parse_statuses(status && *status ? status : "pending", statuses_buf, len, e) != 0 ||
        parse_limit(limit, &q->limit, e) != 0)
        return -1;
    q->statuses = statuses_buf;
    q->operation_type = type && *type ? type : NULL;
    if (cursor != NULL) {
        if (cursor_decode(cursor, &q->after_priority, &q->after_seq) != 0)
            return err_field(e, ERR_INVALID_REQUEST, "cursor",
                             "cursor is not one this service returned");
        q->has_cursor = true;
    }
    return 0;
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
    if (!oq_is_uuid(r->path_id)) {
        err_set(e, ERR_NOT_FOUND, "no operation with that id");
        return NULL;
    }
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return NULL;
    char *json = fn(c, r->path_id, e);
    db_release(&r->app->db, c);
    return json;
}

int api_queue_get(struct request *r, struct err *e)
{
    char *json = with_id(r, ops_get, e);
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
    return reply_empty(r, 204);
}

static char *make_stats(struct request *r, struct err *e)
{
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return NULL;
    char *json = ops_stats(c, e);
    db_release(&r->app->db, c);
    return json;
}

/* The counts change with events; oldest_pending_age_s with the clock (a second is enough). */
int api_queue_stats(struct request *r, struct err *e)
{
    static struct etag_cache cache = ETAG_CACHE_INIT;
    char key[64];
    snprintf(key, sizeof(key), "q%llu.%ld", events_version(&r->app->events), (long)time(NULL));
    return etag_reply(r, &cache, key, make_stats, e);
}

const struct field_rule api_clear_rules[] = {
    {.name = "older_than_s", .type = V_NUMBER, .min = 0, .max = 3153600000LL},
    {.name = NULL},
};

const struct field_rule api_retry_failed_rules[] = {
    {.name = "operation_type", .type = V_STRING, .min = 1, .max = 100},
    {.name = "older_than_s", .type = V_NUMBER, .min = 0, .max = 3153600000LL},
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
    return n < 0 ? -1 : reply_json(r, 200, json_pack("{s:I}", "cleared", (json_int_t)n));
}

int api_queue_retry_failed(struct request *r, struct err *e)
{
    const char *type = r->json ? validate_str(r->json, "operation_type", NULL) : NULL;
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    long long n = ops_retry_failed(c, type, optional_seconds(r->json), e);
    db_release(&r->app->db, c);
    return n < 0 ? -1 : reply_json(r, 200, json_pack("{s:I}", "retried", (json_int_t)n));
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
    if (!oq_is_uuid(r->path_id))
        return err_set(e, ERR_NOT_FOUND, "no operation with that id");
    char *data_text = data ? jsontext(data) : NULL;
    struct db_conn *c = db_acquire(&r->app->db, e);
    char *json = c ? ops_resolve(c, r->path_id, resolution, data_text, e) : NULL;
    if (c != NULL)
        db_release(&r->app->db, c);
    free(data_text);
    if (json == NULL)
        return -1;
    workers_wake(&r->app->workers);
    return reply_json_text(r, 200, json);
}
