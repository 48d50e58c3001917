/* What the parked Prefer: wait=N requests (api/park/waiters.c) poll for. */
#ifndef OQ_WAITS_H
#define OQ_WAITS_H

#include <stddef.h>

#include "store/db.h"

/* Sets done[i] for each of the n operation ids (36-character UUIDs) that is completed, failed
 * or conflict, clears it for the others (unknown ids included). One statement for all.
 * Returns -1 with *e set, every done[i] then false: a caller that only polls may go on. */
int waits_finished(struct db_conn *c, const char *const *ids, size_t n, bool *done, struct err *e);

#endif
