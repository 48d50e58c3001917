/* Queue depth for the status endpoints and the metrics scrape, read from offlineq_op_counts
 * (counts by status that the maintenance thread folds; a read sums the deltas written since,
 * so it is exact at once), so each read is a few rows. */
#ifndef OQ_STATS_H
#define OQ_STATS_H

#include <jansson.h>

#include "core/vocab.h"
#include "store/db.h"

/* An md5 in hex and its NUL. */
#define STATS_VERSION_LEN 33

/* The version of the queue's stats (counts by type and status, the oldest pending operation):
 * it changes when a transaction that changes them commits, and only then. -1 with *e. */
int stats_version(struct db_conn *c, char version[STATS_VERSION_LEN], struct err *e) OQ_MUSTCHECK;

/* The stats object as JSON text (free()) and, from the same snapshot, its version; NULL
 * with *e. */
char *stats_queue(struct db_conn *c, char version[STATS_VERSION_LEN], struct err *e);

/* Returns the number of pending operations, or -1 with *e set. */
long long stats_pending(struct db_conn *c, struct err *e);

/* Seconds since the oldest pending operation was enqueued (0: none pending), or -1 with *e. */
double stats_oldest_pending_s(struct db_conn *c, struct err *e);

/* GET /queue/stats/history: this many buckets of this many seconds, the newest the current. */
#define STATS_HISTORY_BUCKET_S 10
#define STATS_HISTORY_POINTS 90

/* The history object as JSON text (free()): per 10 s bucket of the last 15 minutes, oldest
 * first, the operations enqueued, completed and failed (from the event log) and the queue
 * depth (pending + in_progress: the janitors' sample of the bucket, null where none was
 * taken; the current bucket's is read now). Everything comes from the database, so every
 * instance answers the same. NULL with *e. */
char *stats_history(struct db_conn *c, struct err *e);

/* Writes the current bucket's depth sample (an upsert: the instances share the row, the latest
 * sample stays) and drops the samples older than the history. -1 with *e. Called by the
 * janitor. */
int stats_sample_depth(struct db_conn *c, struct err *e) OQ_MUSTCHECK;

/* The pending operations of each upstream: a new object {"upstream": n} (upstreams with none
 * are absent), or NULL with *e. Reads every pending row: an operator's view, not a hot path. */
json_t *stats_pending_by_upstream(struct db_conn *c, struct err *e);
/* The same for the work not finished yet: pending and in_progress (claimed, maybe waiting for
 * a rate token). */
json_t *stats_unfinished_by_upstream(struct db_conn *c, struct err *e);

struct status_count {
    enum op_status status;
    long long n;
};

/* One count per status of core/vocab.h (0 for a status no operation has), ordered by the
 * status's name, into out. Returns -1 with *e set. */
int stats_by_status(struct db_conn *c, struct status_count out[OP_N_STATUSES],
                    struct err *e) OQ_MUSTCHECK;

#endif
