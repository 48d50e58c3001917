#include "store/maintenance.h"

#include <stdio.h>
#include <stdlib.h>

static const struct db_stmt compact_counts = {
    "compact_counts",
    "SELECT offlineq_compact_counts(), "
    "  (SELECT coalesce(sum(n), 0) FROM offlineq_op_counts WHERE status = 'pending'), "
    "  pg_current_snapshot()::text"};

/* One batch of retention: up to $3 operations of status $1 that ended (completed_at, or
 * updated_at for failed) before now() - $2 seconds. Found without an index on a column that
 * completion writes: in offline_operations_order (status, -priority, seq), one priority at a
 * time (prio: a skip scan over the priorities the status has), walking in enqueue order and
 * stopping at the first operation enqueued after the cutoff (bound: it cannot have ended
 * before it; an operation enqueued by a transaction held open across the cutoff waits for
 * its neighbours). Rows are locked with SKIP LOCKED: one a transaction holds is left for the
 * next round, and none of these rows is one an enqueue or a claim waits on. The triggers
 * count the deletion, emit operation.deleted and drop files no operation needs any more. */
static const struct db_stmt retention_stmt = {
    "retention_delete",
    "WITH RECURSIVE cutoff AS (SELECT now() - make_interval(secs => $2::float8) AS t), "
    "prio AS ("
    "  (SELECT -o.priority AS np FROM offline_operations o WHERE o.status = $1 "
    "   ORDER BY -o.priority LIMIT 1) "
    "  UNION ALL "
    "  SELECT (SELECT -o.priority FROM offline_operations o WHERE o.status = $1 "
    "          AND -o.priority > p.np ORDER BY -o.priority LIMIT 1) "
    "  FROM prio p WHERE p.np IS NOT NULL), "
    "pick AS (SELECT x.id FROM prio p, cutoff c CROSS JOIN LATERAL ("
    "    SELECT o.id FROM offline_operations o "
    "    WHERE o.status = $1 AND -o.priority = p.np "
    "      AND o.seq < coalesce((SELECT y.seq FROM offline_operations y "
    "            WHERE y.status = $1 AND -y.priority = p.np AND y.created_at >= c.t "
    "            ORDER BY -y.priority, y.seq LIMIT 1), 9223372036854775807) "
    "      AND coalesce(o.completed_at, o.updated_at) < c.t "
    "    ORDER BY -o.priority, o.seq LIMIT $3::int FOR UPDATE SKIP LOCKED) x "
    "  WHERE p.np IS NOT NULL LIMIT $3::int), "
    "del AS (DELETE FROM offline_operations d USING pick "
    "  WHERE d.id = pick.id AND d.status = $1 RETURNING 1) "
    "SELECT count(*) FROM del"};

long long maintenance_retention_delete(struct db_conn *c, const char *status,
                                       long long older_than_s, int batch, struct err *e)
{
    char secs[32], lim[16];
    snprintf(secs, sizeof(secs), "%lld", older_than_s);
    snprintf(lim, sizeof(lim), "%d", batch);
    const char *params[] = {status, secs, lim};
    PGresult *r = db_exec(c, &retention_stmt, 3, params, e);
    if (r == NULL)
        return -1;
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

int maintenance_fold_counts(struct db_conn *c, long long *pending, char **snapshot, struct err *e)
{
    PGresult *r = db_exec(c, &compact_counts, 0, NULL, e);
    if (r == NULL)
        return -1;
    *pending = atoll(PQgetvalue(r, 0, 1));
    *snapshot = oq_strdup(PQgetvalue(r, 0, 2));
    PQclear(r);
    return 0;
}
