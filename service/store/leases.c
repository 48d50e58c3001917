#include "store/leases.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/jsonload.h"
#include "core/jsontext.h"
#include "core/vocab.h"
#include "store/secretbox.h"
#include "core/pgarray.h"

/* What makes an operation claimable: due, not expired, its upstream not paused, the first
 * live operation of its group, every dependency completed. The group's first is the first seq
 * of its live ones, read from offline_operations_group (one index entry); a NOT EXISTS of an
 * earlier one was planned as a scan of the table that stops at the first match, which it
 * reached early or never: a sync pass's snapshot over 200,000 operations behind a busy head,
 * stored newest first, ran past 30 s (minutes at 1,000,000). ORDER BY seq LIMIT 1 reads the
 * same entry as min(seq) and plans faster (the min/max rewrite plans such a subquery twice):
 * the claim, planned at every call, took 0.74 ms to plan and now 0.63-0.69 with this alone. */
#define CLAIMABLE(PAUSED, IDS)                                                                     \
    "o.status = 'pending' AND o.next_attempt_at <= now() "                                         \
    "AND (o.expires_at IS NULL OR o.expires_at > now()) "                                          \
    "AND coalesce(o.payload ->> 'upstream', 'default') <> ALL (" PAUSED "::text[]) "               \
    "AND (o.group_key IS NULL OR (SELECT g.seq FROM offline_operations g "                         \
    "     WHERE g.group_key = o.group_key AND g.status IN " OQ_SQL_LIVE_STATUSES                   \
    "     ORDER BY g.seq LIMIT 1) = o.seq) "                                                       \
    "AND (o.depends_on IS NULL OR NOT EXISTS (SELECT 1 FROM offline_operations d "                 \
    "     WHERE d.id = ANY (o.depends_on) AND d.status <> 'completed')) "                          \
    "AND (" IDS "::uuid[] IS NULL OR o.id = ANY (" IDS "::uuid[])) "

/* Workers run work on their own only with auto-sync on (read in the claim's own snapshot, so
 * a stop is exact); with it off, only the operations of a sync pass ($4). */
#define AUTO_OR_PASS " AND ($4::uuid[] IS NOT NULL OR offlineq_auto_sync()) "

#define TAKE_LEASE                                                                                 \
    "UPDATE offline_operations o SET status = 'in_progress', lease_owner = $1, "                   \
    "  lease_expires_at = now() + make_interval(secs => $3::int), updated_at = now(), "            \
    "  first_attempt_at = coalesce(o.first_attempt_at, now()) "                                    \
    "FROM c WHERE o.id = c.id "                                                                    \
    "RETURNING o.id, o.operation_type, o.payload::text, o.retry_count, o.max_attempts, "           \
    "  coalesce(o.file_id::text, ''), o.seq, coalesce(o.conflict_strategy, ''), "                  \
    "  o.resolution::text, extract(epoch FROM o.created_at), o.priority, "                         \
    "  CASE WHEN o.trace_id IS NULL THEN '' ELSE '00-' || replace(o.trace_id::text, '-', '') "     \
    "    || '-' || lpad(to_hex(o.trace_span), 16, '0') "                                           \
    "    || '-' || lpad(to_hex(o.trace_flags::int), 2, '0') END, "                                 \
    "  coalesce(o.tracestate, ''), coalesce(jsonb_array_length(o.attempts), 0)"

/* A claim reads two short ranges: r, operations due since they were enqueued, in execution
 * order (offline_operations_ready); s, operations scheduled for later (a delay, a backoff) that
 * are due now, in due order (offline_operations_scheduled). Neither walks operations that are
 * not due yet. Each takes up to LIMIT rows with their locks; c keeps the first LIMIT of both in
 * execution order (a lock taken and not used is held until the claim commits). */
