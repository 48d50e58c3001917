/* The operation type registry. Adding a type: handlers/<type>.c and one row in handlers[]
 * (handlers.c). Types are registered in the database at start-up. */
#ifndef OQ_HANDLERS_H
#define OQ_HANDLERS_H

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"
#include "core/job.h"
#include "core/validate.h"
#include "delivery/deliver.h"

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
    /* The payload names a stored file (file_id) that delivery sends: such an operation is
     * stored by offlineq.enqueue(), which links the file, never in a multi-row insert. */
    bool stores_file;
    /* The HTTP method when the payload names none (types that send payload.method). */
    const char *default_method;
};

/* Field rule rows (core/validate.h) the sending types share, spelled once. */
#define HANDLER_ENDPOINT_MAX 2048 /* characters of payload.endpoint */
#define HANDLER_UPSTREAM_MAX 100  /* characters of payload.upstream */
#define HANDLER_IF_MATCH_MAX 1024 /* characters of payload.if_match */
#define RULE_ENDPOINT(is_required)                                                                 \
    {                                                                                              \
        .name = "endpoint", .type = V_STRING, .required = is_required, .min = 1,                   \
        .max = HANDLER_ENDPOINT_MAX                                                                \
    }
#define RULE_UPSTREAM                                                                              \
    {                                                                                              \
        .name = "upstream", .type = V_STRING, .min = 1, .max = HANDLER_UPSTREAM_MAX                \
    }
#define RULE_IF_MATCH                                                                              \
    {                                                                                              \
        .name = "if_match", .type = V_STRING, .min = 1, .max = HANDLER_IF_MATCH_MAX                \
    }
#define RULE_METHOD                                                                                \
    {                                                                                              \
        .name = "method", .type = V_STRING, .one_of = api_call_methods                             \
    }
#define RULE_HEADERS                                                                               \
    {                                                                                              \
        .name = "headers", .type = V_OBJECT                                                        \
    }

/* The check of a type that sends payload.headers to payload.endpoint (api_call,
 * experiment_sync): rules, then the headers (target_check_headers), then the target
 * (target_validate). Thread-safe. */
int handlers_validate_request(const json_t *payload, const struct field_rule *rules,
                              const struct config *cfg, struct err *e) OQ_MUSTCHECK;

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

/* file_upload's sender, shared with model_push: extra holds more form fields (may be NULL). */
void file_upload_send(struct exec_ctx *ctx, const struct job *job, const json_t *extra,
                      struct exec_result *res);

/* The methods an api_call (and experiment_sync) may use, NULL-terminated. */
extern const char *const api_call_methods[];

#endif
