/* SQL in, JSON text or structs out. Every function takes a checked-out connection; a PGresult
 * never leaves this file. Operation objects come back as JSON text built by the database
 * (offlineq_op_json), so the API can send them without re-encoding. */
#ifndef OQ_OPS_H
#define OQ_OPS_H

#include "store/db.h"

struct trace;

struct op_new {
    const char *operation_type;
    char *payload_json; /* owned: the payload, serialized */
    int priority;
    const char *dedup_key;    /* borrowed, may be NULL */
    const char *group_key;    /* borrowed, may be NULL */
    int max_attempts;         /* 1..1000; the caller fills in OFFLINEQ_MAX_ATTEMPTS when the client
                               * gave none (offlineq.enqueue()'s own default is for SQL callers) */
    double delay_s;           /* < 0: none */
    char *depends_on;         /* owned: a uuid[] literal, or NULL */
    double expires_in_s;      /* < 0: never */
    int max_retry_duration_s; /* 0: no limit */
    const char *conflict_strategy; /* borrowed; NULL: the global strategy */
    bool stores_file;              /* the type's handler delivers a stored file (payload.file_id) */
    bool ids_only; /* Prefer: return=minimal: only the id comes back (op_created.json NULL), and
                    * the database builds no Operation document for it */
    const struct trace *trace; /* borrowed: the enqueue's trace context (NULL: a new trace) */
    const char *tracestate;    /* borrowed, may be NULL */
    const char *request_id;    /* borrowed: the enqueue's X-Request-Id, may be NULL */
};

struct op_created {
    char id[37];
    char *json;             /* owned: the Operation object; NULL for an op_new.ids_only */
    bool created;           /* false: an existing live operation holds the dedup_key */
    unsigned long long xid; /* the transaction that stored it (pending.h) */
};

/* Registers operation types (a text[] literal, "{api_call,...}") so that enqueue knows them;
 * known ones stay. */
int ops_register_types(struct db_conn *c, const char *types, struct err *e) OQ_MUSTCHECK;

/* Stores one operation (or finds the live one with its dedup_key). */
int ops_enqueue(struct db_conn *c, const struct op_new *op, struct op_created *out,
                struct err *e) OQ_MUSTCHECK;

/* Simple: no dedup_key, no depends_on, no stored file; such operations can be stored many in
 * one statement. */
bool ops_is_simple(const struct op_new *op);

/* Stores n simple operations in one statement (all or none); out has n slots. Run on its own
 * (its own transaction), it announces nothing: call ops_wake_others after it. Inside the caller's
 * transaction, the announcement goes with the caller's commit. */
int ops_enqueue_many(struct db_conn *c, const struct op_new *ops, size_t n, struct op_created *out,
                     struct err *e) OQ_MUSTCHECK;

/* Tells the other instances that operations were committed (a NOTIFY on offlineq_wakeup in a
 * transaction of its own that does not wait for its WAL flush). Best effort: failures are
 * logged, and the other instances' workers poll anyway. */
void ops_wake_others(struct db_conn *c);

/* Stores all of ops in one transaction, or none. out has n slots. On failure *failed_index is
 * the index of the operation the database refused (or -1). */
int ops_enqueue_batch(struct db_conn *c, const struct op_new *ops, size_t n, struct op_created *out,
                      long *failed_index, struct err *e) OQ_MUSTCHECK;

/* ops_enqueue_batch in the caller's open transaction (Idempotency-Key: the answer is stored
 * in it too), which a failure leaves aborted for the caller to roll back. */
int ops_enqueue_batch_in(struct db_conn *c, const struct op_new *ops, size_t n,
                         struct op_created *out, long *failed_index, struct err *e) OQ_MUSTCHECK;

/* Returns the Operation object (free()), or NULL with ERR_NOT_FOUND or a database error. */
char *ops_get(struct db_conn *c, const char *id, struct err *e);

/* {"id", "attempts": [...]}: every delivery attempt of the operation, oldest first, as a new
 * string; NULL with ERR_NOT_FOUND when there is no such operation. */
char *ops_attempts(struct db_conn *c, const char *id, struct err *e);

/* Deletes an operation that is not in_progress. ERR_NOT_FOUND / ERR_CONFLICT otherwise. */
int ops_delete(struct db_conn *c, const char *id, struct err *e) OQ_MUSTCHECK;

/* Puts a failed or conflict operation back to pending with attempts reset; returns the
 * Operation object (free()). ERR_NOT_FOUND / ERR_CONFLICT otherwise. */
char *ops_retry(struct db_conn *c, const char *id, struct err *e);

/* An operator's answer to a conflict: "remote" completes it now (nothing is sent); "local"
 * and "merged" (data, a JSON text) put it back to pending for the next attempt to send.
 * ERR_NOT_FOUND / ERR_CONFLICT (not in conflict). Returns the Operation object. */
char *ops_resolve(struct db_conn *c, const char *id, const char *resolution, const char *data,
                  struct err *e);

struct list_query {
    const char *statuses;       /* Postgres array literal: {pending,failed} */
    const char *operation_type; /* may be NULL */
    bool has_cursor;
    int after_priority;
    long long after_seq;
    int limit;
    long long max_bytes; /* a page stops before its operations pass this (at least one) */
};

struct list_page {
    bool has_more;
    int last_priority; /* of the last operation on the page */
    long long last_seq;
};

/* One page in execution order (priority desc, then enqueue order): at most q->limit
 * operations, and no more than q->max_bytes of them unless the first alone is larger. Appends
 * "[op,op,...]" to body, copying each operation once from the database's answer. */
int ops_list(struct db_conn *c, const struct list_query *q, struct oq_buf *body,
             struct list_page *out, struct err *e) OQ_MUSTCHECK;

/* Deletes completed operations (completed at least older_than_s ago; < 0: all). Returns
 * the count, or -1. */
long long ops_clear_completed(struct db_conn *c, double older_than_s, struct err *e);

/* A filter of bulk actions over every operation that matches, not a page; NULL fields match
 * all. The timestamps are RFC 3339 text the caller checked. */
struct bulk_filter {
    const char *status; /* retry: failed or conflict (default failed); delete: any */
    const char *operation_type;
    const char *upstream;       /* the payload's upstream ("default" when it names none) */
    const char *created_before; /* created_at < it */
    const char *created_after;  /* created_at >= it */
    const char *error_contains; /* in error_message, without regard to case */
    double older_than_s;        /* < 0: any; retry: failed at least this long ago */
};

/* How many operations a bulk retry (retry) or delete would take now (dry_run), or -1. */
long long ops_bulk_count(struct db_conn *c, bool retry, const struct bulk_filter *f, struct err *e);

/* One batch of at most OPS_BULK_BATCH: puts matching failed/conflict operations back to pending
 * (one per dedup_key, none whose key a live one holds), or deletes matching operations that are
 * not in_progress (rows another transaction holds are skipped). Returns how many, or -1. */
#define OPS_BULK_BATCH 1000
long long ops_bulk_retry(struct db_conn *c, const struct bulk_filter *f, struct err *e);
long long ops_bulk_delete(struct db_conn *c, const struct bulk_filter *f, struct err *e);

#endif