#define TWO_RANGES(WHERE, LIMIT, C_ORDER)                                                          \
    "WITH r AS (SELECT o.id, o.priority, o.seq FROM offline_operations o "                         \
    "  WHERE o.next_attempt_at <= o.created_at AND NOT o.group_held AND " WHERE                    \
    "  ORDER BY " C_ORDER " LIMIT " LIMIT " FOR UPDATE SKIP LOCKED), "                             \
    "s AS (SELECT o.id, o.priority, o.seq FROM offline_operations o "                              \
    "  WHERE o.next_attempt_at > o.created_at AND NOT o.group_held AND " WHERE                     \
    "  ORDER BY o.next_attempt_at LIMIT " LIMIT " FOR UPDATE SKIP LOCKED), "                       \
    "c AS (SELECT o.id FROM (SELECT * FROM r UNION ALL SELECT * FROM s) o "                        \
    "  ORDER BY " C_ORDER " LIMIT " LIMIT ") "

static const struct db_stmt claim_stmt = {
    "leases_claim",
    TWO_RANGES(CLAIMABLE("$2", "$4") AUTO_OR_PASS, "$5::int", "-o.priority, o.seq") TAKE_LEASE};

static const struct db_stmt claim_batch_stmt = {
    "leases_claim_batch",
    TWO_RANGES(CLAIMABLE("$2", "$4") AUTO_OR_PASS
               "  AND o.operation_type = $5 AND coalesce(o.payload ->> 'upstream', 'default') = $6 "
               "  AND coalesce(o.payload ->> 'endpoint', $7) = $8 ",
               "$9::int", "o.seq") TAKE_LEASE};

/* The operations a sync pass takes: those a claim could take now. Held ones (behind their
 * group's head) are not, and NOT group_held drops them before any per-row check. */
static const struct db_stmt snapshot_stmt = {
    "queue_snapshot",
    "SELECT coalesce(array_agg(o.id)::text, '{}'), count(*), offlineq_ts(now()) "
    "FROM offline_operations o WHERE NOT o.group_held AND " CLAIMABLE("$1", "NULL")};

/* $1 the pass's ids, $2 when it started: untouched pending ones are still to do. */
static const struct db_stmt progress_stmt = {
    "queue_progress",
    "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = "
    "'failed'), "
    "  count(*) FILTER (WHERE status = 'conflict'), "
    "  count(*) FILTER (WHERE status = 'pending' AND updated_at >= $2::timestamptz), "
    "  count(*) FILTER (WHERE status = 'in_progress' OR "
    "                   (status = 'pending' AND updated_at < $2::timestamptz)), "
    "  coalesce(json_agg(json_build_object('id', id, 'error', error_message)) "
    "    FILTER (WHERE status IN ('failed', 'conflict')), '[]')::text "
    "FROM offline_operations WHERE id = ANY ($1::uuid[])"};

#define FENCE " WHERE id = ANY ($1::uuid[]) AND status = 'in_progress' AND lease_owner = $2 "
#define UNLEASE " lease_owner = NULL, lease_expires_at = NULL, updated_at = now() "

/* Completions with a result each: $1 [{"id","result"}], one statement for a whole claim. */
static const struct db_stmt complete_many_stmt = {
    "leases_complete_many",
    "UPDATE offline_operations o SET status = 'completed', completed_at = now(), "
    "  result = u.result, error_message = NULL, " UNLEASE ", "
    "  attempts = CASE WHEN u.attempt IS NULL THEN o.attempts "
    "    ELSE coalesce(o.attempts, '[]') || jsonb_build_array(jsonb_build_object("
    "      'n', coalesce(jsonb_array_length(o.attempts), 0) + 1) || u.attempt) END "
    "FROM jsonb_to_recordset($1::jsonb) AS u(id uuid, result jsonb, attempt jsonb) "
    "WHERE o.id = u.id AND o.status = 'in_progress' AND o.lease_owner = $2 "
    "RETURNING o.id, o.status, o.retry_count"};

