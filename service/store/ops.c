#include "store/ops.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsontext.h"
#include "core/log.h"
#include "core/jsonload.h"
#include "core/trace.h"
#include "core/vocab.h"
#include "store/secretbox.h"

static const struct db_stmt enqueue_stmt = {
    "ops_enqueue",
    "SELECT (r.op).id, offlineq_op_json(r.op)::text, r.created, "
    "  pg_current_xact_id_if_assigned()::text "
    "FROM offlineq_enqueue_ex($1, $2::jsonb, $3::int, $4, $5, $6::int, $7::float8, $8::uuid[], "
    "  $9::float8, $10::int, $11, $12::uuid, $13::bigint, $14::smallint, $15, $16) r"};

/* enqueue_stmt for an op_new.ids_only (Prefer: return=minimal): the same columns, but no
 * Operation document is built (offlineq_op_json is the larger part of an enqueue's cost). */
static const struct db_stmt enqueue_ids_stmt = {
    "ops_enqueue_ids",
    "SELECT (r.op).id, NULL::text, r.created, pg_current_xact_id_if_assigned()::text "
    "FROM offlineq_enqueue_ex($1, $2::jsonb, $3::int, $4, $5, $6::int, $7::float8, $8::uuid[], "
    "  $9::float8, $10::int, $11, $12::uuid, $13::bigint, $14::smallint, $15, $16) r"};

static const struct db_stmt attempts_stmt = {
    "ops_attempts",
    "SELECT json_build_object('id', id, 'attempts', coalesce(attempts, '[]'))::text "
    "FROM offline_operations WHERE id = $1::uuid"};

static const struct db_stmt get_stmt = {
    "ops_get", "SELECT offlineq_op_json(o)::text FROM offline_operations o WHERE id = $1::uuid"};

static const struct db_stmt delete_stmt = {
    "ops_delete",
    "WITH target AS (SELECT id, status FROM offline_operations WHERE id = $1::uuid FOR UPDATE), "
    "del AS (DELETE FROM offline_operations o USING target t "
    "        WHERE o.id = t.id AND t.status <> 'in_progress' RETURNING o.id) "
    "SELECT t.status, (SELECT count(*) FROM del) FROM target t"};

/* A retried operation starts over: pending now, no attempt used, no error. */
#define START_OVER                                                                                 \
    "status = 'pending', retry_count = 0, error_message = NULL, next_attempt_at = now(), "         \
    "updated_at = now(), completed_at = NULL"

static const struct db_stmt retry_stmt = {
    "ops_retry",
    "WITH target AS (SELECT id, status FROM offline_operations WHERE id = $1::uuid FOR UPDATE), "
    "upd AS (UPDATE offline_operations o SET " START_OVER
    ", lease_owner = NULL, lease_expires_at = NULL "
    "        FROM target t WHERE o.id = t.id AND t.status IN ('failed', 'conflict') "
    "        RETURNING offlineq_op_json(o)::text AS j) "
    "SELECT t.status, (SELECT j FROM upd) FROM target t"};

/* The conflict to resolve, locked: its status and stored result. */
static const struct db_stmt resolve_lock_stmt = {
    "ops_resolve_lock",
    "SELECT status, result::text, id::text FROM offline_operations WHERE id = $1::uuid FOR UPDATE"};

/* $3: the new result ("remote": completed now) or NULL (kept), $4 the resolution; both built
 * and sealed in C, so they can be bound to the row. */
static const struct db_stmt resolve_stmt = {
    "ops_resolve", "WITH upd AS (UPDATE offline_operations o SET "
                   "    status = CASE WHEN $2 = 'remote' THEN 'completed' ELSE 'pending' END, "
                   "    completed_at = CASE WHEN $2 = 'remote' THEN now() END, "
                   "    result = CASE WHEN $3::jsonb IS NULL THEN o.result ELSE $3::jsonb END, "
                   "    resolution = $4::jsonb, "
                   "    error_message = NULL, next_attempt_at = now(), updated_at = now() "
                   "  WHERE o.id = $1::uuid AND o.status = 'conflict' "
                   "  RETURNING offlineq_op_json(o)::text AS j, o.operation_type), "
                   "counted AS (INSERT INTO offlineq_op_counts (operation_type, status, n) "
                   "  SELECT operation_type, '#resolved', 1 FROM upd WHERE $2 = 'remote') "
                   "SELECT j FROM upd"};

