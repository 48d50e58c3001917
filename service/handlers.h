/* The operation type registry. Adding a type: service/handler_<type>.c and one row in
 * handlers[] (handlers.c). Types are registered in the database at start-up. */
#ifndef OQ_HANDLERS_H
#define OQ_HANDLERS_H

#include <jansson.h>

#include "config.h"
#include "err.h"

struct handler {
    const char *name;
    /* Checks a payload at enqueue, before anything is stored. Field names in *e are relative
     * to the payload ("endpoint"); the caller prefixes them. Thread-safe. */
    int (*validate)(const json_t *payload, const struct config *cfg, struct err *e);
};

/* Returns the handler registered for name, or NULL. */
const struct handler *handlers_find(const char *name);

/* The registry, ended by a row with name NULL. */
const struct handler *handlers_table(void);

/* The built-in validators (one per handler_<type>.c). */
int api_call_validate(const json_t *payload, const struct config *cfg, struct err *e);
int file_upload_validate(const json_t *payload, const struct config *cfg, struct err *e);
int metric_log_validate(const json_t *payload, const struct config *cfg, struct err *e);
int model_push_validate(const json_t *payload, const struct config *cfg, struct err *e);
int experiment_sync_validate(const json_t *payload, const struct config *cfg, struct err *e);

/* Shared by handlers that send to an upstream: checks payload.upstream and payload.endpoint
 * (a path on the upstream, or an absolute URL whose origin is the upstream's). Thread-safe. */
int target_validate(const json_t *payload, const struct config *cfg, struct err *e);

#endif