/* Every outcome is one fenced UPDATE of this shape: SET what the outcome changes and give the
 * lease up, only where this worker still holds it; RETURNING what log_outcomes and count_rows
 * read. */
#define OUTCOME_UPDATE(SET)                                                                        \
    "UPDATE offline_operations SET " SET ", " UNLEASE FENCE "RETURNING id, status, retry_count"

/* Appends the attempt P (a JSON object; SQL NULL: no request was made) to the operation's
 * record with its number; EXTRA (an object) is merged over it. */
#define APPEND_ATTEMPT_X(P, EXTRA)                                                                 \
    "attempts = CASE WHEN " P "::jsonb IS NULL THEN attempts "                                     \
    "  ELSE coalesce(attempts, '[]') || jsonb_build_array(jsonb_build_object("                     \
    "    'n', coalesce(jsonb_array_length(attempts), 0) + 1) || " P "::jsonb || " EXTRA ") END"
#define APPEND_ATTEMPT(P) APPEND_ATTEMPT_X(P, "'{}'::jsonb")

#define COMPLETED_SET                                                                              \
    "status = 'completed', completed_at = now(), result = $3::jsonb, error_message = "             \
    "NULL, " APPEND_ATTEMPT("$4")

static const struct db_stmt complete_stmt = {"queue_complete", OUTCOME_UPDATE(COMPLETED_SET)};

/* A completion that resolved a conflict also counts in stats.conflicts_resolved. */
static const struct db_stmt complete_resolved_stmt = {
    "queue_complete_resolved",
    "WITH u AS (" OUTCOME_UPDATE(
        COMPLETED_SET) ", operation_type), "
                       "c AS (INSERT INTO offlineq_op_counts (operation_type, status, n) "
                       "  SELECT operation_type, '#resolved', count(*) FROM u GROUP BY 1) "
                       "SELECT id, status, retry_count FROM u"};

/* A window overrun is judged on the next attempt's time: no attempt starts past it. */
#define WINDOW_OVER                                                                                \
    "(max_retry_duration_s IS NOT NULL AND now() + make_interval(secs => $4::float8) > "           \
    " first_attempt_at + make_interval(secs => max_retry_duration_s))"

static const struct db_stmt retry_stmt = {
    "queue_retry",
    OUTCOME_UPDATE("retry_count = retry_count + 1, "
                   "  status = CASE WHEN retry_count + 1 >= max_attempts OR " WINDOW_OVER
                   "    THEN 'failed' ELSE 'pending' END, "
                   "  error_message = CASE WHEN retry_count + 1 < max_attempts AND " WINDOW_OVER
                   "    THEN 'retry window of ' || max_retry_duration_s || ' s exhausted: ' || $3 "
                   "    ELSE $3 END, "
                   "  next_attempt_at = now() + make_interval(secs => $4::float8), result = "
                   "$5::jsonb, " APPEND_ATTEMPT_X(
                       "$6", "CASE WHEN retry_count + 1 >= max_attempts OR " WINDOW_OVER
                             " THEN '{\"outcome\": \"failed\"}'::jsonb ELSE '{}'::jsonb END"))};

static const struct db_stmt fail_stmt = {
    "queue_fail", OUTCOME_UPDATE("status = 'failed', retry_count = retry_count + 1, "
                                 "error_message = $3, result = $4::jsonb, " APPEND_ATTEMPT("$5"))};

static const struct db_stmt conflict_stmt = {
    "queue_conflict",
    OUTCOME_UPDATE(
        "status = 'conflict', error_message = $3, result = $4::jsonb, " APPEND_ATTEMPT("$5"))};

static const struct db_stmt release_stmt = {
    "queue_release", OUTCOME_UPDATE("status = 'pending', next_attempt_at = now() + "
                                    "make_interval(secs => $3::float8), " APPEND_ATTEMPT("$4"))};

