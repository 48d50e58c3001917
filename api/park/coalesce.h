/* Group commit for single enqueues: concurrent POST /api/offline/queue requests of simple
 * operations are parked (no thread held) and stored together by a few flusher threads, one
 * statement and one commit for everything that arrived while the previous commit ran. A 201
 * still means committed: each request is answered only after its group's COMMIT. */
#ifndef OQ_COALESCE_H
#define OQ_COALESCE_H

#include "api/http.h"
#include "store/ops.h"

void coalesce_start(struct app *a);
/* Stores what is queued, answers it, then stops the flushers (after http_stop). */
void coalesce_stop(void);

/* Parks r and queues op (stolen; a simple operation, see ops_is_simple). r is answered
 * 201 with the operation, or with the error, once its group is stored. r holds room for one
 * operation (pending_reserve); the flusher settles it once the group is stored. */
void coalesce_submit(struct request *r, struct op_new *op);

#endif