/* One page in execution order, at most $5 rows (the caller asks for one more than it shows).
 * page: for each requested status one range of the index on (status, -priority, seq) (the
 * LATERAL subquery, which stops after $5 rows), merged in execution order and cut to $5.
 * sized: the running total of the stored documents' sizes in that order (a sealed payload is
 * larger than the opened one it is sent as). The last SELECT renders the document of the first
 * row and of every row within $6 bytes; a row past it comes without one, so a page is bounded
 * at the source and the caller still learns that more follow. Only rows of the page are
 * rendered: those sent twice (to size and to send), those past the bound once (to size). */
static const struct db_stmt list_stmt = {
    "ops_list",
    "WITH page AS (SELECT x.id, x.priority, x.seq "
    "  FROM unnest($1::text[]) AS s(status) CROSS JOIN LATERAL ("
    "    SELECT o.id, o.priority, o.seq FROM offline_operations o "
    "    WHERE o.status = s.status AND ($2::text IS NULL OR o.operation_type = $2) "
    "      AND (-o.priority, o.seq) > ($3::int, $4::bigint) "
    "    ORDER BY -o.priority, o.seq LIMIT $5::int) x "
    "  ORDER BY -x.priority, x.seq LIMIT $5::int), "
    "sized AS (SELECT p.id, p.priority, p.seq, row_number() OVER w AS rn, "
    "    sum((SELECT octet_length(offlineq_op_json(o)::text) FROM offline_operations o "
    "         WHERE o.id = p.id)) OVER w AS run "
    "  FROM page p WINDOW w AS (ORDER BY -p.priority, p.seq ROWS UNBOUNDED PRECEDING)) "
    "SELECT CASE WHEN z.rn = 1 OR z.run <= $6::bigint THEN "
    "    (SELECT offlineq_op_json(o)::text FROM offline_operations o WHERE o.id = z.id) END, "
    "  z.priority, z.seq "
    "FROM sized z ORDER BY z.rn"};

static const struct db_stmt clear_stmt = {
    "ops_clear_completed",
    "WITH d AS (DELETE FROM offline_operations WHERE status = 'completed' "
    "  AND ($1::float8 IS NULL OR completed_at <= now() - make_interval(secs => $1::float8)) "
    "  RETURNING 1) SELECT count(*) FROM d"};

/* A bulk action's filter ($1 status .. $7 older_than_s, struct bulk_filter). */
#define BULK_FILTER                                                                                \
    "($1::text IS NULL OR f.status = $1) AND ($2::text IS NULL OR f.operation_type = $2) "         \
    "AND ($3::text IS NULL OR coalesce(f.payload->>'upstream', 'default') = $3) "                  \
    "AND ($4::timestamptz IS NULL OR f.created_at < $4::timestamptz) "                             \
    "AND ($5::timestamptz IS NULL OR f.created_at >= $5::timestamptz) "                            \
    "AND ($6::text IS NULL OR strpos(lower(f.error_message), lower($6)) > 0) "                     \
    "AND ($7::float8 IS NULL OR f.updated_at <= now() - make_interval(secs => $7::float8)) "

/* The operations a retry takes: failed or conflict ones, one per dedup_key, and none whose key
 * a live operation holds, so the unique index on live dedup keys is never violated by a
 * redrive. LIMIT: a batch, or all (a dry run's count). */
#define RETRY_PICK(LIMIT)                                                                          \
    "pick AS (SELECT DISTINCT ON (coalesce(f.dedup_key, f.id::text)) f.id "                        \
    "  FROM offline_operations f "                                                                 \
    "  WHERE f.status IN ('failed', 'conflict') AND " BULK_FILTER                                  \
    "    AND (f.dedup_key IS NULL OR NOT EXISTS (SELECT 1 FROM offline_operations l "              \
    "         WHERE l.dedup_key = f.dedup_key AND l.id <> f.id "                                   \
    "           AND l.status IN " OQ_SQL_LIVE_STATUSES ")) "                                       \
    "  ORDER BY coalesce(f.dedup_key, f.id::text), f.seq DESC " LIMIT ") "