static const struct db_stmt heartbeat_stmt = {"leases_heartbeat",
                                              "UPDATE offline_operations SET lease_expires_at = "
                                              "now() + make_interval(secs => $3::int) " FENCE};

static const struct db_stmt sweep_stmt = {
    "leases_sweep",
    "WITH reaped AS ("
    "  UPDATE offline_operations SET lease_expiries = lease_expiries + 1, "
    "    status = CASE WHEN lease_expiries + 1 >= $1::int THEN 'failed' ELSE 'pending' END, "
    "    error_message = CASE WHEN lease_expiries + 1 >= $1::int "
    "      THEN 'lease expired ' || lease_expiries + 1 || ' times; the worker running it died' "
    "      ELSE 'lease expired: the worker holding it stopped (no attempt counted)' END, "
    "    attempts = coalesce(attempts, '[]') || jsonb_build_array(jsonb_build_object("
    "      'n', coalesce(jsonb_array_length(attempts), 0) + 1, "
    "      'started_at', offlineq_ts(updated_at), "
    "      'duration_ms', round(extract(epoch FROM now() - updated_at) * 1000), "
    "      'outcome', 'lease_expired', 'status_code', NULL, "
    "      'error', 'the lease of ' || lease_owner || ' ran out before an outcome was recorded', "
    "      'response_excerpt', NULL, 'instance', split_part(lease_owner, '/', 1))), "
    "    next_attempt_at = now(), " UNLEASE
    "  WHERE status = 'in_progress' AND lease_expires_at < now() RETURNING 1), "
    "expired AS ("
    "  UPDATE offline_operations SET status = 'failed', updated_at = now(), "
    "    error_message = 'expired at ' || offlineq_ts(expires_at) || ' before it could run' "
    "  WHERE status = 'pending' AND expires_at <= now() RETURNING 1), "
    "orphaned AS ("
    "  UPDATE offline_operations o SET status = 'failed', updated_at = now(), "
    "    error_message = 'dependency ' || d.id || ' failed' "
    "  FROM offline_operations d "
    "  WHERE o.status = 'pending' AND o.depends_on IS NOT NULL AND d.id = ANY (o.depends_on) "
    "    AND d.status = 'failed' AND (o.expires_at IS NULL OR o.expires_at > now()) RETURNING 1) "
    "SELECT (SELECT count(*) FROM reaped), (SELECT count(*) FROM expired), "
    "  (SELECT count(*) FROM orphaned)"};

/* The groups whose first live operation is still held (an enqueue into the group raced the
 * completion of its head): each live group is found with one probe of offline_operations_group
 * (a loose index scan), its first live operation with another. A head locked by someone
 * else (a DELETE, a claim) is skipped until the next round: waiting on it while holding the
 * other heads deadlocks with a DELETE that locks them in another order. */
static const struct db_stmt release_groups_stmt = {
    "leases_release_groups",
    "WITH RECURSIVE k(key) AS ("
    "  SELECT min(group_key) FROM offline_operations "
    "  WHERE group_key IS NOT NULL AND status IN " OQ_SQL_LIVE_STATUSES " "
    "  UNION ALL "
    "  SELECT (SELECT min(g.group_key) FROM offline_operations g "
    "          WHERE g.group_key > k.key AND g.status IN " OQ_SQL_LIVE_STATUSES ") "
    "  FROM k WHERE k.key IS NOT NULL), "
    "heads AS (SELECT h.id FROM k CROSS JOIN LATERAL ("
    "    SELECT x.id, x.group_held FROM offline_operations x "
    "    WHERE x.group_key = k.key AND x.status IN " OQ_SQL_LIVE_STATUSES " "
    "    ORDER BY x.seq LIMIT 1) h WHERE k.key IS NOT NULL AND h.group_held), "
    "free AS (SELECT o.id FROM offline_operations o WHERE o.id IN (SELECT id FROM heads) "
    "  AND o.group_held FOR UPDATE SKIP LOCKED) "
    "UPDATE offline_operations o SET group_held = false FROM free WHERE o.id = free.id"};

