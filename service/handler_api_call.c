/* api_call: one HTTP request to a configured upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "handler_exec_common.h"
#include "handlers.h"
#include "jsontext.h"
#include "outbound.h"
#include "validate.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static const struct field_rule rules[] = {
    {.name = "endpoint", .type = V_STRING, .required = true, .min = 1, .max = 2048},
    {.name = "method", .type = V_STRING, .one_of = methods},
    {.name = "data", .type = V_ANY},
    {.name = "headers", .type = V_OBJECT},
    {.name = "upstream", .type = V_STRING, .min = 1, .max = 100},
    {.name = "if_match", .type = V_STRING, .min = 1, .max = 1024},
    {.name = NULL},
};

/* Header names the service sets itself: a payload may not override them. */
static const char *const reserved[] = {"host", "content-length", "transfer-encoding",
                                       "connection", "idempotency-key", NULL};

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (strchr("!#$%&'*+-.^_`|~", *s) == NULL && !(*s >= '0' && *s <= '9') &&
            !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
            return false;
    }
    return true;
}

static int check_headers(const json_t *headers, struct err *e)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)headers, name, v) {
        char field[128];
        snprintf(field, sizeof(field), "headers.%s", name);
        if (!is_token(name))
            return err_field(e, ERR_INVALID_REQUEST, "headers", "invalid header name");
        for (const char *const *r = reserved; *r; r++) {
            if (strcasecmp(name, *r) == 0)
                return err_field(e, ERR_INVALID_REQUEST, field, "header %s is set by the service",
                                 name);
        }
        if (!json_is_string(v) || !validate_is_printable(json_string_value(v)) ||
            strlen(json_string_value(v)) != json_string_length(v))
            return err_field(e, ERR_INVALID_REQUEST, field,
                             "header values must be strings without control characters");
    }
    return 0;
}

int api_call_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *headers = json_object_get(payload, "headers");
    if (headers != NULL && check_headers(headers, e) != 0)
        return -1;
    return target_validate(payload, cfg, e);
}

/* Shared with experiment_sync: method, endpoint, JSON data, headers and If-Match. */
void api_call_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    const json_t *p = job->payload;
    const struct upstream *u = target_upstream(&ctx->app->cfg, p);
    if (u == NULL) {
        exec_fail(res, "upstream \"%s\" is no longer configured", validate_str(p, "upstream", "default"));
        return;
    }
    const char *method = validate_str(p, "method", strcmp(job->operation_type, "experiment_sync") == 0 ? "PUT" : "POST");
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
