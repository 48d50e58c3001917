/* The statements of the janitor's rounds that belong to no other table: the counter fold and
 * retention. */
#ifndef OQ_MAINTENANCE_H
#define OQ_MAINTENANCE_H

#include "store/db.h"

/* Folds the counter deltas of offlineq_op_counts into their totals and counts the pending
 * operations: *pending and the snapshot it was counted in (*snapshot, a new string: the text
 * of pg_current_snapshot()) come from one statement, so the pending module can tell by the
 * snapshot which of this instance's own enqueues it holds. */
int maintenance_fold_counts(struct db_conn *c, long long *pending, char **snapshot,
                            struct err *e) OQ_MUSTCHECK;

/* Retention: deletes up to batch (at most 1000) operations of status ("completed" or
 * "failed") that ended more than older_than_s ago, in one short statement that skips locked
 * rows. Returns how many, or -1 with *e. Fewer than batch: none is left (save those locked). */
long long maintenance_retention_delete(struct db_conn *c, const char *status,
                                       long long older_than_s, int batch, struct err *e);

#endif
