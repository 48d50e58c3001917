/* experiment_sync: a conflict-aware PUT of an experiment document. */
#include "core/validate.h"
#include "delivery/target.h"
#include "handlers/handlers.h"

static const struct field_rule rules[] = {
    {.name = "endpoint", .type = V_STRING, .required = true, .min = 1, .max = 2048},
    {.name = "data", .type = V_OBJECT, .required = true},
    {.name = "if_match", .type = V_STRING, .min = 1, .max = 1024},
    {.name = "upstream", .type = V_STRING, .min = 1, .max = 100},
    /* the api_call executor sends these too, so they meet its rules */
    {.name = "method", .type = V_STRING, .one_of = api_call_methods},
    {.name = "headers", .type = V_OBJECT},
    {.name = NULL},
};

int experiment_sync_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *headers = json_object_get(payload, "headers");
    if (headers != NULL && target_check_headers(headers, e) != 0)
        return -1;
    return target_validate(payload, cfg, e);
}

/* A PUT of the document (If-Match when given): the api_call executor, whose method defaults
 * to this type's .default_method ("PUT"). */
void experiment_sync_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    api_call_execute(ctx, job, res);
}