static const struct db_stmt bulk_retry_stmt = {
    "ops_bulk_retry",
    "WITH " RETRY_PICK("LIMIT " OQ_STR(
        OPS_BULK_BATCH)) ", "
                         "upd AS (UPDATE offline_operations o SET " START_OVER
                         ", lease_owner = NULL, "
                         "        lease_expires_at = NULL "
                         "        FROM pick WHERE o.id = pick.id AND o.status IN ('failed', "
                         "'conflict') "
                         "        RETURNING 1), "
                         "wake AS (SELECT pg_notify('offlineq_wakeup', '') WHERE EXISTS (SELECT 1 "
                         "FROM upd)) "
                         "SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM wake)"};

static const struct db_stmt bulk_retry_count_stmt = {
    "ops_bulk_retry_count", "WITH " RETRY_PICK("") "SELECT count(*) FROM pick"};

/* Deletes take what is not in_progress (a worker holds it), a batch at a time, skipping rows
 * another transaction holds (they are taken by a later batch, or stay for the next call). */
static const struct db_stmt bulk_delete_stmt = {
    "ops_bulk_delete",
    "WITH pick AS (SELECT f.id FROM offline_operations f "
    "  WHERE f.status <> 'in_progress' AND " BULK_FILTER " "
    "  ORDER BY f.seq LIMIT " OQ_STR(OPS_BULK_BATCH) " FOR UPDATE SKIP LOCKED), "
                                                     "d AS (DELETE FROM offline_operations o USING "
                                                     "pick WHERE o.id = pick.id RETURNING 1) "
                                                     "SELECT count(*) FROM d"};

static const struct db_stmt bulk_delete_count_stmt = {
    "ops_bulk_delete_count", "SELECT count(*) FROM offline_operations f "
                             "WHERE f.status <> 'in_progress' AND " BULK_FILTER};

/* Simple operations (no dedup_key, depends_on or stored file) from a JSON array, in one
 * statement: the checks were made in C, the table's constraints stand behind them. An
 * operation behind an earlier live one of its group (in the table, or earlier in the array)
 * is stored group_held, so the insert trigger need not write it again ("gb": an earlier one of
 * its group is in the array, found in C: a window over the array cost a sort of every batch,
 * grouped or not; a live one in the table is the min(seq) of its group, read from
 * offline_operations_group: an EXISTS was planned as a scan of the table per row, 33 ms a row
 * for a new group beside 200,000 waiting operations). The ids are made here (UUIDv7, oq_uuids), not
 * by the column's default: offlineq_uuidv7() costs 2.5 us a row in the database. DOC: the Operation
 * document returned for each row (NULL::text for ids only). */
#define ENQUEUE_MANY(DOC)                                                                          \
    "WITH x AS (SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t text, p jsonb, "      \
    "  pr int, g text, ma int, d float8, ex float8, mr int, cs text, ti uuid, tn bigint, "         \
    "  tf smallint, ts text, rq text, id uuid, gb boolean)) "                                      \
    "  WITH ORDINALITY AS r(t, p, pr, g, ma, d, ex, mr, cs, ti, tn, tf, ts, rq, id, gb, ord)), "   \
    "ins AS (INSERT INTO offline_operations AS o (id, operation_type, payload, priority, "         \
    "  group_key, max_attempts, next_attempt_at, expires_at, max_retry_duration_s, "               \
    "  conflict_strategy, trace_id, trace_span, trace_flags, tracestate, request_id, group_held) " \
    "  SELECT coalesce(x.id, offlineq_uuidv7()), x.t, x.p, x.pr, x.g, x.ma, "                      \
    "    now() + make_interval(secs => coalesce(x.d, 0)), now() + make_interval(secs => x.ex), "   \
    "    x.mr, x.cs, coalesce(x.ti, gen_random_uuid()), "                                          \
    "    coalesce(x.tn, (floor(random() * 9223372036854775806))::bigint + 1), coalesce(x.tf, 1), " \
    "    x.ts, x.rq, "                                                                             \
    "    x.g IS NOT NULL AND (coalesce(x.gb, false) "                                              \
    "      OR (SELECT min(l.seq) FROM offline_operations l WHERE l.group_key = x.g "               \
    "          AND l.status IN " OQ_SQL_LIVE_STATUSES ") IS NOT NULL) "                            \
    "  FROM x ORDER BY x.ord "                                                                     \
    "  RETURNING o.seq, o.id, " DOC " AS j) "                                                      \
    "SELECT i.id, i.j, pg_current_xact_id_if_assigned()::text FROM ins i ORDER BY i.seq"

