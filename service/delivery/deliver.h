/* One attempt against an upstream: its policy (breaker, concurrency, rate), the request, and
 * the answer turned into an outcome by the rules every operation type shares. */
#ifndef OQ_DELIVER_H
#define OQ_DELIVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include <jansson.h>

#include "core/config.h"
#include "core/job.h"
#include "core/vocab.h"

struct db_pool;
struct policy;
struct outbound;
struct out_request;

/* What an attempt may use, all borrowed from the caller (the engine's worker, which builds it
 * for each claim). Delivery and handlers see only this, never the whole service. */
struct exec_ctx {
    const struct config *cfg;
    struct db_pool *db;                /* file_upload reads the stored file */
    struct policy *policy;             /* per-upstream breaker, concurrency, rate */
    struct outbound *out;              /* this worker's HTTP handle */
    const atomic_bool *abort_outbound; /* set when the shutdown grace is over */
    enum strategy strategy;            /* the global conflict strategy when the job was claimed */
    /* Re-probes reachability now and answers whether upstreams are online (the monitor's).
     * NULL: no monitor, always online. */
    bool (*recheck_online)(void *arg);
    void *recheck_arg;
};

/* Sends rq through u's policy (breaker, concurrency, rate) and turns the answer into *res:
 * 2xx completed; 408/425/429/5xx and network errors retry; 409/412 conflict; other answers
 * fail. result = {"status_code", "body"}. A network error while the monitor finds the network
 * down releases the operation without using an attempt, as does a body stream that cannot be
 * read (rq->stream: the caller knows why). Thread-safe (ctx->out is the caller's own). */
void deliver(struct exec_ctx *ctx, struct out_request *rq, struct exec_result *res);

/* A JSON request through deliver(): doc (NULL: no body) as application/json to endpoint on u,
 * with the header lines (NULL-terminated, borrowed) and the job's id as idempotency key. */
struct json_request {
    const struct upstream *u;
    const char *method;
    const char *endpoint;
    char **lines;
    const json_t *doc;
    const char *job_id;
    const char *traceparent, *tracestate; /* the job's */
};
void deliver_json(struct exec_ctx *ctx, const struct json_request *jr, struct exec_result *res);

#endif