int leases_release_groups(struct db_conn *c, struct err *e)
{
    return db_run(c, &release_groups_stmt, 0, NULL, e);
}

static void fill_job(const struct secretbox *sb, PGresult *r, int row, struct job *job)
{
    memset(job, 0, sizeof(*job));
    snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(r, row, 0));
    snprintf(job->operation_type, sizeof(job->operation_type), "%s", PQgetvalue(r, row, 1));
    char *payload = secretbox_open_json(sb, PQgetvalue(r, row, 2), job->id, "payload");
    job->payload = payload ? jsonload_text(payload) : NULL;
    /* sealed with another key, bound to another row, or not loadable: fails, never runs blind */
    job->unreadable = job->payload == NULL;
    free(payload);
    if (job->payload == NULL)
        job->payload = json_object();
    job->retry_count = atoi(PQgetvalue(r, row, 3));
    job->max_attempts = atoi(PQgetvalue(r, row, 4));
    snprintf(job->file_id, sizeof(job->file_id), "%s", PQgetvalue(r, row, 5));
    snprintf(job->conflict_strategy, sizeof(job->conflict_strategy), "%s", PQgetvalue(r, row, 7));
    char *resolution = PQgetisnull(r, row, 8)
                           ? NULL
                           : secretbox_open_json(sb, PQgetvalue(r, row, 8), job->id, "resolution");
    job->resolution = resolution ? jsonload_text(resolution) : NULL;
    if (!PQgetisnull(r, row, 8) && job->resolution == NULL)
        job->unreadable = true; /* an operator's choice that does not open is never ignored */
    free(resolution);
    job->created_s = strtod(PQgetvalue(r, row, 9), NULL);
    snprintf(job->traceparent, sizeof(job->traceparent), "%s", PQgetvalue(r, row, 11));
    snprintf(job->tracestate, sizeof(job->tracestate), "%s", PQgetvalue(r, row, 12));
    job->attempts_before = atoi(PQgetvalue(r, row, 13));
}

void leases_job_free(struct job *job)
{
    json_decref(job->payload);
    json_decref(job->resolution);
    job->payload = NULL;
    job->resolution = NULL;
}