/* Other instances learn of new operations from a NOTIFY on offlineq_wakeup. PostgreSQL holds
 * a lock from a notifying transaction's commit until its commit record is flushed, so two
 * notifying commits never share a WAL flush: the enqueue's own commit does not notify, and the
 * NOTIFY goes after it in a transaction of its own that does not wait for the flush (nothing
 * is lost if it is: the others also poll). Inside a caller's transaction it goes with that. */
#define WAKE_APART                                                                                 \
    "BEGIN; SET LOCAL synchronous_commit TO off; SELECT pg_notify('offlineq_wakeup', ''); COMMIT"
static const struct db_stmt wake_in_stmt = {"ops_wake_in",
                                            "SELECT pg_notify('offlineq_wakeup', '')"};

static const struct db_stmt enqueue_many_stmt = {"ops_enqueue_many",
                                                 ENQUEUE_MANY("offlineq_op_json(o)::text")};

/* enqueue_many_stmt when every operation is ids_only: the same columns, no documents. */
static const struct db_stmt enqueue_many_ids_stmt = {"ops_enqueue_many_ids",
                                                     ENQUEUE_MANY("NULL::text")};

static const struct db_stmt register_types_stmt = {
    "register_types",
    "INSERT INTO offlineq_operation_types (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"};

int ops_register_types(struct db_conn *c, const char *types, struct err *e)
{
    const char *params[] = {types};
    return db_run(c, &register_types_stmt, 1, params, e);
}

bool ops_is_simple(const struct op_new *op)
{
    return op->dedup_key == NULL && op->depends_on == NULL && !op->stores_file;
}

static void add_json_str(struct oq_buf *b, const char *key, const char *v)
{
    if (v == NULL)
        return;
    oq_buf_str(b, key);
    jsontext_string(b, v);
}

static void add_int(struct oq_buf *b, const char *key, bool present, long long v)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", v);
    if (present) {
        oq_buf_str(b, key);
        oq_buf_str(b, num);
    }
}

static void add_real(struct oq_buf *b, const char *key, bool present, double v)
{
    char num[64];
    snprintf(num, sizeof(num), "%.6f", v);
    if (present) {
        oq_buf_str(b, key);
        oq_buf_str(b, num);
    }
}

static int by_group_then_index(const void *a, const void *b)
{
    const struct op_new *const *x = a, *const *y = b;
    int c = strcmp((*x)->group_key, (*y)->group_key);
    return c != 0 ? c : (*x < *y ? -1 : *x > *y);
}

/* behind[i]: an earlier operation of ops[i]'s group is in ops (n log n over the grouped ones).
 * A new array the caller frees, or NULL when no two share a group. */
static bool *behind_in_batch(const struct op_new *ops, size_t n)
{
    const struct op_new **g = oq_calloc(n ? n : 1, sizeof(*g));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ops[i].group_key != NULL)
            g[k++] = &ops[i];
    bool *behind = NULL;
    if (k > 1) {
        qsort(g, k, sizeof(*g), by_group_then_index);
        behind = oq_calloc(n, sizeof(*behind));
        for (size_t j = 1; j < k; j++)
            behind[g[j] - ops] = strcmp(g[j]->group_key, g[j - 1]->group_key) == 0;
    }
    free(g);
    return behind;
}

