/* model_push: a file_upload whose form also carries model metadata. */
#include <stdlib.h>

#include "handlers/handlers.h"
#include "core/jsontext.h"
#include "core/validate.h"

static const struct field_rule rules[] = {
    {.name = "model_name", .type = V_STRING, .required = true, .min = 1, .max = 200},
    {.name = "version", .type = V_STRING, .min = 1, .max = 100},
    {.name = "metadata", .type = V_OBJECT},
    {.name = NULL},
};

int model_push_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    return file_upload_validate(payload, cfg, e);
}

/* The file upload, with model_name, version and metadata (as JSON text) as form fields. */
void model_push_execute(struct exec_ctx *ctx, const struct job *job, struct exec_result *res)
{
    const json_t *p = job->payload;
    json_t *extra = json_object();
    json_object_set(extra, "model_name", json_object_get(p, "model_name"));
    if (json_object_get(p, "version") != NULL)
        json_object_set(extra, "version", json_object_get(p, "version"));
    if (json_object_get(p, "metadata") != NULL) {
        char *meta = jsontext(json_object_get(p, "metadata"));
        json_object_set_new(extra, "metadata", json_string(meta));
        free(meta);
    }
    file_upload_send(ctx, job, extra, res);
    json_decref(extra);
}