/* RETURNING has no order: put rows back in execution order, (-priority, seq). */
static int by_order(const void *a, const void *b)
{
    const long long *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static int fill_jobs_in_order(const struct secretbox *sb, PGresult *r, struct job *jobs)
{
    int n = PQntuples(r);
    long long(*order)[3] = oq_calloc((size_t)n + 1, sizeof(*order));
    for (int i = 0; i < n; i++) {
        order[i][0] = -atoll(PQgetvalue(r, i, 10));
        order[i][1] = atoll(PQgetvalue(r, i, 6));
        order[i][2] = i;
    }
    qsort(order, (size_t)n, sizeof(*order), by_order);
    for (int i = 0; i < n; i++)
        fill_job(sb, r, (int)order[i][2], &jobs[i]);
    free(order);
    return n;
}

/* Claimed rows still in plaintext (from offlineq.enqueue(), or older than the key) are sealed
 * now, before they run; a failure here is logged and the claim goes on. */
static void reseal_claimed(struct db_conn *c, PGresult *r)
{
    if (!secretbox_enabled(c->box))
        return;
    for (int i = 0; i < PQntuples(r); i++) {
        struct err e = {0};
        const char *id = PQgetvalue(r, i, 0);
        if (secretbox_reseal(c, id, "payload", PQgetvalue(r, i, 2), &e) != 0 ||
            (!PQgetisnull(r, i, 8) &&
             secretbox_reseal(c, id, "resolution", PQgetvalue(r, i, 8), &e) != 0))
            log_json(LOG_WARN, "a claimed operation could not be sealed yet",
                     json_pack("{s:s, s:s}", "id", id, "error", e.message));
    }
}

/* Runs a claim statement; its rows into jobs in execution order, sealed where still plain. */
static int run_claim(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params,
                     struct job *jobs, struct err *e)
{
    PGresult *r = db_exec(c, s, n, params, e);
    if (r == NULL)
        return -1;
    int got = fill_jobs_in_order(c->box, r, jobs);
    reseal_claimed(c, r);
    PQclear(r);
    return got;
}

int leases_claim(struct db_conn *c, const struct claim_filter *f, struct job *jobs, int max,
                 struct err *e)
{
    char lease[16], limit[16];
    snprintf(lease, sizeof(lease), "%d", f->lease_s);
    snprintf(limit, sizeof(limit), "%d", max);
    const char *params[] = {f->owner, f->paused, lease, f->only_ids, limit};
    return run_claim(c, &claim_stmt, 5, params, jobs, e);
}

int leases_claim_batch(struct db_conn *c, const struct claim_filter *f, const struct job *first,
                       const char *default_endpoint, struct job *jobs, int max, struct err *e)
{
    if (max <= 0)
        return 0;
    char lease[16], limit[16];
    snprintf(lease, sizeof(lease), "%d", f->lease_s);
    snprintf(limit, sizeof(limit), "%d", max);
    const char *upstream = json_string_value(json_object_get(first->payload, "upstream"));
    const char *endpoint = json_string_value(json_object_get(first->payload, "endpoint"));
    const char *params[] = {f->owner,
                            f->paused,
                            lease,
                            f->only_ids,
                            first->operation_type,
                            upstream ? upstream : "default",
                            default_endpoint,
                            endpoint ? endpoint : default_endpoint,
                            limit};
    return run_claim(c, &claim_batch_stmt, 9, params, jobs, e);
}

/* {id,id,...} for the fence */
static char *id_array(const struct job *jobs, size_t n)
{
    struct pgarray ids;
    pgarray_init(&ids);
    for (size_t i = 0; i < n; i++)
        pgarray_add(&ids, jobs[i].id);
    return pgarray_finish(&ids);
}

/* The status column (1) of an outcome's RETURNING row; OP_N_STATUSES if it is none. */
static enum op_status row_status(PGresult *r, int row)
{
    enum op_status st;
    return op_status_parse(PQgetvalue(r, row, 1), &st) == 0 ? st : OP_N_STATUSES;
}

static void log_outcomes(PGresult *r, const struct job *jobs, const struct exec_result *res)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *status = PQgetvalue(r, i, 1);
        bool failed = row_status(r, i) == OP_FAILED;
        enum log_level lvl = failed ? LOG_WARN : LOG_DEBUG;
        if (!log_enabled(lvl))
            continue;
        log_json(lvl, failed ? "operation failed" : "operation outcome",
                 json_pack("{s:s, s:s, s:s, s:i, s:s}", "event",
                           failed ? "operation.failed" : "operation.recorded", "id",
                           PQgetvalue(r, i, 0), "status", status, "retry_count",
                           atoi(PQgetvalue(r, i, 2)), "error", res->error));
    }
}

static void count_rows(PGresult *r, const struct exec_result *res, struct tally *t)
{
    for (int i = 0; t && i < PQntuples(r); i++) {
        switch (row_status(r, i)) {
        case OP_COMPLETED:
            t->completed++;
            break;
        case OP_FAILED:
            t->failed++;
            break;
        case OP_CONFLICT:
            t->conflict++;
            break;
        default: /* pending again */
            if (res->outcome == OUTCOME_RETRY)
                t->retried++;
            else
                t->released++;
        }
    }
}

/* The attempt of res as its record holds it (without "n", which the statement numbers), or
 * NULL when no request was made. With encryption at rest the answer's excerpt is not kept: it
 * is the upstream's data, and only the sealed result may hold that. */
