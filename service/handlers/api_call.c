/* api_call: one HTTP request to a configured upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jsontext.h"
#include "core/validate.h"
#include "delivery/exec_common.h"
#include "delivery/outbound.h"
#include "handlers/handlers.h"

const char *const api_call_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static const struct field_rule rules[] = {
    RULE_ENDPOINT(true), RULE_METHOD,   {.name = "data", .type = V_ANY},
    RULE_HEADERS,        RULE_UPSTREAM, RULE_IF_MATCH,
    {.name = NULL},
};

int api_call_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    return handlers_validate_request(payload, rules, cfg, e);
}

/* Shared with experiment_sync: method (the type's .default_method when the payload names
 * none), endpoint, JSON data, headers and If-Match. */
void api_call_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    const json_t *p = job->payload;
    const struct upstream *u = exec_upstream(ctx->cfg, p, res);
    if (u == NULL)
        return;
    const struct handler *h = handlers_find(job->operation_type); /* the row that runs this */
    const char *method = validate_str(p, "method", h->default_method);
    const json_t *data = json_object_get(p, "data");
    char **lines = exec_header_lines(p);
    struct json_request jr = {.u = u,
                              .method = method,
                              .endpoint = validate_str(p, "endpoint", "/"),
                              .lines = lines,
                              .doc = strcmp(method, "GET") != 0 ? data : NULL,
                              .job_id = job->id,
                              .traceparent = job->traceparent,
                              .tracestate = job->tracestate};
    deliver_json(ctx, &jr, res);
    exec_free_lines(lines);
}
