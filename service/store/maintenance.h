/* The statements of the janitor's rounds that belong to no other table: the counter fold. */
#ifndef OQ_MAINTENANCE_H
#define OQ_MAINTENANCE_H

#include "store/db.h"

/* Folds the counter deltas of offlineq_op_counts into their totals and counts the pending
 * operations: *pending and the snapshot it was counted in (*snapshot, a new string: the text
 * of pg_current_snapshot()) come from one statement, so the pending module can tell by the
 * snapshot which of this instance's own enqueues it holds. */
int maintenance_fold_counts(struct db_conn *c, long long *pending, char **snapshot,
                            struct err *e) OQ_MUSTCHECK;

#endif
