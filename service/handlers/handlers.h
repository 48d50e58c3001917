/* The operation type registry. Adding a type: service/handler_<type>.c and one row in
 * handlers[] (handlers.c). Types are registered in the database at start-up. */
#ifndef OQ_HANDLERS_H
#define OQ_HANDLERS_H

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"
#include "core/job.h"

#include <stdatomic.h>

#include "core/vocab.h"

struct app;
struct db_pool;
struct outbound;
struct policy;

/* The agreed interface (the delivery change moves it to delivery/deliver.h and drops .app;
 * the engine builds it in workers.c). */
struct exec_ctx {
    const struct config *cfg;
    struct db_pool *db;                 /* file_upload reads the stored file */
    struct policy *policy;              /* per-upstream breaker, concurrency, rate */
    struct outbound *out;               /* this worker's HTTP handle */
    const atomic_bool *abort_outbound;  /* set when the shutdown grace is over */
    enum strategy strategy;             /* the global conflict strategy when the job was claimed */
    /* Re-probes reachability now and answers whether upstreams are online (the monitor's). */
    bool (*recheck_online)(void *arg);
    void *recheck_arg;
    struct app *app; /* TRANSITIONAL: this branch's handlers still use it */
};

struct handler {
    const char *name;
    /* Checks a payload at enqueue, before anything is stored. Field names in *e are relative
     * to the payload ("endpoint"); the caller prefixes them. Thread-safe. */
    int (*validate)(const json_t *payload, const struct config *cfg, struct err *e);
    /* Runs one operation; fills *res. Runs outside any transaction. */
    void (*execute)(struct exec_ctx *ctx, const struct job *job, struct exec_result *res);
    /* Optional: runs n operations of one batch key in one request; one outcome for all.
     * Operations batch when their upstream and endpoint (default batch_endpoint) match. */
    void (*execute_batch)(struct exec_ctx *ctx, const struct job *jobs, size_t n,
                          struct exec_result *res);
    const char *batch_endpoint;
    /* 409/412 answers go through conflict resolution (the payload has endpoint and data). */
    bool resolves_conflicts;
};

/* Returns the handler registered for name, or NULL. */
const struct handler *handlers_find(const char *name);

/* The registry, ended by a row with name NULL. */
const struct handler *handlers_table(void);

/* The built-in types (one handler_<type>.c each). */
int api_call_validate(const json_t *payload, const struct config *cfg, struct err *e);
void api_call_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res);
int file_upload_validate(const json_t *payload, const struct config *cfg, struct err *e);
void file_upload_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res);
int metric_log_validate(const json_t *payload, const struct config *cfg, struct err *e);
void metric_log_execute_batch(struct exec_ctx *ctx, const struct job *jobs, size_t n,
                              struct exec_result *res);
int model_push_validate(const json_t *payload, const struct config *cfg, struct err *e);
void model_push_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res);
int experiment_sync_validate(const json_t *payload, const struct config *cfg, struct err *e);
void experiment_sync_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res);

/* Shared by the executors (deliver.c): the upstream a payload names ("default" when none). */
const struct upstream *target_upstream(const struct config *cfg, const json_t *payload);

struct out_request;
/* Sends rq through u's policy (breaker, concurrency, rate) and turns the answer into *res:
 * 2xx completed; 408/425/429/5xx and network errors retry; 409/412 conflict; other answers
 * fail. result = {"status_code", "body"}. Thread-safe. */
void deliver(struct exec_ctx *ctx, struct out_request *rq, struct exec_result *res);

/* file_upload's sender, shared with model_push: extra holds more form fields (may be NULL). */
void file_upload_send(struct exec_ctx *ctx, const struct job *job, const json_t *extra,
                      struct exec_result *res);

/* Sets *res to a permanent failure with a message. */
void exec_fail(struct exec_result *res, const char *fmt, ...) OQ_PRINTF(2, 3);

/* Shared by handlers that send to an upstream: checks payload.upstream and payload.endpoint
 * (a path on the upstream, or an absolute URL whose origin is the upstream's). Thread-safe. */
int target_validate(const json_t *payload, const struct config *cfg, struct err *e);

/* Checks payload.headers (an object): token names, none of the transport's or the service's
 * own (Host, Connection, TE, Proxy-*, Idempotency-Key, webhook-* ...: target.c has the one
 * table), string values without control characters. Thread-safe. */
int target_check_headers(const json_t *headers, struct err *e);

/* The methods an api_call (and experiment_sync) may use, NULL-terminated. */
extern const char *const api_call_methods[];

#endif
