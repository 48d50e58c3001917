/* file_upload: a stored file delivered as multipart/form-data. */
#include "handlers.h"
#include "validate.h"

static const struct field_rule rules[] = {
    {.name = "file_id", .type = V_UUID, .required = true},
    {.name = "endpoint", .type = V_STRING, .required = true, .min = 1, .max = 2048},
    {.name = "upstream", .type = V_STRING, .min = 1, .max = 100},
    {.name = "field", .type = V_STRING, .min = 1, .max = 200},
    {.name = "filename", .type = V_STRING, .min = 1, .max = 255},
    {.name = "form", .type = V_OBJECT},
    {.name = NULL},
};

/* form values become multipart parts: strings only, no control characters in names. */
static int check_form(const json_t *form, struct err *e)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)form, name, v) {
        if (!json_is_string(v) || !validate_is_printable(name))
            return err_field(e, ERR_INVALID_REQUEST, "form",
                             "form must map printable names to strings");
    }
    return 0;
}

int file_upload_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *form = json_object_get(payload, "form");
    if (form != NULL && check_form(form, e) != 0)
        return -1;
    const char *filename = validate_str(payload, "filename", "");
    if (!validate_is_printable(filename))
        return err_field(e, ERR_INVALID_REQUEST, "filename", "filename must be printable");
    return target_validate(payload, cfg, e);
}
