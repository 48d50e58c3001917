#include "handlers/handlers.h"

#include <string.h>

#include "delivery/target.h"

static const struct handler handlers[] = {
    {.name = "api_call",
     .validate = api_call_validate,
     .execute = api_call_execute,
     .resolves_conflicts = true,
     .default_method = "POST"},
    {.name = "file_upload",
     .validate = file_upload_validate,
     .execute = file_upload_execute,
     .stores_file = true},
    {.name = "metric_log",
     .validate = metric_log_validate,
     .execute_batch = metric_log_execute_batch,
     .batch_endpoint = "/metrics"},
    {.name = "model_push",
     .validate = model_push_validate,
     .execute = model_push_execute,
     .stores_file = true},
    {.name = "experiment_sync",
     .validate = experiment_sync_validate,
     .execute = experiment_sync_execute,
     .resolves_conflicts = true,
     .default_method = "PUT"},
    {.name = NULL},
};

const struct handler *handlers_find(const char *name)
{
    for (const struct handler *h = handlers; h->name; h++) {
        if (strcmp(h->name, name) == 0)
            return h;
    }
    return NULL;
}

const struct handler *handlers_table(void)
{
    return handlers;
}

int handlers_validate_request(const json_t *payload, const struct field_rule *rules,
                              const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *headers = json_object_get(payload, "headers");
    if (headers != NULL && target_check_headers(headers, e) != 0)
        return -1;
    return target_validate(payload, cfg, e);
}
