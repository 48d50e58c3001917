/* The count OFFLINEQ_MAX_PENDING is checked against, exact for this instance without a count
 * per enqueue: the pending operations that maintenance last counted in a database snapshot,
 * plus what this instance stored that the snapshot could not see yet, plus the room that
 * requests in flight here have reserved. Operations stored by other instances (or by the SQL
 * function) count from the next fold on. Thread-safe. */
#ifndef OQ_PENDING_H
#define OQ_PENDING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct pending_note {
    unsigned long long xid; /* the transaction that stored them */
    long long n;
};

struct pending {
    pthread_mutex_t mu;
    long long counted;          /* pending operations in the last fold's snapshot */
    long long reserved;         /* held by requests not yet stored */
    long long noted;            /* the sum of notes[].n */
    struct pending_note *notes; /* stored here, not visible in the last snapshot */
    size_t n_notes, cap_notes;
    bool has_snapshot;
    unsigned long long xmin, xmax; /* the last fold's snapshot (pg_current_snapshot) */
    unsigned long long *xip;       /* its in-progress transactions, ascending */
    size_t n_xip;
};

void pending_init(struct pending *p);
void pending_close(struct pending *p);

/* Holds room for n operations when the count plus n stays within limit; else returns false
 * and *total is the count. */
bool pending_reserve(struct pending *p, long long n, long long limit, long long *total);

/* Gives back a reservation of `reserved`, of which `stored` operations were stored by
 * transaction xid (committed). */
void pending_settle(struct pending *p, long long reserved, long long stored,
                    unsigned long long xid);

/* A fold: the database counted `count` pending operations in `snapshot` (the text of
 * pg_current_snapshot() taken by the same statement). Returns -1 if the text is malformed. */
int pending_fold(struct pending *p, long long count, const char *snapshot);

#endif
