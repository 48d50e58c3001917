/* experiment_sync: a conflict-aware PUT of an experiment document. */
#include "core/validate.h"
#include "handlers/handlers.h"

static const struct field_rule rules[] = {
    RULE_ENDPOINT(true),
    {.name = "data", .type = V_OBJECT, .required = true},
    RULE_IF_MATCH,
    RULE_UPSTREAM,
    /* the api_call executor sends these too, so they meet its rules */
    RULE_METHOD,
    RULE_HEADERS,
    {.name = NULL},
};

int experiment_sync_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    return handlers_validate_request(payload, rules, cfg, e);
}

/* A PUT of the document (If-Match when given): the api_call executor, whose method defaults
 * to this type's .default_method ("PUT"). */
void experiment_sync_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    api_call_execute(ctx, job, res);
}
