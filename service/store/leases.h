/* The execution side of the queue: claim, complete, retry, fail, release, heartbeat, reap.
 * Every change after a claim is fenced on (id, status = in_progress, lease_owner). */
#ifndef OQ_LEASES_H
#define OQ_LEASES_H

#include "store/db.h"
#include "core/job.h"

struct claim_filter {
    const char *owner;    /* this worker's lease owner id */
    const char *paused;   /* text[] literal of upstreams not to claim for */
    const char *only_ids; /* uuid[] literal: claim only these (a sync pass), or NULL */
    int lease_s;
};

struct pass_counts {
    int succeeded, failed, conflicts, retried, remaining;
    json_t *errors; /* owned: [{"id","error"}] of the failed and conflicting ones */
};

/* The ids (uuid[] literal, malloc'd) and count of every operation claimable now, and the
 * database's now() (RFC 3339) as the pass's start. */
int leases_snapshot_due(struct db_conn *c, const char *paused, char **ids, int *total,
                        char start[40], struct err *e);

/* Where the operations of a pass stand. */
int leases_pass_progress(struct db_conn *c, const char *ids, const char *start,
                         struct pass_counts *out, struct err *e);

/* Claims up to max due operations in one statement (highest priority, then oldest), honouring
 * group order (never two of one group), dependencies and expiry. Returns how many were written
 * into jobs in execution order (free each with leases_job_free), 0 when nothing is due, -1 with
 * *e on a database error. */
int leases_claim(struct db_conn *c, const struct claim_filter *f, struct job *jobs, int max,
                 struct err *e);

/* Claims up to max more due operations that batch with first (same type, upstream and
 * endpoint), oldest first. Returns how many were written into jobs, or -1. */
int leases_claim_batch(struct db_conn *c, const struct claim_filter *f, const struct job *first,
                       const char *default_endpoint, struct job *jobs, int max, struct err *e);

void leases_job_free(struct job *job);

/* What became of recorded operations, by their status after the record. */
struct tally {
    int completed, failed, retried, conflict, released;
};

/* Records the outcome of jobs (one outcome for all of them). delay_s: the retry delay
 * (RETRY) or when to look again (RELEASE). Returns how many rows the fence let through, -1;
 * *t (may be NULL) says where they ended. */
int leases_record(struct db_conn *c, const char *owner, const struct job *jobs, size_t n,
                  const struct exec_result *res, double delay_s, struct tally *t, struct err *e);

/* Records n completions in one statement, each with its own result (results[i] may be NULL).
 * Returns how many rows the fence let through, or -1. */
int leases_complete_many(struct db_conn *c, const char *owner, const struct job *const *jobs,
                         json_t *const *results, const struct exec_result *const *attempts,
                         size_t n, struct tally *t, struct err *e);

/* Extends the leases of ids (a Postgres uuid[] literal) held by owner. */
int leases_heartbeat(struct db_conn *c, const char *owner, const char *ids, int lease_s,
                     struct err *e);

/* Housekeeping, from any instance: expired leases back to pending (no attempt counted; a
 * lease_expired attempt on record; failed at the max_lease_expiries-th), expired operations
 * failed, operations whose dependency failed failed. Returns rows changed, -1. */
int leases_sweep(struct db_conn *c, int max_lease_expiries, struct err *e);

/* Lets go of the groups whose first live operation is still held (see migration 008): a
 * missed release costs a group this long, never its order. Returns 0 or -1. */
int leases_release_groups(struct db_conn *c, struct err *e);

#endif