static char *attempt_text(const struct db_conn *c, const char *owner, const struct exec_result *res)
{
    const char *outcome = attempt_outcome(res);
    if (outcome == NULL)
        return NULL;
    const struct attempt_info *a = &res->attempt;
    const char *slash = strrchr(owner, '/');
    int inst_len = slash ? (int)(slash - owner) : (int)strlen(owner);
    bool ok = res->outcome == OUTCOME_COMPLETED;
    json_t *o = json_pack(
        "{s:s, s:f, s:s, s:o, s:o?, s:o?, s:s#}", "started_at", a->started_at, "duration_ms",
        (double)(long long)(a->duration_ms * 10.0 + 0.5) / 10.0, "outcome", outcome, "status_code",
        a->status_code > 0 ? json_integer(a->status_code) : json_null(), "error",
        ok || res->error[0] == '\0' ? json_null() : json_string(res->error), "response_excerpt",
        a->status_code > 0 && !secretbox_enabled(c->box) ? json_string(a->excerpt) : json_null(),
        "instance", owner, inst_len);
    char *text = o ? jsontext(o) : NULL;
    json_decref(o);
    return text;
}

int leases_record(struct db_conn *c, const char *owner, const struct job *jobs, size_t n,
                  const struct exec_result *res, double delay_s, struct tally *t, struct err *e)
{
    if (n > 1 && res->result != NULL && secretbox_enabled(c->box)) { /* each row its own seal */
        int rows = 0;
        for (size_t i = 0; i < n; i++) {
            int one = leases_record(c, owner, &jobs[i], 1, res, delay_s, t, e);
            if (one < 0)
                return -1;
            rows += one;
        }
        return rows;
    }
    char *ids = id_array(jobs, n);
    char *plain = res->result ? jsontext(res->result) : NULL;
    char *result = secretbox_seal_json(c->box, plain, jobs[0].id, "result");
    free(plain);
    char delay[32];
    snprintf(delay, sizeof(delay), "%.3f", delay_s < 0 ? 0 : delay_s);
    char *attempt = attempt_text(c, owner, res);
    const struct db_stmt *s = NULL;
    const char *p[6] = {ids, owner, NULL, NULL, NULL, NULL};
    int np = 0;
    switch (res->outcome) {
    case OUTCOME_COMPLETED:
        s = json_object_get(res->result, "resolution") ? &complete_resolved_stmt : &complete_stmt;
        p[2] = result ? result : "null", p[3] = attempt, np = 4;
        break;
    case OUTCOME_RETRY:
        s = &retry_stmt, p[2] = res->error, p[3] = delay, p[4] = result, p[5] = attempt, np = 6;
        break;
    case OUTCOME_FAILED:
        s = &fail_stmt, p[2] = res->error, p[3] = result, p[4] = attempt, np = 5;
        break;
    case OUTCOME_CONFLICT:
        s = &conflict_stmt, p[2] = res->error, p[3] = result, p[4] = attempt, np = 5;
        break;
    case OUTCOME_RELEASE:
        s = &release_stmt, p[2] = delay, p[3] = attempt, np = 4;
        break;
    }
    PGresult *r = db_exec(c, s, np, p, e);
    int rows = -1;
    if (r != NULL) {
        rows = PQntuples(r);
        log_outcomes(r, jobs, res);
        count_rows(r, res, t);
        PQclear(r);
    }
    free(ids);
    free(result);
    free(attempt);
    return rows;
}

/* Appends {"id":...,"result":...,"attempt":...} to rows; result and attempt are JSON texts or
 * NULL (JSON null). The id is a UUID and needs no escaping. */
static void add_completion(struct oq_buf *rows, const char *id, const char *result,
                           const char *attempt)
{
    oq_buf_str(rows, rows->len > 1 ? ",{\"id\":\"" : "{\"id\":\"");
    oq_buf_str(rows, id);
    oq_buf_str(rows, "\",\"result\":");
    oq_buf_str(rows, result ? result : "null");
    oq_buf_str(rows, ",\"attempt\":");
    oq_buf_str(rows, attempt ? attempt : "null");
    oq_buf_str(rows, "}");
}

