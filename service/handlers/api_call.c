/* api_call: one HTTP request to a configured upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jsontext.h"
#include "core/validate.h"
#include "delivery/exec_common.h"
#include "delivery/outbound.h"
#include "delivery/target.h"
#include "handlers/handlers.h"

const char *const api_call_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static const struct field_rule rules[] = {
    {.name = "endpoint", .type = V_STRING, .required = true, .min = 1, .max = 2048},
    {.name = "method", .type = V_STRING, .one_of = api_call_methods},
    {.name = "data", .type = V_ANY},
    {.name = "headers", .type = V_OBJECT},
    {.name = "upstream", .type = V_STRING, .min = 1, .max = 100},
    {.name = "if_match", .type = V_STRING, .min = 1, .max = 1024},
    {.name = NULL},
};

int api_call_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *headers = json_object_get(payload, "headers");
    if (headers != NULL && target_check_headers(headers, e) != 0)
        return -1;
    return target_validate(payload, cfg, e);
}

/* Shared with experiment_sync: method (the type's .default_method when the payload names
 * none), endpoint, JSON data, headers and If-Match. */
void api_call_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    const json_t *p = job->payload;
    const struct upstream *u = target_upstream(ctx->cfg, p);
    if (u == NULL) {
        exec_fail(res, "upstream \"%s\" is no longer configured", validate_str(p, "upstream", "default"));
        return;
    }
    const struct handler *h = handlers_find(job->operation_type); /* the row that runs this */
    const char *method = validate_str(p, "method", h->default_method);
    const json_t *data = json_object_get(p, "data");
    bool has_body = data != NULL && strcmp(method, "GET") != 0;
    char *body = has_body ? jsontext(data) : NULL;
    char **lines = exec_header_lines(p);
    struct out_request rq = {.u = u,
                             .method = method,
                             .endpoint = validate_str(p, "endpoint", "/"),
                             .headers = (const char *const *)lines,
                             .body = body,
                             .body_len = body ? strlen(body) : 0,
                             .content_type = "application/json",
                             .idempotency_key = job->id};
    deliver(ctx, &rq, res);
    exec_free_lines(lines);
    free(body);
}
