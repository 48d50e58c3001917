#include "store/maintenance.h"

#include <stdlib.h>

static const struct db_stmt compact_counts = {
    "compact_counts",
    "SELECT offlineq_compact_counts(), "
    "  (SELECT coalesce(sum(n), 0) FROM offlineq_op_counts WHERE status = 'pending'), "
    "  pg_current_snapshot()::text"};

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
