/* The counters behind GET /metrics (api/metrics.c writes them out): what this instance
 * enqueued, delivered and served. Atomics or short critical sections: cheap on every hot path.
 * Thread-safe once the types are added. */
#ifndef OQ_METRICS_H
#define OQ_METRICS_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/common.h"

#define METRICS_TYPES 16
#define METRICS_ROUTES 64
#define METRICS_BUCKETS 14
#define METRICS_UPSTREAMS 32 /* past these, an upstream's attempts count under upstream="" */

enum op_counter { OPC_ENQUEUED, OPC_COMPLETED, OPC_FAILED, OPC_RETRIED, OPC_CONFLICTS, OPC__COUNT };

/* Why operations were deleted: offlineq_operations_deleted_total{reason}. */
#define OQ_DELETE_REASONS(X)                                                                       \
    X(DELETED_RETENTION_COMPLETED, "retention_completed")                                          \
    X(DELETED_RETENTION_FAILED, "retention_failed")                                                \
    X(DELETED_API, "api")                                                                          \
    X(DELETED_CLEAR_COMPLETED, "clear_completed")
#define OQ_DELETE_ENUM(e, name) e,
enum delete_reason { OQ_DELETE_REASONS(OQ_DELETE_ENUM) DELETED__COUNT };
#undef OQ_DELETE_ENUM

/* The label of a reason ("retention_completed"). */
const char *metrics_delete_reason(enum delete_reason why);

/* How a worker's claim came out: offlineq_worker_claims_total{result}. Empty claims are the
 * polling a queue pays for; many per delivered operation mean workers woken for nothing. */
enum claim_result { CLAIM_TAKEN, CLAIM_EMPTY, CLAIM_ERROR, CLAIM__COUNT };

/* The label of a result ("taken", "empty", "error"). */
const char *metrics_claim_result(enum claim_result r);

struct histogram {
    atomic_ullong buckets[METRICS_BUCKETS + 1]; /* the last is +Inf */
    atomic_ullong count;
    _Atomic double sum;
};

struct route_count {
    const char *route; /* a route pattern (static), or "unmatched" */
    unsigned status;
    unsigned long long n;
};

/* The upper bounds of the histogram buckets, in seconds (the last bucket, +Inf, has none). */
extern const double metrics_bucket_le[METRICS_BUCKETS];

/* Counters and the execution histogram are kept by upstream too: column 0 is "no upstream"
 * (an attempt refused before any request, an enqueue), column 1 + i is upstreams[i]. */
struct metrics {
    const char *types[METRICS_TYPES]; /* borrowed (static): the operation types counted */
    int n_types;
    const char *upstreams[METRICS_UPSTREAMS]; /* borrowed (the config's): upstreams counted */
    atomic_int n_upstreams;                   /* grows on a reload (under mu); readers load it */
    atomic_ullong ops[METRICS_TYPES][METRICS_UPSTREAMS + 1][OPC__COUNT]; /* type, upstream */
    atomic_ullong deleted[DELETED__COUNT]; /* operations this instance deleted, by why */
    atomic_ullong claims[CLAIM__COUNT];    /* claims this instance's workers ran, by result */
    atomic_ullong rotation_resealed;       /* values this instance sealed again (key rotation) */
    atomic_int rotation_active;            /* 1 while this instance takes part in a rotation */
    struct histogram exec_seconds[METRICS_UPSTREAMS + 1]; /* by upstream column */
    struct histogram latency_seconds;
    pthread_mutex_t mu; /* routes */
    struct route_count routes[METRICS_ROUTES];
    int n_routes;
};

void metrics_init(struct metrics *m);
/* Counts operations of type (static storage: a handler's name) from now on. Call before any
 * thread counts; past METRICS_TYPES types the rest are not counted. */
void metrics_add_type(struct metrics *m, const char *type);
/* Counts attempts against the upstream name (borrowed, it outlives m: the config's) apart from
 * now on. Call before any thread counts. */
void metrics_add_upstream(struct metrics *m, const char *upstream);
/* Counts n of counter for the operation type name (unknown names are not counted), under no
 * upstream. */
void metrics_op(struct metrics *m, const char *type, enum op_counter counter, unsigned long long n);
/* The same under upstream (NULL or not added: column 0, no upstream). */
void metrics_op_upstream(struct metrics *m, const char *type, const char *upstream,
                         enum op_counter counter, unsigned long long n);
/* The label of upstream column u: "" for column 0. */
const char *metrics_upstream_label(const struct metrics *m, int u);
/* Counts n operations deleted for why. */
void metrics_deleted(struct metrics *m, enum delete_reason why, unsigned long long n);
/* Counts one claim that took n operations (0: none; < 0: the database failed it). */
void metrics_claim(struct metrics *m, int n);
/* One attempt's duration, under upstream (NULL: none). */
void metrics_exec(struct metrics *m, const char *upstream, double seconds);
void metrics_latency(struct metrics *m, double seconds);
void metrics_http(struct metrics *m, const char *route, unsigned status);

#endif
