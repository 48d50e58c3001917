/* model_push: a file_upload whose form also carries model metadata. */
#include "handlers.h"
#include "validate.h"

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