int leases_complete_many(struct db_conn *c, const char *owner, const struct job *const *jobs,
                         json_t *const *results, const struct exec_result *const *attempts,
                         size_t n, struct tally *t, struct err *e)
{
    /* the rows as one JSON text, written directly: the mates of a batch share one attempt,
     * whose text is made once */
    struct oq_buf rows = {0};
    oq_buf_reserve(&rows, n * 320);
    oq_buf_str(&rows, "[");
    const struct exec_result *last = NULL;
    char *attempt = NULL;
    for (size_t i = 0; i < n; i++) {
        char *plain = results[i] ? jsontext(results[i]) : NULL;
        char *stored = plain ? secretbox_seal_json(c->box, plain, jobs[i]->id, "result") : NULL;
        free(plain);
        if (i == 0 || attempts[i] != last) {
            free(attempt);
            attempt = attempt_text(c, owner, attempts[i]);
            last = attempts[i];
        }
        add_completion(&rows, jobs[i]->id, stored, attempt);
        free(stored);
    }
    free(attempt);
    oq_buf_str(&rows, "]");
    const char *p[] = {rows.data, owner};
    PGresult *r = db_exec(c, &complete_many_stmt, 2, p, e);
    free(rows.data);
    if (r == NULL)
        return -1;
    struct exec_result done = {.outcome = OUTCOME_COMPLETED};
    log_outcomes(r, NULL, &done);
    count_rows(r, &done, t);
    int recorded = PQntuples(r);
    PQclear(r);
    return recorded;
}

int leases_heartbeat(struct db_conn *c, const char *owner, const char *ids, int lease_s,
                     struct err *e)
{
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", lease_s);
    const char *params[] = {ids, owner, lease};
    return db_run(c, &heartbeat_stmt, 3, params, e);
}

int leases_sweep(struct db_conn *c, int max_lease_expiries, struct err *e)
{
    char max[16];
    snprintf(max, sizeof(max), "%d", max_lease_expiries);
    const char *params[] = {max};
    PGresult *r = db_exec(c, &sweep_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    int reaped = atoi(PQgetvalue(r, 0, 0)), expired = atoi(PQgetvalue(r, 0, 1)),
        orphaned = atoi(PQgetvalue(r, 0, 2));
    PQclear(r);
    if (reaped + expired + orphaned > 0)
        log_json(LOG_INFO, "sweep",
                 json_pack("{s:i, s:i, s:i}", "leases_reaped", reaped, "expired", expired,
                           "dependency_failed", orphaned));
    return reaped + expired + orphaned;
}

int leases_snapshot_due(struct db_conn *c, const char *paused, char **ids, int *total,
                        char start[40], struct err *e)
{
    const char *params[] = {paused};
    PGresult *r = db_exec(c, &snapshot_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    *ids = oq_strdup(PQgetvalue(r, 0, 0));
    *total = atoi(PQgetvalue(r, 0, 1));
    snprintf(start, 40, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    return 0;
}

int leases_pass_progress(struct db_conn *c, const char *ids, const char *start,
                         struct pass_counts *out, struct err *e)
{
    const char *params[] = {ids, start};
    PGresult *r = db_exec(c, &progress_stmt, 2, params, e);
    if (r == NULL)
        return -1;
    out->succeeded = atoi(PQgetvalue(r, 0, 0));
    out->failed = atoi(PQgetvalue(r, 0, 1));
    out->conflicts = atoi(PQgetvalue(r, 0, 2));
    out->retried = atoi(PQgetvalue(r, 0, 3));
    out->remaining = atoi(PQgetvalue(r, 0, 4));
    json_decref(out->errors);
    out->errors = json_loads(PQgetvalue(r, 0, 5), 0, NULL);
    PQclear(r);
    return 0;
}
