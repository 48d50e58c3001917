/* Queue depth for the status endpoints and the metrics scrape, read from offlineq_op_counts
 * (counts by status that the maintenance thread folds), so each read is a few rows. */
#ifndef OQ_STATS_H
#define OQ_STATS_H

#include "core/vocab.h"
#include "store/db.h"

/* Returns the number of pending operations, or -1 with *e set. */
long long stats_pending(struct db_conn *c, struct err *e);

struct status_count {
    enum op_status status;
    long long n;
};

/* One count per status of core/vocab.h (0 for a status no operation has), ordered by the
 * status's name, into out. Returns -1 with *e set. */
int stats_by_status(struct db_conn *c, struct status_count out[OP_N_STATUSES],
                    struct err *e) OQ_MUSTCHECK;

#endif
