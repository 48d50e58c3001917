#include "store/waits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pgarray.h"

static const struct db_stmt finished_stmt = {
    "waits_finished", "SELECT id::text FROM offline_operations WHERE id = ANY ($1::uuid[]) "
                      "AND status IN ('completed', 'failed', 'conflict')"};

int waits_finished(struct db_conn *c, const char *const *ids, size_t n, bool *done, struct err *e)
{
    memset(done, 0, n * sizeof(*done));
    struct pgarray a;
    pgarray_init(&a);
    for (size_t i = 0; i < n; i++)
        pgarray_add(&a, ids[i]);
    char *array = pgarray_finish(&a);
    PGresult *res = db_exec(c, &finished_stmt, 1, (const char *const[]){array}, e);
    free(array);
    if (res == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        for (int row = 0; row < PQntuples(res) && !done[i]; row++)
            done[i] = strcmp(PQgetvalue(res, row, 0), ids[i]) == 0;
    }
    PQclear(res);
    return 0;
}