/* [{"t","p","pr",...,"id","gb"}] for enqueue_many_stmt */
static char *many_json(const struct secretbox *sb, const struct op_new *ops, size_t n)
{
    struct oq_buf b = {0};
    /* a sealed payload carries its row's id ("$id"); else the ids are made here */
    char(*ids)[OQ_UUID_LEN + 1] = NULL;
    if (!secretbox_enabled(sb)) {
        ids = oq_calloc(n, sizeof(*ids));
        oq_uuids(ids, n);
    }
    bool *behind = behind_in_batch(ops, n);
    const struct trace *last_trace = NULL;
    struct trace_columns tc;
    oq_buf_str(&b, "[");
    for (size_t i = 0; i < n; i++) {
        const struct op_new *op = &ops[i];
        oq_buf_str(&b, i ? ",{\"p\":" : "{\"p\":");
        char *payload = secretbox_seal_payload(sb, op->payload_json);
        oq_buf_str(&b, payload);
        free(payload);
        add_json_str(&b, ",\"t\":", op->operation_type);
        add_int(&b, ",\"pr\":", true, op->priority);
        add_json_str(&b, ",\"g\":", op->group_key);
        add_int(&b, ",\"ma\":", true, op->max_attempts);
        add_real(&b, ",\"d\":", op->delay_s >= 0, op->delay_s);
        add_real(&b, ",\"ex\":", op->expires_in_s >= 0, op->expires_in_s);
        add_int(&b, ",\"mr\":", op->max_retry_duration_s > 0, op->max_retry_duration_s);
        add_json_str(&b, ",\"cs\":", op->conflict_strategy);
        if (op->trace != NULL) {
            if (op->trace != last_trace) /* a batch's operations share the request's */
                trace_to_columns(op->trace, &tc);
            last_trace = op->trace;
            add_json_str(&b, ",\"ti\":", tc.id);
            oq_buf_str(&b, ",\"tn\":");
            oq_buf_str(&b, tc.span);
            oq_buf_str(&b, ",\"tf\":");
            oq_buf_str(&b, tc.flags);
        }
        add_json_str(&b, ",\"ts\":", op->tracestate);
        add_json_str(&b, ",\"rq\":", op->request_id);
        if (ids != NULL) {
            oq_buf_str(&b, ",\"id\":\"");
            oq_buf_str(&b, ids[i]);
            oq_buf_str(&b, "\"");
        }
        if (behind != NULL && behind[i])
            oq_buf_str(&b, ",\"gb\":true");
        oq_buf_str(&b, "}");
    }
    free(ids);
    free(behind);
    oq_buf_str(&b, "]");
    return b.data;
}

/* The many-row insert announces nothing itself: its caller wakes the other instances once the
 * operations are committed (ops_wake_others), or, inside the caller's own transaction, the
 * insert asks for the NOTIFY to go with that commit. */
int ops_enqueue_many(struct db_conn *c, const struct op_new *ops, size_t n, struct op_created *out,
                     struct err *e)
{
    char *rows = many_json(c->box, ops, n);
    const char *params[] = {rows};
    bool ids_only = true;
    for (size_t i = 0; i < n && ids_only; i++)
        ids_only = ops[i].ids_only;
    PGresult *r = db_exec(c, ids_only ? &enqueue_many_ids_stmt : &enqueue_many_stmt, 1, params, e);
    free(rows);
    if (r == NULL)
        return -1;
    OQ_ASSERT((size_t)PQntuples(r) == n);
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].id, sizeof(out[i].id), "%s", PQgetvalue(r, (int)i, 0));
        out[i].json = ops[i].ids_only
                          ? NULL
                          : secretbox_open_ops(c->box, oq_strdup(PQgetvalue(r, (int)i, 1)));
        out[i].created = true;
        out[i].xid = strtoull(PQgetvalue(r, (int)i, 2), NULL, 10);
    }
    PQclear(r);
    if (PQtransactionStatus(c->pg) == PQTRANS_INTRANS) /* the caller commits */
        return db_run(c, &wake_in_stmt, 0, NULL, e);
    return 0;
}

void ops_wake_others(struct db_conn *c)
{
    struct err e = {0};
    if (db_command(c, WAKE_APART, &e) != 0)
        log_json(LOG_WARN, "could not wake the other instances",
                 json_pack("{s:s, s:s}", "error", e.message, "detail", e.detail));
}

static void fmt_int(char *buf, size_t n, long long v)
{
    snprintf(buf, n, "%lld", v);
}

