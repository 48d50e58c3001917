#include "handlers.h"

#include <string.h>

static const struct handler handlers[] = {
    {.name = "api_call", .validate = api_call_validate},
    {.name = "file_upload", .validate = file_upload_validate},
    {.name = "metric_log", .validate = metric_log_validate},
    {.name = "model_push", .validate = model_push_validate},
    {.name = "experiment_sync", .validate = experiment_sync_validate},
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