int ops_enqueue(struct db_conn *c, const struct op_new *op, struct op_created *out, struct err *e)
{
    char prio[16], attempts[16], delay[32], expires[32], window[16];
    fmt_int(prio, sizeof(prio), op->priority);
    fmt_int(attempts, sizeof(attempts), op->max_attempts);
    snprintf(delay, sizeof(delay), "%.6f", op->delay_s);
    snprintf(expires, sizeof(expires), "%.6f", op->expires_in_s);
    fmt_int(window, sizeof(window), op->max_retry_duration_s);
    char *payload = secretbox_seal_payload(c->box, op->payload_json);
    struct trace_columns tc;
    if (op->trace != NULL)
        trace_to_columns(op->trace, &tc);
    const char *params[] = {op->operation_type,
                            payload,
                            prio,
                            op->dedup_key,
                            op->group_key,
                            attempts,
                            op->delay_s >= 0 ? delay : NULL,
                            op->depends_on,
                            op->expires_in_s >= 0 ? expires : NULL,
                            op->max_retry_duration_s > 0 ? window : NULL,
                            op->conflict_strategy,
                            op->trace ? tc.id : NULL,
                            op->trace ? tc.span : NULL,
                            op->trace ? tc.flags : NULL,
                            op->tracestate,
                            op->request_id};
    PGresult *r = db_exec(c, op->ids_only ? &enqueue_ids_stmt : &enqueue_stmt, 16, params, e);
    free(payload);
    if (r == NULL)
        return -1;
    snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(r, 0, 0));
    out->json = op->ids_only ? NULL : secretbox_open_ops(c->box, oq_strdup(PQgetvalue(r, 0, 1)));
    out->created = PQgetvalue(r, 0, 2)[0] == 't';
    out->xid = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    PQclear(r);
    return 0;
}

static bool all_simple(const struct op_new *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!ops_is_simple(&ops[i]))
            return false;
    }
    return true;
}

/* Drops the documents of the first n slots of out. */
static void free_created(struct op_created *out, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        free(out[j].json);
        out[j].json = NULL;
    }
}

int ops_enqueue_batch_in(struct db_conn *c, const struct op_new *ops, size_t n,
                         struct op_created *out, long *failed_index, struct err *e)
{
    *failed_index = -1;
    if (all_simple(ops, n))
        return ops_enqueue_many(c, ops, n, out, e);
    for (size_t i = 0; i < n; i++) {
        if (ops_enqueue(c, &ops[i], &out[i], e) != 0) {
            *failed_index = (long)i;
            free_created(out, i);
            return -1;
        }
    }
    return 0;
}

int ops_enqueue_batch(struct db_conn *c, const struct op_new *ops, size_t n, struct op_created *out,
                      long *failed_index, struct err *e)
{
    *failed_index = -1;
    if (all_simple(ops, n)) { /* one statement: its own transaction */
        if (ops_enqueue_many(c, ops, n, out, e) != 0)
            return -1;
        ops_wake_others(c);
        return 0;
    }
    if (db_command(c, "BEGIN", e) != 0)
        return -1;
    if (ops_enqueue_batch_in(c, ops, n, out, failed_index, e) != 0)
        return -1; /* db_release() rolls the open transaction back */
    if (db_command(c, "COMMIT", e) == 0)
        return 0;
    free_created(out, n);
    return -1;
}

char *ops_get(struct db_conn *c, const char *id, struct err *e)
{
    PGresult *r = db_exec_by_id(c, &get_stmt, "operation", id, e);
    if (r == NULL)
        return NULL;
    char *json = secretbox_open_ops(c->box, oq_strdup(PQgetvalue(r, 0, 0)));
    PQclear(r);
    return json;
}

char *ops_attempts(struct db_conn *c, const char *id, struct err *e)
{
    PGresult *r = db_exec_by_id(c, &attempts_stmt, "operation", id, e);
    if (r == NULL)
        return NULL;
    char *json = oq_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return json;
}

int ops_delete(struct db_conn *c, const char *id, struct err *e)
{
    PGresult *r = db_exec_by_id(c, &delete_stmt, "operation", id, e);
    if (r == NULL)
        return -1;
    int rc = 0;
    if (strcmp(PQgetvalue(r, 0, 1), "0") == 0)
        rc = err_set(e, ERR_CONFLICT, "the operation is in_progress; it cannot be deleted now");
    PQclear(r);
    return rc;
}

char *ops_retry(struct db_conn *c, const char *id, struct err *e)
{
    PGresult *r = db_exec_by_id(c, &retry_stmt, "operation", id, e);
    if (r == NULL) {
        if (e->code == ERR_CONFLICT) /* the unique index on live dedup keys */
            err_set(e, ERR_CONFLICT, "another live operation holds this operation's dedup_key");
        return NULL;
    }
    char *json = NULL;
    if (PQgetisnull(r, 0, 1))
        err_set(e, ERR_CONFLICT,
                "only failed or conflict operations can be retried (this one is %s)",
                PQgetvalue(r, 0, 0));
    else
        json = secretbox_open_ops(c->box, oq_strdup(PQgetvalue(r, 0, 1)));
    PQclear(r);
    return json;
}

/* The leading rows that carry their document, at most limit of them. */
static int page_rows(PGresult *r, int limit, size_t *bytes)
{
    int n = 0;
    *bytes = 0;
    while (n < PQntuples(r) && n < limit && !PQgetisnull(r, n, 0))
        *bytes += (size_t)PQgetlength(r, n++, 0) + 1;
    return n;
}

/* Appends "[op,...]" from the first n rows: each document is copied once, straight from the
 * result; a sealed payload is opened one operation at a time. */
static void append_ops(const struct secretbox *sb, struct oq_buf *body, PGresult *r, int n,
                       size_t bytes)
{
    oq_buf_reserve(body, bytes + 2 + 128); /* 128: room for the caller's closing fields */
    oq_buf_str(body, "[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            oq_buf_str(body, ",");
        if (!secretbox_enabled(sb)) {
            oq_buf_add(body, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
            continue;
        }
        char *op = secretbox_open_ops(sb, oq_strdup(PQgetvalue(r, i, 0)));
        oq_buf_str(body, op);
        free(op);
    }
    oq_buf_str(body, "]");
}

int ops_list(struct db_conn *c, const struct list_query *q, struct oq_buf *body,
             struct list_page *out, struct err *e)
{
    char neg_prio[16], seq[32], limit[16], max_bytes[32];
    /* The first page starts below every key: -priority >= -1000 and seq >= 1. */
    fmt_int(neg_prio, sizeof(neg_prio), q->has_cursor ? -(long long)q->after_priority : -1001);
    fmt_int(seq, sizeof(seq), q->has_cursor ? q->after_seq : 0);
    fmt_int(limit, sizeof(limit), (long long)q->limit + 1); /* one more tells if a page follows */
    fmt_int(max_bytes, sizeof(max_bytes), q->max_bytes);
    const char *params[] = {q->statuses, q->operation_type, neg_prio, seq, limit, max_bytes};
    PGresult *r = db_exec(c, &list_stmt, 6, params, e);
    if (r == NULL)
        return -1;
    size_t bytes;
    int n = page_rows(r, q->limit, &bytes);
    out->has_more = PQntuples(r) > n;
    append_ops(c->box, body, r, n, bytes);
    if (n > 0) {
        out->last_priority = atoi(PQgetvalue(r, n - 1, 1));
        out->last_seq = atoll(PQgetvalue(r, n - 1, 2));
    }
    PQclear(r);
    return 0;
}

static char *single_text(struct db_conn *c, const struct db_stmt *s, int n,
                         const char *const *params, struct err *e)
{
    PGresult *r = db_exec(c, s, n, params, e);
    if (r == NULL)
        return NULL;
    char *text = oq_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return text;
}

static long long single_count(struct db_conn *c, const struct db_stmt *s, int n,
                              const char *const *params, struct err *e)
{
    char *text = single_text(c, s, n, params, e);
    if (text == NULL)
        return -1;
    long long v = atoll(text);
    free(text);
    return v;
}

long long ops_clear_completed(struct db_conn *c, double older_than_s, struct err *e)
{
    char secs[32];
    snprintf(secs, sizeof(secs), "%.6f", older_than_s);
    const char *params[] = {older_than_s >= 0 ? secs : NULL};
    return single_count(c, &clear_stmt, 1, params, e);
}

/* The filter as the statements' $1..$7 (secs: room for older_than_s as text). */
static void bulk_params(const struct bulk_filter *f, char secs[32], const char *params[7])
{
    snprintf(secs, 32, "%.6f", f->older_than_s);
    params[0] = f->status;
    params[1] = f->operation_type;
    params[2] = f->upstream;
    params[3] = f->created_before;
    params[4] = f->created_after;
    params[5] = f->error_contains;
    params[6] = f->older_than_s >= 0 ? secs : NULL;
}

static long long bulk_run(struct db_conn *c, const struct db_stmt *s, const struct bulk_filter *f,
                          struct err *e)
{
    char secs[32];
    const char *params[7];
    bulk_params(f, secs, params);
    return single_count(c, s, 7, params, e);
}

long long ops_bulk_count(struct db_conn *c, bool retry, const struct bulk_filter *f, struct err *e)
{
    return bulk_run(c, retry ? &bulk_retry_count_stmt : &bulk_delete_count_stmt, f, e);
}

long long ops_bulk_retry(struct db_conn *c, const struct bulk_filter *f, struct err *e)
{
    return bulk_run(c, &bulk_retry_stmt, f, e);
}

long long ops_bulk_delete(struct db_conn *c, const struct bulk_filter *f, struct err *e)
{
    return bulk_run(c, &bulk_delete_stmt, f, e);
}

/* Locks the conflict and returns its opened result (new reference; {} when there is none), or
 * NULL with *e. row_id: the id as the database writes it (what seals are bound to; the path
 * may spell it in capitals). */
static json_t *locked_conflict_result(struct db_conn *c, const char *id, char row_id[37],
                                      struct err *e)
{
    PGresult *r = db_exec_by_id(c, &resolve_lock_stmt, "operation", id, e);
    if (r == NULL)
        return NULL;
    json_t *result = NULL;
    enum op_status status;
    if (op_status_parse(PQgetvalue(r, 0, 0), &status) != 0 || status != OP_CONFLICT) {
        err_set(e, ERR_CONFLICT, "only a conflict can be resolved (this operation is %s)",
                PQgetvalue(r, 0, 0));
    } else {
        snprintf(row_id, 37, "%s", PQgetvalue(r, 0, 2));
        char *text = PQgetisnull(r, 0, 1)
                         ? oq_strdup("{}")
                         : secretbox_open_json(c->box, PQgetvalue(r, 0, 1), row_id, "result");
        result = text ? jsonload_text(text) : NULL;
        if (result == NULL)
            err_set(e, ERR_UNDECRYPTABLE,
                    "the stored conflict cannot be decrypted (another "
                    "key, another row's ciphertext, or altered); it cannot be resolved");
        free(text);
    }
    PQclear(r);
    return result;
}

/* {"choice","data","etag"}: data (a JSON text or NULL) kept as the client wrote it. */
static char *resolution_text(const char *choice, const char *data, const json_t *result)
{
    json_t *head = json_pack("{s:s, s:s?}", "choice", choice, "etag",
                             json_string_value(json_object_get(result, "remote_etag")));
    char *h = jsontext(head);
    json_decref(head);
    struct oq_buf b = {0};
    oq_buf_str(&b, "{\"data\":");
    oq_buf_str(&b, data ? data : "null");
    oq_buf_str(&b, ",");
    oq_buf_str(&b, h + 1); /* the rest of {"choice":...,"etag":...} */
    free(h);
    return b.data;
}

char *ops_resolve(struct db_conn *c, const char *id, const char *resolution, const char *data,
                  struct err *e)
{
    if (db_command(c, "BEGIN", e) != 0)
        return NULL;
    char row_id[37];
    json_t *old = locked_conflict_result(c, id, row_id, e);
    if (old == NULL)
        return NULL; /* db_release() rolls the open transaction back */
    char *result = NULL;
    if (strcmp(resolution, "remote") == 0) { /* completed now: nothing is sent */
        json_t *done =
            json_pack("{s:O?, s:s, s:O?}", "status_code", json_object_get(old, "status_code"),
                      "resolution", "manual_remote", "remote", json_object_get(old, "remote"));
        char *plain = jsontext(done);
        json_decref(done);
        result = secretbox_seal_json(c->box, plain, row_id, "result");
        free(plain);
    }
    char *plain = resolution_text(resolution, data, old);
    char *sealed = secretbox_seal_json(c->box, plain, row_id, "resolution");
    free(plain);
    json_decref(old);
    const char *params[] = {id, resolution, result, sealed};
    PGresult *r = db_exec(c, &resolve_stmt, 4, params, e);
    free(result);
    free(sealed);
    if (r == NULL)
        return NULL;
    char *json =
        PQntuples(r) == 1 ? secretbox_open_ops(c->box, oq_strdup(PQgetvalue(r, 0, 0))) : NULL;
    PQclear(r);
    if (json == NULL)
        err_set(e, ERR_CONFLICT, "the operation left conflict while it was being resolved");
    else if (db_command(c, "COMMIT", e) != 0) {
        free(json);
        return NULL;
    }
    return json;
}
